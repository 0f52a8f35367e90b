-- Anomaly detection over series and over the trace rollups; findings recorded in analytics.anomaly_detections
-- (one row per owner, metric, dimension, bucket and method), new warnings and criticals announced with
-- pg_notify('analytics_anomalies', ...). The detectors themselves are Rust (crates/analytics-core/src/anomaly/detectors.rs):
-- analytics.detect_anomalies(values, method, params).

-- ---- detect_series_anomalies: the detector over (ts, value) pairs ----------------------------------------------------
CREATE FUNCTION analytics.detect_series_anomalies(
    timestamps   timestamptz[],
    observations double precision[],
    method       text     DEFAULT 'surprise',
    params       jsonb    DEFAULT '{}',
    bucket       interval DEFAULT NULL
) RETURNS TABLE (
    ts            timestamptz,
    value         double precision,
    score         double precision,
    anomaly_score double precision,
    is_anomaly    boolean,
    alert       boolean,
    expected    double precision,
    lower_bound double precision,
    upper_bound double precision
)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    n int := coalesce(cardinality(timestamps), 0);
    first_ts timestamptz;
    bad int;
begin
    if n <> coalesce(cardinality(observations), 0) then
        raise exception 'observations: one value per timestamp is needed, got % values for % timestamps',
            coalesce(cardinality(observations), 0), n using errcode = '22023';
    end if;
    select min(i) into bad from generate_subscripts(timestamps, 1) i where timestamps[i] is null;
    if bad is not null then
        raise exception 'timestamps[%]: must not be NULL', bad using errcode = '22004';
    end if;
    select min(i) into bad from generate_subscripts(timestamps, 1) i where not isfinite(timestamps[i]);
    if bad is not null then
        raise exception 'timestamps[%]: must be a finite time, got %', bad, timestamps[bad] using errcode = '22023';
    end if;
    select min(t) into first_ts from unnest(timestamps) t;
    if (select count(distinct t) from unnest(timestamps) t) <> n then
        raise exception 'timestamps: must be distinct' using errcode = '22023';
    end if;
    if bucket is not null then
        if bucket <= interval '0' or extract(month from bucket) <> 0 or extract(year from bucket) <> 0 then
            raise exception 'bucket: must be a positive interval of days, hours, minutes or seconds, got %', bucket
                using errcode = '22023';
        end if;
        select min(i) into bad from generate_subscripts(timestamps, 1) i
        where date_bin(bucket, timestamps[i], first_ts) <> timestamps[i];
        if bad is not null then
            raise exception 'timestamps[%]: % is not on the grid of % buckets starting at %', bad, timestamps[bad],
                bucket, first_ts using errcode = '22023';
        end if;
        -- the grid is materialised: a microsecond bucket over a day of points would be 86 billion rows
        if extract(epoch from (select max(t) from unnest(timestamps) t) - first_ts) / extract(epoch from bucket) >= 1000000 then
            raise exception 'bucket: % buckets between the first and the last timestamp; the limit is 1000000',
                floor(extract(epoch from (select max(t) from unnest(timestamps) t) - first_ts) / extract(epoch from bucket)) + 1
                using errcode = '22023';
        end if;
    end if;
    -- without a bucket the points follow each other in time order; with one, missing buckets become gaps
    return query
    with points as (
        select p.t, p.v from unnest(timestamps, observations) p(t, v)
    ), grid as (
        select g.t, pt.v, row_number() over (order by g.t) as k
        from (select p.t from points p where bucket is null
              union all
              select generate_series(first_ts, (select max(p.t) from points p), bucket) where bucket is not null) g(t)
        left join points pt on pt.t = g.t
    ), scored as (
        select d.* from analytics.detect_anomalies(array(select g.v from grid g order by g.k), method, params) d
    )
    select g.t, g.v, s.score, s.anomaly_score, s.is_anomaly, s.alert, s.expected, s.lower_bound, s.upper_bound
    from grid g join scored s on s.idx = g.k
    join points p on p.t = g.t
    order by g.t;
end
$$;

