-- HTML views (docs/views.md): self-contained documents a browser shows as they are, served by PostgREST (12+)
-- through a media-type domain. PostgREST finds a function returning a domain named like a media type in any schema
-- and serves its result with that Content-Type when the request's Accept header allows it; with
-- `Accept: application/json` (supabase-js' rpc) the same document arrives as a JSON string.
--
-- SECURITY INVOKER and STABLE like every read: row-level security decides what a view shows, and PostgREST may call
-- them with GET. Their Content-Security-Policy allows only their own inline script and style (SHA-256 hashes), so
-- they need no per-call nonce.

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
