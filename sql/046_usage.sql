-- Storage and usage: what an owner's spans take on disk (measured per row, indexes apportioned), biggest traces,
-- a daily usage snapshot per owner written idempotently by a pg_cron job, projections of storage and spend from
-- a least-squares trend over the snapshots (analytics_core::usage), and a cost report.
--
-- Bytes of a span: its heap tuple as stored — header, null bitmap and data, with values TOASTed out of line counted at
-- their stored (compressed) size; pg_column_size of the whole row — aligned to 8 bytes, plus its 4-byte line pointer.
-- Index bytes are apportioned by row count: each index of llm_traces has one entry per span, so an owner's share of
-- the indexes is their share of the rows (of the planner's row estimate, pg_class.reltuples, which autovacuum and
-- ANALYZE keep). Not attributed to anyone: free space in pages, dead rows not yet vacuumed, TOAST chunk headers and
-- the free space and visibility maps; storage_summary reports the tables' total beside the owners' figures.

COMMENT ON FUNCTION analytics._project_trend(double precision[], double precision[], double precision, integer[], boolean, double precision) IS
'A least-squares line through (xs, ys) and, per horizon, a stock''s value or a flow''s total ahead of last_x with its prediction interval (analytics_core::usage). Internal: analytics.usage_projection.';

-- ---- sizes of the span table ------------------------------------------------------------------------------------------
CREATE FUNCTION analytics._span_relation_sizes(OUT table_bytes bigint, OUT index_bytes bigint, OUT rows_estimate bigint)
RETURNS record
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
    select coalesce(sum(pg_catalog.pg_table_size(p.relid)), 0)::bigint,
           coalesce(sum(pg_catalog.pg_indexes_size(p.relid)), 0)::bigint,
           coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
    from pg_catalog.pg_partition_tree('analytics.llm_traces'::regclass) p
    join pg_catalog.pg_class c on c.oid = p.relid
    where p.isleaf
$$;
COMMENT ON FUNCTION analytics._span_relation_sizes() IS
'The partitions of analytics.llm_traces together: table bytes (heap, TOAST, maps), index bytes, and the planner''s row estimate. Internal: storage_summary, storage_by_trace, snapshot_usage.';

-- the stored bytes of one span row, read through analytics.llm_traces or from one of its partitions (no SET clause,
-- and STABLE like pg_column_size, so that it is inlined into the queries that call it: a function declared IMMUTABLE
-- around a STABLE one is not, and costs a call per row)
CREATE FUNCTION analytics._span_bytes(s anyelement)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE STRICT
AS $$
    select ((pg_catalog.pg_column_size(s) + 7) / 8 * 8 + 4)::bigint
$$;
COMMENT ON FUNCTION analytics._span_bytes(anyelement) IS
'The bytes a span row (of analytics.llm_traces or of one of its partitions) takes in its table: the tuple (TOASTed values at their stored size) aligned to 8 bytes, plus its line pointer. Internal.';

-- ---- storage_summary --------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.storage_summary()
RETURNS TABLE (
    user_id           uuid,
    spans             bigint,
    traces            bigint,
    row_bytes         bigint,
    index_bytes       bigint,
    total_bytes       bigint,
    bytes_per_span    double precision,
    bytes_per_trace   double precision,
    table_total_bytes bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    sz record;
begin
    select * into sz from analytics._span_relation_sizes();
    return query
    with o as (
        select t.user_id as owner, count(*) as n, count(distinct t.trace_id) as tr, sum(analytics._span_bytes(t)) as rb
        from analytics.llm_traces t
        group by t.user_id
    ), tot as (
        select coalesce(sum(o.n), 0) as n from o
    )
    select o.owner, o.n, o.tr, o.rb::bigint,
           (sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1))::bigint,
           (o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1))::bigint,
           ((o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1)) / o.n)::double precision,
           ((o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1)) / o.tr)::double precision,
           sz.table_bytes + sz.index_bytes
    from o, tot
    order by 6 desc, 1;