-- ---- run_anomaly_detection: series from the trace rollups, detected, recorded, announced --------------------------
CREATE FUNCTION analytics.run_anomaly_detection(
    metric   text,
    bucket   interval    DEFAULT '1 hour',
    lookback interval    DEFAULT '7 days',
    group_by text[]      DEFAULT '{}',
    method   text        DEFAULT 'surprise',
    params   jsonb       DEFAULT '{}',
    end_time timestamptz DEFAULT now(),
    user_id  uuid        DEFAULT NULL
) RETURNS SETOF analytics.anomaly_detections
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(run_anomaly_detection.user_id, analytics.current_user_id());
    settings jsonb;
    threshold double precision;
    to_time timestamptz;
    from_time timestamptz;
    col text;
    zero_fill boolean;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose traces to check'
            using errcode = '42501';
    end if;
    perform analytics.check_rate_limit('run_anomaly_detection', answer => false);
    col := case metric
        when 'request_count' then 'request_count' when 'error_count' then 'error_count' when 'error_rate' then 'error_rate'
        when 'latency_p50' then 'latency_p50_ms' when 'latency_p90' then 'latency_p90_ms'
        when 'latency_p95' then 'latency_p95_ms' when 'latency_p99' then 'latency_p99_ms'
        when 'ttft_p50' then 'ttft_p50_ms' when 'ttft_p95' then 'ttft_p95_ms'
        when 'input_tokens' then 'input_tokens' when 'output_tokens' then 'output_tokens'
        when 'tokens' then 'total_tokens' when 'cost' then 'cost_usd' end;
    if col is null then
        raise exception 'metric: unknown trace metric "%"; allowed: request_count, error_count, error_rate, latency_p50, latency_p90, latency_p95, latency_p99, ttft_p50, ttft_p95, input_tokens, output_tokens, tokens, cost',
            coalesce(metric, 'NULL') using errcode = '22023';
    end if;
    -- counts and sums are 0 in a bucket without spans; rates and percentiles have no value there (a gap)
    zero_fill := metric in ('request_count', 'error_count', 'input_tokens', 'output_tokens', 'tokens', 'cost');
    if bucket is null or bucket <= interval '0' or extract(month from bucket) <> 0 or extract(year from bucket) <> 0 then
        raise exception 'bucket: must be a positive interval of days, hours, minutes or seconds, got %', coalesce(bucket::text, 'NULL')
            using errcode = '22023';
    end if;
    if lookback is null or lookback <= bucket then
        raise exception 'lookback: must be longer than one bucket (%), got %', bucket, coalesce(lookback::text, 'NULL')
            using errcode = '22023';
    end if;
    if lookback > interval '100 years' then
        raise exception 'lookback: at most 100 years, got %', lookback using errcode = '22023';
    end if;
    if end_time is null then
        raise exception 'end_time: is required' using errcode = '22004';
    end if;
    settings := analytics.anomaly_params(method, coalesce(params, '{}'));
    threshold := (settings->>'threshold')::double precision;
    -- whole buckets only: the bucket in progress at end_time is left for the next run
    to_time := date_bin(bucket, end_time, timestamptz '2000-01-01 00:00+00');
    from_time := to_time - lookback;
    from_time := date_bin(bucket, from_time, timestamptz '2000-01-01 00:00+00');

    return query execute format($q$
        with series as (
            select m.dimension, m.bucket_start, m.%1$I::double precision as v
            from analytics._trace_metrics($1, $2, $3, $4, user_id => $5) m
        ), dims as (
            select distinct s.dimension from series s
        ), grid as (
            select d.dimension, g.t, case when $9 then coalesce(s.v, 0) else s.v end as v,
                   row_number() over (partition by d.dimension order by g.t) as k
            from dims d
            cross join generate_series($2, $3 - $1, $1) g(t)
            left join series s on s.dimension = d.dimension and s.bucket_start = g.t
        ), found as (
            select d.dimension, g.t, g.v, r.score, r.alert, r.expected, r.lower_bound, r.upper_bound
            from dims d
            cross join lateral analytics.detect_anomalies(
                array(select g2.v from grid g2 where g2.dimension = d.dimension order by g2.k), $6, $7) r
            join grid g on g.dimension = d.dimension and g.k = r.idx
            where r.is_anomaly
        ), recorded as (
            insert into analytics.anomaly_detections as a
                (user_id, metric, dimension, bucket_start, bucket_width, observed, expected, lower_bound, upper_bound,
                 score, severity, method, parameters)
            select $5, $8, f.dimension, f.t, $1, f.v, f.expected, f.lower_bound, f.upper_bound, f.score,
                   case when abs(f.score) >= case when $6 = 'iqr' then $10 else 2 * $10 end then 'critical' else 'warning' end,
                   $6, $11
            from found f
            on conflict on constraint anomaly_detections_finding_key do update
               set observed = excluded.observed, expected = excluded.expected, lower_bound = excluded.lower_bound,
                   upper_bound = excluded.upper_bound, score = excluded.score, severity = excluded.severity,
                   bucket_width = excluded.bucket_width, parameters = excluded.parameters, updated_at = now()
            returning a.*, (a.xmax = 0) as inserted
        ), announced as materialized (
            select pg_notify('analytics_anomalies', jsonb_build_object(
                       'id', r.id, 'user_id', r.user_id, 'metric', r.metric, 'dimension', r.dimension,
                       'bucket_start', r.bucket_start, 'observed', r.observed, 'expected', r.expected,
                       'score', case when r.score in ('Infinity', '-Infinity') then to_jsonb(r.score::text) else to_jsonb(r.score) end,
                       'severity', r.severity, 'method', r.method)::text)
            from recorded r
            -- new findings that start an episode (every anomaly does unless params set a cooldown)
            join found f on f.dimension = r.dimension and f.t = r.bucket_start
            where r.inserted and f.alert and r.severity in ('warning', 'critical')
        )
        select r.id, r.user_id, r.metric, r.dimension, r.bucket_start, r.bucket_width, r.observed, r.expected,
               r.lower_bound, r.upper_bound, r.score, r.severity, r.method, r.parameters, r.status, r.detected_at,
               r.acknowledged_at, r.acknowledged_by, r.resolved_at, r.updated_at
        from recorded r
        -- an inner join, so the planner cannot drop the notifications as it would an unused left join
        cross join (select count(*) from announced) n
        order by r.bucket_start, r.dimension::text
    $q$, col)
    using bucket, from_time, to_time, group_by, owner, method, params, metric, zero_fill, threshold, settings;
