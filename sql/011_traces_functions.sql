-- Trace functions written in SQL / PL/pgSQL, and the documentation of the ones written in Rust.
-- All SECURITY INVOKER: row-level security decides what the caller sees and writes.

-- ---- record_span: one span with named arguments (PostgREST: POST /rest/v1/rpc/record_span) ----------------------
CREATE FUNCTION analytics.record_span(
    trace_id              text,
    span_id               text,
    name                  text,
    start_time            timestamptz,
    end_time              timestamptz      DEFAULT NULL,
    parent_span_id        text             DEFAULT NULL,
    operation_type        text             DEFAULT NULL,
    status                text             DEFAULT NULL,
    status_message        text             DEFAULT NULL,
    level                 text             DEFAULT NULL,
    conversation_id       text             DEFAULT NULL,
    message_id            text             DEFAULT NULL,
    session_id            text             DEFAULT NULL,
    completion_start_time timestamptz      DEFAULT NULL,
    provider              text             DEFAULT NULL,
    model                 text             DEFAULT NULL,
    input_tokens          bigint           DEFAULT NULL,
    output_tokens         bigint           DEFAULT NULL,
    total_tokens          bigint           DEFAULT NULL,
    cache_read_tokens     bigint           DEFAULT NULL,
    cache_write_tokens    bigint           DEFAULT NULL,
    reasoning_tokens      bigint           DEFAULT NULL,
    cost_usd              double precision DEFAULT NULL,
    input                 jsonb            DEFAULT NULL,
    output                jsonb            DEFAULT NULL,
    metadata              jsonb            DEFAULT NULL,
    tags                  text[]           DEFAULT NULL,
    user_id               uuid             DEFAULT NULL,
    end_user_id           text             DEFAULT NULL
) RETURNS analytics.llm_traces
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    stored analytics.llm_traces;
    result jsonb;
begin
    -- the same validation and upsert as a batch of one (errors name the field as spans[0].<field>)
    result := analytics.ingest_spans(jsonb_build_array(jsonb_build_object(
        'trace_id', record_span.trace_id, 'span_id', record_span.span_id, 'name', record_span.name,
        'start_time', record_span.start_time, 'end_time', record_span.end_time,
        'parent_span_id', record_span.parent_span_id, 'operation_type', record_span.operation_type,
        'status', record_span.status, 'status_message', record_span.status_message, 'level', record_span.level,
        'conversation_id', record_span.conversation_id, 'message_id', record_span.message_id,
        'session_id', record_span.session_id, 'completion_start_time', record_span.completion_start_time,
        'provider', record_span.provider, 'model', record_span.model,
        'input_tokens', record_span.input_tokens, 'output_tokens', record_span.output_tokens,
        'total_tokens', record_span.total_tokens, 'cache_read_tokens', record_span.cache_read_tokens,
        'cache_write_tokens', record_span.cache_write_tokens, 'reasoning_tokens', record_span.reasoning_tokens,
        'cost_usd', record_span.cost_usd, 'input', record_span.input, 'output', record_span.output,
        'metadata', record_span.metadata, 'tags', to_jsonb(record_span.tags), 'user_id', record_span.user_id,
        'end_user_id', record_span.end_user_id)));
    if result ? 'code' then
        -- refused through PostgREST (recorded in ingest_failures, status 400 set): a span row cannot carry the
        -- error, so it is raised after all, and the record rolls back with it
        raise exception using errcode = result->>'code', message = result->>'message';
    end if;
    select t.* into stored
    from analytics.llm_traces t
    where t.user_id = coalesce(record_span.user_id, analytics.current_user_id())
      and t.trace_id = record_span.trace_id and t.span_id = record_span.span_id;
    return stored;
end
$$;

-- ---- argument checks --------------------------------------------------------------------------------------------
-- The page, filter and cursor rules of the search functions have one owner, the core crate
-- (analytics_core::traces::search); search_spans (Rust) calls it directly and search_traces (below) through the
-- Rust functions analytics._check_page, analytics._check_span_filters, analytics._cursor_time and _cursor_key.

-- _span_filters: the WHERE clause of search_traces over its spans (alias s), parameters $1..$12.
CREATE FUNCTION analytics._span_filters(
    trace_id text, conversation_id text, message_id text, session_id text, operation_type text, status text,
    model text, tag text, owner uuid
) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
declare
    w text := 'true';
