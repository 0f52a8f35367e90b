-- Time partitions of analytics.llm_traces (range by start_time), where they live, how they are secured, made ahead,
-- dropped, and how the writers keep one row per span across them. docs/operations.md#partitions.
--
-- Why our own few functions rather than pg_partman: Debian 12 ships pg_partman 4.x and Supabase 5.x, whose APIs and
-- catalogs differ (create_parent's arguments, run_maintenance's procedure, the part_config columns); partitions must
-- get this extension's row-level security (a partition queried directly bypasses the parent's policies), the time
-- line is kept covered without a default partition, and moving rows between partitions must respect the
-- one-row-per-span rule. What is needed here is a few functions.
--
-- Partitions live in the schema analytics_partitions, on which API roles have no privilege (PostgREST cannot expose
-- what its roles cannot use), and each one still has row-level security enabled and forced with the parent's
-- policies and no grants, so a DBA's stray GRANT shows an owner only their own rows.

CREATE SCHEMA analytics_partitions;
REVOKE ALL ON SCHEMA analytics_partitions FROM PUBLIC;
COMMENT ON SCHEMA analytics_partitions IS
'Partitions of analytics.llm_traces, made and dropped by analytics.maintain_span_partitions(). Not for API roles: query analytics.llm_traces.';

-- Row-level security of one partition, the same as the parent's (tests/pg_regress/sql/partitions.sql compares them).
CREATE FUNCTION analytics._secure_span_partition(part regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    r text;
begin
    if part is null then
        raise exception 'part: must name a partition of analytics.llm_traces' using errcode = '22004';
    end if;
    execute format('alter table %s enable row level security', part);
    execute format('alter table %s force row level security', part);
    execute format('create policy llm_traces_select_own on %s for select using (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_insert_own on %s for insert with check (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_update_own on %s for update using (user_id = (select analytics.current_user_id()))'
                   ' with check (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_delete_own on %s for delete using (user_id = (select analytics.current_user_id()))', part);
    execute format('revoke all on %s from public', part);
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if exists (select 1 from pg_catalog.pg_roles where rolname = r) then
            execute format('revoke all on %s from %I', part, r);
        end if;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics._secure_span_partition(regclass) IS
'Gives a partition of analytics.llm_traces the parent''s row-level security (enabled, forced, one policy per command) and no privileges for API roles. Internal.';

-- The indexes of every partition (named after it). The unique one serves "all spans of a trace" and keeps one row
-- per span within the partition; the next one tree walks; trace_time where a trace's stored spans are (ingest
-- searches only those partitions for the spans of a batch); the rest the filters of search_spans and trace_metrics.
CREATE FUNCTION analytics._index_span_partition(part regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n text := (select c.relname from pg_catalog.pg_class c where c.oid = part);
begin
    if part is null then
        raise exception 'part: must name a partition of analytics.llm_traces' using errcode = '22004';
    end if;
    execute format('create unique index %I on %s (user_id, trace_id, span_id)', n || '_span_key', part);
    execute format('create index %I on %s (user_id, trace_id, parent_span_id)', n || '_trace_parent_idx', part);
    execute format('create index %I on %s (user_id, trace_id, start_time)', n || '_trace_time_idx', part);
    execute format('create index %I on %s (user_id, start_time desc, id desc)', n || '_start_idx', part);
    execute format('create index %I on %s (user_id, conversation_id, start_time) where conversation_id is not null', n || '_conversation_idx', part);
    execute format('create index %I on %s (user_id, session_id, start_time) where session_id is not null', n || '_session_idx', part);
    execute format('create index %I on %s (user_id, message_id) where message_id is not null', n || '_message_idx', part);
    execute format('create index %I on %s (user_id, end_user_id, start_time) where end_user_id is not null', n || '_end_user_idx', part);
    execute format('create index %I on %s (user_id, model, start_time) where model is not null', n || '_model_idx', part);
    execute format('create index %I on %s (user_id, operation_type, start_time)', n || '_operation_idx', part);
    execute format('create index %I on %s (user_id, start_time) where status = ''error''', n || '_errors_idx', part);
    execute format('create index %I on %s using gin (tags)', n || '_tags_idx', part);
    execute format('create index %I on %s (user_id, duration_ms)', n || '_duration_idx', part);
end
$$;
COMMENT ON FUNCTION analytics._index_span_partition(regclass) IS
'Creates the indexes of a partition of analytics.llm_traces (the parent has none: sql/010_traces.sql says why). Internal.';

-- The default partition of a fresh install (and of a database just updated from 0.1.0): every span lands here until
-- the first analytics.maintain_span_partitions(), which moves them into range partitions covering all time and
-- detaches it (see "the partitions" below). It stays, detached and empty, a member of the extension: a restore from
-- pg_dump recreates it attached (beside the dumped range partitions, which leave it nothing to hold) and the next
-- maintenance detaches it again.
CREATE TABLE analytics_partitions.llm_traces_default PARTITION OF analytics.llm_traces DEFAULT;
SELECT analytics._index_span_partition('analytics_partitions.llm_traces_default');
SELECT analytics._secure_span_partition('analytics_partitions.llm_traces_default');
SELECT pg_catalog.pg_extension_config_dump('analytics_partitions.llm_traces_default', '');

-- ---- one row per span ------------------------------------------------------------------------------------------------
-- The locks under which every writer of spans checks that a span has one row, by level: the owner, then the trace,
-- then the span, each level in ascending key order (so writers of the same spans wait for each other instead of
-- deadlocking). A batch of up to max_span_locks spans locks its spans (and its traces and owners shared); a larger
-- one with up to max_trace_locks traces locks its traces (owners shared); a larger one its owners. A writer thus
-- holds at most about max_span_locks + max_trace_locks locks. A caller that knows how many distinct spans and traces
-- (with an owner) the arrays hold passes them (ingest does: counting 100,000 spans here took 0.2 s).
CREATE FUNCTION analytics._lock_spans(owners uuid[], trace_ids text[], span_ids text[],
                                      max_span_locks integer DEFAULT 128, max_trace_locks integer DEFAULT 64,
                                      span_count integer DEFAULT NULL, trace_count integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n_spans integer := span_count;
    n_traces integer := trace_count;
    spans_locked boolean;
    traces_locked boolean;
    lvl record;
    waited boolean := false;
begin
    if n_spans is null or n_traces is null then
        select count(distinct (o, t, s)), count(distinct (o, t)) into n_spans, n_traces
        from unnest(owners, trace_ids, span_ids) as x(o, t, s) where o is not null;
    end if;
    spans_locked := n_spans <= max_span_locks;
    traces_locked := spans_locked or n_traces <= max_trace_locks;
    -- the levels in order, each with its keys in ascending order (a level not locked has none) and whether its locks
    -- are exclusive: the lowest level locked is exclusive, the ones above it shared
    for lvl in
        select l.keys, l.exclusive
        from (values
            (1, array(select distinct pg_catalog.hashtextextended(o::text, 1) from unnest(owners) as x(o)
                      where o is not null order by 1), not traces_locked),
            (2, case when traces_locked then
                    array(select distinct pg_catalog.hashtextextended(o::text || '/' || t, 2)
                          from unnest(owners, trace_ids) as x(o, t) where o is not null order by 1) end, not spans_locked),
            (3, case when spans_locked then
                    array(select distinct pg_catalog.hashtextextended(o::text || '/' || t || '/' || s, 3)
                          from unnest(owners, trace_ids, span_ids) as x(o, t, s) where o is not null order by 1) end, true)
        ) l(level, keys, exclusive)
        where l.keys is not null
        order by l.level
    loop
        -- one statement per level, its keys in array order: each lock tried first, and waited for when taken
        select waited or coalesce(bool_or(case
                   when lvl.exclusive then case when pg_catalog.pg_try_advisory_xact_lock(k) then false
                                                else pg_catalog.pg_advisory_xact_lock(k) is not null end
                   else case when pg_catalog.pg_try_advisory_xact_lock_shared(k) then false
                             else pg_catalog.pg_advisory_xact_lock_shared(k) is not null end end), false)
          into waited
        from unnest(lvl.keys) as k;
    end loop;
    -- under REPEATABLE READ the snapshot predates what the other writer committed: retry rather than miss it
    if waited and current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'spans: another transaction wrote the same spans concurrently; retry the call'
            using errcode = '40001';
    end if;
end
$$;
COMMENT ON FUNCTION analytics._lock_spans(uuid[], text[], text[], integer, integer, integer, integer) IS
'Takes the transaction locks under which a writer of spans checks that a span has one row: owner, trace and span locks in one global order (spans for batches of up to max_span_locks spans, else traces for up to max_trace_locks traces, else owners; span_count and trace_count, when given, are the distinct spans and traces of the arrays). Internal.';

-- INSERT and UPDATE by plain SQL (a PostgREST POST to the table, psql): a partition's unique index refuses a second
-- row of a span in that partition; a second row in another partition (another start_time) is refused here. Ingest
-- checks this itself (and says so with the transaction-local setting analytics.spans_checked, which only lets a
-- session skip the check of its own rows).
CREATE FUNCTION analytics._check_one_row_per_span() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    dup record;
begin
    if current_setting('analytics.spans_checked', true) = 'on' then
        return null;
    end if;
    perform analytics._lock_spans(array_agg(n.user_id), array_agg(n.trace_id), array_agg(n.span_id)) from new_rows n;
    -- one index probe per new row (LATERAL ... LIMIT 1), never a scan of the table (a join left to the planner
    -- could hash the whole table, or merge on (user_id, trace_id) alone). Before the table's first ANALYZE the
    -- planner may still probe the (user_id, trace_id, start_time) index instead of the span key, which reads the
    -- whole trace per row: one 20,000-span trace inserted at once into a never-analyzed table took 77 s
    select t.trace_id, t.span_id, t.start_time into dup
    from new_rows n
    cross join lateral (
        select t.trace_id, t.span_id, t.start_time from analytics.llm_traces t
        where t.user_id = n.user_id and t.trace_id = n.trace_id and t.span_id = n.span_id and t.start_time <> n.start_time
        limit 1) t
    limit 1;
    if found then
        raise exception 'span: trace_id %, span_id % is already stored with start_time %', dup.trace_id, dup.span_id, dup.start_time
            using errcode = '23505',
                  hint = 'Re-send it through analytics.ingest_spans (which moves a span whose start_time changed), or UPDATE its start_time.';
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._check_one_row_per_span() IS
'Statement trigger of analytics.llm_traces: raises 23505 when an INSERT or UPDATE leaves a span (user_id, trace_id, span_id) with rows of two start times. Internal.';

CREATE TRIGGER llm_traces_one_row_per_span_insert AFTER INSERT ON analytics.llm_traces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._check_one_row_per_span();
CREATE TRIGGER llm_traces_one_row_per_span_update AFTER UPDATE ON analytics.llm_traces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._check_one_row_per_span();

-- ---- the partitions ----------------------------------------------------------------------------------------------------
-- Once maintenance ran, every start time has a range partition and there is no DEFAULT partition:
--   * period partitions, llm_traces_p<from> (a day, a week or a month, UTC), made ahead and for the periods that have
--     spans, dropped whole by retention;
--   * where no period partition is, the rest of the time line: llm_traces_before_<to> (everything earlier than the
--     first period), llm_traces_after_<from> (everything from the end of the last one on) and llm_traces_gap_<from>_<to>
--     (between two periods). They hold the spans of backfills and of clocks far ahead until maintenance makes periods
--     for them, and are usually empty.
-- Without a default partition, which may hold any time, the planner knows the partitions are ordered by time: a
-- newest-first search without a time bound reads the newest partition first and stops when its page is full
-- (an ordered Append) instead of merging the indexes of every partition (a MergeAppend).

-- The partitions of analytics.llm_traces with their bounds (NULL: unbounded) and kind: 'period', 'rest' (before,
-- after, gap) or 'default'.
CREATE FUNCTION analytics._span_partition_layout()
RETURNS TABLE (part regclass, name text, kind text, from_time timestamptz, to_time timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    select c.oid::regclass, c.relname::text,
           case when pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' then 'default'
                when c.relname ~ '^llm_traces_(before|after|gap)_' then 'rest'
                else 'period' end,
           (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'analytics.llm_traces'::regclass
$$;
COMMENT ON FUNCTION analytics._span_partition_layout() IS
'The partitions of analytics.llm_traces: bounds (NULL: unbounded) and kind (period, rest: before/after/gap, default). Internal.';

CREATE FUNCTION analytics.span_partitions()
RETURNS TABLE (partition text, from_time timestamptz, to_time timestamptz, spans_estimate bigint, bytes bigint)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    select l.part::text, l.from_time, l.to_time, greatest(c.reltuples, 0)::bigint, pg_catalog.pg_total_relation_size(l.part)
    from analytics._span_partition_layout() l
    join pg_catalog.pg_class c on c.oid = l.part
    order by l.kind = 'default', l.from_time nulls first, l.to_time nulls last
$$;
COMMENT ON FUNCTION analytics.span_partitions() IS
$$The partitions of analytics.llm_traces in time order: name, time range [from_time, to_time) (NULL: unbounded; both NULL for the default partition of a database maintenance has not run on), estimated rows (as of the last ANALYZE) and total bytes with indexes and TOAST. For the DBA.
Example: select partition, from_time, to_time from analytics.span_partitions();$$;

-- A new partition [lo, hi) (NULL: unbounded) named name, filled with the rows of that range from the tables sources
-- (partitions just detached), then secured, indexed and attached: a table of its own until then, so that its rows are
-- copied without the triggers of analytics.llm_traces and indexed once, and a CHECK matching its bounds spares the
-- attach a scan. Returns the rows copied.
CREATE FUNCTION analytics._make_span_partition(name text, lo timestamptz, hi timestamptz, sources regclass[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = ''
SET TimeZone = 'UTC'
AS $$
declare
    part regclass;
    cols text;
    src regclass;
    n bigint;
    copied bigint := 0;
    bounds text := coalesce('start_time >= ' || quote_literal(lo), 'true') || ' and ' || coalesce('start_time < ' || quote_literal(hi), 'true');
begin
    -- (maintain_span_partitions' names and bounds always pass; these name what a direct call got wrong)
    if name is null or name !~ '^[a-z_][a-z0-9_]{0,62}$' then
        raise exception 'name: a partition name is 1 to 63 lower-case letters, digits and underscores, got %', quote_nullable(name)
            using errcode = '22023';
    elsif not isfinite(lo) or not isfinite(hi) then
        raise exception 'lo, hi: the bounds are finite times (NULL: unbounded), got % and %', lo, hi using errcode = '22023';
    elsif lo >= hi then
        raise exception 'hi: must be after lo (%), got %', lo, hi using errcode = '22023';
    end if;
    select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
    from pg_catalog.pg_attribute a
    where a.attrelid = 'analytics.llm_traces'::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
    execute format('create table analytics_partitions.%I (like analytics.llm_traces including defaults including constraints including generated including storage including compression)', name);
    part := format('analytics_partitions.%I', name)::regclass;
    perform analytics._secure_span_partition(part);
    foreach src in array coalesce(sources, '{}') loop
        execute format('insert into %s (%s) select %s from %s where %s', part, cols, cols, src, bounds);
        get diagnostics n = row_count;
        copied := copied + n;
    end loop;
    perform analytics._index_span_partition(part);
    execute format('alter table %s add constraint %I check (%s)', part, name || '_range', bounds);
    execute format('alter table analytics.llm_traces attach partition %s for values from (%s) to (%s)',
                   part, coalesce(quote_literal(lo), 'MINVALUE'), coalesce(quote_literal(hi), 'MAXVALUE'));
    execute format('alter table %s drop constraint %I', part, name || '_range');
    return copied;
end
$$;
COMMENT ON FUNCTION analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]) IS
'Creates and attaches the partition [lo, hi) (NULL: unbounded) of analytics.llm_traces, filled with the rows of that range from the given detached partitions, with the parent''s row-level security and the partitions'' indexes. Internal.';

-- A partition bound in a partition's name: YYYYMMDD, and _HH24MISS when it is not midnight (UTC).
CREATE FUNCTION analytics._span_partition_label(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET TimeZone = 'UTC'
AS $$
    select pg_catalog.to_char(t, 'YYYYMMDD') || case when t <> pg_catalog.date_trunc('day', t) then pg_catalog.to_char(t, '"_"HH24MISS') else '' end
$$;
COMMENT ON FUNCTION analytics._span_partition_label(timestamptz) IS
'A bound of a partition of analytics.llm_traces as its name writes it: YYYYMMDD, with _HH24MISS when not at midnight UTC. Internal.';

CREATE FUNCTION analytics.maintain_span_partitions(
    period   text        DEFAULT 'month',
    premake  integer     DEFAULT 3,
    retain   interval    DEFAULT NULL,
    as_of    timestamptz DEFAULT now()
) RETURNS TABLE (action text, partition text, from_time timestamptz, to_time timestamptz, spans bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = ''
SET TimeZone = 'UTC'
AS $$
declare
    step interval;
    cutoff timestamptz;
    p record;
    n bigint;
    want tstzrange[];           -- the periods to cover
    more tstzrange[];
    g tstzrange;
    gap tstzrange;
    covered tstzmultirange;     -- by period partitions, kept and new
    stretches tstzrange[];      -- the rest of the time line, between and around them
    new_periods tstzrange[] := '{}';
    pieces tstzrange[] := '{}';
    replaced regclass[] := '{}';
    old_rows bigint := 0;
    new_rows bigint := 0;
    part regclass;
    piece tstzrange;
    name text;
    cache_cleared boolean := false;
begin
    if period is null or period not in ('day', 'week', 'month') then
        raise exception 'period: must be day, week or month, got %', coalesce(period, 'NULL') using errcode = '22023';
    end if;
    if premake is null or premake < 0 or premake > 366 then
        raise exception 'premake: must be between 0 and 366 periods, got %', coalesce(premake::text, 'NULL') using errcode = '22023';
    end if;
    if retain is not null and (retain <= interval '0' or retain > interval '1000 years') then
        raise exception 'retain: must be a positive interval of at most 1000 years or NULL (keep every partition), got %', retain
            using errcode = '22023';
    end if;
    -- partitions are named and bounded by dates of years 1 to 9999, premade up to 366 periods ahead
    if as_of is null or not isfinite(as_of) or as_of < timestamptz '0002-01-01 00:00+00' or as_of >= timestamptz '9000-01-01 00:00+00' then
        raise exception 'as_of: must be a finite time between the years 2 and 8999, got %', coalesce(as_of::text, 'NULL')
            using errcode = '22023';
    end if;
    -- the partitions' owner, seeing every owner's rows (it moves them between partitions)
    if not pg_catalog.pg_has_role(current_user, (select c.relowner from pg_catalog.pg_class c where c.oid = 'analytics.llm_traces'::regclass), 'USAGE')
       or not exists (select 1 from pg_catalog.pg_roles r where r.rolname = current_user and (r.rolsuper or r.rolbypassrls)) then
        raise exception 'maintain_span_partitions: only the owner of analytics.llm_traces with BYPASSRLS or superuser (the DBA, or a pg_cron job of theirs) may create and drop partitions'
            using errcode = '42501';
    end if;
    -- one maintenance at a time: the layout it reads stays as it read it until it commits
    perform pg_catalog.pg_advisory_xact_lock(1634628204, pg_catalog.hashtext('analytics.maintain_span_partitions'));
    step := ('1 ' || period)::interval;
    cutoff := case when retain is null then null else as_of - retain end;

    -- 1. retention: the period partitions that end at or before the cutoff are dropped (a metadata operation: no row
    --    is read; the count of spans reported is the planner's estimate); the other partitions' spans that started
    --    before it are deleted (row by row: they are few)
    if cutoff is not null then
        for p in select l.part, l.part::text as name, l.from_time, l.to_time, greatest(c.reltuples, 0)::bigint as estimate
                 from analytics._span_partition_layout() l join pg_catalog.pg_class c on c.oid = l.part
                 where l.kind = 'period' and l.to_time <= cutoff order by l.from_time loop
            if not cache_cleared then
                -- cached results may include these spans: as after a TRUNCATE, every owner's entries become stale
                insert into analytics.cache_writes (user_id, xid)
                values ('00000000-0000-0000-0000-000000000000', pg_catalog.pg_current_xact_id()) on conflict do nothing;
                cache_cleared := true;
            end if;
            execute format('drop table %s', p.part);
            return query select 'dropped'::text, p.name, p.from_time, p.to_time, p.estimate;
        end loop;
        for p in select l.part from analytics._span_partition_layout() l
                 where l.kind <> 'period' and (l.from_time is null or l.from_time < cutoff) order by l.from_time nulls first loop
            execute format('delete from %s where start_time < $1', p.part) using cutoff;
            get diagnostics n = row_count;
            if n > 0 then
                insert into analytics.cache_writes (user_id, xid)
                values ('00000000-0000-0000-0000-000000000000', pg_catalog.pg_current_xact_id()) on conflict do nothing;
                return query select 'deleted'::text, p.part::text, null::timestamptz, cutoff, n;
            end if;
        end loop;
    end if;

    -- 2. the periods to cover: the one holding as_of and premake ahead, and every period with spans outside the period
    --    partitions (none before the cutoff); a period partly covered by partitions of another size gets partitions
    --    for its gaps
    want := array(select tstzrange(g0, g0 + step)
                  from generate_series(date_trunc(period, as_of), date_trunc(period, as_of) + step * premake, step) g0);
    for p in select l.part from analytics._span_partition_layout() l where l.kind <> 'period' loop
        execute format('select array(select tstzrange(d, d + $1) from (select distinct date_trunc($2, start_time) as d from %s'
                       ' where $3::timestamptz is null or start_time >= $3) x)', p.part)
            into more using step, period, cutoff;
        want := want || more;
    end loop;
    covered := (select coalesce(range_agg(tstzrange(l.from_time, l.to_time)), '{}')
                from analytics._span_partition_layout() l where l.kind = 'period');
    for g in select distinct w from unnest(want) w order by 1 loop
        for gap in select x from unnest(tstzmultirange(g) - covered) x order by 1 loop
            new_periods := new_periods || gap;
        end loop;
        covered := covered + tstzmultirange(g);
    end loop;

    -- 3. the layout to reach: the period partitions kept and new, and the rest of the time line in before/after/gap
    --    partitions, one per stretch between periods. A rest partition that spans its stretch exactly is kept; the
    --    others (and the default partition) are detached, their spans copied into the new partitions of their times
    --    and they are dropped (the default partition is kept, detached and empty)
    stretches := array(select unnest(tstzmultirange(tstzrange(null, null)) - covered));
    pieces := new_periods || array(
        select r from unnest(stretches) r
        where not exists (select 1 from analytics._span_partition_layout() l
                          where l.kind = 'rest' and tstzrange(l.from_time, l.to_time) = r));
    replaced := array(
        select l.part from analytics._span_partition_layout() l
        where l.kind = 'default' or l.kind = 'rest' and not tstzrange(l.from_time, l.to_time) = any (stretches)
        order by l.from_time nulls first);
    for p in select l.part, l.kind, l.from_time, l.to_time from analytics._span_partition_layout() l
             where l.part = any (replaced) order by l.from_time nulls first loop
        execute format('select count(*) from %s', p.part) into n;
        old_rows := old_rows + n;
        execute format('alter table analytics.llm_traces detach partition %s', p.part);
        return query select case p.kind when 'default' then 'detached' else 'replaced' end, p.part::text, p.from_time, p.to_time, n;
    end loop;
    for piece in select x from unnest(pieces) x order by 1 loop
        name := case when piece = any (new_periods) then 'llm_traces_p' || analytics._span_partition_label(lower(piece))
                     when lower_inf(piece) and upper_inf(piece) then 'llm_traces_after_min'
                     when lower_inf(piece) then 'llm_traces_before_' || analytics._span_partition_label(upper(piece))
                     when upper_inf(piece) then 'llm_traces_after_' || analytics._span_partition_label(lower(piece))
                     else 'llm_traces_gap_' || analytics._span_partition_label(lower(piece)) || '_' || analytics._span_partition_label(upper(piece)) end;
        n := analytics._make_span_partition(name, lower(piece), upper(piece), replaced);
        new_rows := new_rows + n;
        return query select 'created'::text, 'analytics_partitions.' || quote_ident(name), lower(piece), upper(piece), n;
    end loop;
    -- every span of the detached partitions is in exactly one new partition (they covered the same times)
    if new_rows <> old_rows then
        raise exception 'maintain_span_partitions: % spans were in the partitions replaced, % copied into the new ones', old_rows, new_rows
            using errcode = 'XX000';
    end if;
    foreach part in array replaced loop
        if part = 'analytics_partitions.llm_traces_default'::regclass then
            truncate analytics_partitions.llm_traces_default;
        else
            execute format('drop table %s', part);
        end if;
    end loop;

    -- 4. each owner's retention policy (analytics.retention_policies), on top of the partitions dropped above
    return query
    select 'retention'::text, r.user_id::text, null::timestamptz, as_of - make_interval(days => r.keep_days), r.spans_deleted
    from analytics.apply_retention(null, as_of) r
    where r.spans_deleted > 0;
end
$$;
COMMENT ON FUNCTION analytics.maintain_span_partitions(text, integer, interval, timestamptz) IS
$$Partition maintenance of analytics.llm_traces, for a pg_cron job of the DBA: drops the period partitions that end more than retain before as_of (NULL: none) and deletes older spans of the other partitions, creates the partitions of the period holding as_of and premake periods ahead and of every period with spans outside the period partitions (period: day, week or month, UTC boundaries), keeps the rest of the time line in before/after/gap partitions (the first run replaces the default partition by them), and applies each owner's retention policy. New partitions get the parent's row-level security. Returns one row per action: dropped, deleted (spans of a before/after/gap partition), created (with the spans copied in), replaced (a before/after/gap partition whose spans went to the new ones), detached (the default partition, once), retention (per owner).
Example: select * from analytics.maintain_span_partitions(period => 'month', premake => 3, retain => '13 months');$$;