end
$$;
COMMENT ON FUNCTION analytics.storage_summary() IS
$$Storage of spans per owner the caller may read (a user: themselves; the DBA, service_role or a BYPASSRLS job: every owner): spans, traces, measured row bytes (TOASTed values at their stored size), the owner's share of the indexes (by row count), their total, bytes per span and per trace, and the span tables' total size (pg_total_relation_size of every partition) for comparison: the difference is free space, dead rows not yet vacuumed and TOAST overhead.
Example: select spans, traces, total_bytes, round(bytes_per_span) as bytes_per_span from analytics.storage_summary();$$;

-- ---- storage_by_trace: the biggest traces -------------------------------------------------------------------------------
CREATE FUNCTION analytics.storage_by_trace(
    from_time timestamptz DEFAULT now() - interval '7 days',
    to_time   timestamptz DEFAULT now(),
    "limit"   integer     DEFAULT 20,
    user_id   uuid        DEFAULT NULL
) RETURNS TABLE (
    trace_id       text,
    spans          bigint,
    started_at     timestamptz,
    total_bytes    bigint,
    row_bytes      bigint,
    index_bytes    bigint,
    input_bytes    bigint,
    output_bytes   bigint,
    metadata_bytes bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(storage_by_trace.user_id, analytics.current_user_id());
    sz record;
    total_rows bigint;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose traces to measure'
            using errcode = '42501';
    end if;
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if "limit" is null or "limit" < 1 or "limit" > 1000 then
        raise exception 'limit: must be between 1 and 1000, got %', coalesce("limit"::text, 'NULL') using errcode = '22023';
    end if;
    select * into sz from analytics._span_relation_sizes();
    total_rows := greatest(sz.rows_estimate, 1);
    return query
    select t.trace_id, count(*), min(t.start_time),
           (sum(analytics._span_bytes(t)) + sz.index_bytes::numeric * count(*) / total_rows)::bigint,
           sum(analytics._span_bytes(t))::bigint,
           (sz.index_bytes::numeric * count(*) / total_rows)::bigint,
           coalesce(sum(pg_catalog.pg_column_size(t.input)), 0)::bigint,
           coalesce(sum(pg_catalog.pg_column_size(t.output)), 0)::bigint,
           sum(pg_catalog.pg_column_size(t.metadata))::bigint
    from analytics.llm_traces t
    where t.user_id = owner and t.start_time >= from_time and t.start_time < to_time
    group by t.trace_id
    order by 4 desc, 1
    limit "limit";
end
$$;
COMMENT ON FUNCTION analytics.storage_by_trace(timestamptz, timestamptz, integer, uuid) IS
$$The caller's (or user_id's) biggest traces among the spans that started in [from_time, to_time): spans, first start, total bytes (measured rows plus the index share by row count), and the stored (compressed) bytes of input, output and metadata — where the bytes go. Up to "limit" traces (1 to 1000), biggest first.
Example: select trace_id, spans, total_bytes, output_bytes from analytics.storage_by_trace(now() - interval '1 day', now(), 5);$$;

-- ---- usage snapshots --------------------------------------------------------------------------------------------------
CREATE TABLE analytics.usage_snapshots (
    user_id            uuid             NOT NULL DEFAULT analytics.current_user_id(),
    day                date             NOT NULL,
    -- stored when the snapshot was taken: spans that started before the end of the day, and their bytes
    spans_stored       bigint           NOT NULL,
    bytes_stored       bigint           NOT NULL,
    -- the day's activity: spans and traces that started on it, their tokens and LLM cost
    spans              bigint           NOT NULL,
    traces             bigint           NOT NULL,
    input_tokens       bigint           NOT NULL,
    output_tokens      bigint           NOT NULL,
    cache_read_tokens  bigint           NOT NULL,
    cache_write_tokens bigint           NOT NULL,
    reasoning_tokens   bigint           NOT NULL,
    cost_usd           double precision NOT NULL,
    taken_at           timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT usage_snapshots_pkey PRIMARY KEY (user_id, day)
);
COMMENT ON TABLE analytics.usage_snapshots IS
'One row per owner and day (UTC), written by analytics.snapshot_usage: spans and bytes stored (spans that started before the end of the day, as of taken_at; bytes as analytics.storage_summary measures them), and the day''s spans, traces, tokens by kind and LLM cost. The history analytics.usage_projection fits.';