begin
    perform analytics._check_span_filters(operation_type, status);
    if owner is not null then w := w || ' and s.user_id = $12'; end if;
    if trace_id is not null then w := w || ' and s.trace_id = $1'; end if;
    if conversation_id is not null then w := w || ' and s.conversation_id = $2'; end if;
    if message_id is not null then w := w || ' and s.message_id = $3'; end if;
    if session_id is not null then w := w || ' and s.session_id = $4'; end if;
    if operation_type is not null then w := w || ' and s.operation_type = $5'; end if;
    if status is not null then w := w || ' and s.status = $6'; end if;
    if model is not null then w := w || ' and s.model = $7'; end if;
    if tag is not null then w := w || ' and s.tags @> array[$8]'; end if;
    return w;
end
$$;

-- _parse_cursor: '<start_time>,<id>' of the last row of the previous page.
CREATE FUNCTION analytics._parse_cursor(cursor_text text, OUT at_time timestamptz, OUT at_key text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    at_time := analytics._cursor_time(cursor_text);
    at_key := analytics._cursor_key(cursor_text);
end
$$;

-- ---- search_traces --------------------------------------------------------------------------------------------------
CREATE TYPE analytics.trace_summary AS (
    user_id         uuid,
    trace_id        text,
    root_span_id    text,
    root_name       text,
    start_time      timestamptz,
    end_time        timestamptz,
    duration_ms     double precision,
    span_count      bigint,
    error_count     bigint,
    total_tokens    bigint,
    cost_usd        double precision,
    conversation_id text,
    session_id      text,
    models          text[],
    cursor          text
);
COMMENT ON TYPE analytics.trace_summary IS 'One trace as listed by analytics.search_traces; cursor is the value to pass as after => for the next page.';

CREATE FUNCTION analytics._search_traces(
    trace_id        text             DEFAULT NULL,
    conversation_id text             DEFAULT NULL,
    message_id      text             DEFAULT NULL,
    session_id      text             DEFAULT NULL,
    operation_type  text             DEFAULT NULL,
    status          text             DEFAULT NULL,
    model           text             DEFAULT NULL,
    from_time       timestamptz      DEFAULT NULL,
    to_time         timestamptz      DEFAULT NULL,
    min_duration_ms double precision DEFAULT NULL,
    tag             text             DEFAULT NULL,
    after           text             DEFAULT NULL,
    "limit"         integer          DEFAULT 50,
    "offset"        integer          DEFAULT 0,
    user_id         uuid             DEFAULT NULL
) RETURNS SETOF analytics.trace_summary
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(_search_traces.user_id, analytics.current_user_id());
    c record := analytics._parse_cursor(after);
    q text;
begin
    perform analytics._check_page("limit", "offset");
    -- a trace matches when one of its spans matches the span filters; times and duration are the trace's
    q := 'with matching as (select distinct s.user_id, s.trace_id from analytics.llm_traces s where '
        || analytics._span_filters(_search_traces.trace_id, _search_traces.conversation_id, message_id,
                                   _search_traces.session_id, operation_type, status, model, tag, owner)
        || case when from_time is not null then ' and s.start_time >= $9' else '' end
        || '), traces as (
            select t.user_id, t.trace_id,
                   (array_agg(t.span_id order by (t.parent_span_id is not null), t.start_time, t.span_id))[1] as root_span_id,
                   (array_agg(t.name order by (t.parent_span_id is not null), t.start_time, t.span_id))[1] as root_name,
                   min(t.start_time) as start_time,
                   max(coalesce(t.end_time, t.start_time)) as end_time,
                   count(*) as span_count,
                   count(*) filter (where t.status = ''error'') as error_count,
                   sum(t.total_tokens)::bigint as total_tokens,
                   sum(t.cost_usd) as cost_usd,
                   min(t.conversation_id) as conversation_id,
                   min(t.session_id) as session_id,
                   array_agg(distinct t.model) filter (where t.model is not null) as models
            from analytics.llm_traces t
            join matching m on m.user_id = t.user_id and m.trace_id = t.trace_id
            group by t.user_id, t.trace_id)
        select user_id, trace_id, root_span_id, root_name, start_time, end_time,
               extract(epoch from end_time - start_time)::double precision * 1000, span_count, error_count,
               total_tokens, cost_usd, conversation_id, session_id, coalesce(models, ''{}''),
               to_char(start_time at time zone ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'') || '','' || trace_id
        from traces where true'
        || case when from_time is not null then ' and start_time >= $9' else '' end
        || case when to_time is not null then ' and start_time < $10' else '' end
        || case when min_duration_ms is not null
                then ' and extract(epoch from end_time - start_time) * 1000 >= $11' else '' end
        || case when after is not null then ' and (start_time, trace_id) < ($13, $14)' else '' end
        || ' order by start_time desc, trace_id desc limit $15 offset $16';
    return query execute q using _search_traces.trace_id, _search_traces.conversation_id, message_id,
        _search_traces.session_id, operation_type, status, model, tag, from_time, to_time, min_duration_ms, owner,
        c.at_time, c.at_key, "limit", "offset";