end
$$;

-- ---- acknowledge / resolve ----------------------------------------------------------------------------------------
CREATE FUNCTION analytics.acknowledge_anomaly(id uuid) RETURNS analytics.anomaly_detections
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    r analytics.anomaly_detections;
begin
    select * into r from analytics.anomaly_detections a where a.id = acknowledge_anomaly.id for update;
    if not found then
        raise exception 'anomaly % not found', coalesce(acknowledge_anomaly.id::text, 'NULL') using errcode = 'P0002';
    end if;
    if r.status = 'resolved' then
        raise exception 'anomaly %: is resolved; a resolved anomaly cannot be acknowledged', r.id using errcode = '55000';
    end if;
    if r.status = 'open' then
        update analytics.anomaly_detections a
           set status = 'acknowledged', acknowledged_at = greatest(now(), a.detected_at),
               acknowledged_by = analytics.current_user_id(), updated_at = now()
         where a.id = r.id
        returning * into r;
    end if;
    return r;
end
$$;

CREATE FUNCTION analytics.resolve_anomaly(id uuid) RETURNS analytics.anomaly_detections
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    r analytics.anomaly_detections;
begin
    update analytics.anomaly_detections a
       set status = 'resolved', resolved_at = greatest(now(), a.detected_at), updated_at = now()
     where a.id = resolve_anomaly.id and a.status <> 'resolved'
    returning * into r;
    if not found then
        select * into r from analytics.anomaly_detections a where a.id = resolve_anomaly.id;
        if not found then
            raise exception 'anomaly % not found', coalesce(resolve_anomaly.id::text, 'NULL') using errcode = 'P0002';
        end if;
    end if;
    return r;
end
$$;

-- ---- documentation --------------------------------------------------------------------------------------------------
-- ---- anomaly_summary: what was found, per metric and dimension (cached: sql/041_cache.sql) --------------------
CREATE TYPE analytics.anomaly_summary_row AS (
    metric           text,
    dimension        jsonb,
    anomalies        bigint,
    open             bigint,
    acknowledged     bigint,
    resolved         bigint,
    critical         bigint,
    warning          bigint,
    info             bigint,
    first_bucket     timestamptz,
    last_bucket      timestamptz,
    last_detected_at timestamptz,
    max_abs_score    double precision,
    methods          text[]
);
COMMENT ON TYPE analytics.anomaly_summary_row IS 'One metric and dimension of analytics.anomaly_summary.';

CREATE FUNCTION analytics._anomaly_summary(
    from_time timestamptz,
    to_time   timestamptz DEFAULT NULL,
    status    text        DEFAULT NULL,
    user_id   uuid        DEFAULT NULL
) RETURNS SETOF analytics.anomaly_summary_row
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(_anomaly_summary.user_id, analytics.current_user_id());
begin
    if from_time is null then
        raise exception 'from_time: is required' using errcode = '22004';
    end if;
    if to_time is not null and to_time <= from_time then
        raise exception 'to_time: must be after from_time (%), got %', from_time, to_time using errcode = '22023';
    end if;
    if _anomaly_summary.status is not null and _anomaly_summary.status not in ('open', 'acknowledged', 'resolved') then
        raise exception 'status: must be open, acknowledged or resolved, got %', _anomaly_summary.status
            using errcode = '22023';
    end if;
    return query
    select a.metric, a.dimension, count(*),
           count(*) filter (where a.status = 'open'), count(*) filter (where a.status = 'acknowledged'),
           count(*) filter (where a.status = 'resolved'),
           count(*) filter (where a.severity = 'critical'), count(*) filter (where a.severity = 'warning'),
           count(*) filter (where a.severity = 'info'),
           min(a.bucket_start), max(a.bucket_start), max(a.detected_at), max(abs(a.score)),
           array_agg(distinct a.method order by a.method)
    from analytics.anomaly_detections a
    where a.bucket_start >= from_time
      and (to_time is null or a.bucket_start < to_time)
      and (owner is null or a.user_id = owner)
      and (_anomaly_summary.status is null or a.status = _anomaly_summary.status)
    group by a.metric, a.dimension
    order by count(*) filter (where a.status = 'open') desc, max(a.bucket_start) desc, a.metric, a.dimension::text;
