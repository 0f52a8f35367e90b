-- Ingest failures that survive: a batch refused by validation stores no span, and the refusal is recorded in
-- analytics.ingest_failures (owner-visible, RLS) — kept by answering the error through PostgREST instead of raising.
--
-- A RAISE rolls back the whole request, the failure record with it. So analytics._ingest_spans / _ingest_otlp
-- (Rust) hand a validation error back as data, {"error": {"code", "message"}}, before writing anything, and the
-- wrappers (analytics.ingest_spans, analytics.ingest_otlp in sql/040_rate_limits.sql) pass it to
-- analytics._ingest_failed, which, in a PostgREST request (the setting request.method is set), records the failure,
-- sets the HTTP status with response.status = 400 and returns PostgREST's error body {code, message, details, hint}:
-- the request commits (PostgREST's default db-tx-end = commit) with no span and one failure row. Outside PostgREST
-- (psql, a back end's SQL) it raises the error as before: the caller sees it, and nothing is recorded.

CREATE TABLE analytics.ingest_failures (
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid        NOT NULL DEFAULT analytics.current_user_id(),
    failed_at     timestamptz NOT NULL DEFAULT now(),
    function      text        NOT NULL,
    sqlstate      text        NOT NULL,
    message       text        NOT NULL,
    location      text,
    span_index    integer,
    trace_id      text,
    span_id       text,
    batch_size    integer,
    payload_bytes integer     NOT NULL,
    CONSTRAINT ingest_failures_pkey PRIMARY KEY (user_id, id),
    CONSTRAINT ingest_failures_function_check CHECK (function IN ('ingest_spans', 'ingest_otlp'))
);
CREATE INDEX ingest_failures_user_time_idx ON analytics.ingest_failures (user_id, failed_at);
COMMENT ON TABLE analytics.ingest_failures IS
'Ingest calls refused by validation through PostgREST (no span of the batch was stored): when, which function, the SQLSTATE and message the client got, the offending location (spans[3].end_time), index and span, the batch size and payload bytes. One row per refused call; the owner reads and deletes their own.';

-- ---- _ingest_failed: record a refused batch and answer it ------------------------------------------------------------
CREATE FUNCTION analytics._ingest_failed(function text, error jsonb, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    code text := error->>'code';
    msg text := error->>'message';
    location text := substring(msg from '^([^:]+): ');
    idx integer;
    span jsonb;
    spans integer;
begin
    -- (what ingest_spans and ingest_otlp pass; a direct call, as PostgREST allows, gets its arguments checked)
    if _ingest_failed.function is null then
        raise exception 'function: must name the ingest function' using errcode = '22004';
    elsif code is null or code !~ '^[0-9A-Z]{5}$' or msg is null then
        raise exception 'error: must be {"code": a SQLSTATE, "message": text}, got %', left(coalesce(error::text, 'NULL'), 200)
            using errcode = '22023';
    end if;
    if nullif(pg_catalog.current_setting('request.method', true), '') is null
       or analytics.current_user_id() is null then
        -- not a PostgREST request (or nobody to record it for): the error as an error
        raise exception using errcode = code, message = msg;
    end if;
    if _ingest_failed.function = 'ingest_spans' then
        idx := substring(location from '^spans\[([0-9]+)\]')::integer;
        span := case when jsonb_typeof(payload) = 'array' and idx is not null then payload->idx end;
        spans := case when jsonb_typeof(payload) = 'array' then jsonb_array_length(payload) end;
    else
        spans := jsonb_array_length(jsonb_path_query_array(payload, 'lax $.resourceSpans[*].scopeSpans[*].spans[*]'));
    end if;
    insert into analytics.ingest_failures (function, sqlstate, message, location, span_index, trace_id, span_id,
                                           batch_size, payload_bytes)
    values (_ingest_failed.function, code, msg, location, idx,
            case when jsonb_typeof(span) = 'object' then left(span->>'trace_id', 256) end,
            case when jsonb_typeof(span) = 'object' then left(span->>'span_id', 256) end,
            spans, coalesce(pg_catalog.pg_column_size(payload), 0));
    perform pg_catalog.set_config('response.status', '400', true);
    return jsonb_build_object('code', code, 'message', msg, 'details', null,
        'hint', 'No span of this batch was stored; the failure is recorded in analytics.ingest_failures.');
end
$$;
COMMENT ON FUNCTION analytics._ingest_failed(text, jsonb, jsonb) IS
'Called by ingest_spans and ingest_otlp with a batch that failed validation: in a PostgREST request it records the failure in analytics.ingest_failures, sets response.status 400 and returns the error body {code, message, details, hint}; elsewhere it raises the error. Internal.';

-- ---- ingest_failure_summary: the failures of a time range, for dashboards ---------------------------------------
CREATE FUNCTION analytics.ingest_failure_summary(
    from_time timestamptz DEFAULT now() - interval '1 day',
    to_time   timestamptz DEFAULT now(),
    bucket    interval    DEFAULT '1 hour'
) RETURNS TABLE (
    bucket_start   timestamptz,
    rejected_calls bigint,
    rejected_spans bigint,
    payload_bytes  bigint,
    error_codes    jsonb,
    last_message   text
)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if bucket is null or bucket <= interval '0' or extract(month from bucket) <> 0 or extract(year from bucket) <> 0 then
        raise exception 'bucket: must be a positive interval of days, hours, minutes or seconds, got %',
            coalesce(bucket::text, 'NULL') using errcode = '22023';
    end if;
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    return query
    with f as (
        select date_bin(bucket, x.failed_at, timestamptz '2000-01-01 00:00+00') as b, x.*
        from analytics.ingest_failures x
        where x.failed_at >= from_time and x.failed_at < to_time
    ), codes as (
        select f.b, jsonb_object_agg(f.sqlstate, f.n) as c
        from (select f.b, f.sqlstate, count(*) as n from f group by 1, 2) f
        group by 1
    )
    select f.b, count(*), coalesce(sum(f.batch_size), 0)::bigint, sum(f.payload_bytes)::bigint, c.c,
           (array_agg(f.message order by f.failed_at desc, f.message))[1]
    from f join codes c on c.b = f.b
    group by f.b, c.c
    order by f.b;
end
$$;
COMMENT ON FUNCTION analytics.ingest_failure_summary(timestamptz, timestamptz, interval) IS
$$The caller's refused ingest calls per time bucket (RLS: only their own): rejected calls, the spans those batches held, their payload bytes, the count per SQLSTATE ({"22023": 3}) and the latest message. Buckets without failures are left out.
Example: select * from analytics.ingest_failure_summary(now() - interval '1 day', now(), '1 hour');$$;

-- ---- ingest health: successful calls counted, per owner and minute --------------------------------------------------
-- Each successful ingest call through PostgREST (a caller with a JWT sub) adds itself to one row of the owner, the
-- minute and the connection (backend pid). Only one transaction at a time ever writes a given row — the one running
-- on that connection — so counting never waits on another request, and cannot deadlock with the span locks of
-- concurrent batches (even in a transaction that ingests several batches). Readers sum the rows.
CREATE TABLE analytics.ingest_stats (
    user_id      uuid        NOT NULL DEFAULT analytics.current_user_id(),
    bucket_start timestamptz NOT NULL,
    function     text        NOT NULL,
    backend_pid  integer     NOT NULL,
    calls        bigint      NOT NULL,
    spans        bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    CONSTRAINT ingest_stats_pkey PRIMARY KEY (user_id, bucket_start, function, backend_pid),
    CONSTRAINT ingest_stats_function_check CHECK (function IN ('ingest_spans', 'ingest_otlp'))
);
COMMENT ON TABLE analytics.ingest_stats IS
'Successful ingest calls of callers with a JWT sub (PostgREST requests) per owner, minute (bucket_start), function and connection (backend_pid): calls, spans stored (inserted or updated) and payload bytes (jsonb). Written by the ingest functions; read through analytics.ingest_health. One row per connection and minute an owner ingested: delete old rows in a daily job (docs/traces.md#ingest-health).';

CREATE FUNCTION analytics._ingest_succeeded(function text, result jsonb, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if _ingest_succeeded.function is null then
        raise exception 'function: must name the ingest function' using errcode = '22004';
    end if;
    if analytics.current_user_id() is not null then
        insert into analytics.ingest_stats as s (bucket_start, function, backend_pid, calls, spans, bytes)
        values (date_trunc('minute', now()), _ingest_succeeded.function, pg_catalog.pg_backend_pid(), 1,
                coalesce((result->>'stored')::bigint, 0), coalesce(pg_catalog.pg_column_size(payload), 0))
        on conflict on constraint ingest_stats_pkey do update
            set calls = s.calls + 1, spans = s.spans + excluded.spans, bytes = s.bytes + excluded.bytes;
    end if;
    return result;
end
$$;
COMMENT ON FUNCTION analytics._ingest_succeeded(text, jsonb, jsonb) IS
'Called by ingest_spans and ingest_otlp with a stored batch: counts the call, its stored spans and payload bytes in analytics.ingest_stats for the caller (nothing without a JWT sub) and returns the result. Internal.';

-- ---- ingest_health: calls, spans and refusals per bucket ---------------------------------------------------------------
CREATE FUNCTION analytics.ingest_health(
    from_time timestamptz DEFAULT now() - interval '1 day',
    to_time   timestamptz DEFAULT now(),
    bucket    interval    DEFAULT '1 hour'
) RETURNS TABLE (
    bucket_start   timestamptz,
    calls          bigint,
    rejected_calls bigint,
    spans_stored   bigint,
    rejected_spans bigint,
    bytes          bigint,
    failure_rate   double precision,
    error_codes    jsonb
)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if bucket is null or bucket < interval '1 minute' or extract(month from bucket) <> 0 or extract(year from bucket) <> 0 then
        raise exception 'bucket: must be an interval of days, hours or minutes, at least 1 minute, got %',
            coalesce(bucket::text, 'NULL') using errcode = '22023';
    end if;
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    return query
    with ok as (
        select date_bin(bucket, s.bucket_start, timestamptz '2000-01-01 00:00+00') as b,
               sum(s.calls) as calls, sum(s.spans) as spans, sum(s.bytes) as bytes
        from analytics.ingest_stats s
        where s.bucket_start >= from_time and s.bucket_start < to_time
        group by 1
    ), bad as (
        select f.bucket_start as b, f.rejected_calls, f.rejected_spans, f.payload_bytes, f.error_codes
        from analytics.ingest_failure_summary(from_time, to_time, bucket) f
    )
    select coalesce(ok.b, bad.b),
           (coalesce(ok.calls, 0) + coalesce(bad.rejected_calls, 0))::bigint,
           coalesce(bad.rejected_calls, 0)::bigint,
           coalesce(ok.spans, 0)::bigint,
           coalesce(bad.rejected_spans, 0)::bigint,
           (coalesce(ok.bytes, 0) + coalesce(bad.payload_bytes, 0))::bigint,
           coalesce(bad.rejected_calls, 0)::double precision / (coalesce(ok.calls, 0) + coalesce(bad.rejected_calls, 0)),
           coalesce(bad.error_codes, '{}')
    from ok full join bad on bad.b = ok.b
    order by 1;
end
$$;
COMMENT ON FUNCTION analytics.ingest_health(timestamptz, timestamptz, interval) IS
$$The caller's ingest per time bucket (RLS: only their own), for dashboards: calls (accepted, and refused through PostgREST), refused calls, spans stored, spans in refused batches, payload bytes (jsonb), the share of calls refused, and the count per SQLSTATE ({"22023": 3}). Buckets without calls are left out. Calls without a JWT sub (psql, a back end's SQL) are not counted.
Example: select bucket_start, calls, rejected_calls, spans_stored, failure_rate from analytics.ingest_health(now() - interval '1 day', now(), '1 hour');$$;