end
$$;

-- ---- trace_metrics ---------------------------------------------------------------------------------------------------
-- One row of analytics.trace_metrics (sql/041_cache.sql caches it).
CREATE TYPE analytics.trace_metrics_row AS (
    bucket_start   timestamptz,
    dimension      jsonb,
    request_count  bigint,
    error_count    bigint,
    error_rate     double precision,
    latency_p50_ms double precision,
    latency_p90_ms double precision,
    latency_p95_ms double precision,
    latency_p99_ms double precision,
    ttft_p50_ms    double precision,
    ttft_p95_ms    double precision,
    input_tokens   bigint,
    output_tokens  bigint,
    total_tokens   bigint,
    cost_usd       double precision
);
COMMENT ON TYPE analytics.trace_metrics_row IS 'One time bucket and group of analytics.trace_metrics.';

CREATE FUNCTION analytics._trace_metrics(
    bucket         interval,
    from_time      timestamptz,
    to_time        timestamptz,
    group_by       text[]  DEFAULT '{}',
    operation_type text    DEFAULT NULL,
    root_only      boolean DEFAULT false,
    user_id        uuid    DEFAULT NULL
) RETURNS SETOF analytics.trace_metrics_row
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(_trace_metrics.user_id, analytics.current_user_id());
    g text;
    cohort uuid;
    dims text := '';
    q text;
begin
    if bucket is null or bucket <= interval '0' then
        raise exception 'bucket: must be a positive interval, got %', coalesce(bucket::text, 'NULL') using errcode = '22023';
    end if;
    if extract(month from bucket) <> 0 or extract(year from bucket) <> 0 then
        raise exception 'bucket: months and years are not fixed lengths; use days (e.g. ''30 days''), got %', bucket
            using errcode = '22023';
    end if;
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if not isfinite(from_time) or not isfinite(to_time) then
        raise exception '%: must be a finite time', case when isfinite(from_time) then 'to_time' else 'from_time' end
            using errcode = '22023';
    end if;
    if extract(epoch from to_time - from_time) / extract(epoch from bucket) > 100000 then
        raise exception 'bucket: % buckets between from_time and to_time; the limit is 100000',
            floor(extract(epoch from to_time - from_time) / extract(epoch from bucket)) using errcode = '22023';
    end if;
    foreach g in array coalesce(group_by, '{}') loop
        if g like 'cohort:%' then
            -- whether the span's end user is a member of the owner's cohort now (true / false)
            select c.id into cohort from analytics.user_cohorts c where c.user_id = owner and c.key = substr(g, 8);
            if cohort is null then
                raise exception 'group_by: no cohort "%"', substr(g, 8) using errcode = 'P0002';
            end if;
            dims := dims || ', ' || quote_literal(g) || ', exists (select 1 from analytics.user_cohort_members m'
                || ' where m.user_id = s.user_id and m.cohort_id = ' || quote_literal(cohort) || '::uuid'
                || ' and m.member_id = s.end_user_id and m.exited_at is null)';
            continue;
        end if;
        dims := dims || case g
            when 'model' then ', ''model'', s.model'
            when 'operation_type' then ', ''operation_type'', s.operation_type'
            when 'provider' then ', ''provider'', s.provider'
            when 'status' then ', ''status'', s.status'
            when 'name' then ', ''name'', s.name'
            when 'user' then ', ''user_id'', s.user_id'
            when 'end_user' then ', ''end_user_id'', s.end_user_id'
            else null end;
        if dims is null then
            raise exception 'group_by: unknown dimension "%"; allowed: model, operation_type, provider, status, name, user, end_user, cohort:<key>', g
                using errcode = '22023';
        end if;
    end loop;
    q := 'select date_bin($1, s.start_time, $2) as b, jsonb_build_object(' || coalesce(nullif(substr(dims, 3), ''), '') || ') as d,
                 count(*), count(*) filter (where s.status = ''error''),
                 (count(*) filter (where s.status = ''error''))::double precision / count(*),
                 percentile_cont(0.50) within group (order by s.duration_ms),
                 percentile_cont(0.90) within group (order by s.duration_ms),
                 percentile_cont(0.95) within group (order by s.duration_ms),
                 percentile_cont(0.99) within group (order by s.duration_ms),
                 percentile_cont(0.50) within group (order by extract(epoch from s.completion_start_time - s.start_time)::double precision * 1000),
                 percentile_cont(0.95) within group (order by extract(epoch from s.completion_start_time - s.start_time)::double precision * 1000),
                 sum(s.input_tokens)::bigint, sum(s.output_tokens)::bigint, sum(s.total_tokens)::bigint, sum(s.cost_usd)
          from analytics.llm_traces s
          where s.start_time >= $2 and s.start_time < $3'
        || case when owner is not null then ' and s.user_id = $4' else '' end
        || case when operation_type is not null then ' and s.operation_type = $5' else '' end
        || case when root_only then ' and s.parent_span_id is null' else '' end
        || ' group by 1, 2 order by 1, 2';
    return query execute q using bucket, from_time, to_time, owner, operation_type;
