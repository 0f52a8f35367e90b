-- The security rules hold for every table and function of the extension (checked from the catalog, so a table or a
-- function added later is covered automatically).

-- every table: RLS enabled AND forced, registered for pg_dump (except ab_experiment_unit_totals and
-- ab_experiment_unit_counts: derived, rebuilt by their triggers on restore; and rate_limit_state: the limiter's
-- UNLOGGED window), an index that leads with user_id.
-- The cache_* tables (UNLOGGED) are neither forced nor dumped: no API role has any privilege on them, and the
-- SECURITY DEFINER functions that reach them filter by the JWT's owner themselves (sql/041_cache.sql). Nor are the
-- usage_cache_* tables, the usage snapshot's node-local bookkeeping of partitions (sql/046_usage.sql): no API role has
-- any privilege on them and they have no policy.
-- llm_traces is partitioned: it has no rows of its own to dump, its partitions are (tests/pg_regress/sql/partitions.sql
-- checks their security).
select c.relname,
       c.relrowsecurity as rls,
       c.relforcerowsecurity as forced,
       c.oid = any (e.extconfig) as dumped,
       -- (a partitioned table: every partition has one; the parent has no index of its own)
       (select bool_and(exists (select 1 from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
               where i.indrelid = r.oid and i.indkey[0] <> 0 and a.attname = 'user_id' and
                     (select amname from pg_am where oid = (select relam from pg_class where oid = i.indexrelid)) = 'btree'))
        from (select c.oid where c.relkind = 'r' union all
              select h.inhrelid from pg_inherits h where h.inhparent = c.oid and c.relkind = 'p') r)
           as user_id_index
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join (select extconfig from pg_extension where extname = 'analytics_ext') e
where n.nspname = 'analytics' and c.relkind in ('r', 'p')
order by 1;

-- every table: exactly one policy per command, for every role, permissive
select tablename, string_agg(cmd, ', ' order by cmd) as commands,
       bool_and(roles = '{public}') as for_every_role,
       bool_and(permissive = 'PERMISSIVE') as permissive
from pg_policies
where schemaname = 'analytics'
group by 1
order by 1;

-- ...and every policy expression (USING and WITH CHECK) is the same one: the owner is the caller, evaluated once
-- per query as an InitPlan ("SELECT" around the call). UPDATE has both, INSERT only WITH CHECK, the others USING.
-- One addition: rate_limits_select_defaults lets every owner read the default rate limits (user_id IS NULL).
select expr, count(*) as uses
from (select qual as expr from pg_policies where schemaname = 'analytics' and qual is not null
      union all
      select with_check from pg_policies where schemaname = 'analytics' and with_check is not null) e
group by 1;
select cmd, count(qual) as with_using, count(with_check) as with_check
from pg_policies where schemaname = 'analytics' group by 1 order by 1;

-- no function can be executed by PUBLIC; every function is executable by authenticated and service_role, except
-- the lock of the totals' protocol and the DBA's rebuild_experiment_totals and apply_retention
select p.proname || '/' || p.pronargs as function,
       has_function_privilege('public', p.oid, 'execute') as public_exec,
       has_function_privilege('anon', p.oid, 'execute') as anon_exec,
       has_function_privilege('authenticated', p.oid, 'execute') as authenticated_exec,
       has_function_privilege('service_role', p.oid, 'execute') as service_role_exec
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'analytics'
order by 1;

-- table privileges per API role: anon none, authenticated and service_role full DML (RLS confines authenticated),
-- except ab_experiment_unit_totals and ab_experiment_unit_counts, which only their triggers write, retention_policies
-- and rate_limits, which owners only read, rate_limit_state, which only analytics.check_rate_limit writes, and
-- ingest_failures, a log owners read, add to (through the ingest functions) and delete from, but do not update
select c.relname,
       has_table_privilege('anon', c.oid, 'select, insert, update, delete') as anon,
       has_table_privilege('authenticated', c.oid, 'select') and has_table_privilege('authenticated', c.oid, 'insert')
         and has_table_privilege('authenticated', c.oid, 'update') and has_table_privilege('authenticated', c.oid, 'delete') as authenticated,
       has_table_privilege('service_role', c.oid, 'select') and has_table_privilege('service_role', c.oid, 'delete') as service_role
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'analytics' and c.relkind in ('r', 'p')
order by 1;

-- how every function is declared (volatility i/s/v, strict, parallel s/r/u, security definer), for review
select p.proname || '/' || p.pronargs as function, p.provolatile as vol, p.proisstrict as strict, p.proparallel as par,
       p.prosecdef as definer
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'analytics'
order by 1;

-- every function is documented with COMMENT ON FUNCTION (none may be missing)
select p.oid::regprocedure as function_without_comment
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'analytics' and obj_description(p.oid, 'pg_proc') is null;

-- SECURITY DEFINER functions must pin search_path to '' (none may exist without it)
select p.oid::regprocedure as definer_without_empty_search_path
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'analytics' and p.prosecdef and not coalesce(p.proconfig @> array['search_path=""'], false);

-- the extension: fixed schema, not relocatable
select extname, extnamespace::regnamespace, extrelocatable from pg_extension where extname = 'analytics_ext';