-- ---- the cache of settled days: what makes the daily snapshot cheap ---------------------------------------------------
-- "Stored on day D" needs every span that started before the end of D, measured row by row: a scan of the whole table
-- and a pg_column_size of every row, every day. Spans of days that are over change rarely (a late span, a re-send, a
-- deletion), so snapshot_usage keeps per partition, per UTC day and per owner the spans and row bytes of the days that
-- are settled, and on later runs reads those and measures only what is new or changed:
--
--  * a day is settled once it ended more than a day before the run and before every transaction still open started
--    (pg_stat_activity.xact_start): any write that could still commit after the run then either touches a later day or
--    meets the trigger below;
--  * a write (INSERT, UPDATE, DELETE through analytics.llm_traces) of spans that started more than a day before the
--    writing moment makes the table's statement trigger log their days in usage_cache_changes (a statement of recent
--    spans logs nothing); the next snapshot measures those days again. The log rows are deleted before the day is
--    measured again, so a write that commits in between is measured now and logged once more (measured again next
--    time: never missed);
--  * TRUNCATE and VACUUM FULL give a partition a new file node and drop its cache; a dropped or detached partition's
--    cache is dropped with it; TRUNCATE usage_cache_partitions, usage_cache_days resets the cache.
--
-- The cache is used when the caller reads every owner's spans (superuser or BYPASSRLS, as a pg_cron job) and may read
-- pg_stat_activity of every session (superuser or pg_read_all_stats); any other call measures directly. Its tables are
-- local to the node: no API role has any privilege on them and they are not dumped (partition OIDs change on restore).
CREATE TABLE analytics.usage_cache_partitions (
    relid        oid         NOT NULL,
    relfilenode  oid         NOT NULL,
    from_time    timestamptz NOT NULL,
    to_time      timestamptz NOT NULL,
    cached_until timestamptz NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_cache_partitions_pkey PRIMARY KEY (relid)
);
COMMENT ON TABLE analytics.usage_cache_partitions IS
'Per partition of analytics.llm_traces: the days [from_time, cached_until) whose spans and row bytes per owner are in analytics.usage_cache_days, valid while the partition keeps its file node (relfilenode). Kept by analytics.snapshot_usage; TRUNCATE it with analytics.usage_cache_days to reset. Local to the node, not dumped.';

CREATE TABLE analytics.usage_cache_days (
    relid     oid    NOT NULL,
    day       date   NOT NULL,
    user_id   uuid   NOT NULL,
    spans     bigint NOT NULL,
    row_bytes bigint NOT NULL,
    CONSTRAINT usage_cache_days_pkey PRIMARY KEY (relid, day, user_id)
);
COMMENT ON TABLE analytics.usage_cache_days IS
'Per partition, UTC day and owner with spans that day: the spans and their row bytes (as analytics._span_bytes measures them), for the settled days of analytics.usage_cache_partitions. Kept by analytics.snapshot_usage. Local to the node, not dumped.';