end
$$;

-- ---- documentation ----------------------------------------------------------------------------------------------------
COMMENT ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid, text) IS
$$Stores one span (insert or update), with named arguments, and returns the stored row. Same rules as ingest_spans. end_user_id: the application's end user the span served (not the owner, user_id).
Example: select analytics.record_span(trace_id => 't1', span_id => 's1', name => 'chat', start_time => now(), model => 'gpt-4o', end_user_id => 'customer-42');$$;

COMMENT ON FUNCTION analytics._get_trace_tree(text, integer, integer, boolean, uuid) IS
'Internal: the computation behind analytics.get_trace_tree, uncached (sql/041_cache.sql).';

COMMENT ON FUNCTION analytics.trace_spans(text, uuid) IS
$$The trace as flat rows in depth-first order: ordinal, depth, path (span ids from the root), parent, offset_ms from the trace start, duration_ms, self_ms, orphan/cycle flags and subtree rollups.
Example: select ordinal, depth, name, offset_ms, self_ms from analytics.trace_spans('trace-rag-002');$$;

COMMENT ON FUNCTION analytics.span_subtree(text, text, uuid) IS
$$A span and all its descendants, depth-first, depth counted from that span. Same columns as trace_spans.
Example: select depth, name from analytics.span_subtree('trace-rag-002', 'llm');$$;

COMMENT ON FUNCTION analytics.span_ancestors(text, text, uuid) IS
$$The spans above a span, nearest first (distance 1 = parent, last row = root). Always ends, even on cyclic data.
Example: select distance, name from analytics.span_ancestors('trace-rag-002', 'guard');$$;

COMMENT ON FUNCTION analytics.trace_waterfall(text, uuid) IS
$$Waterfall rows in display order: depth, offset_ms from the trace start, duration_ms, self_ms and on_critical_path (the chain of spans that determined when the trace ended).
Example: select depth, name, offset_ms, duration_ms, on_critical_path from analytics.trace_waterfall('trace-rag-002');$$;

COMMENT ON FUNCTION analytics.trace_waterfall_svg(text, integer, uuid) IS
$$The trace's waterfall as a self-contained SVG document (text): one bar per span on a shared time axis, indented by depth, coloured by operation type, failed spans red, critical path outlined, tooltip per bar. At most max_spans rows (default 2000).
Example: \copy (select analytics.trace_waterfall_svg('trace-rag-002')) to 'waterfall.svg'$$;

COMMENT ON FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
'Internal: the computation behind analytics.search_spans, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
'Internal: the computation behind analytics.search_traces, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid) IS
'Internal: the computation behind analytics.trace_metrics, uncached (sql/041_cache.sql).';

COMMENT ON FUNCTION analytics._check_page(integer, integer) IS 'Internal: validates limit/offset of the search functions.';
COMMENT ON FUNCTION analytics._check_span_filters(text, text) IS 'Internal: validates the operation_type and status filters of the search functions.';
COMMENT ON FUNCTION analytics._cursor_time(text) IS 'Internal: the time of a keyset cursor ''<start_time>,<id>''.';
COMMENT ON FUNCTION analytics._cursor_key(text) IS 'Internal: the key of a keyset cursor ''<start_time>,<id>''.';
COMMENT ON FUNCTION analytics._span_filters(text, text, text, text, text, text, text, text, uuid) IS 'Internal: builds the span filter clause of the search functions.';
COMMENT ON FUNCTION analytics._parse_cursor(text) IS 'Internal: parses a keyset cursor ''<start_time>,<id>''.';
