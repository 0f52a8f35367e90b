-- analytics_ext 0.2.0 -> 0.1.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'): undoes
-- analytics_ext--0.1.0--0.2.0.sql, in reverse order. A step that would lose data (a column, table or setting that
-- 0.1.0 has no place for, holding values) refuses with an error naming what would be lost, before changing anything.
--
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'" to load this file. \quit

-- Rate limits (undone first). 0.1.0 has no rate limits: a downgrade with limits in analytics.rate_limits refuses,
-- before changing anything (the limiter's state is a cache of recent calls and is dropped).
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.rate_limits);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % rate limit%: analytics.rate_limits does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.rate_limits to ''rate_limits.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
CREATE OR REPLACE FUNCTION analytics.run_anomaly_detection(
    metric   text,
    bucket   interval    DEFAULT '1 hour',
    lookback interval    DEFAULT '7 days',
    group_by text[]      DEFAULT '{}',
    method   text        DEFAULT 'mad',
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
            from analytics.trace_metrics($1, $2, $3, $4, user_id => $5) m
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
COMMENT ON FUNCTION analytics.run_anomaly_detection(text, interval, interval, text[], text, jsonb, timestamptz, uuid) IS
$$Builds a metric series from the caller's spans (the definitions of trace_metrics: request_count, error_count, error_rate, latency_p50/p90/p95/p99, ttft_p50/p95 in ms, input_tokens, output_tokens, tokens, cost), one per group_by dimension, over the whole buckets of lookback before end_time; runs the detector; records each anomaly in anomaly_detections (one row per owner, metric, dimension, bucket and method: a re-run updates, never duplicates; status and acknowledgement are kept) and returns the rows recorded. New warning/critical findings that are alerts (with a cooldown in params, only the first anomaly of an episode) are announced with pg_notify('analytics_anomalies', json). Severity: critical at twice the threshold (iqr: beyond the outer fence), else warning.
Counts, tokens and cost are 0 in buckets without spans; rates and percentiles are gaps there. A scheduled job without a JWT passes user_id.
Example: select bucket_start, observed, expected, severity from analytics.run_anomaly_detection('latency_p95', '1 hour', '7 days', group_by => '{model}');$$;
CREATE OR REPLACE FUNCTION analytics.create_experiment(
    key             text,
    name            text,
    variants        jsonb,
    hypothesis      text             DEFAULT NULL,
    seed            text             DEFAULT NULL,
    hash_version    integer          DEFAULT 2,
    coverage        double precision DEFAULT 1,
    namespace_name  text             DEFAULT NULL,
    namespace_start double precision DEFAULT NULL,
    namespace_end   double precision DEFAULT NULL,
    primary_metric  text             DEFAULT NULL
) RETURNS analytics.ab_experiments
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments;
begin
    if analytics.current_user_id() is null then
        raise exception 'no user: call with a JWT whose claims have a sub (request.jwt.claims)' using errcode = '42501';
    end if;
    if hash_version not in (1, 2) then
        raise exception 'hash_version: must be 1 or 2, got %', hash_version using errcode = '22023';
    end if;
    if coverage is null or coverage < 0 or coverage > 1 then
        raise exception 'coverage: must be between 0 and 1, got %', coverage using errcode = '22023';
    end if;
    if namespace_name is not null and not (namespace_start >= 0 and namespace_start < namespace_end and namespace_end <= 1) then
        raise exception 'namespace_start, namespace_end: must satisfy 0 <= start < end <= 1' using errcode = '22023';
    end if;
    begin
        insert into analytics.ab_experiments (key, name, hypothesis, seed, hash_version, coverage, namespace_name,
                                              namespace_start, namespace_end, primary_metric)
        values (create_experiment.key, create_experiment.name, hypothesis, seed, hash_version, coverage,
                namespace_name, namespace_start, namespace_end, primary_metric)
        returning * into e;
    exception when unique_violation then
        raise exception 'experiment "%" already exists', create_experiment.key using errcode = '23505';
    end;
    perform analytics._set_variants(e, variants);
    return e;
end
$$;
COMMENT ON FUNCTION analytics.create_experiment(text, text, jsonb, text, text, integer, double precision, text, double precision, double precision, text) IS
$$Creates a draft experiment owned by the caller with its variants: a JSON array of {"key", "weight", "is_control", "name", "payload"}.
At least two variants with unique keys; weights all given and summing to 1 (within 1e-9), or all left out (equal weights); at most one flagged control (none flagged: the first is the control).
Example: select analytics.create_experiment('system-prompt-v2', 'Concise prompt', '[{"key":"control","weight":0.5},{"key":"concise","weight":0.5}]');$$;
-- the ingest functions: back to the 0.1.0 C functions (their symbols are in the library)
DROP FUNCTION analytics.ingest_spans(jsonb);
DROP FUNCTION analytics.ingest_otlp(jsonb);
DROP FUNCTION analytics._ingest_spans(jsonb);
DROP FUNCTION analytics._ingest_otlp(jsonb);
CREATE FUNCTION analytics."ingest_otlp"(
	"payload" jsonb /* Option < JsonbText > */
) RETURNS jsonb /* pgrx :: JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ingest_otlp_wrapper';
CREATE FUNCTION analytics."ingest_spans"(
	"spans" jsonb /* Option < RawJsonb > */
) RETURNS jsonb /* pgrx :: JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ingest_spans_wrapper';
COMMENT ON FUNCTION analytics.ingest_spans(jsonb) IS
$$Stores a batch of spans (JSON array of span objects, at most 100,000) in one all-or-nothing statement.
Re-sending a span (same owner, trace_id, span_id) updates it: fields sent win, fields left out keep their value, metadata objects are merged.
Children may arrive before their parents. Errors name the element and field, e.g. 'spans[3].end_time: is before start_time' (22023).
Returns {"received", "stored" (rows inserted or updated), "merged_duplicates", "traces"}.
Example: select analytics.ingest_spans('[{"trace_id":"t1","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"}]');$$;
COMMENT ON FUNCTION analytics.ingest_otlp(jsonb) IS
$$Stores the spans of an OpenTelemetry OTLP/JSON ExportTraceServiceRequest ({"resourceSpans": [...]}): hex ids, unix-nano times, status codes; gen_ai.* and OpenInference attributes map to columns (model, provider, tokens, conversation id, input/output messages...), everything else goes to metadata.otel.
Same rules and result as ingest_spans; errors name the span by path, e.g. resourceSpans[0].scopeSpans[0].spans[3].spanId.
Example: select analytics.ingest_otlp(pg_read_file('export.json')::jsonb);$$;
REVOKE EXECUTE ON FUNCTION analytics.ingest_spans(jsonb), analytics.ingest_otlp(jsonb) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT EXECUTE ON FUNCTION analytics.ingest_spans(jsonb), analytics.ingest_otlp(jsonb) TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION analytics.ingest_spans(jsonb), analytics.ingest_otlp(jsonb) TO service_role;
    END IF;
END
$grants$;
DROP FUNCTION analytics.rate_limit_status();
DROP FUNCTION analytics.check_rate_limit(text);
DROP FUNCTION analytics._rate_limit_for(text, uuid);
DROP FUNCTION analytics._window_text(interval);
DROP FUNCTION analytics._rate_limit_now();
DROP FUNCTION analytics._builtin_rate_limits();
ALTER EXTENSION analytics_ext DROP TABLE analytics.rate_limits;
DROP TABLE analytics.rate_limits;
DROP TABLE analytics.rate_limit_state;

-- Retention policies. 0.1.0 has no place for them, so a
-- downgrade with policies in the table refuses, before changing anything.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.retention_policies);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % retention polic%: analytics.retention_policies does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN 'y' ELSE 'ies' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.retention_policies to ''policies.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.apply_retention(integer, timestamptz);
ALTER EXTENSION analytics_ext DROP TABLE analytics.retention_policies;
DROP TABLE analytics.retention_policies;

-- Statistics as GrowthBook computes them: back to the 0.1.0 documentation (the library keeps its new behaviour:
-- there is one library for every version, see docs/upgrading.md).
COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true.
Returns the test (two-proportion z for binomial, Welch for mean, Welch on delta-method variances for ratio; relative lift by default) with control_value, treatment_value, chance_to_beat_control and expected_loss (Gaussian posterior, flat prior; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;
COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights: {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;