CREATE TABLE analytics.usage_cache_changes (
    day       date        NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_cache_changes_day_idx ON analytics.usage_cache_changes (day);
COMMENT ON TABLE analytics.usage_cache_changes IS
'UTC days of spans written more than a day after they started (late spans, re-sends, deletions), logged by a trigger of analytics.llm_traces once per day and transaction: analytics.snapshot_usage measures those days again and deletes the rows. Local to the node, not dumped.';

CREATE FUNCTION analytics._usage_log_change() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    cutoff timestamptz := pg_catalog.clock_timestamp() - interval '1 day';
    days date[];
    d date;
    seen text;
begin
    -- the UTC days of the statement's spans that started more than a day ago (an UPDATE: old and new, it may move a
    -- span); logging a day that is not settled is harmless. A statement of recent spans logs nothing.
    if tg_op = 'INSERT' then
        days := array(select distinct (n.start_time AT TIME ZONE 'UTC')::date from new_rows n where n.start_time < cutoff);
    elsif tg_op = 'DELETE' then
        days := array(select distinct (o.start_time AT TIME ZONE 'UTC')::date from old_rows o where o.start_time < cutoff);
    else
        days := array(select (n.start_time AT TIME ZONE 'UTC')::date from new_rows n where n.start_time < cutoff
                      union
                      select (o.start_time AT TIME ZONE 'UTC')::date from old_rows o where o.start_time < cutoff);
    end if;
    foreach d in array days loop
        seen := 'analytics.usage_logged_' || pg_catalog.to_char(d, 'YYYYMMDD');
        -- once per day and transaction (a late batch of a thousand spans logs one row); the setting is transaction-local
        if pg_catalog.current_setting(seen, true) is distinct from 'on' then
            insert into analytics.usage_cache_changes (day) values (d);
            perform pg_catalog.set_config(seen, 'on', true);
        end if;
    end loop;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._usage_log_change() IS
'Statement trigger of analytics.llm_traces (INSERT, UPDATE, DELETE, with the transition tables): logs the UTC days of the statement''s spans that started more than a day before the write in analytics.usage_cache_changes (once per day and transaction). SECURITY DEFINER because API roles have no privilege on that table; it returns nothing. Internal.';

-- statement triggers: a batch of late spans costs one call, not one per span (a row trigger cost 0.4 s per 100,000
-- late spans); writes made directly into a partition, bypassing analytics.llm_traces, are not logged
CREATE TRIGGER llm_traces_usage_insert AFTER INSERT ON analytics.llm_traces REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();
CREATE TRIGGER llm_traces_usage_update AFTER UPDATE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();
CREATE TRIGGER llm_traces_usage_delete AFTER DELETE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();

-- Spans per owner that started before `until` and their row bytes: from the cache where it is valid (filling and
-- repairing it on the way), measured for the rest. One owner, or a caller who does not read every owner, is measured
-- directly.
CREATE FUNCTION analytics._stored_by_owner(until timestamptz, only_user uuid)
RETURNS TABLE (user_id uuid, spans bigint, row_bytes numeric)
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    cutoff timestamptz;
    p record;
    st analytics.usage_cache_partitions;
    want timestamptz;
    bad date[];
    fresh boolean;
    rest_from timestamptz;
    parts text[] := '{}';
