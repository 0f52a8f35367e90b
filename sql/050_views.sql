-- HTML views (docs/views.md): self-contained documents a browser shows as they are, served by PostgREST (12+)
-- through a media-type domain. PostgREST finds a function returning a domain named like a media type in any schema
-- and serves its result with that Content-Type when the request's Accept header allows it; with
-- `Accept: application/json` (supabase-js' rpc) the same document arrives as a JSON string.
--
-- SECURITY INVOKER like every read: row-level security decides what a view shows. trace_view is STABLE;
-- experiment_view and dashboard_view are VOLATILE only because the cached functions they call may store a result
-- (PostgREST runs GET READ ONLY whatever the volatility, and the cache is then only read). The documents'
-- Content-Security-Policy allows only their own inline script and style (SHA-256 hashes), so they need no per-call
-- nonce.

CREATE DOMAIN analytics."text/html" AS text;
COMMENT ON DOMAIN analytics."text/html" IS
'An HTML document. PostgREST 12+ serves a function returning this domain with Content-Type: text/html when the request accepts it.';

CREATE FUNCTION analytics.trace_view(trace_id text, max_spans integer DEFAULT 20000, user_id uuid DEFAULT NULL)
RETURNS analytics."text/html"
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT analytics._trace_view(trace_id, max_spans, user_id)::analytics."text/html" $$;

COMMENT ON FUNCTION analytics._trace_view(text, integer, uuid) IS
'Internal: the document of analytics.trace_view as text.';
COMMENT ON FUNCTION analytics.trace_view(text, integer, uuid) IS
$$One trace as a self-contained HTML document (no network access, works in iframe.srcdoc or saved to a file): the span tree beside the waterfall, self time and critical path, tokens and cost per span, errors in red; click a span (or use the arrow keys) for its inputs, outputs, metadata and timing; collapse and expand subtrees. Draws only the rows in sight, so 20,000 spans stay readable; at most max_spans spans (1..100000), depth-first. NULL when the trace does not exist or is not the caller's.
Example: select analytics.trace_view('trace-rag-002');$$;

-- The experiment view: _experiment_view_data gathers what the page shows (the report, the planned weights, and per
-- goal metric the moments of the units assigned on each day, which the renderer sums into the cumulative effect);
-- _render_experiment_view (Rust, analytics_core::views::experiment) draws it. VOLATILE because experiment_report may
-- store its result in the cache; it writes nothing else, and under GET (READ ONLY) the cache is only read.
CREATE FUNCTION analytics._experiment_view_data(experiment_key text, goal_metrics jsonb, guardrail_metrics jsonb,
                                                correction text, alpha double precision, phase integer)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    ph integer := coalesce(_experiment_view_data.phase, e.phase);
    goals jsonb := goal_metrics;
    report jsonb;
    spec jsonb;
    m text;
    src text;
    kind text;
    lower boolean;
    days jsonb;
    series jsonb := '[]';
    directions jsonb := '{}';
begin
    if goals is null then
        if e.primary_metric is null then
            raise exception 'goal_metrics: is required when the experiment has no primary_metric' using errcode = '22023';
        end if;
        goals := jsonb_build_array(e.primary_metric);
    end if;
    -- validates the metric specs (22023 naming goal_metrics[i] / guardrail_metrics[i]) and computes every result
    report := analytics.experiment_report(experiment_key, goals, coalesce(guardrail_metrics, '[]'), correction, alpha,
                                          phase => ph);
    for spec in select case when jsonb_typeof(x) = 'string' then jsonb_build_object('metric', x #>> '{}') else x end
                from jsonb_array_elements(goals || coalesce(guardrail_metrics, '[]')) with ordinality g(x, i) order by i loop
        m := spec->>'metric';
        src := coalesce(spec->>'source', 'events');
        lower := coalesce((spec->>'lower_is_better')::boolean, src = 'traces' and m <> 'request_count');
        directions := directions || jsonb_build_object(m, lower);
    end loop;
    for spec in select case when jsonb_typeof(x) = 'string' then jsonb_build_object('metric', x #>> '{}') else x end
                from jsonb_array_elements(goals) with ordinality g(x, i) order by i loop
        m := spec->>'metric';
        src := coalesce(spec->>'source', 'events');
        kind := case when spec->>'type' in ('quantile', 'quantile_event') then spec->>'type'
                     when src = 'traces' then case when m in ('latency_ms', 'error_rate') then 'ratio' else 'mean' end
                     else coalesce(spec->>'type', 'binomial') end;
        if kind in ('quantile', 'quantile_event') then
            series := series || jsonb_build_array(jsonb_build_object('metric', m, 'kind', kind, 'lower_is_better', directions->m,
                'note', 'No cumulative chart for a quantile metric: its order statistics cannot be added up over days.'));
            continue;
        end if;
        -- the moments of the units assigned on each UTC day, without CUPED and capping
        if src = 'events' then
            select coalesce(jsonb_agg(d), '[]') into days
            from analytics._experiment_event_moments(e.id, ph, m, kind, null, 'assigned_date') d;
        else
            select coalesce(jsonb_agg(d), '[]') into days
            from analytics._experiment_moments(e.id, e.key, ph, m, kind, src, coalesce(spec->>'unit_source', 'metadata'),
                                               spec->>'operation_type', interval '0', null, 'assigned_date') d;
        end if;
        series := series || jsonb_build_array(jsonb_build_object('metric', m, 'kind', kind, 'lower_is_better', directions->m,
                                                                 'days', days));
    end loop;
    return jsonb_build_object(
        'experiment', jsonb_build_object('key', e.key, 'name', e.name, 'hypothesis', e.hypothesis, 'status', e.status,
                                         'phase', ph,
                                         'started_at', to_char(e.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                                         'ended_at', to_char(e.ended_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                                         'winner_variant_key', e.winner_variant_key),
        'variants', (select coalesce(jsonb_agg(jsonb_build_object('key', v.key, 'weight', v.weight, 'is_control', v.is_control)
                                               order by v.position), '[]')
                     from analytics.ab_experiment_variants v where v.experiment_id = e.id),
        'report', report,
        'series', series,
        'lower_is_better', directions);
end
$$;

CREATE FUNCTION analytics.experiment_view(experiment_key text, goal_metrics jsonb DEFAULT NULL,
                                          guardrail_metrics jsonb DEFAULT '[]', correction text DEFAULT 'none',
                                          alpha double precision DEFAULT 0.05, phase integer DEFAULT NULL)
RETURNS analytics."text/html"
LANGUAGE sql VOLATILE
AS $$ SELECT analytics._render_experiment_view(
          analytics._experiment_view_data(experiment_key, goal_metrics, guardrail_metrics, correction, alpha, phase))::analytics."text/html" $$;

COMMENT ON FUNCTION analytics._experiment_view_data(text, jsonb, jsonb, text, double precision, integer) IS
'Internal: what analytics.experiment_view shows, as jsonb (the experiment, its planned weights, experiment_report, and per goal metric the moments of the units assigned on each day).';
COMMENT ON FUNCTION analytics._render_experiment_view(jsonb) IS
'Internal: the HTML of analytics.experiment_view from the document of analytics._experiment_view_data.';
COMMENT ON FUNCTION analytics.experiment_view(text, jsonb, jsonb, text, double precision, integer) IS
$$An experiment's results as a self-contained HTML document: variants with units and planned shares, a sample-ratio-mismatch warning, every goal metric's value, lift with its interval bar, p-value (adjusted with a correction) and chance to win, the guardrails with their status, and the cumulative lift by day of assignment. goal_metrics and guardrail_metrics as in experiment_report (default goal: the experiment's primary_metric). P0002 when the experiment does not exist or is not the caller's.
Example: select analytics.experiment_view('checkout-cta', '["signup"]');$$;

-- The dashboard: _dashboard_view_data gathers a time range's figures (requests, errors and latency of the traces'
-- root spans, tokens and cost of every span, per bucket and in total; the top models and operations; the anomalies
-- not yet resolved; running experiments; recent traces and traces with errors); _render_dashboard_view (Rust,
-- analytics_core::views::dashboard) draws it. VOLATILE because trace_metrics may fill the cache.
-- one trace of the dashboard's lists: root span name, start, duration, spans, errors, cost
CREATE FUNCTION analytics._dashboard_trace(user_id uuid, trace_id text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
    select jsonb_build_object(
        'trace_id', _dashboard_trace.trace_id,
        'name', (select r.name from analytics.llm_traces r
                 where r.user_id = _dashboard_trace.user_id and r.trace_id = _dashboard_trace.trace_id
                 order by r.parent_span_id is not null, r.start_time, r.span_id limit 1),
        'start', to_char(min(s.start_time) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
        'duration_ms', extract(epoch from max(coalesce(s.end_time, s.start_time)) - min(s.start_time))::float8 * 1000,
        'spans', count(*), 'errors', count(*) filter (where s.status = 'error'), 'cost_usd', coalesce(sum(s.cost_usd), 0))
    from analytics.llm_traces s
    where s.user_id = _dashboard_trace.user_id and s.trace_id = _dashboard_trace.trace_id
$$;

CREATE FUNCTION analytics._dashboard_view_data(from_time timestamptz, to_time timestamptz, bucket interval, user_id uuid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(_dashboard_view_data.user_id, analytics.current_user_id());
    b interval := bucket;
    seconds double precision;
begin
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if not isfinite(from_time) or not isfinite(to_time) then
        raise exception '%: must be a finite time', case when isfinite(from_time) then 'to_time' else 'from_time' end
            using errcode = '22023';
    end if;
    if to_time - from_time > interval '400 days' then
        raise exception 'from_time: a dashboard covers at most 400 days, got %', to_time - from_time using errcode = '22023';
    end if;
    seconds := extract(epoch from to_time - from_time);
    if b is null then
        -- the smallest usual bucket that draws at most 120 of them
        select x into b
        from unnest('{1 minute, 5 minutes, 15 minutes, 1 hour, 3 hours, 6 hours, 1 day, 1 week}'::interval[]) x
        where seconds / extract(epoch from x) <= 120 order by x limit 1;
    elsif b <= interval '0' or extract(month from b) <> 0 or extract(year from b) <> 0 then
        raise exception 'bucket: must be a positive interval of fixed length (minutes, hours, days), got %', b
            using errcode = '22023';
    elsif seconds / extract(epoch from b) > 1000 then
        raise exception 'bucket: % buckets between from_time and to_time; a dashboard draws at most 1000',
            ceil(seconds / extract(epoch from b)) using errcode = '22023';
    end if;
    return jsonb_build_object(
        'from', to_char(from_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'to', to_char(to_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'from_epoch', extract(epoch from from_time), 'to_epoch', extract(epoch from to_time),
        'bucket_seconds', extract(epoch from b)::float8,
        'totals', (select jsonb_build_object('requests', count(*) filter (where s.parent_span_id is null),
                                             'errors', count(*) filter (where s.parent_span_id is null and s.status = 'error'),
                                             'latency_p50_ms', percentile_cont(0.5) within group (order by s.duration_ms) filter (where s.parent_span_id is null),
                                             'latency_p95_ms', percentile_cont(0.95) within group (order by s.duration_ms) filter (where s.parent_span_id is null),
                                             'spans', count(*), 'total_tokens', coalesce(sum(s.total_tokens), 0),
                                             'cost_usd', coalesce(sum(s.cost_usd), 0))
                   from analytics.llm_traces s
                   where (owner is null or s.user_id = owner) and s.start_time >= from_time and s.start_time < to_time),
        'requests', (select coalesce(jsonb_agg(jsonb_build_object('t', extract(epoch from m.bucket_start), 'requests', m.request_count,
                                                                  'errors', m.error_count, 'error_rate', m.error_rate,
                                                                  'p50', m.latency_p50_ms, 'p95', m.latency_p95_ms)
                                               order by m.bucket_start), '[]')
                     from analytics.trace_metrics(b, from_time, to_time, root_only => true, user_id => owner) m),
        'usage', (select coalesce(jsonb_agg(jsonb_build_object('t', extract(epoch from m.bucket_start), 'tokens', m.total_tokens,
                                                               'cost', m.cost_usd) order by m.bucket_start), '[]')
                  from analytics.trace_metrics(b, from_time, to_time, user_id => owner) m),
        'models', (select coalesce(jsonb_agg(to_jsonb(x) order by x.calls desc, x.name), '[]') from (
                       select s.model as name, count(*) as calls, count(*) filter (where s.status = 'error') as errors,
                              coalesce(sum(s.total_tokens), 0) as tokens, coalesce(sum(s.cost_usd), 0) as cost_usd,
                              percentile_cont(0.95) within group (order by s.duration_ms) as p95_ms
                       from analytics.llm_traces s
                       where (owner is null or s.user_id = owner) and s.start_time >= from_time and s.start_time < to_time
                         and s.model is not null
                       group by s.model order by count(*) desc, s.model limit 10) x),
        'operations', (select coalesce(jsonb_agg(to_jsonb(x) order by x.calls desc, x.name), '[]') from (
                       select s.operation_type as name, count(*) as calls, count(*) filter (where s.status = 'error') as errors,
                              coalesce(sum(s.total_tokens), 0) as tokens, coalesce(sum(s.cost_usd), 0) as cost_usd,
                              percentile_cont(0.95) within group (order by s.duration_ms) as p95_ms
                       from analytics.llm_traces s
                       where (owner is null or s.user_id = owner) and s.start_time >= from_time and s.start_time < to_time
                       group by s.operation_type order by count(*) desc, s.operation_type limit 10) x),
        'anomalies', (select coalesce(jsonb_agg(jsonb_build_object('metric', a.metric, 'dimension', a.dimension,
                                                                   't', extract(epoch from a.bucket_start),
                                                                   'bucket_start', to_char(a.bucket_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                                                                   'observed', a.observed, 'expected', a.expected,
                                                                   'severity', a.severity, 'status', a.status, 'method', a.method)
                                                order by a.bucket_start, a.metric), '[]')
                      from analytics.anomaly_detections a
                      where (owner is null or a.user_id = owner) and a.status <> 'resolved'
                        and a.bucket_start >= from_time and a.bucket_start < to_time),
        'experiments', (select coalesce(jsonb_agg(jsonb_build_object(
                                   'key', e.key, 'name', e.name, 'primary_metric', e.primary_metric,
                                   'started_at', to_char(e.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                                   'units', (select coalesce(sum(c.units), 0) from analytics.ab_experiment_unit_counts c
                                             where c.experiment_id = e.id and c.phase = e.phase),
                                   'variants', (select count(*) from analytics.ab_experiment_variants v where v.experiment_id = e.id))
                               order by e.started_at desc nulls last, e.key), '[]')
                        from analytics.ab_experiments e
                        where (owner is null or e.user_id = owner) and e.status = 'running'),
        -- the ten traces with the latest error spans, and the ten latest traces (root spans): found by index, then
        -- summed up one by one (search_traces would sum up every trace of the range first)
        'failed_traces', (select coalesce(jsonb_agg(analytics._dashboard_trace(x.user_id, x.trace_id) order by x.last_error desc), '[]')
                          from (select e.user_id, e.trace_id, max(e.start_time) as last_error
                                from analytics.llm_traces e
                                where (owner is null or e.user_id = owner) and e.status = 'error'
                                  and e.start_time >= from_time and e.start_time < to_time
                                group by e.user_id, e.trace_id order by max(e.start_time) desc limit 10) x),
        'recent_traces', (select coalesce(jsonb_agg(analytics._dashboard_trace(x.user_id, x.trace_id) order by x.start_time desc), '[]')
                          from (select t.user_id, t.trace_id, t.start_time
                                from analytics.llm_traces t
                                where (owner is null or t.user_id = owner) and t.parent_span_id is null
                                  and t.start_time >= from_time and t.start_time < to_time
                                order by t.start_time desc limit 10) x));
end
$$;

CREATE FUNCTION analytics.dashboard_view(from_time timestamptz DEFAULT now() - interval '24 hours',
                                         to_time timestamptz DEFAULT now(), bucket interval DEFAULT NULL,
                                         user_id uuid DEFAULT NULL)
RETURNS analytics."text/html"
LANGUAGE sql VOLATILE
AS $$ SELECT analytics._render_dashboard_view(
          analytics._dashboard_view_data(from_time, to_time, bucket, user_id))::analytics."text/html" $$;

COMMENT ON FUNCTION analytics._dashboard_trace(uuid, text) IS
'Internal: one trace of analytics.dashboard_view''s lists (root span name, start, duration, spans, errors, cost).';
COMMENT ON FUNCTION analytics._dashboard_view_data(timestamptz, timestamptz, interval, uuid) IS
'Internal: what analytics.dashboard_view shows, as jsonb.';
COMMENT ON FUNCTION analytics._render_dashboard_view(jsonb) IS
'Internal: the HTML of analytics.dashboard_view from the document of analytics._dashboard_view_data.';
COMMENT ON FUNCTION analytics.dashboard_view(timestamptz, timestamptz, interval, uuid) IS
$$The caller's LLM application over a time range as a self-contained HTML document: requests (traces), error rate, p50/p95 latency, tokens and cost per bucket as SVG charts with the anomalies not yet resolved marked on them, totals, the top models and operations, the anomalies, running experiments, the latest traces and the traces with the latest errors, with in-document links between them. bucket: NULL picks 1 minute to 1 week for at most 120 buckets; at most 1000 buckets and 400 days.
Example: select analytics.dashboard_view(now() - interval '7 days', now());$$;
