-- Citus readiness, checked over the catalog (docs/scaling.md): every table is distributed by user_id, a reference
-- table, or local to the node that runs the functions; a distributed table has a NOT NULL uuid user_id, every
-- primary key, unique constraint and unique index of it (and of each of its partitions) includes user_id, and every
-- foreign key between distributed tables matches user_id with user_id (so rows only ever reference rows of their own
-- shard). A table added later without a place in this plan fails here.
create temp table placement (relname text primary key, plan text not null);
insert into placement
select c.relname,
       case when c.relname in ('rate_limits', 'rate_limit_rules_version') then 'reference'
            when c.relname like 'cache\_%' or c.relname like 'usage\_cache\_%' then 'local'
            else 'distributed' end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'analytics' and c.relkind in ('r', 'p');
select plan, string_agg(relname, ', ' order by relname) as tables from placement group by plan order by plan;

-- the tables whose rows a distributed table's keys are checked on: the table and its partitions
create temp view distributed_rels as
select p.relname as table_name, c.oid as relid
from placement p join pg_class c on c.relname = p.relname and c.relnamespace = 'analytics'::regnamespace
where p.plan = 'distributed'
union all
select p.relname, i.inhrelid
from placement p join pg_inherits i on i.inhparent = ('analytics.' || p.relname)::regclass
where p.plan = 'distributed';

-- 1. user_id: present, uuid, NOT NULL (none missing)
select p.relname as without_a_not_null_uuid_user_id
from placement p
where p.plan = 'distributed'
  and not exists (select 1 from pg_attribute a
                  where a.attrelid = ('analytics.' || p.relname)::regclass and a.attname = 'user_id'
                    and a.atttypid = 'uuid'::regtype and a.attnotnull and not a.attisdropped);

-- 2. every unique index (primary keys and unique constraints have one) includes user_id (none without)
select d.table_name, x.indexrelid::regclass as unique_index_without_user_id
from distributed_rels d
join pg_index x on x.indrelid = d.relid and x.indisunique
where not exists (select 1 from pg_attribute a
                  where a.attrelid = d.relid and a.attname = 'user_id' and a.attnum = any (x.indkey::int2[]))
order by 1, 2;

-- 3. every foreign key of a distributed table matches user_id with user_id, and points at a distributed or a
--    reference table (none otherwise)
select c.conrelid::regclass as table_name, c.conname as foreign_key_not_colocated
from pg_constraint c
join placement p on ('analytics.' || p.relname)::regclass = c.conrelid and p.plan = 'distributed'
left join placement target on ('analytics.' || target.relname)::regclass = c.confrelid
where c.contype = 'f'
  and (target.plan is null or target.plan = 'local'
       or not exists (select 1 from unnest(c.conkey, c.confkey) k(from_col, to_col)
                      join pg_attribute fa on fa.attrelid = c.conrelid and fa.attnum = k.from_col and fa.attname = 'user_id'
                      join pg_attribute ta on ta.attrelid = c.confrelid and ta.attnum = k.to_col and ta.attname = 'user_id'))
order by 1::text, 2;

-- 4. a reference table references no distributed table
select c.conrelid::regclass as reference_table, c.conname as foreign_key_into_distributed
from pg_constraint c
join placement p on ('analytics.' || p.relname)::regclass = c.conrelid and p.plan = 'reference'
join placement target on ('analytics.' || target.relname)::regclass = c.confrelid and target.plan = 'distributed'
where c.contype = 'f';

-- the keys as they stand, for review: each distributed table's primary key and unique keys
select c.conrelid::regclass as table_name, c.conname, pg_get_constraintdef(c.oid) as definition
from pg_constraint c
join placement p on ('analytics.' || p.relname)::regclass = c.conrelid and p.plan = 'distributed'
where c.contype in ('p', 'u', 'f')
order by 1::text, 2;