begin
    if only_user is not null or not exists (
            select 1 from pg_catalog.pg_roles r
            where r.rolname = current_user and (r.rolsuper or r.rolbypassrls)
              and pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_days', 'SELECT, INSERT, DELETE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_partitions', 'SELECT, INSERT, UPDATE, DELETE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_changes', 'DELETE')) then
        return query
        select t.user_id, count(*), sum(analytics._span_bytes(t))
        from analytics.llm_traces t
        where t.start_time < until and (only_user is null or t.user_id = only_user)
        group by t.user_id;
        return;
    end if;

    -- the settled days end here: a day before now, and before the oldest open transaction started; none while a
    -- prepared transaction (whose writes may be older) waits
    select pg_catalog.date_trunc('day', (least(pg_catalog.clock_timestamp(), min(a.xact_start)) - interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    into cutoff
    from pg_catalog.pg_stat_activity a where a.xact_start is not null;
    if exists (select 1 from pg_catalog.pg_prepared_xacts) then
        cutoff := '-infinity';
    end if;

    -- days logged that no bounded partition holds (spans in the default partition or in a before/after partition, which
    -- are always measured) are of no use
    delete from analytics.usage_cache_changes c
    where not exists (select 1 from analytics.span_partitions() p
                      where c.day >= (p.from_time AT TIME ZONE 'UTC')::date and c.day < (p.to_time AT TIME ZONE 'UTC')::date);
    -- partitions that are gone (dropped, detached) or rewritten (TRUNCATE, VACUUM FULL) lose their cache
    with gone as (
        delete from analytics.usage_cache_partitions s
        where not exists (select 1 from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
                          where i.inhparent = 'analytics.llm_traces'::regclass and i.inhrelid = s.relid
                            and c.relfilenode = s.relfilenode)
        returning s.relid
    )
    delete from analytics.usage_cache_days d using gone where d.relid = gone.relid;

    for p in
        select c.oid as relid, c.relfilenode, s.partition as name, s.from_time, s.to_time
        from analytics.span_partitions() s join pg_catalog.pg_class c on c.oid = s.partition::regclass
        order by c.oid
    loop
        if p.from_time is not null and p.from_time >= until then
            continue;                                   -- later than the day: nothing to count
        end if;
        want := least(p.to_time, cutoff, until);
        -- the default partition, a partition unbounded below or above (before/after), a range that does not start and
        -- end at UTC midnight, or nothing settled yet: measured
        if p.from_time is null or p.to_time is null or want <= p.from_time
           or p.from_time <> pg_catalog.date_trunc('day', p.from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           or p.to_time <> pg_catalog.date_trunc('day', p.to_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' then
            parts := parts || format('select t.user_id, count(*), sum(analytics._span_bytes(t)) from %s t where t.start_time < %L group by 1',
                                     p.name, until);
            continue;
        end if;

        insert into analytics.usage_cache_partitions (relid, relfilenode, from_time, to_time, cached_until)
        values (p.relid, p.relfilenode, p.from_time, p.to_time, p.from_time)
        on conflict (relid) do nothing
        returning true into fresh;
        if fresh then
            delete from analytics.usage_cache_days d where d.relid = p.relid;   -- left over from a reset
        end if;
        select * into st from analytics.usage_cache_partitions s where s.relid = p.relid for update;
        if st.from_time <> p.from_time or st.to_time <> p.to_time then    -- an OID reused by another partition
            delete from analytics.usage_cache_days d where d.relid = p.relid;
            update analytics.usage_cache_partitions s set from_time = p.from_time, to_time = p.to_time, cached_until = p.from_time
            where s.relid = p.relid returning * into st;
        end if;
        -- days written since they were measured: their log rows go first (before the days are measured again)
        with logged as (
            delete from analytics.usage_cache_changes c
            where c.day >= (p.from_time AT TIME ZONE 'UTC')::date and c.day < (p.to_time AT TIME ZONE 'UTC')::date
            returning c.day
        )
        select coalesce(array_agg(distinct l.day) filter (where l.day < (st.cached_until AT TIME ZONE 'UTC')::date), '{}')
        into bad from logged l;
        if exists (select 1 from unnest(bad) b where b >= (cutoff AT TIME ZONE 'UTC')::date) then
            -- a cached day is no longer settled (a clock set back, a prepared transaction): start the partition again
            delete from analytics.usage_cache_days d where d.relid = p.relid;
            update analytics.usage_cache_partitions s set cached_until = p.from_time where s.relid = p.relid returning * into st;
            bad := '{}';
        end if;
        if cardinality(bad) > 0 or want > st.cached_until then
            delete from analytics.usage_cache_days d
            where d.relid = p.relid and (d.day = any (bad) or (d.day >= (st.cached_until AT TIME ZONE 'UTC')::date
                                                            and d.day < (want AT TIME ZONE 'UTC')::date));
            -- (each row's bytes are taken below the aggregate, OFFSET 0: sorting or hashing whole rows would spill)
            execute format(
                'insert into analytics.usage_cache_days (relid, day, user_id, spans, row_bytes)
                 select %s, r.day, r.user_id, count(*), sum(r.bytes)
                 from (select (t.start_time AT TIME ZONE ''UTC'')::date as day, t.user_id, analytics._span_bytes(t) as bytes
                       from %s t
                       where (t.start_time >= %L and t.start_time < %L) or (t.start_time AT TIME ZONE ''UTC'')::date = any (%L::date[])
                       offset 0) r
                 group by 2, 3',
                p.relid, p.name, st.cached_until, greatest(want, st.cached_until), bad);
            update analytics.usage_cache_partitions s
            set cached_until = greatest(s.cached_until, want), computed_at = now()
            where s.relid = p.relid returning * into st;
        end if;
        parts := parts || format('select d.user_id, d.spans, d.row_bytes from analytics.usage_cache_days d where d.relid = %s and d.day < %L',
                                 p.relid, (least(st.cached_until, until) AT TIME ZONE 'UTC')::date);
        rest_from := greatest(p.from_time, st.cached_until);
        if least(p.to_time, until) > rest_from then
            parts := parts || format('select t.user_id, count(*), sum(analytics._span_bytes(t)) from %s t where t.start_time >= %L and t.start_time < %L group by 1',
                                     p.name, rest_from, least(p.to_time, until));
        end if;
    end loop;

    if cardinality(parts) > 0 then
        return query execute
            'select x.user_id, sum(x.n)::bigint, sum(x.b) from (' || array_to_string(parts, ' union all ')
            || ') x(user_id, n, b) group by 1';
    end if;
end
$$;
COMMENT ON FUNCTION analytics._stored_by_owner(timestamptz, uuid) IS
'Spans that started before `until` and their row bytes per owner (or for only_user): settled days from analytics.usage_cache_days (kept up to date on the way), the rest measured. Internal: analytics.snapshot_usage.';

CREATE FUNCTION analytics.snapshot_usage(
    day     date DEFAULT ((now() AT TIME ZONE 'UTC')::date - 1),
    user_id uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    day_start timestamptz;
    day_end timestamptz;
    sz record;
    written integer;
begin
    if snapshot_usage.day is null then
        raise exception 'day: is required' using errcode = '22004';
    end if;
    day_start := snapshot_usage.day::timestamp AT TIME ZONE 'UTC';
    day_end := day_start + interval '1 day';
    select * into sz from analytics._span_relation_sizes();
    -- every owner the caller may read (a job: all of them), or one
    with stored as (
        select s.user_id as owner, s.spans as n, s.row_bytes as rb
        from analytics._stored_by_owner(day_end, snapshot_usage.user_id) s
    ), total as (
        select greatest(sz.rows_estimate, coalesce(sum(stored.n), 0), 1) as n from stored
    ), active as (
        select t.user_id as owner, count(*) as spans, count(distinct t.trace_id) as traces,
               sum(t.input_tokens)::bigint as input_tokens, sum(t.output_tokens)::bigint as output_tokens,
               sum(t.cache_read_tokens)::bigint as cache_read_tokens, sum(t.cache_write_tokens)::bigint as cache_write_tokens,
               sum(t.reasoning_tokens)::bigint as reasoning_tokens, sum(t.cost_usd) as cost_usd
        from analytics.llm_traces t
        where t.start_time >= day_start and t.start_time < day_end
          and (snapshot_usage.user_id is null or t.user_id = snapshot_usage.user_id)
        group by t.user_id
    )
    insert into analytics.usage_snapshots as u (user_id, day, spans_stored, bytes_stored, spans, traces, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, taken_at)
    select s.owner, snapshot_usage.day, s.n, (s.rb + sz.index_bytes::numeric * s.n / total.n)::bigint,
           coalesce(d.spans, 0), coalesce(d.traces, 0), coalesce(d.input_tokens, 0), coalesce(d.output_tokens, 0),
           coalesce(d.cache_read_tokens, 0), coalesce(d.cache_write_tokens, 0), coalesce(d.reasoning_tokens, 0),
           coalesce(d.cost_usd, 0), now()
    from stored s cross join total left join active d on d.owner = s.owner
    on conflict (user_id, day) do update set
        spans_stored = excluded.spans_stored, bytes_stored = excluded.bytes_stored, spans = excluded.spans,
        traces = excluded.traces, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
        cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,
        reasoning_tokens = excluded.reasoning_tokens, cost_usd = excluded.cost_usd, taken_at = excluded.taken_at;
    get diagnostics written = row_count;
    return written;
end
$$;
COMMENT ON FUNCTION analytics.snapshot_usage(date, uuid) IS
$$Writes the usage snapshot of one day (UTC; default yesterday) for every owner the caller may read — a pg_cron job: all of them — or for user_id: one row per owner in analytics.usage_snapshots, replaced when run again for the same day (idempotent). Returns the number of owners written. Run by a job that reads every owner (superuser or BYPASSRLS, with pg_read_all_stats), it measures only the days that are new or were written since its last run and reads the settled ones from its cache (analytics.usage_cache_days).
Example: select analytics.snapshot_usage(current_date - 1);$$;

-- ---- usage_projection -------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.usage_projection(
    metric   text      DEFAULT 'cost_usd',
    horizons integer[] DEFAULT '{30,90,365}',
    history  integer   DEFAULT 90,
    level    double precision DEFAULT 0.95,
    as_of    date      DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    user_id  uuid      DEFAULT NULL
) RETURNS TABLE (
    horizon_days  integer,
    until_day     date,
    projected     double precision,
    lower_bound   double precision,
    upper_bound   double precision,
    slope_per_day double precision,
    r_squared     double precision,
    days_fitted   integer
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(usage_projection.user_id, analytics.current_user_id());
    stock boolean;
    xs double precision[];
    ys double precision[];
    last_day date;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose usage to project'
            using errcode = '42501';
    end if;
    stock := case metric when 'bytes_stored' then true when 'spans_stored' then true
                         when 'cost_usd' then false when 'spans' then false when 'tokens' then false
                         when 'input_tokens' then false when 'output_tokens' then false end;
    if stock is null then
        raise exception 'metric: must be one of bytes_stored, spans_stored (stored on a day) or cost_usd, spans, tokens, input_tokens, output_tokens (per day), got %',
            coalesce(metric, 'NULL') using errcode = '22023';
    end if;
    if history is null or history < 2 or history > 3660 then
        raise exception 'history: must be between 2 and 3660 days, got %', coalesce(history::text, 'NULL') using errcode = '22023';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    select array_agg((s.day - as_of)::double precision order by s.day),
           array_agg(case metric when 'bytes_stored' then s.bytes_stored::double precision
                                 when 'spans_stored' then s.spans_stored::double precision
                                 when 'cost_usd' then s.cost_usd when 'spans' then s.spans::double precision
                                 when 'tokens' then (s.input_tokens + s.output_tokens)::double precision
                                 when 'input_tokens' then s.input_tokens::double precision
                                 else s.output_tokens::double precision end order by s.day),
           max(s.day)
    into xs, ys, last_day
    from analytics.usage_snapshots s
    where s.user_id = owner and s.day < as_of and s.day >= as_of - history;
    if coalesce(cardinality(xs), 0) < 2 then
        raise exception 'usage_snapshots: % day% of history before % for this owner; a trend needs at least 2 (analytics.snapshot_usage writes one a day)',
            coalesce(cardinality(xs), 0), case when cardinality(xs) = 1 then '' else 's' end, as_of
            using errcode = 'P0002';
    end if;
    return query
    select p.horizon_days, last_day + p.horizon_days, p.projected, p.lower_bound, p.upper_bound, p.slope_per_day,
           p.r_squared, p.days_fitted
    from analytics._project_trend(xs, ys, (last_day - as_of)::double precision, horizons, stock, level) p;
end
$$;
COMMENT ON FUNCTION analytics.usage_projection(text, integer[], integer, double precision, date, uuid) IS
$$Projects the caller's (or user_id's) usage from a least-squares line through the daily snapshots of the last `history` days before as_of: for a stock (bytes_stored, spans_stored) its value `h` days after the last snapshot, for a flow (cost_usd, spans, tokens, input_tokens, output_tokens) the total of the next `h` days, each with the prediction interval at `level` (the fit's uncertainty and the days' own scatter; NULL bounds with only two days). Values and bounds are floored at 0. Raises P0002 with fewer than two snapshots.
Example: select horizon_days, projected, lower_bound, upper_bound from analytics.usage_projection('cost_usd', '{30,90,365}');$$;

-- ---- cost_report ------------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.cost_report(
    from_time timestamptz DEFAULT now() - interval '30 days',
    to_time   timestamptz DEFAULT now(),
    group_by  text[]      DEFAULT '{model}'
) RETURNS TABLE (
    day                date,
    model              text,
    provider           text,
    operation_type     text,
    spans              bigint,
    input_tokens       bigint,
    output_tokens      bigint,
    cache_read_tokens  bigint,
    cache_write_tokens bigint,
    reasoning_tokens   bigint,
    cost_usd           double precision,
    unpriced_spans     bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    by_day boolean;
    by_model boolean;
    by_provider boolean;
    by_operation boolean;
    bad text;
begin
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if group_by is null then
        raise exception 'group_by: is required (an array of day, model, provider, operation_type; {} for one total)' using errcode = '22004';
    end if;
    select g into bad from unnest(group_by) g where g is null or g not in ('day', 'model', 'provider', 'operation_type') limit 1;
    if found then
        raise exception 'group_by: must name day, model, provider or operation_type, got %', coalesce(bad, 'NULL') using errcode = '22023';
    end if;
    by_day := 'day' = any(group_by);
    by_model := 'model' = any(group_by);
    by_provider := 'provider' = any(group_by);
    by_operation := 'operation_type' = any(group_by);
    return query
    select g.d, g.m, g.p, g.o, count(*), sum(g.input_tokens)::bigint, sum(g.output_tokens)::bigint,
           sum(g.cache_read_tokens)::bigint, sum(g.cache_write_tokens)::bigint, sum(g.reasoning_tokens)::bigint,
           coalesce(sum(g.cost_usd), 0),
           count(*) filter (where g.cost_usd is null and (g.input_tokens is not null or g.output_tokens is not null))
    from (select case when by_day then (t.start_time AT TIME ZONE 'UTC')::date end as d,
                 case when by_model then t.model end as m,
                 case when by_provider then t.provider end as p,
                 case when by_operation then t.operation_type end as o,
                 t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.cost_usd
          from analytics.llm_traces t
          where t.start_time >= from_time and t.start_time < to_time) g
    group by g.d, g.m, g.p, g.o
    order by g.d nulls first, 11 desc, g.m, g.p, g.o;
end
$$;
COMMENT ON FUNCTION analytics.cost_report(timestamptz, timestamptz, text[]) IS
$$The caller's LLM spend over the spans that started in [from_time, to_time), grouped by any of day (UTC), model, provider and operation_type (columns not grouped by are NULL; '{}' gives one total): spans, tokens by kind, cost, and the spans with tokens but no cost (no price applied: add one to analytics.model_prices, then analytics.recompute_costs).
Example: select model, spans, cost_usd from analytics.cost_report(now() - interval '30 days', now(), '{model}');$$;