end
$$;

COMMENT ON FUNCTION analytics.detect_anomalies(double precision[], text, jsonb) IS
$$Runs an anomaly detector over a series (NULL or NaN elements are gaps): one row per element with idx (1-based), value, signed score, anomaly_score (in [0, 1], higher = more anomalous: the score on the log scale of Numenta's anomaly likelihood, for surprise u / (1 + u); what NAB's scorer sweeps a threshold over), is_anomaly, alert (the anomaly starts an episode: no other anomaly in the cooldown points before it), expected value and lower/upper bound. Causal: each point is judged against the points before it only.
Methods (default surprise): zscore (rolling mean/sd, threshold 3), mad (median/MAD modified z, 3.5), iqr (Tukey fences, k 1.5), ewma (EW mean/sd, 3), seasonal (same phase in past seasons + robust residual z, 3.5), cusum (level shifts, h 8), likelihood (Numenta's anomaly likelihood over a base detector's scores, default ewma with alpha 0.1; threshold 4), surprise (robust z in a short and a long window and against the same time of day in past periods, relative to the series' own 99th-percentile surprise, once per episode; threshold 1.8; the best on NAB). params: window, threshold, min_history, alpha (ewma), period (seasonal, surprise: points per day), slack (cusum), direction (both, up, down), base, short, history (likelihood, surprise), long, rest, seasons (surprise), cooldown (alerts; default 0).
Example: select idx, value, score, anomaly_score from analytics.detect_anomalies('{10,11,10,12,11,10,11,10,50,11}', 'mad', '{"window": 5}') where is_anomaly;$$;
COMMENT ON FUNCTION analytics.anomaly_params(text, jsonb) IS
$$The parameters a detector runs with: its defaults overridden by params, validated (unknown keys and bad values raise 22023). Example: select analytics.anomaly_params('seasonal', '{"period": 168}');$$;
COMMENT ON FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval) IS
$$detect_anomalies over (ts, value) pairs (default method surprise), returned in time order with the same columns. With bucket, the points must lie on a grid of that width starting at the first timestamp, and missing buckets are gaps (so seasonal periods stay aligned); without, the points follow each other in time order.
Example: select ts, value, score from analytics.detect_series_anomalies(array_agg(t order by t), array_agg(v order by t), 'zscore', '{"window": 24}', '1 hour') d where is_anomaly;$$;
COMMENT ON FUNCTION analytics.run_anomaly_detection(text, interval, interval, text[], text, jsonb, timestamptz, uuid) IS
$$Builds a metric series from the caller's spans (the definitions of trace_metrics: request_count, error_count, error_rate, latency_p50/p90/p95/p99, ttft_p50/p95 in ms, input_tokens, output_tokens, tokens, cost), one per group_by dimension, over the whole buckets of lookback before end_time; runs the detector; records each anomaly in anomaly_detections (one row per owner, metric, dimension, bucket and method: a re-run updates, never duplicates; status and acknowledgement are kept) and returns the rows recorded. New warning/critical findings that are alerts (with a cooldown in params, only the first anomaly of an episode) are announced with pg_notify('analytics_anomalies', json). Severity: critical at twice the threshold (iqr: beyond the outer fence), else warning.
Counts, tokens and cost are 0 in buckets without spans; rates and percentiles are gaps there. A scheduled job without a JWT passes user_id. Rate limited for API callers (action 'run_anomaly_detection', default 60 per hour per user; see analytics.check_rate_limit).
Example: select bucket_start, observed, expected, severity from analytics.run_anomaly_detection('latency_p95', '1 hour', '7 days', group_by => '{model}');$$;
COMMENT ON FUNCTION analytics.acknowledge_anomaly(uuid) IS
$$Marks an open anomaly acknowledged (by the caller, now); acknowledging again changes nothing; a resolved one raises 55000; one the caller cannot see raises P0002.
Example: select status from analytics.acknowledge_anomaly('00000000-0000-0000-0000-000000000000');$$;
COMMENT ON FUNCTION analytics.resolve_anomaly(uuid) IS
$$Marks an anomaly resolved (now); resolving again changes nothing; one the caller cannot see raises P0002.
Example: select status from analytics.resolve_anomaly('00000000-0000-0000-0000-000000000000');$$;
COMMENT ON FUNCTION analytics._anomaly_summary(timestamptz, timestamptz, text, uuid) IS
'Internal: the computation behind analytics.anomaly_summary, uncached (sql/041_cache.sql).';
