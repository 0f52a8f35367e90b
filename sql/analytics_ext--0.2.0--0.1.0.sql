-- analytics_ext 0.2.0 -> 0.1.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'): undoes
-- analytics_ext--0.1.0--0.2.0.sql, in reverse order. A step that would lose data (a column, table or setting that
-- 0.1.0 has no place for, holding values) refuses with an error naming what would be lost, before changing anything.
--
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'" to load this file. \quit

-- ---- The identity functions' SET clause, back
ALTER FUNCTION analytics.current_user_id() SET search_path = '';
ALTER FUNCTION analytics.current_role_claim() SET search_path = '';

-- ---- End users, cohorts and retention, undone (sql/060-062; the end user column, profiles and membership history):
-- refused while 0.1.0 would have no place for what is stored.

DO $refuse$
DECLARE
    n bigint;
BEGIN
    n := (SELECT count(*) FROM analytics.llm_traces WHERE end_user_id IS NOT NULL);
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose the end user of % span%: 0.1.0 has no analytics.llm_traces.end_user_id',
                        n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy (select user_id, trace_id, span_id, end_user_id from analytics.llm_traces where end_user_id is not null) to ''end_users.csv'' csv), set the column to NULL, then update again.';
    END IF;
    n := (SELECT count(*) FROM analytics.end_user_profiles);
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % end user profile%: analytics.end_user_profiles does not exist in 0.1.0',
                        n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.end_user_profiles to ''end_user_profiles.csv'' csv) and delete the rows, then update again.';
    END IF;
    n := (SELECT count(*) FROM analytics.user_cohort_members WHERE exited_at IS NOT NULL);
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % ended cohort stay%: 0.1.0 keeps no membership history',
                        n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy (select * from analytics.user_cohort_members where exited_at is not null) to ''stays.csv'' csv) and delete those rows, then update again.';
    END IF;
END
$refuse$;

DROP FUNCTION analytics.retention(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, text[], timestamptz, uuid);

DROP FUNCTION analytics._retention_query(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, timestamptz, text[]);

DROP FUNCTION analytics.cohort_members(text, timestamptz, uuid);

DROP FUNCTION analytics.remove_cohort_members(text, jsonb, uuid);

DROP FUNCTION analytics.add_cohort_members(text, jsonb, uuid);

DROP FUNCTION analytics._member_ids(jsonb);

DROP FUNCTION analytics.refresh_cohorts(uuid, timestamptz);

DROP FUNCTION analytics.refresh_cohort(text, timestamptz, uuid);

DROP FUNCTION analytics.preview_cohort(jsonb, timestamptz, uuid);

DROP FUNCTION analytics.update_cohort(text, text, jsonb, text, uuid);

DROP FUNCTION analytics.create_cohort(text, text, jsonb, text, timestamptz, uuid);

DROP FUNCTION analytics._cohort_matches(jsonb, timestamptz, uuid);

DROP FUNCTION analytics._check_cohort_references(jsonb, text, uuid);

DROP FUNCTION analytics._cohort_for_update(text, uuid, boolean);

DROP FUNCTION analytics._compile_cohort_rule(jsonb);

DROP FUNCTION analytics.end_users(timestamptz, timestamptz, text, integer, integer, uuid);

DROP FUNCTION analytics.identify_end_user(text, jsonb, boolean, uuid);

DROP TRIGGER user_cohorts_check_rule ON analytics.user_cohorts;
DROP FUNCTION analytics._check_cohort_row();

-- out of the extension first, which also takes it off the extension's list of dumped tables
ALTER EXTENSION analytics_ext DROP TABLE analytics.end_user_profiles;
DROP TABLE analytics.end_user_profiles;

DROP INDEX analytics.user_cohort_members_open_key;
ALTER TABLE analytics.user_cohort_members DROP CONSTRAINT user_cohort_members_exited_after_entered,
    DROP CONSTRAINT user_cohort_members_pkey,
    ADD CONSTRAINT user_cohort_members_pkey PRIMARY KEY (cohort_id, member_id, user_id),
    DROP COLUMN exited_at,
    ALTER COLUMN member_id TYPE text COLLATE pg_catalog."default";
ALTER TABLE analytics.user_cohort_members RENAME COLUMN entered_at TO added_at;
ALTER TABLE analytics.user_cohorts DROP COLUMN refreshed_at;

COMMENT ON TABLE analytics.user_cohort_members IS 'Members (unit ids) of a cohort.';

COMMENT ON FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean) IS
$$Rollups per time bucket and group (group_by: model, operation_type, provider, status, name, user): request_count, error_count, error_rate, latency p50/p90/p95/p99 and time-to-first-token p50/p95 in ms, tokens and cost.
Percentiles are exact (percentile_cont). Buckets are aligned to from_time. Filters: operation_type, root_only (traces rather than spans). Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{model}');$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, std_error, chance to beat control, expected loss and control_risk (Bayesian, Gaussian: GrowthBook's risk of shipping the treatment and of keeping the control; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial, mean and ratio metrics; for latency_ms and error_rate the unit's pre-period ratio, as GrowthBook's regression-adjusted ratio metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). capping (GrowthBook's metric capping: mean metrics, and the numerator of latency_ms and error_rate): 'absolute' caps each unit's value at cap_value; 'percentile' at the cap_value quantile (0.99: the 99th percentile) of every assigned unit's value, all variants together, zeros left out with cap_ignore_zeros; CUPED's pre-period values get the same cap; capped_at reports the cap. metric_type 'quantile' (a quantile of the units' values: their events' total, a trace metric's total, or their average latency or error rate) or 'quantile_event' (a quantile of every event's value, or of every span's latency_ms, cost_usd or tokens, the events clustered in their units) with quantile => 0.95 for the 95th percentile: GrowthBook's quantile metrics and gbstats' QuantileStatistic / QuantileClusteredStatistic (value: the variant's quantile; effect: its relative or absolute change); quantile_ignore_zeros leaves values of 0 out. dimension breaks the results down (GrowthBook's dimensions; a row per value and variant, the value in the dimension column, most units first): 'assigned_date' (UTC day of assignment), 'attribute.<name>' (an attribute stored by assign_variant), 'model', 'provider' or 'operation_type' (of the unit's first span after assignment that names one); '(none)' for units without a value; beyond max_dimensions values (20) the rest is merged into '(other)' (left out for quantile metrics); each value has its own sample ratio check, and the correction covers variants and values together. alternative 'greater' or 'less' makes the frequentist and sequential tests one-sided (GrowthBook's one-sided t-tests): the treatment is higher, or lower; the interval's open end is NULL. Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;

CREATE OR REPLACE FUNCTION analytics._experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'none',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL,
    sequential        boolean          DEFAULT false,
    prior_mean        double precision DEFAULT NULL,
    prior_variance    double precision DEFAULT NULL,
    capping           text             DEFAULT NULL,
    cap_value         double precision DEFAULT NULL,
    cap_ignore_zeros  boolean          DEFAULT false,
    quantile          double precision DEFAULT NULL,
    quantile_ignore_zeros boolean      DEFAULT false,
    dimension         text             DEFAULT NULL,
    max_dimensions    integer          DEFAULT 20,
    alternative       text             DEFAULT 'two-sided'
) RETURNS SETOF analytics.experiment_result_row
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    ph int := coalesce(_experiment_results.phase, e.phase);
    kind text := metric_type;
    trace_kind text;
    pre interval := case when cuped then cuped_lookback else interval '0' end;
    -- trace metrics other than request_count are costs: lower is better
    lower boolean := coalesce(lower_is_better, metric_source = 'traces' and metric <> 'request_count');
    dims jsonb[];
    d jsonb;
    groups jsonb;
    control jsonb;
    srm_result jsonb;
    srms jsonb := '{}';
    tests jsonb := '{}';
    control_keys text[] := '{}';
    adjusted double precision[];
    keys text[];
    g jsonb;
    t jsonb;
    k text;
    r analytics.experiment_result_row;
    adjusted_ci double precision[];
    cap double precision;
begin
    if metric is null or metric = '' then
        raise exception 'metric: is required' using errcode = '22004';
    end if;
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if cuped is null or (cuped and (cuped_lookback is null or cuped_lookback <= interval '0')) then
        raise exception 'cuped_lookback: must be a positive interval, got %', coalesce(cuped_lookback::text, 'NULL')
            using errcode = '22023';
    end if;
    if metric_source = 'events' then
        kind := coalesce(kind, 'binomial');
        if kind not in ('binomial', 'mean', 'quantile', 'quantile_event') then
            raise exception 'metric_type: must be binomial (share of units with the event), mean (event value per unit), quantile (a quantile of the units'' values) or quantile_event (a quantile of the events'' values), got %',
                kind using errcode = '22023';
        end if;
    elsif metric_source = 'traces' then
        if metric not in ('latency_ms', 'error_rate', 'cost_usd', 'total_tokens', 'input_tokens', 'output_tokens', 'request_count') then
            raise exception 'metric: unknown trace metric "%"; allowed: latency_ms, error_rate, cost_usd, total_tokens, input_tokens, output_tokens, request_count',
                metric using errcode = '22023';
        end if;
        if unit_source is null or unit_source not in ('metadata', 'session_id', 'conversation_id') then
            raise exception 'unit_source: must be metadata (the span''s metadata.unit_id), session_id or conversation_id, got %',
                coalesce(unit_source, 'NULL') using errcode = '22023';
        end if;
        trace_kind := case when metric in ('latency_ms', 'error_rate') then 'ratio' else 'mean' end;
        if kind = 'quantile_event' and metric in ('error_rate', 'request_count') then
            raise exception 'metric_type: quantile_event takes a quantile of every span''s value: latency_ms, cost_usd, total_tokens, input_tokens or output_tokens, not %',
                metric using errcode = '22023';
        elsif kind in ('quantile', 'quantile_event') then
            trace_kind := kind;
        end if;
        if kind is not null and kind <> trace_kind then
            raise exception 'metric_type: the trace metric % is a % metric, got %', metric, trace_kind, kind
                using errcode = '22023';
        end if;
        kind := trace_kind;
    else
        raise exception 'metric_source: must be events (ab_experiment_events) or traces (llm_traces), got %',
            coalesce(metric_source, 'NULL') using errcode = '22023';
    end if;
    if sequential is null then
        raise exception 'sequential: must be true or false' using errcode = '22004';
    end if;
    if alternative is null or alternative not in ('two-sided', 'greater', 'less') then
        raise exception 'alternative: must be two-sided, greater (the treatment is higher) or less (it is lower), got %',
            coalesce(alternative, 'NULL') using errcode = '22023';
    end if;
    -- quantile metrics (GrowthBook's): the level, and whether zeros count
    if kind in ('quantile', 'quantile_event') then
        if quantile is null or not (quantile > 0 and quantile < 1) then
            raise exception 'quantile: must be between 0 and 1 for a quantile metric (0.95 for the 95th percentile), got %',
                coalesce(quantile::text, 'NULL') using errcode = '22023';
        end if;
        if cuped then
            raise exception 'cuped: is available for binomial, mean and ratio metrics, not for quantile metrics' using errcode = '22023';
        end if;
    elsif quantile is not null then
        raise exception 'quantile: needs metric_type => ''quantile'' or ''quantile_event''' using errcode = '22023';
    end if;
    -- dimension breakdowns (GrowthBook's dimensions): what a unit's value is taken from, and how many values are shown
    perform analytics._check_dimension(dimension, max_dimensions);
    if dimension in ('model', 'provider', 'operation_type')
       and (unit_source is null or unit_source not in ('metadata', 'session_id', 'conversation_id')) then
        raise exception 'unit_source: must be metadata (the span''s metadata.unit_id), session_id or conversation_id, got %',
            coalesce(unit_source, 'NULL') using errcode = '22023';
    end if;
    if quantile_ignore_zeros is null or (quantile_ignore_zeros and kind not in ('quantile', 'quantile_event')) then
        raise exception 'quantile_ignore_zeros: must be true or false, and true only with a quantile metric' using errcode = '22023';
    end if;
    -- metric capping (GrowthBook's capping settings): per-unit values above the cap count as the cap
    if capping is null then
        if cap_value is not null then
            raise exception 'cap_value: needs capping => ''absolute'' or ''percentile''' using errcode = '22023';
        end if;
    elsif capping not in ('absolute', 'percentile') then
        raise exception 'capping: must be absolute (cap at cap_value) or percentile (cap at the cap_value quantile of the units'' values), got %',
            capping using errcode = '22023';
    elsif kind not in ('mean', 'ratio') then
        raise exception 'capping: applies to mean metrics (a value per unit) and to the numerator of a ratio metric, not to the % metric %',
            kind, metric using errcode = '22023';
    elsif capping = 'absolute' and (cap_value is null or not cap_value > 0 or cap_value in ('Infinity', 'NaN')) then
        raise exception 'cap_value: must be a positive number for absolute capping, got %', coalesce(cap_value::text, 'NULL')
            using errcode = '22023';
    elsif capping = 'percentile' and (cap_value is null or not (cap_value > 0 and cap_value <= 1)) then
        raise exception 'cap_value: must be a quantile in (0, 1] for percentile capping (0.99: the 99th percentile), got %',
            coalesce(cap_value::text, 'NULL') using errcode = '22023';
    end if;
    if cap_ignore_zeros is null or (cap_ignore_zeros and capping is distinct from 'percentile') then
        raise exception 'cap_ignore_zeros: must be true or false, and true only with percentile capping' using errcode = '22023';
    end if;
    if capping = 'absolute' then
        cap := cap_value;
    elsif capping = 'percentile' and metric_source = 'events' and not cuped then
        -- the same from the per-unit totals the triggers keep (sql/023_experiment_totals.sql): no pass over the events
        cap := analytics._experiment_event_cap(e.id, ph, metric, cap_value, cap_ignore_zeros);
    elsif capping = 'percentile' then
        -- the quantile of every assigned unit's value, all variants together (zeros left out with cap_ignore_zeros), as
        -- GrowthBook computes its cap: one more pass over the units
        select percentile_cont(cap_value) within group (order by u.y) into cap
        from analytics._experiment_unit_values(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type,
                                               interval '0') u
        where not cap_ignore_zeros or u.y <> 0;
    end if;

    -- the moments of every variant: one row, or one per value of the dimension
    if kind in ('quantile', 'quantile_event') then
        select array_agg(m) into dims
        from analytics._experiment_quantile_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source,
                                                    operation_type, quantile, quantile_ignore_zeros, dimension) m;
    elsif metric_source = 'events' and not cuped and dimension is distinct from 'model'
          and dimension is distinct from 'provider' and dimension is distinct from 'operation_type' then
        -- the per-unit totals kept by triggers (sql/023_experiment_totals.sql): no join of assignments and events
        select array_agg(m) into dims from analytics._experiment_event_moments(e.id, ph, metric, kind, cap, dimension) m;
    else
        select array_agg(m) into dims
        from analytics._experiment_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type, pre,
                                           cap, dimension) m;
    end if;
    -- dimension values by units, most first (GrowthBook's order); beyond max_dimensions the rest is merged into
    -- '(other)' (the max_dimensions-th value included), or left out for quantile metrics, whose order statistics
    -- cannot be summed (gbstats' reduce_dimensionality)
    select array_agg(x order by (select sum((gr->'moments'->>'n')::bigint) from jsonb_array_elements(x->'groups') gr) desc,
                             x->>'dimension')
      into dims from unnest(dims) x;
    if cardinality(dims) > max_dimensions then
        if kind in ('quantile', 'quantile_event') then
            dims := dims[1:max_dimensions];
        else
            dims := dims[1:max_dimensions - 1]
                    || analytics._experiment_merge_dimensions(dims[max_dimensions:cardinality(dims)]);
        end if;
    end if;

    -- every variant against the control, in each dimension value; the sample ratio checked in each
    foreach d in array coalesce(dims, '{}') loop
        groups := d->'groups';
        control := (select x from jsonb_array_elements(groups) x where (x->>'is_control')::boolean);
        srm_result := analytics.srm_check(
            (select array_agg((x->'moments'->>'n')::int) from jsonb_array_elements(groups) x),
            (select array_agg((x->>'weight')::double precision) from jsonb_array_elements(groups) x));
        srms := srms || jsonb_build_object(coalesce(d->>'dimension', ''), srm_result);
        for g in select x from jsonb_array_elements(groups) x loop
            -- (the control against itself gives its value)
            t := analytics.compare_groups(control->'moments', g->'moments', kind, relative, alpha, cuped, sequential_tuning,
                                          lower, prior_mean, prior_variance, alternative);
            if sequential then
                -- GrowthBook with sequential testing on: the always-valid p-value and interval replace the
                -- fixed-horizon ones, and significance (after correction) follows them
                t := t || jsonb_build_object('p_value', t->'sequential_p_value', 'ci_lower', t->'sequential_ci_lower',
                                             'ci_upper', t->'sequential_ci_upper');
            end if;
            -- keyed by dimension value and variant ('' and the key without a dimension)
            k := jsonb_build_array(coalesce(d->>'dimension', ''), g->>'key')::text;
            tests := tests || jsonb_build_object(k, t);
            if (g->>'is_control')::boolean then
                control_keys := control_keys || k;
            end if;
        end loop;
    end loop;

    -- correct the p-values for comparing several variants (in several dimension values) with the control: one
    -- correction over all of them, as GrowthBook corrects across variations and dimensions
    select array_agg(x.key order by x.key), array_agg((x.value->>'p_value')::double precision order by x.key)
      into keys, adjusted
    from jsonb_each(tests) x
    where x.value->>'p_value' is not null and x.key <> all (control_keys);
    if correction <> 'none' and keys is not null then
        adjusted := analytics.adjust_p_values(adjusted, correction);
    end if;

    foreach d in array coalesce(dims, '{}') loop
        srm_result := srms->coalesce(d->>'dimension', '');
        for g in select x from jsonb_array_elements(d->'groups') x loop
            k := jsonb_build_array(coalesce(d->>'dimension', ''), g->>'key')::text;
            t := tests->k;
            r.dimension := d->>'dimension';
            r.value := (t->>'treatment_value')::double precision;
            r.variant_key := g->>'key';
            r.is_control := (g->>'is_control')::boolean;
            r.units := (g->'moments'->>'n')::bigint;
            r.srm_p_value := (srm_result->>'p_value')::double precision;
            r.srm := (srm_result->>'srm')::boolean;
            r.capped_at := cap;
            if r.is_control then
                r.effect := null; r.ci_lower := null; r.ci_upper := null; r.p_value := null; r.adjusted_p_value := null;
                r.ci_lower_adjusted := null; r.ci_upper_adjusted := null; r.std_error := null; r.control_risk := null;
                r.significant := false; r.chance_to_beat_control := null; r.expected_loss := null; r.sequential_p_value := null;
                r.sequential_ci_lower := null; r.sequential_ci_upper := null; r.variance_reduction := null;
                r.note := srm_result->>'note';
            else
                r.effect := (t->>'effect')::double precision;
                r.ci_lower := (t->>'ci_lower')::double precision;
                r.ci_upper := (t->>'ci_upper')::double precision;
                r.p_value := (t->>'p_value')::double precision;
                r.adjusted_p_value := case when keys is null then null else adjusted[array_position(keys, k)] end;
                r.significant := coalesce(r.adjusted_p_value < alpha, false);
                -- the interval that goes with the corrected p-value (GrowthBook's ciAdjusted; a one-sided test's
                -- open end stays NULL); without a correction, the interval itself
                if correction <> 'none' and r.adjusted_p_value is not null and r.effect is not null then
                    adjusted_ci := analytics._adjusted_interval(r.effect, r.ci_lower, r.ci_upper, r.adjusted_p_value, alpha);
                    r.ci_lower_adjusted := adjusted_ci[1];
                    r.ci_upper_adjusted := adjusted_ci[2];
                else
                    r.ci_lower_adjusted := r.ci_lower;
                    r.ci_upper_adjusted := r.ci_upper;
                end if;
                r.chance_to_beat_control := (t->>'chance_to_beat_control')::double precision;
                r.expected_loss := (t->>'expected_loss')::double precision;
                r.control_risk := (t->>'control_risk')::double precision;
                r.std_error := (t->>'std_error')::double precision;
                r.sequential_p_value := (t->>'sequential_p_value')::double precision;
                r.sequential_ci_lower := (t->>'sequential_ci_lower')::double precision;
                r.sequential_ci_upper := (t->>'sequential_ci_upper')::double precision;
                r.variance_reduction := (t->>'variance_reduction')::double precision;
                r.note := coalesce(t->>'note', srm_result->>'note');
            end if;
            return next r;
        end loop;
    end loop;
end
$$;

CREATE OR REPLACE FUNCTION analytics._experiment_unit_dimensions(experiment_id uuid, experiment_key text, phase integer,
                                                      dimension text, unit_source text)
RETURNS TABLE (assignment_id uuid, variant_id uuid, value text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select a.id, a.variant_id,
           case when _experiment_unit_dimensions.dimension in ('model', 'provider', 'operation_type')
                then coalesce(f.value, '(none)')
                else analytics._dimension_value(_experiment_unit_dimensions.dimension, a.assigned_at, a.attributes) end
    from analytics.ab_experiment_assignments a
    left join (
        -- per assignment, the field of its first span after assignment that names one (one pass, as trace metrics)
        select distinct on (a2.id) a2.id,
               case _experiment_unit_dimensions.dimension when 'model' then s.model when 'provider' then s.provider
                    else s.operation_type end as value
        from analytics.ab_experiment_assignments a2
        join analytics.llm_traces s
          on s.user_id = a2.user_id
         and case _experiment_unit_dimensions.unit_source when 'metadata' then s.metadata->>'unit_id'
                              when 'session_id' then s.session_id
                              else s.conversation_id end = a2.unit_id
         and (s.metadata->>'experiment' is null or s.metadata->>'experiment' = _experiment_unit_dimensions.experiment_key)
         and s.start_time >= a2.assigned_at
         and case _experiment_unit_dimensions.dimension when 'model' then s.model when 'provider' then s.provider
                  else s.operation_type end is not null
        where _experiment_unit_dimensions.dimension in ('model', 'provider', 'operation_type')
          and a2.experiment_id = _experiment_unit_dimensions.experiment_id and a2.phase = _experiment_unit_dimensions.phase
        order by a2.id, s.start_time, s.span_id
    ) f on f.id = a.id
    where _experiment_unit_dimensions.dimension is not null
      and a.experiment_id = _experiment_unit_dimensions.experiment_id and a.phase = _experiment_unit_dimensions.phase
$$;

CREATE OR REPLACE FUNCTION analytics._check_dimension(dimension text, max_dimensions integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    if dimension is not null and dimension not in ('assigned_date', 'model', 'provider', 'operation_type')
       and not (dimension like 'attribute.%' and length(dimension) between 11 and 210) then
        raise exception 'dimension: unknown dimension "%"; allowed: assigned_date, attribute.<name> (an attribute given to assign_variant), model, provider, operation_type (of the unit''s first span after assignment)',
            dimension using errcode = '22023';
    end if;
    if max_dimensions is null or max_dimensions < 1 then
        raise exception 'max_dimensions: must be at least 1 (the dimension values shown, the rest merged into "(other)"), got %',
            coalesce(max_dimensions::text, 'NULL') using errcode = '22023';
    end if;
end
$$;

CREATE OR REPLACE FUNCTION analytics._trace_metrics(
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
    if extract(epoch from to_time - from_time) / extract(epoch from bucket) > 100000 then
        raise exception 'bucket: % buckets between from_time and to_time; the limit is 100000',
            floor(extract(epoch from to_time - from_time) / extract(epoch from bucket)) using errcode = '22023';
    end if;
    foreach g in array coalesce(group_by, '{}') loop
        dims := dims || case g
            when 'model' then ', ''model'', s.model'
            when 'operation_type' then ', ''operation_type'', s.operation_type'
            when 'provider' then ', ''provider'', s.provider'
            when 'status' then ', ''status'', s.status'
            when 'name' then ', ''name'', s.name'
            when 'user' then ', ''user_id'', s.user_id'
            else null end;
        if dims is null then
            raise exception 'group_by: unknown dimension "%"; allowed: model, operation_type, provider, status, name, user', g
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

DROP FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid, text);

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
    user_id               uuid             DEFAULT NULL
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
        'metadata', record_span.metadata, 'tags', to_jsonb(record_span.tags), 'user_id', record_span.user_id)));
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

COMMENT ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid) IS
$$Stores one span (insert or update), with named arguments, and returns the stored row. Same rules as ingest_spans.
Example: select analytics.record_span(trace_id => 't1', span_id => 's1', name => 'chat', start_time => now(), model => 'gpt-4o');$$;

REVOKE EXECUTE ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

CREATE OR REPLACE FUNCTION analytics._index_span_partition(part regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n text := (select c.relname from pg_catalog.pg_class c where c.oid = part);
begin
    execute format('create unique index %I on %s (user_id, trace_id, span_id)', n || '_span_key', part);
    execute format('create index %I on %s (user_id, trace_id, parent_span_id)', n || '_trace_parent_idx', part);
    execute format('create index %I on %s (user_id, trace_id, start_time)', n || '_trace_time_idx', part);
    execute format('create index %I on %s (user_id, start_time desc, id desc)', n || '_start_idx', part);
    execute format('create index %I on %s (user_id, conversation_id, start_time) where conversation_id is not null', n || '_conversation_idx', part);
    execute format('create index %I on %s (user_id, session_id, start_time) where session_id is not null', n || '_session_idx', part);
    execute format('create index %I on %s (user_id, message_id) where message_id is not null', n || '_message_idx', part);
    execute format('create index %I on %s (user_id, model, start_time) where model is not null', n || '_model_idx', part);
    execute format('create index %I on %s (user_id, operation_type, start_time)', n || '_operation_idx', part);
    execute format('create index %I on %s (user_id, start_time) where status = ''error''', n || '_errors_idx', part);
    execute format('create index %I on %s using gin (tags)', n || '_tags_idx', part);
    execute format('create index %I on %s (user_id, duration_ms)', n || '_duration_idx', part);
end
$$;

-- the column goes with its constraint and the partitions' indexes on it
ALTER TABLE analytics.llm_traces DROP COLUMN end_user_id;

-- ---- (end of the #15 downgrade)

-- ---- HTML views, undone (functions only: nothing stored).
DROP FUNCTION analytics.dashboard_view(timestamptz, timestamptz, interval, uuid);
DROP FUNCTION analytics._render_dashboard_view(jsonb);
DROP FUNCTION analytics._dashboard_view_data(timestamptz, timestamptz, interval, uuid);
DROP FUNCTION analytics._dashboard_trace(uuid, text);
DROP FUNCTION analytics.experiment_view(text, jsonb, jsonb, text, double precision, integer);
DROP FUNCTION analytics._render_experiment_view(jsonb);
DROP FUNCTION analytics._experiment_view_data(text, jsonb, jsonb, text, double precision, integer);
DROP FUNCTION analytics.trace_view(text, integer, uuid);
DROP FUNCTION analytics._trace_view(text, integer, uuid);
DROP DOMAIN analytics."text/html";

-- ---- Units per variant and value kept at write time, undone (derived data: nothing to keep). The functions that
-- read the counts are restored as they were.
DROP TRIGGER ab_experiments_counts_update ON analytics.ab_experiments;
DROP TRIGGER ab_experiments_counts_delete ON analytics.ab_experiments;
DROP TRIGGER ab_experiment_assignments_counts_truncate ON analytics.ab_experiment_assignments;
DROP TRIGGER ab_experiment_assignments_counts_delete ON analytics.ab_experiment_assignments;
DROP TRIGGER ab_experiment_assignments_counts_update_2_old ON analytics.ab_experiment_assignments;
DROP TRIGGER ab_experiment_assignments_counts_update_1_new ON analytics.ab_experiment_assignments;
DROP TRIGGER ab_experiment_assignments_counts_insert ON analytics.ab_experiment_assignments;
CREATE OR REPLACE FUNCTION analytics.rebuild_experiment_totals() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    n bigint;
begin
    lock table analytics.ab_experiment_assignments, analytics.ab_experiment_events in share mode;
    truncate analytics.ab_experiment_unit_totals;
    insert into analytics.ab_experiment_unit_totals (assignment_id, metric, user_id, experiment_id, phase, variant_id, events,
                                                     total, assigned_at, attributes)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value), a.assigned_at,
           a.attributes
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, ev.metric;
    get diagnostics n = row_count;
    return n;
end
$$;
COMMENT ON FUNCTION analytics.rebuild_experiment_totals() IS
$$Rebuilds analytics.ab_experiment_unit_totals from every assignment and event (for a DBA: after restoring with pg_restore --disable-triggers, or to check the triggers). Needs the privileges to lock both tables and truncate the totals (the extension owner or a superuser); returns the number of rows written. Example: select analytics.rebuild_experiment_totals();$$;

CREATE OR REPLACE FUNCTION analytics._experiment_event_moments(experiment_id uuid, phase integer, metric text, kind text,
                                                    cap double precision, dimension text)
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 1
SET search_path = '' SET jit = off
AS $fn$
declare
    -- per variant (and dimension value): assigned units ($1 experiment, $2 phase, $6 dimension) and the sums of the
    -- totals of the metric $3 capped at $5
    sums text := case when dimension is null then $q$
        with assigned as (
            select null::text as dim, a.variant_id, count(*) as n
            from analytics.ab_experiment_assignments a
            where a.experiment_id = $1 and a.phase = $2
            group by a.variant_id
        ), totals as (
            select null::text as dim, t.variant_id, count(*) as converted, sum(least(t.total, $5)) as sy,
                   sum(least(t.total, $5) * least(t.total, $5)) as syy
            from analytics.ab_experiment_unit_totals t
            where t.experiment_id = $1 and t.metric = $3 and t.phase = $2
            group by t.variant_id
        )$q$ else $q$
        with assigned as (
            select analytics._dimension_value($6, a.assigned_at, a.attributes) as dim, a.variant_id, count(*) as n
            from analytics.ab_experiment_assignments a
            where a.experiment_id = $1 and a.phase = $2
            group by 1, a.variant_id
        ), totals as (
            select analytics._dimension_value($6, t.assigned_at, t.attributes) as dim, t.variant_id, count(*) as converted,
                   sum(least(t.total, $5)) as sy, sum(least(t.total, $5) * least(t.total, $5)) as syy
            from analytics.ab_experiment_unit_totals t
            where t.experiment_id = $1 and t.metric = $3 and t.phase = $2
            group by 1, t.variant_id
        )$q$ end;
begin
    return query execute sums || $q$, m as (
        select a.dim, a.variant_id, a.n, t.converted, t.sy, t.syy
        from assigned a left join totals t on t.variant_id = a.variant_id and t.dim is not distinct from a.dim
    )
    select jsonb_build_object('dimension', dl.dim, 'groups',
               jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                            'moments', jsonb_build_object(
                                                'n', coalesce(m.n, 0),
                                                'sum', coalesce(case when $4 = 'binomial' then m.converted else m.sy end, 0),
                                                'sum_squares', coalesce(case when $4 = 'binomial' then m.converted else m.syy end, 0),
                                                'den_sum', 0, 'den_sum_squares', 0, 'cross_sum', 0, 'pre_sum', 0,
                                                'pre_sum_squares', 0, 'pre_cross_sum', 0))
                         order by v.position))
    from (select m.dim from m union select null::text where $6 is null) dl
    cross join analytics.ab_experiment_variants v
    left join m on m.variant_id = v.id and m.dim is not distinct from dl.dim
    where v.experiment_id = $1
    group by dl.dim
    $q$ using experiment_id, phase, metric, kind, cap, dimension;
end
$fn$;
COMMENT ON FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision, text) IS 'Internal: per-variant moments of an event metric from ab_experiment_unit_totals, unit totals capped at cap (NULL: none), per value of a dimension of the assignment (assigned_date, attribute.<name>).';

CREATE OR REPLACE FUNCTION analytics._experiment_event_cap(experiment_id uuid, phase integer, metric text, q double precision,
                                                ignore_zeros boolean)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
declare
    n bigint;
    negatives bigint;
    zeros bigint;
    h double precision;
    lo double precision;
    hi double precision;
begin
    if ignore_zeros then
        return (select percentile_cont(q) within group (order by t.total)
                from analytics.ab_experiment_unit_totals t
                where t.experiment_id = _experiment_event_cap.experiment_id and t.metric = _experiment_event_cap.metric
                  and t.phase = _experiment_event_cap.phase and t.total <> 0);
    end if;
    select count(*) into n from analytics.ab_experiment_assignments a
    where a.experiment_id = _experiment_event_cap.experiment_id and a.phase = _experiment_event_cap.phase;
    if n = 0 then
        return null;
    end if;
    select count(*) filter (where t.total < 0), n - count(*) filter (where t.total <> 0) into negatives, zeros
    from analytics.ab_experiment_unit_totals t
    where t.experiment_id = _experiment_event_cap.experiment_id and t.metric = _experiment_event_cap.metric
      and t.phase = _experiment_event_cap.phase;
    h := q * (n - 1);
    lo := analytics._experiment_event_nth(experiment_id, phase, metric, floor(h)::bigint, negatives, zeros);
    if h = floor(h) then
        return lo;
    end if;
    hi := analytics._experiment_event_nth(experiment_id, phase, metric, ceil(h)::bigint, negatives, zeros);
    return lo + (hi - lo) * (h - floor(h));
end
$$;
COMMENT ON FUNCTION analytics._experiment_event_cap(uuid, integer, text, double precision, boolean) IS 'Internal: the percentile cap of an event metric (percentile_cont of every assigned unit''s total, 0 without events) from ab_experiment_unit_totals.';

DROP FUNCTION analytics._experiment_counts_gone_trigger();
DROP FUNCTION analytics._assignment_counts_trigger();
ALTER EXTENSION analytics_ext DROP TABLE analytics.ab_experiment_unit_counts;
DROP TABLE analytics.ab_experiment_unit_counts;

-- ---- Dimension breakdowns, CUPED of ratio metrics, one-sided tests, undone. 0.1.0 keeps no attributes with an
-- assignment: a downgrade with attributes stored refuses. (The copies in the per-unit totals are derived data.) The
-- functions are restored as the next section expects them; it replaces compare_groups with 0.1.0's.
DO $check$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM analytics.ab_experiment_assignments WHERE attributes <> '{}'::jsonb;
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose the attributes of % assignment%: analytics.ab_experiment_assignments has no attributes column in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000', HINT = 'Keep them elsewhere first, then set them to ''{}'', or stay on 0.2.0.';
    END IF;
END
$check$;
DROP FUNCTION analytics._assignment(text, text, boolean, jsonb);
DROP FUNCTION analytics.assign_variant(text, text, jsonb);
DROP FUNCTION analytics._dimension_value(text, timestamptz, jsonb);
DROP FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval);
DROP FUNCTION analytics._experiment_unit_dimensions(uuid, text, integer, text, text);
DROP FUNCTION analytics._experiment_merge_dimensions(jsonb[]);
DROP FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision, text);
DROP FUNCTION analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean, text);
DROP FUNCTION analytics._check_dimension(text, integer);
DROP FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text);
DROP FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text);
DROP FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision, text);
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean);
DROP FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text, boolean);
DROP FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text);
ALTER TYPE analytics.experiment_result_row DROP ATTRIBUTE dimension;
ALTER TABLE analytics.ab_experiment_unit_totals DROP COLUMN assigned_at, DROP COLUMN attributes;
ALTER TABLE analytics.ab_experiment_assignments DROP CONSTRAINT ab_experiment_assignments_attributes_check,
    DROP COLUMN attributes;

CREATE FUNCTION analytics."compare_groups"(
	"control" jsonb, /* Option < pgrx :: JsonB > */
	"treatment" jsonb, /* Option < pgrx :: JsonB > */
	"metric_type" TEXT DEFAULT 'mean', /* Option < & str > */
	"relative" bool DEFAULT true, /* Option < bool > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"cuped" bool DEFAULT false, /* Option < bool > */
	"sequential_tuning" double precision DEFAULT 5000.0, /* Option < f64 > */
	"lower_is_better" bool DEFAULT false, /* Option < bool > */
	"prior_mean" double precision DEFAULT NULL, /* Option < f64 > */
	"prior_variance" double precision DEFAULT NULL /* Option < f64 > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compare_two_groups_wrapper';
COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true. For metric_type 'quantile' / 'quantile_event' (gbstats' QuantileStatistic / QuantileClusteredStatistic): "quantile_level", "quantile_n" (values), "quantile_nstar", "quantile", "quantile_lower", "quantile_upper" (the order statistics of GrowthBook's grid), and for 'quantile_event' n = units with sum, sum_squares, den_sum, den_sum_squares, cross_sum over units of their events at or below the quantile and of their events.
Returns the test (binomial: GrowthBook's t-test of the reported effect with variances p(1 - p) and Welch's df; mean: Welch; ratio: Welch on delta-method variances; relative lift by default) with control_value, treatment_value, chance_to_beat_control, expected_loss and control_risk (GrowthBook's risks of the treatment and of the control), posterior_mean and posterior_ci_lower/upper (Gaussian posterior: GrowthBook's flat prior, or its informative prior N(prior_mean, prior_variance) on the effect, both or neither; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;

CREATE FUNCTION analytics._assignment(experiment_key text, unit_id text, store boolean)
RETURNS analytics.variant_assignment
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    result analytics.variant_assignment;
    weights double precision[];
    variants analytics.ab_experiment_variants[];
    chosen analytics.ab_experiment_variants;
    h double precision;
    idx int;
begin
    if unit_id is null or unit_id = '' then
        raise exception 'unit_id: is required' using errcode = '22004';
    end if;
    result.experiment_key := e.key;
    result.phase := e.phase;
    result.in_experiment := false;
    result.stored := false;
    if e.status = 'completed' and e.winner_variant_key is not null then
        -- the experiment is over: everyone gets the winner
        select v.key, v.position, v.is_control, v.payload
          into result.variant_key, result.variation, result.is_control, result.payload
        from analytics.ab_experiment_variants v where v.experiment_id = e.id and v.key = e.winner_variant_key;
        return result;
    end if;
    if e.status <> 'running' then
        return result;
    end if;
    -- sticky: a unit keeps the variant it got first in this phase, whatever the weights say now
    select true, v.key, v.position, v.is_control, v.payload, a.hash_value, a.assigned_at, true
      into result.in_experiment, result.variant_key, result.variation, result.is_control, result.payload,
           result.hash_value, result.assigned_at, result.stored
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_variants v on v.id = a.variant_id and v.user_id = a.user_id
    where a.experiment_id = e.id and a.user_id = e.user_id and a.unit_id = _assignment.unit_id and a.phase = e.phase;
    if found then
        return result;
    end if;
    result.in_experiment := false;  -- SELECT INTO without a row left these NULL
    result.stored := false;
    -- one read of the variants; GrowthBook's decision (namespace, hash, coverage, weights) is made by the one
    -- implementation of it, analytics._gb_decide (Rust, checked against GrowthBook's cross-SDK cases)
    select array_agg(v.weight order by v.position), array_agg(v order by v.position) into weights, variants
    from analytics.ab_experiment_variants v where v.experiment_id = e.id;
    select d.variation, d.hash_value into idx, h
    from analytics._gb_decide(e.key, e.seed, e.hash_version, cardinality(weights), weights, e.coverage, e.namespace_name,
                              e.namespace_start, e.namespace_end, _assignment.unit_id) d;
    if not found then
        return result;
    end if;
    chosen := variants[idx + 1];
    result.hash_value := h;
    result.in_experiment := true;
    result.variant_key := chosen.key;
    result.variation := chosen.position;
    result.is_control := chosen.is_control;
    result.payload := chosen.payload;
    if store then
        insert into analytics.ab_experiment_assignments (user_id, experiment_id, variant_id, unit_id, phase, hash_value)
        values (e.user_id, e.id, chosen.id, _assignment.unit_id, e.phase, h)
        on conflict on constraint ab_experiment_assignments_unit_per_phase do nothing
        returning assigned_at into result.assigned_at;
        if not found then
            -- another session assigned this unit at the same moment: return what it stored
            return analytics._assignment(experiment_key, _assignment.unit_id, false);
        end if;
        result.stored := true;
    end if;
    return result;
end
$$;

COMMENT ON FUNCTION analytics._assignment(text, text, boolean) IS 'Internal: sticky GrowthBook assignment of a unit.';

CREATE FUNCTION analytics.assign_variant(experiment_key text, unit_id text) RETURNS analytics.variant_assignment
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._assignment(experiment_key, unit_id, true) $$;

COMMENT ON FUNCTION analytics.assign_variant(text, text) IS
$$The unit's variant in a running experiment, with GrowthBook's rules (bit-identical to the SDKs), stored on first assignment and returned again afterwards (sticky within the phase, even if weights change). Not in the experiment (in_experiment false, nothing stored) when it is not running or the unit is outside its coverage or namespace; once completed with a winner, everyone gets the winner (in_experiment false). Two sessions assigning the same unit at once store one row.
Example: select variant_key, payload from analytics.assign_variant('system-prompt-v2', 'visitor-42');$$;

CREATE FUNCTION analytics._experiment_unit_values(experiment_id uuid, experiment_key text, phase integer, metric text,
                                                  kind text, metric_source text, unit_source text, operation_type text,
                                                  pre interval)
RETURNS TABLE (variant_id uuid, y double precision, d double precision, x double precision)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select a.variant_id,
           case when _experiment_unit_values.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at >= a.assigned_at) > 0)::int::double precision
                else coalesce(sum(ev.value) filter (where ev.occurred_at >= a.assigned_at), 0) end as y,
           0::double precision as d,
           case when _experiment_unit_values.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at < a.assigned_at) > 0)::int::double precision
                else coalesce(sum(ev.value) filter (where ev.occurred_at < a.assigned_at), 0) end as x
    from analytics.ab_experiment_assignments a
    left join analytics.ab_experiment_events ev
           on ev.user_id = a.user_id and ev.unit_id = a.unit_id and ev.metric = _experiment_unit_values.metric
          and (ev.experiment_id = a.experiment_id or ev.experiment_id is null)
          and ev.occurred_at >= a.assigned_at - _experiment_unit_values.pre
    where _experiment_unit_values.metric_source = 'events' and a.experiment_id = _experiment_unit_values.experiment_id and a.phase = _experiment_unit_values.phase
    group by a.id, a.variant_id
    union all
    select a.variant_id,
           coalesce(case _experiment_unit_values.metric
               when 'latency_ms' then sum(s.duration_ms) filter (where s.start_time >= a.assigned_at)
               when 'error_rate' then (count(*) filter (where s.start_time >= a.assigned_at and s.status = 'error'))::double precision
               when 'cost_usd' then sum(s.cost_usd) filter (where s.start_time >= a.assigned_at)
               when 'total_tokens' then (sum(s.total_tokens) filter (where s.start_time >= a.assigned_at))::double precision
               when 'input_tokens' then (sum(s.input_tokens) filter (where s.start_time >= a.assigned_at))::double precision
               when 'output_tokens' then (sum(s.output_tokens) filter (where s.start_time >= a.assigned_at))::double precision
               else (count(s.id) filter (where s.start_time >= a.assigned_at))::double precision end, 0),
           case _experiment_unit_values.metric
               when 'latency_ms' then count(s.duration_ms) filter (where s.start_time >= a.assigned_at)
               else count(s.id) filter (where s.start_time >= a.assigned_at) end::double precision,
           coalesce(case _experiment_unit_values.metric
               when 'cost_usd' then sum(s.cost_usd) filter (where s.start_time < a.assigned_at)
               when 'total_tokens' then (sum(s.total_tokens) filter (where s.start_time < a.assigned_at))::double precision
               when 'input_tokens' then (sum(s.input_tokens) filter (where s.start_time < a.assigned_at))::double precision
               when 'output_tokens' then (sum(s.output_tokens) filter (where s.start_time < a.assigned_at))::double precision
               else (count(s.id) filter (where s.start_time < a.assigned_at))::double precision end, 0)
    from analytics.ab_experiment_assignments a
    left join analytics.llm_traces s
           on s.user_id = a.user_id
          and case _experiment_unit_values.unit_source when 'metadata' then s.metadata->>'unit_id'
                               when 'session_id' then s.session_id
                               else s.conversation_id end = a.unit_id
          and (s.metadata->>'experiment' is null or s.metadata->>'experiment' = _experiment_unit_values.experiment_key)
          and (_experiment_unit_values.operation_type is null or s.operation_type = _experiment_unit_values.operation_type)
          and s.start_time >= a.assigned_at - _experiment_unit_values.pre
    where _experiment_unit_values.metric_source = 'traces' and a.experiment_id = _experiment_unit_values.experiment_id and a.phase = _experiment_unit_values.phase
    group by a.id, a.variant_id
$$;

COMMENT ON FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval) IS 'Internal: per-unit values of an experiment metric (inlined into _experiment_moments and the percentile cap).';

CREATE FUNCTION analytics._experiment_moments(experiment_id uuid, experiment_key text, phase integer, metric text, kind text,
                                              metric_source text, unit_source text, operation_type text, pre interval,
                                              cap double precision)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    select jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                        'moments', jsonb_build_object(
                                            'n', coalesce(m.n, 0), 'sum', coalesce(m.sy, 0), 'sum_squares', coalesce(m.syy, 0),
                                            'den_sum', coalesce(m.sd, 0), 'den_sum_squares', coalesce(m.sdd, 0),
                                            'cross_sum', coalesce(m.syd, 0), 'pre_sum', coalesce(m.sx, 0),
                                            'pre_sum_squares', coalesce(m.sxx, 0), 'pre_cross_sum', coalesce(m.sxy, 0)))
                     order by v.position)
    from analytics.ab_experiment_variants v
    left join (
        select c.variant_id, count(*) as n, sum(c.y) as sy, sum(c.y * c.y) as syy, sum(c.d) as sd, sum(c.d * c.d) as sdd,
               sum(c.y * c.d) as syd, sum(c.x) as sx, sum(c.x * c.x) as sxx, sum(c.x * c.y) as sxy
        from (select u.variant_id, least(u.y, _experiment_moments.cap) as y, u.d, least(u.x, _experiment_moments.cap) as x
              from analytics._experiment_unit_values(_experiment_moments.experiment_id, _experiment_moments.experiment_key,
                       _experiment_moments.phase, _experiment_moments.metric, _experiment_moments.kind,
                       _experiment_moments.metric_source, _experiment_moments.unit_source,
                       _experiment_moments.operation_type, _experiment_moments.pre) u) c
        group by c.variant_id
    ) m on m.variant_id = v.id
    where v.experiment_id = _experiment_moments.experiment_id
$$;

COMMENT ON FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision) IS 'Internal: per-variant moments of an experiment metric, in one pass, capped at cap.';

CREATE FUNCTION analytics._experiment_quantile_moments(experiment_id uuid, experiment_key text, phase integer, metric text,
                                                       kind text, metric_source text, unit_source text,
                                                       operation_type text, quantile double precision,
                                                       ignore_zeros boolean)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    with units as (
        -- one value per unit: its events' total, a trace metric's total, or its per-span average (latency, errors)
        select u.variant_id,
               case when _experiment_quantile_moments.metric_source = 'traces'
                         and _experiment_quantile_moments.metric in ('latency_ms', 'error_rate')
                    then u.y / nullif(u.d, 0) else u.y end as y
        from analytics._experiment_unit_values(_experiment_quantile_moments.experiment_id,
                 _experiment_quantile_moments.experiment_key, _experiment_quantile_moments.phase,
                 _experiment_quantile_moments.metric, 'mean', _experiment_quantile_moments.metric_source,
                 _experiment_quantile_moments.unit_source, _experiment_quantile_moments.operation_type, interval '0') u
        where _experiment_quantile_moments.kind = 'quantile'
    ),
    assigned as (
        select a.id, a.variant_id, a.unit_id, a.user_id, a.experiment_id, a.assigned_at
        from analytics.ab_experiment_assignments a
        where _experiment_quantile_moments.kind = 'quantile_event'
          and a.experiment_id = _experiment_quantile_moments.experiment_id and a.phase = _experiment_quantile_moments.phase
    ),
    events as (
        -- one value per event after the unit's assignment, or per span (its duration, cost or tokens)
        select a.id as unit, a.variant_id, ev.value as y
        from assigned a
        join analytics.ab_experiment_events ev
          on ev.user_id = a.user_id and ev.unit_id = a.unit_id and ev.metric = _experiment_quantile_moments.metric
         and (ev.experiment_id = a.experiment_id or ev.experiment_id is null) and ev.occurred_at >= a.assigned_at
        where _experiment_quantile_moments.metric_source = 'events'
        union all
        select a.id, a.variant_id,
               case _experiment_quantile_moments.metric
                   when 'latency_ms' then s.duration_ms
                   when 'cost_usd' then s.cost_usd
                   when 'total_tokens' then s.total_tokens::double precision
                   when 'input_tokens' then s.input_tokens::double precision
                   when 'output_tokens' then s.output_tokens::double precision end
        from assigned a
        join analytics.llm_traces s
          on s.user_id = a.user_id
         and case _experiment_quantile_moments.unit_source when 'metadata' then s.metadata->>'unit_id'
                              when 'session_id' then s.session_id
                              else s.conversation_id end = a.unit_id
         and (s.metadata->>'experiment' is null or s.metadata->>'experiment' = _experiment_quantile_moments.experiment_key)
         and (_experiment_quantile_moments.operation_type is null or s.operation_type = _experiment_quantile_moments.operation_type)
         and s.start_time >= a.assigned_at
        where _experiment_quantile_moments.metric_source = 'traces'
    ),
    counted as (
        select e.unit, e.variant_id, e.y from events e
        where e.y is not null and (not _experiment_quantile_moments.ignore_zeros or e.y <> 0)
    ),
    grids as (
        select c.variant_id, count(*) as n,
               percentile_cont(analytics._quantile_grid(_experiment_quantile_moments.quantile)) within group (order by c.y) as grid
        from counted c group by c.variant_id
        union all
        select u.variant_id, count(*),
               percentile_cont(analytics._quantile_grid(_experiment_quantile_moments.quantile)) within group (order by u.y)
        from units u
        where u.y is not null and (not _experiment_quantile_moments.ignore_zeros or u.y <> 0)
        group by u.variant_id
    ),
    clusters as (
        -- per unit: its events at or below its variant's quantile (b) and its events (c), then sums over units
        select pu.variant_id, count(*) as k, sum(pu.b) as sb, sum(pu.b * pu.b) as sbb, sum(pu.c) as sc,
               sum(pu.c * pu.c) as scc, sum(pu.b * pu.c) as sbc
        from (select a.variant_id, a.id,
                     count(c.y) filter (where c.y <= g.grid[1])::double precision as b,
                     count(c.y)::double precision as c
              from assigned a
              left join counted c on c.unit = a.id
              left join grids g on g.variant_id = a.variant_id
              group by a.variant_id, a.id) pu
        group by pu.variant_id
    ),
    unit_counts as (
        select u.variant_id, count(*) as k from units u group by u.variant_id
    )
    select jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                        'moments', jsonb_build_object(
                                            'n', coalesce(cl.k, uc.k, 0),
                                            'sum', coalesce(cl.sb, 0), 'sum_squares', coalesce(cl.sbb, 0),
                                            'den_sum', coalesce(cl.sc, 0), 'den_sum_squares', coalesce(cl.scc, 0),
                                            'cross_sum', coalesce(cl.sbc, 0),
                                            'quantile_level', _experiment_quantile_moments.quantile,
                                            'quantile_n', coalesce(g.n, 0), 'quantile_nstar', coalesce(b.b[1], 100),
                                            'quantile', coalesce(g.grid[1], 0), 'quantile_lower', coalesce(b.b[2], 0),
                                            'quantile_upper', coalesce(b.b[3], 0)))
                     order by v.position)
    from analytics.ab_experiment_variants v
    left join grids g on g.variant_id = v.id
    left join clusters cl on cl.variant_id = v.id
    left join unit_counts uc on uc.variant_id = v.id
    cross join lateral (select analytics._quantile_bounds(g.n, g.grid) as b) b
    where v.experiment_id = _experiment_quantile_moments.experiment_id
$$;

COMMENT ON FUNCTION analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean) IS
'Internal: per-variant order statistics of a quantile metric (and, for an event quantile, its clusters), in one query.';

CREATE FUNCTION analytics._experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'none',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL,
    sequential        boolean          DEFAULT false,
    prior_mean        double precision DEFAULT NULL,
    prior_variance    double precision DEFAULT NULL,
    capping           text             DEFAULT NULL,
    cap_value         double precision DEFAULT NULL,
    cap_ignore_zeros  boolean          DEFAULT false,
    quantile          double precision DEFAULT NULL,
    quantile_ignore_zeros boolean      DEFAULT false
) RETURNS SETOF analytics.experiment_result_row
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    ph int := coalesce(_experiment_results.phase, e.phase);
    kind text := metric_type;
    trace_kind text;
    pre interval := case when cuped then cuped_lookback else interval '0' end;
    -- trace metrics other than request_count are costs: lower is better
    lower boolean := coalesce(lower_is_better, metric_source = 'traces' and metric <> 'request_count');
    groups jsonb;
    control jsonb;
    srm_result jsonb;
    tests jsonb := '{}';
    adjusted double precision[];
    keys text[];
    g jsonb;
    t jsonb;
    r analytics.experiment_result_row;
    adjusted_ci double precision[];
    cap double precision;
begin
    if metric is null or metric = '' then
        raise exception 'metric: is required' using errcode = '22004';
    end if;
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if cuped is null or (cuped and (cuped_lookback is null or cuped_lookback <= interval '0')) then
        raise exception 'cuped_lookback: must be a positive interval, got %', coalesce(cuped_lookback::text, 'NULL')
            using errcode = '22023';
    end if;
    if metric_source = 'events' then
        kind := coalesce(kind, 'binomial');
        if kind not in ('binomial', 'mean', 'quantile', 'quantile_event') then
            raise exception 'metric_type: must be binomial (share of units with the event), mean (event value per unit), quantile (a quantile of the units'' values) or quantile_event (a quantile of the events'' values), got %',
                kind using errcode = '22023';
        end if;
    elsif metric_source = 'traces' then
        if metric not in ('latency_ms', 'error_rate', 'cost_usd', 'total_tokens', 'input_tokens', 'output_tokens', 'request_count') then
            raise exception 'metric: unknown trace metric "%"; allowed: latency_ms, error_rate, cost_usd, total_tokens, input_tokens, output_tokens, request_count',
                metric using errcode = '22023';
        end if;
        if unit_source is null or unit_source not in ('metadata', 'session_id', 'conversation_id') then
            raise exception 'unit_source: must be metadata (the span''s metadata.unit_id), session_id or conversation_id, got %',
                coalesce(unit_source, 'NULL') using errcode = '22023';
        end if;
        trace_kind := case when metric in ('latency_ms', 'error_rate') then 'ratio' else 'mean' end;
        if kind = 'quantile_event' and metric in ('error_rate', 'request_count') then
            raise exception 'metric_type: quantile_event takes a quantile of every span''s value: latency_ms, cost_usd, total_tokens, input_tokens or output_tokens, not %',
                metric using errcode = '22023';
        elsif kind in ('quantile', 'quantile_event') then
            trace_kind := kind;
        end if;
        if kind is not null and kind <> trace_kind then
            raise exception 'metric_type: the trace metric % is a % metric, got %', metric, trace_kind, kind
                using errcode = '22023';
        end if;
        kind := trace_kind;
    else
        raise exception 'metric_source: must be events (ab_experiment_events) or traces (llm_traces), got %',
            coalesce(metric_source, 'NULL') using errcode = '22023';
    end if;
    if sequential is null then
        raise exception 'sequential: must be true or false' using errcode = '22004';
    end if;
    if cuped and kind = 'ratio' then
        raise exception 'cuped: is available for binomial and mean metrics, not for the ratio metric %', metric using errcode = '22023';
    end if;
    -- quantile metrics (GrowthBook's): the level, and whether zeros count
    if kind in ('quantile', 'quantile_event') then
        if quantile is null or not (quantile > 0 and quantile < 1) then
            raise exception 'quantile: must be between 0 and 1 for a quantile metric (0.95 for the 95th percentile), got %',
                coalesce(quantile::text, 'NULL') using errcode = '22023';
        end if;
        if cuped then
            raise exception 'cuped: is available for binomial and mean metrics, not for quantile metrics' using errcode = '22023';
        end if;
    elsif quantile is not null then
        raise exception 'quantile: needs metric_type => ''quantile'' or ''quantile_event''' using errcode = '22023';
    end if;
    if quantile_ignore_zeros is null or (quantile_ignore_zeros and kind not in ('quantile', 'quantile_event')) then
        raise exception 'quantile_ignore_zeros: must be true or false, and true only with a quantile metric' using errcode = '22023';
    end if;
    -- metric capping (GrowthBook's capping settings): per-unit values above the cap count as the cap
    if capping is null then
        if cap_value is not null then
            raise exception 'cap_value: needs capping => ''absolute'' or ''percentile''' using errcode = '22023';
        end if;
    elsif capping not in ('absolute', 'percentile') then
        raise exception 'capping: must be absolute (cap at cap_value) or percentile (cap at the cap_value quantile of the units'' values), got %',
            capping using errcode = '22023';
    elsif kind <> 'mean' then
        raise exception 'capping: applies to mean metrics (a value per unit), not to the % metric %', kind, metric
            using errcode = '22023';
    elsif capping = 'absolute' and (cap_value is null or not cap_value > 0 or cap_value in ('Infinity', 'NaN')) then
        raise exception 'cap_value: must be a positive number for absolute capping, got %', coalesce(cap_value::text, 'NULL')
            using errcode = '22023';
    elsif capping = 'percentile' and (cap_value is null or not (cap_value > 0 and cap_value <= 1)) then
        raise exception 'cap_value: must be a quantile in (0, 1] for percentile capping (0.99: the 99th percentile), got %',
            coalesce(cap_value::text, 'NULL') using errcode = '22023';
    end if;
    if cap_ignore_zeros is null or (cap_ignore_zeros and capping is distinct from 'percentile') then
        raise exception 'cap_ignore_zeros: must be true or false, and true only with percentile capping' using errcode = '22023';
    end if;
    if capping = 'absolute' then
        cap := cap_value;
    elsif capping = 'percentile' and metric_source = 'events' and not cuped then
        -- the same from the per-unit totals the triggers keep (sql/023_experiment_totals.sql): no pass over the events
        cap := analytics._experiment_event_cap(e.id, ph, metric, cap_value, cap_ignore_zeros);
    elsif capping = 'percentile' then
        -- the quantile of every assigned unit's value, all variants together (zeros left out with cap_ignore_zeros), as
        -- GrowthBook computes its cap: one more pass over the units
        select percentile_cont(cap_value) within group (order by u.y) into cap
        from analytics._experiment_unit_values(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type,
                                               interval '0') u
        where not cap_ignore_zeros or u.y <> 0;
    end if;

    if kind in ('quantile', 'quantile_event') then
        select m into groups
        from analytics._experiment_quantile_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source,
                                                    operation_type, quantile, quantile_ignore_zeros) m;
    elsif metric_source = 'events' and not cuped then
        -- the per-unit totals kept by triggers (sql/023_experiment_totals.sql): no join of assignments and events
        select m into groups from analytics._experiment_event_moments(e.id, ph, metric, kind, cap) m;
    else
        select m into groups
        from analytics._experiment_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type, pre, cap) m;
    end if;

    control := (select x from jsonb_array_elements(groups) x where (x->>'is_control')::boolean);
    srm_result := analytics.srm_check(
        (select array_agg((x->'moments'->>'n')::int) from jsonb_array_elements(groups) x),
        (select array_agg((x->>'weight')::double precision) from jsonb_array_elements(groups) x));

    for g in select x from jsonb_array_elements(groups) x loop
        t := analytics.compare_groups(control->'moments', g->'moments', kind, relative, alpha, cuped, sequential_tuning, lower,
                                      prior_mean, prior_variance);
        if sequential then
            -- GrowthBook with sequential testing on: the always-valid p-value and interval replace the fixed-horizon
            -- ones, and significance (after correction) follows them
            t := t || jsonb_build_object('p_value', t->'sequential_p_value', 'ci_lower', t->'sequential_ci_lower',
                                         'ci_upper', t->'sequential_ci_upper');
        end if;
        tests := tests || jsonb_build_object(g->>'key', t);
    end loop;

    -- correct the variants' p-values for comparing several variants with one control
    select array_agg(k order by k), array_agg((tests->k->>'p_value')::double precision order by k)
      into keys, adjusted
    from jsonb_object_keys(tests) k
    where tests->k->>'p_value' is not null
      and not exists (select 1 from jsonb_array_elements(groups) x where x->>'key' = k and (x->>'is_control')::boolean);
    if correction <> 'none' and keys is not null then
        adjusted := analytics.adjust_p_values(adjusted, correction);
    end if;

    for g in select x from jsonb_array_elements(groups) x loop
        t := tests->(g->>'key');
        r.variant_key := g->>'key';
        r.is_control := (g->>'is_control')::boolean;
        r.units := (g->'moments'->>'n')::bigint;
        r.value := (t->>'treatment_value')::double precision;
        r.srm_p_value := (srm_result->>'p_value')::double precision;
        r.srm := (srm_result->>'srm')::boolean;
        r.capped_at := cap;
        if r.is_control then
            r.effect := null; r.ci_lower := null; r.ci_upper := null; r.p_value := null; r.adjusted_p_value := null;
            r.ci_lower_adjusted := null; r.ci_upper_adjusted := null; r.std_error := null; r.control_risk := null;
            r.significant := false; r.chance_to_beat_control := null; r.expected_loss := null; r.sequential_p_value := null;
            r.sequential_ci_lower := null; r.sequential_ci_upper := null; r.variance_reduction := null;
            r.note := srm_result->>'note';
        else
            r.effect := (t->>'effect')::double precision;
            r.ci_lower := (t->>'ci_lower')::double precision;
            r.ci_upper := (t->>'ci_upper')::double precision;
            r.p_value := (t->>'p_value')::double precision;
            r.adjusted_p_value := case when keys is null then null else adjusted[array_position(keys, r.variant_key)] end;
            r.significant := coalesce(r.adjusted_p_value < alpha, false);
            -- the interval that goes with the corrected p-value (GrowthBook's ciAdjusted); without a correction, the
            -- interval itself
            if correction <> 'none' and r.adjusted_p_value is not null and r.effect is not null and r.ci_lower is not null then
                adjusted_ci := analytics._adjusted_interval(r.effect, r.ci_lower, r.ci_upper, r.adjusted_p_value, alpha);
                r.ci_lower_adjusted := adjusted_ci[1];
                r.ci_upper_adjusted := adjusted_ci[2];
            else
                r.ci_lower_adjusted := r.ci_lower;
                r.ci_upper_adjusted := r.ci_upper;
            end if;
            r.chance_to_beat_control := (t->>'chance_to_beat_control')::double precision;
            r.expected_loss := (t->>'expected_loss')::double precision;
            r.control_risk := (t->>'control_risk')::double precision;
            r.std_error := (t->>'std_error')::double precision;
            r.sequential_p_value := (t->>'sequential_p_value')::double precision;
            r.sequential_ci_lower := (t->>'sequential_ci_lower')::double precision;
            r.sequential_ci_upper := (t->>'sequential_ci_upper')::double precision;
            r.variance_reduction := (t->>'variance_reduction')::double precision;
            r.note := coalesce(t->>'note', srm_result->>'note');
        end if;
        return next r;
    end loop;
end
$$;

COMMENT ON FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean) IS
'Internal: the computation behind analytics.experiment_results, uncached (sql/041_cache.sql).';

CREATE FUNCTION analytics._experiment_report(
    experiment_key    text,
    goal_metrics      jsonb,
    guardrail_metrics jsonb            DEFAULT '[]',
    correction        text             DEFAULT 'none',
    alpha             double precision DEFAULT 0.05,
    relative          boolean          DEFAULT true,
    sequential        boolean          DEFAULT false,
    phase             integer          DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    spec jsonb;
    kind text;
    i integer;
    rows jsonb;
    goals jsonb := '[]';
    guards jsonb := '[]';
    raw double precision[] := '{}';
    adjusted double precision[];
    k integer := 0;
    m integer;
    v integer;
    ci double precision[];
    rec jsonb;
    first_rows jsonb;
begin
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if goal_metrics is null or jsonb_typeof(goal_metrics) <> 'array' or jsonb_array_length(goal_metrics) = 0 then
        raise exception 'goal_metrics: must be a non-empty array of metrics ("signup" or {"metric": "signup", ...})'
            using errcode = '22023';
    end if;
    if guardrail_metrics is null or jsonb_typeof(guardrail_metrics) <> 'array' then
        raise exception 'guardrail_metrics: must be an array of metrics' using errcode = '22023';
    end if;
    for kind in select unnest(array['goal_metrics', 'guardrail_metrics']) loop
        for i in 0 .. jsonb_array_length(case kind when 'goal_metrics' then goal_metrics else guardrail_metrics end) - 1 loop
            spec := (case kind when 'goal_metrics' then goal_metrics else guardrail_metrics end)->i;
            if jsonb_typeof(spec) = 'string' then
                spec := jsonb_build_object('metric', spec #>> '{}');
            end if;
            if jsonb_typeof(spec) <> 'object' or jsonb_typeof(spec->'metric') is distinct from 'string' then
                raise exception '%[%]: must be a metric name or an object with "metric"', kind, i using errcode = '22023';
            end if;
            if exists (select 1 from jsonb_object_keys(spec) f
                       where f not in ('metric', 'source', 'type', 'unit_source', 'operation_type', 'lower_is_better', 'cuped',
                                       'capping', 'cap_value', 'cap_ignore_zeros', 'quantile', 'quantile_ignore_zeros')) then
                raise exception '%[%]: unknown field "%"; allowed: metric, source, type, unit_source, operation_type, lower_is_better, cuped, capping, cap_value, cap_ignore_zeros, quantile, quantile_ignore_zeros',
                    kind, i, (select f from jsonb_object_keys(spec) f
                              where f not in ('metric', 'source', 'type', 'unit_source', 'operation_type', 'lower_is_better', 'cuped',
                                       'capping', 'cap_value', 'cap_ignore_zeros', 'quantile', 'quantile_ignore_zeros')
                              order by f limit 1) using errcode = '22023';
            end if;
            begin
                select jsonb_agg(to_jsonb(r) - 'ordinality' order by r.ordinality) into rows
                from analytics._experiment_results(experiment_key, spec->>'metric', spec->>'type', relative, alpha, 'none',
                    phase, coalesce(spec->>'source', 'events'), coalesce(spec->>'unit_source', 'metadata'),
                    spec->>'operation_type', coalesce((spec->>'cuped')::boolean, false), interval '14 days', 5000,
                    (spec->>'lower_is_better')::boolean, sequential, null, null, spec->>'capping',
                    (spec->>'cap_value')::double precision, coalesce((spec->>'cap_ignore_zeros')::boolean, false),
                    (spec->>'quantile')::double precision, coalesce((spec->>'quantile_ignore_zeros')::boolean, false)) with ordinality r;
            exception when sqlstate '22023' or sqlstate '22004' or sqlstate '22P02' then
                raise exception '%[%]: %', kind, i, sqlerrm using errcode = '22023';
            end;
            first_rows := coalesce(first_rows, rows);
            if kind = 'goal_metrics' then
                goals := goals || jsonb_build_array(jsonb_build_object('metric', spec->>'metric', 'spec', spec, 'results', rows));
                -- in the rows' order, the order in which the loop below hands the adjusted values back
                raw := raw || array(select (x->>'p_value')::double precision
                                    from jsonb_array_elements(rows) with ordinality t(x, o)
                                    where not (x->>'is_control')::boolean order by o);
            else
                guards := guards || jsonb_build_array(jsonb_build_object('metric', spec->>'metric', 'spec', spec, 'results', rows));
            end if;
        end loop;
    end loop;

    -- one correction over every variant of every goal metric (NULL p-values, a test without a result, count as 1)
    adjusted := raw;
    if correction <> 'none' and cardinality(raw) > 0 then
        adjusted := analytics.adjust_p_values(array(select coalesce(p, 1) from unnest(raw) p), correction);
    end if;
    for m in 0 .. jsonb_array_length(goals) - 1 loop
        rows := goals->m->'results';
        for v in 0 .. jsonb_array_length(rows) - 1 loop
            rec := rows->v;
            if not (rec->>'is_control')::boolean then
                k := k + 1;
                rec := rec || jsonb_build_object('adjusted_p_value', case when rec->>'p_value' is null then null else adjusted[k] end);
                if correction <> 'none' and rec->>'p_value' is not null and rec->>'effect' is not null and rec->>'ci_lower' is not null then
                    ci := analytics._adjusted_interval((rec->>'effect')::double precision, (rec->>'ci_lower')::double precision,
                        (rec->>'ci_upper')::double precision, adjusted[k], alpha);
                    rec := rec || jsonb_build_object('ci_lower_adjusted', ci[1], 'ci_upper_adjusted', ci[2]);
                end if;
                rec := rec || jsonb_build_object('significant', coalesce((rec->>'adjusted_p_value')::double precision < alpha, false));
                rows := jsonb_set(rows, array[v::text], rec);
            end if;
        end loop;
        goals := jsonb_set(goals, array[m::text, 'results'], rows);
    end loop;
    -- guardrails: failing when significantly worse, uncorrected. "Worse" is the direction experiment_results' Bayesian
    -- view already took from lower_is_better (and its default for trace metrics): a chance to beat control below 1/2
    for m in 0 .. jsonb_array_length(guards) - 1 loop
        rows := guards->m->'results';
        for v in 0 .. jsonb_array_length(rows) - 1 loop
            rec := rows->v;
            if not (rec->>'is_control')::boolean then
                rec := rec || jsonb_build_object('status', case
                    when (rec->>'significant')::boolean and (rec->>'chance_to_beat_control')::double precision < 0.5
                        then 'failing'
                    else 'ok' end);
                rows := jsonb_set(rows, array[v::text], rec);
            end if;
        end loop;
        guards := jsonb_set(guards, array[m::text, 'results'], rows);
    end loop;

    return jsonb_build_object(
        'experiment', e.key, 'status', e.status, 'phase', coalesce(_experiment_report.phase, e.phase),
        'correction', correction, 'alpha', alpha, 'relative', relative, 'sequential', sequential,
        'variants', (select jsonb_agg(jsonb_build_object('key', x->>'variant_key', 'is_control', (x->>'is_control')::boolean,
                                                         'units', (x->>'units')::bigint))
                     from jsonb_array_elements(first_rows) x),
        'srm', jsonb_build_object('p_value', (first_rows->0->>'srm_p_value')::double precision,
                                  'srm', (first_rows->0->>'srm')::boolean),
        'goals', (select jsonb_agg(g - 'spec') from jsonb_array_elements(goals) g),
        'guardrails', coalesce((select jsonb_agg(g - 'spec') from jsonb_array_elements(guards) g), '[]'));
end
$$;

COMMENT ON FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer) IS
'Internal: the computation behind analytics.experiment_report, uncached (sql/041_cache.sql).';

CREATE FUNCTION analytics._experiment_event_moments(experiment_id uuid, phase integer, metric text, kind text,
                                                    cap double precision)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    with assigned as (
        select a.variant_id, count(*) as n
        from analytics.ab_experiment_assignments a
        where a.experiment_id = _experiment_event_moments.experiment_id and a.phase = _experiment_event_moments.phase
        group by a.variant_id
    ), totals as (
        select t.variant_id, count(*) as converted, sum(least(t.total, _experiment_event_moments.cap)) as sy,
               sum(least(t.total, _experiment_event_moments.cap) * least(t.total, _experiment_event_moments.cap)) as syy
        from analytics.ab_experiment_unit_totals t
        where t.experiment_id = _experiment_event_moments.experiment_id and t.metric = _experiment_event_moments.metric
          and t.phase = _experiment_event_moments.phase
        group by t.variant_id
    )
    select jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                        'moments', jsonb_build_object(
                                            'n', coalesce(a.n, 0),
                                            'sum', coalesce(case when _experiment_event_moments.kind = 'binomial' then t.converted else t.sy end, 0),
                                            'sum_squares', coalesce(case when _experiment_event_moments.kind = 'binomial' then t.converted else t.syy end, 0),
                                            'den_sum', 0, 'den_sum_squares', 0, 'cross_sum', 0, 'pre_sum', 0,
                                            'pre_sum_squares', 0, 'pre_cross_sum', 0))
                     order by v.position)
    from analytics.ab_experiment_variants v
    left join assigned a on a.variant_id = v.id
    left join totals t on t.variant_id = v.id
    where v.experiment_id = _experiment_event_moments.experiment_id
$$;

COMMENT ON FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision) IS 'Internal: per-variant moments of an event metric from ab_experiment_unit_totals, unit totals capped at cap (NULL: none).';

CREATE FUNCTION analytics.experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'none',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL,
    sequential        boolean          DEFAULT false,
    prior_mean        double precision DEFAULT NULL,
    prior_variance    double precision DEFAULT NULL,
    capping           text             DEFAULT NULL,
    cap_value         double precision DEFAULT NULL,
    cap_ignore_zeros  boolean          DEFAULT false,
    quantile          double precision DEFAULT NULL,
    quantile_ignore_zeros boolean      DEFAULT false,
    cache             boolean          DEFAULT true
) RETURNS SETOF analytics.experiment_result_row
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('experiment_results',
        jsonb_build_array(experiment_key, metric, metric_type, relative, alpha, correction, phase, metric_source,
                          unit_source, operation_type, cuped, cuped_lookback, sequential_tuning, lower_is_better,
                          sequential, prior_mean, prior_variance, capping, cap_value, cap_ignore_zeros, quantile,
                          quantile_ignore_zeros), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._experiment_results(experiment_key, metric, metric_type, relative, alpha,
            correction, phase, metric_source, unit_source, operation_type, cuped, cuped_lookback, sequential_tuning,
            lower_is_better, sequential, prior_mean, prior_variance, capping, cap_value, cap_ignore_zeros, quantile,
            quantile_ignore_zeros);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._experiment_results(experiment_results.experiment_key, experiment_results.metric,
            experiment_results.metric_type, experiment_results.relative, experiment_results.alpha,
            experiment_results.correction, experiment_results.phase, experiment_results.metric_source,
            experiment_results.unit_source, experiment_results.operation_type, experiment_results.cuped,
            experiment_results.cuped_lookback, experiment_results.sequential_tuning,
            experiment_results.lower_is_better, experiment_results.sequential, experiment_results.prior_mean,
            experiment_results.prior_variance, experiment_results.capping, experiment_results.cap_value,
            experiment_results.cap_ignore_zeros, experiment_results.quantile,
            experiment_results.quantile_ignore_zeros) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.experiment_result_row, c.result);
end
$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, std_error, chance to beat control, expected loss and control_risk (Bayesian, Gaussian: GrowthBook's risk of shipping the treatment and of keeping the control; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial and mean metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). capping (GrowthBook's metric capping, mean metrics): 'absolute' caps each unit's value at cap_value; 'percentile' at the cap_value quantile (0.99: the 99th percentile) of every assigned unit's value, all variants together, zeros left out with cap_ignore_zeros; CUPED's pre-period values get the same cap; capped_at reports the cap. metric_type 'quantile' (a quantile of the units' values: their events' total, a trace metric's total, or their average latency or error rate) or 'quantile_event' (a quantile of every event's value, or of every span's latency_ms, cost_usd or tokens, the events clustered in their units) with quantile => 0.95 for the 95th percentile: GrowthBook's quantile metrics and gbstats' QuantileStatistic / QuantileClusteredStatistic (value: the variant's quantile; effect: its relative or absolute change); quantile_ignore_zeros leaves values of 0 out. Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;

CREATE FUNCTION analytics.experiment_report(
    experiment_key    text,
    goal_metrics      jsonb,
    guardrail_metrics jsonb            DEFAULT '[]',
    correction        text             DEFAULT 'none',
    alpha             double precision DEFAULT 0.05,
    relative          boolean          DEFAULT true,
    sequential        boolean          DEFAULT false,
    phase             integer          DEFAULT NULL,
    cache             boolean          DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('experiment_report',
        jsonb_build_array(experiment_key, goal_metrics, guardrail_metrics, correction, alpha, relative, sequential, phase),
        cache);
begin
    if c.hit then
        return c.result;
    end if;
    c.result := analytics._experiment_report(experiment_key, goal_metrics, guardrail_metrics, correction, alpha, relative,
                                             sequential, phase);
    perform analytics._cache_put(c);
    return c.result;
end
$$;

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped", "capping", "cap_value", "cap_ignore_zeros"} (as in experiment_results). The correction (none by default, holm or bh) covers every variant of every goal metric together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]', correction => 'holm');$$;

CREATE OR REPLACE FUNCTION analytics._event_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'TRUNCATE' then
        truncate analytics.ab_experiment_unit_totals;
        return null;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        with d as (
            select a.id, a.user_id, o.metric, count(*) as events, sum(o.value) as total
            from old_rows o
            join analytics.ab_experiment_assignments a
              on a.user_id = o.user_id and a.unit_id = o.unit_id
             and (o.experiment_id is null or a.experiment_id = o.experiment_id) and o.occurred_at >= a.assigned_at
            group by a.id, a.user_id, o.metric
        ), changed as (
            update analytics.ab_experiment_unit_totals t
               set events = t.events - d.events, total = t.total - d.total
              from d
             where t.assignment_id = d.id and t.user_id = d.user_id and t.metric = d.metric and t.events > d.events
        )
        delete from analytics.ab_experiment_unit_totals t
        using d
        where t.assignment_id = d.id and t.user_id = d.user_id and t.metric = d.metric and t.events <= d.events;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        insert into analytics.ab_experiment_unit_totals as t
            (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
        select a.id, n.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(n.value)
        from new_rows n
        join analytics.ab_experiment_assignments a
          on a.user_id = n.user_id and a.unit_id = n.unit_id
         and (n.experiment_id is null or a.experiment_id = n.experiment_id) and n.occurred_at >= a.assigned_at
        group by a.id, a.user_id, n.metric
        on conflict (assignment_id, metric, user_id) do update
           set events = t.events + excluded.events, total = t.total + excluded.total;
    end if;
    return null;
end
$$;

CREATE OR REPLACE FUNCTION analytics._assignment_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'UPDATE' then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, true);
        end loop;
        delete from analytics.ab_experiment_unit_totals t using old_rows o where t.assignment_id = o.id and t.user_id = o.user_id;
    end if;
    for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
        perform analytics._lock_unit_bucket(b, true);
    end loop;
    insert into analytics.ab_experiment_unit_totals as t
        (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value)
    from new_rows a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, a.experiment_id, a.phase, a.variant_id, ev.metric
    on conflict (assignment_id, metric, user_id) do update
       set events = excluded.events, total = excluded.total;
    return null;
end
$$;

CREATE OR REPLACE FUNCTION analytics.rebuild_experiment_totals() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    n bigint;
begin
    lock table analytics.ab_experiment_assignments, analytics.ab_experiment_events in share mode;
    truncate analytics.ab_experiment_unit_totals;
    insert into analytics.ab_experiment_unit_totals (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value)
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, ev.metric;
    get diagnostics n = row_count;
    return n;
end
$$;

REVOKE EXECUTE ON FUNCTION analytics._assignment(text, text, boolean),
    analytics.assign_variant(text, text),
    analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
    analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision),
    analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean),
    analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean),
    analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer),
    analytics._experiment_event_moments(uuid, integer, text, text, double precision),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean),
    analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._assignment(text, text, boolean),
                analytics.assign_variant(text, text),
                analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
                analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision),
                analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean),
                analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean),
                analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer),
                analytics._experiment_event_moments(uuid, integer, text, text, double precision),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean),
                analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
REVOKE EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Usage snapshot cache, undone (derived data: nothing to keep). snapshot_usage is dropped with the usage section.
DROP TRIGGER llm_traces_usage_insert ON analytics.llm_traces;
DROP TRIGGER llm_traces_usage_update ON analytics.llm_traces;
DROP TRIGGER llm_traces_usage_delete ON analytics.llm_traces;
DROP FUNCTION analytics._stored_by_owner(timestamptz, uuid);
DROP FUNCTION analytics._usage_log_change();
ALTER EXTENSION analytics_ext DROP TABLE analytics.usage_cache_days;
DROP TABLE analytics.usage_cache_days;
ALTER EXTENSION analytics_ext DROP TABLE analytics.usage_cache_partitions;
DROP TABLE analytics.usage_cache_partitions;
ALTER EXTENSION analytics_ext DROP TABLE analytics.usage_cache_changes;
DROP TABLE analytics.usage_cache_changes;

-- ---- Ingest health, undone. 0.1.0 does not count ingest calls: a downgrade with counts recorded refuses. (The ingest
-- functions that count are replaced by the steps below.)
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.ingest_stats);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % ingest count%: analytics.ingest_stats does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.ingest_stats to ''ingest_stats.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.ingest_health(timestamptz, timestamptz, interval);
DROP FUNCTION analytics._ingest_succeeded(text, jsonb, jsonb);
ALTER EXTENSION analytics_ext DROP TABLE analytics.ingest_stats;
DROP TABLE analytics.ingest_stats;

-- ---- Storage and usage, undone. 0.1.0 has no usage snapshots: a downgrade with snapshots refuses.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.usage_snapshots);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % usage snapshot%: analytics.usage_snapshots does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.usage_snapshots to ''usage_snapshots.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.cost_report(timestamptz, timestamptz, text[]);
DROP FUNCTION analytics.usage_projection(text, integer[], integer, double precision, date, uuid);
DROP FUNCTION analytics.snapshot_usage(date, uuid);
ALTER EXTENSION analytics_ext DROP TABLE analytics.usage_snapshots;
DROP TABLE analytics.usage_snapshots;
DROP FUNCTION analytics.storage_by_trace(timestamptz, timestamptz, integer, uuid);
DROP FUNCTION analytics.storage_summary();
DROP FUNCTION analytics._span_bytes(anyelement);
DROP FUNCTION analytics._span_relation_sizes();
DROP FUNCTION analytics._project_trend(double precision[], double precision[], double precision, integer[], boolean, double precision);

-- ---- Budgets, undone. 0.1.0 has no budgets: a downgrade with budgets defined refuses.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.budgets);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % budget%: analytics.budgets does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.budgets to ''budgets.csv'' csv) and delete the rows (their alerts go with them), then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.check_budget(text, text);
DROP FUNCTION analytics.evaluate_budgets(timestamptz, uuid);
DROP FUNCTION analytics.budget_status(timestamptz, uuid);
DROP FUNCTION analytics._budget_spent(uuid, text, text, timestamptz, timestamptz);
-- out of the extension first, which also takes them off the extension's list of dumped tables
ALTER EXTENSION analytics_ext DROP TABLE analytics.budget_alerts;
ALTER EXTENSION analytics_ext DROP TABLE analytics.budgets;
DROP TABLE analytics.budget_alerts;
DROP TABLE analytics.budgets;

-- ---- LLM costs, undone. 0.1.0 has no reasoning-token price: a downgrade with one set refuses. (Whether a cost was
-- computed, llm_traces.cost_computed, goes with the partitioned table below; the costs themselves are kept.)
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.model_prices WHERE reasoning_usd_per_mtok IS NOT NULL);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % reasoning-token price%: analytics.model_prices has no reasoning_usd_per_mtok in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Set reasoning_usd_per_mtok to NULL (reasoning tokens then cost the output price), then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.recompute_costs(timestamptz, timestamptz, text, boolean);
DROP FUNCTION analytics.model_price(text, text, timestamptz, uuid);
DROP FUNCTION analytics.builtin_model_prices();
ALTER TABLE analytics.model_prices DROP CONSTRAINT model_prices_reasoning_check;
ALTER TABLE analytics.model_prices DROP COLUMN reasoning_usd_per_mtok;
COMMENT ON TABLE analytics.model_prices IS
'Prices per million tokens by model (exact name or prefix*), optionally per provider, from effective_from on. Ingest uses them to compute cost_usd of spans sent without one.';

-- ---- Alert rules, undone. 0.1.0 has no alert rules: a downgrade with rules defined refuses.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.alert_rules);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % alert rule%: analytics.alert_rules does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.alert_rules to ''alert_rules.csv'' csv) and delete the rows (their alerts go with them), then update again.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.evaluate_alert_rules(timestamptz, uuid);
DROP FUNCTION analytics._alert_metric(text, uuid, timestamptz, timestamptz);
-- out of the extension first, which also takes them off the extension's list of dumped tables
ALTER EXTENSION analytics_ext DROP TABLE analytics.alerts;
ALTER EXTENSION analytics_ext DROP TABLE analytics.alert_rules;
DROP TABLE analytics.alerts;
DROP TABLE analytics.alert_rules;

-- ---- Ingest failures, undone. 0.1.0 has no analytics.ingest_failures: a downgrade with failures recorded refuses.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.ingest_failures);
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % ingest failure%: analytics.ingest_failures does not exist in 0.1.0',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Keep a copy (\copy analytics.ingest_failures to ''ingest_failures.csv'' csv) and delete the rows, then update again.';
    END IF;
END
$refuse$;
CREATE OR REPLACE FUNCTION analytics.ingest_spans(spans jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    perform analytics.check_rate_limit('ingest');
    return analytics._ingest_spans(spans);
end
$$;
CREATE OR REPLACE FUNCTION analytics.ingest_otlp(payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    perform analytics.check_rate_limit('ingest');
    return analytics._ingest_otlp(payload);
end
$$;
COMMENT ON FUNCTION analytics.ingest_spans(jsonb) IS
$$Stores a batch of spans (JSON array of span objects, at most 100,000) in one all-or-nothing statement.
Re-sending a span (same owner, trace_id, span_id) updates it: fields sent win, fields left out keep their value, metadata objects are merged.
Children may arrive before their parents. Errors name the element and field, e.g. 'spans[3].end_time: is before start_time' (22023).
Returns {"received", "stored" (rows inserted or updated), "merged_duplicates", "traces"}.
Rate limited (action 'ingest', default 100 calls per minute per user): over the limit it raises HTTP 429 through PostgREST, see analytics.check_rate_limit.
Example: select analytics.ingest_spans('[{"trace_id":"t1","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"}]');$$;
CREATE OR REPLACE FUNCTION analytics.record_span(
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
    user_id               uuid             DEFAULT NULL
) RETURNS analytics.llm_traces
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    stored analytics.llm_traces;
begin
    -- the same validation and upsert as a batch of one (errors name the field as spans[0].<field>)
    perform analytics.ingest_spans(jsonb_build_array(jsonb_build_object(
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
        'metadata', record_span.metadata, 'tags', to_jsonb(record_span.tags), 'user_id', record_span.user_id)));
    select t.* into stored
    from analytics.llm_traces t
    where t.user_id = coalesce(record_span.user_id, analytics.current_user_id())
      and t.trace_id = record_span.trace_id and t.span_id = record_span.span_id;
    return stored;
end
$$;
DROP FUNCTION analytics.ingest_failure_summary(timestamptz, timestamptz, interval);
DROP FUNCTION analytics._ingest_failed(text, jsonb, jsonb);
-- out of the extension first, which also takes it off the extension's list of dumped tables
ALTER EXTENSION analytics_ext DROP TABLE analytics.ingest_failures;
DROP TABLE analytics.ingest_failures;

-- ---- NAB's anomaly score and the surprise detector (and 'mad' as the default again), undone. 0.1.0 has no surprise detector: a downgrade with its
-- findings in analytics.anomaly_detections refuses.
DO $refuse$
DECLARE
    n bigint := (SELECT count(*) FROM analytics.anomaly_detections WHERE method = 'surprise');
BEGIN
    IF n > 0 THEN
        RAISE EXCEPTION 'analytics_ext 0.2.0 -> 0.1.0 would lose % finding% of the surprise detector: 0.1.0 has no such method',
            n, CASE WHEN n = 1 THEN '' ELSE 's' END
            USING ERRCODE = '55000',
                  HINT = 'Delete them (DELETE FROM analytics.anomaly_detections WHERE method = ''surprise'') or stay at 0.2.0.';
    END IF;
END
$refuse$;
DROP FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval);
CREATE FUNCTION analytics.detect_series_anomalies(
    timestamps   timestamptz[],
    observations double precision[],
    method       text     DEFAULT 'mad',
    params       jsonb    DEFAULT '{}',
    bucket       interval DEFAULT NULL
) RETURNS TABLE (
    ts          timestamptz,
    value       double precision,
    score       double precision,
    is_anomaly  boolean,
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
    select g.t, g.v, s.score, s.is_anomaly, s.alert, s.expected, s.lower_bound, s.upper_bound
    from grid g join scored s on s.idx = g.k
    join points p on p.t = g.t
    order by g.t;
end
$$;
COMMENT ON FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval) IS
$$detect_anomalies over (ts, value) pairs, returned in time order. With bucket, the points must lie on a grid of that width starting at the first timestamp, and missing buckets are gaps (so seasonal periods stay aligned); without, the points follow each other in time order.
Example: select ts, value, score from analytics.detect_series_anomalies(array_agg(t order by t), array_agg(v order by t), 'zscore', '{"window": 24}', '1 hour') d where is_anomaly;$$;
REVOKE EXECUTE ON FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
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
    perform analytics.check_rate_limit('run_anomaly_detection');
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
ALTER TABLE analytics.anomaly_detections DROP CONSTRAINT anomaly_detections_method_check,
    ADD CONSTRAINT anomaly_detections_method_check CHECK (method IN ('zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood'));
DROP FUNCTION analytics.detect_anomalies(double precision[], text, jsonb);
CREATE FUNCTION analytics."detect_anomalies"(
	"values" double precision[], /* Vec < Option < f64 > > */
	"method" TEXT DEFAULT 'mad', /* & str */
	"params" jsonb DEFAULT '{}' /* pgrx :: JsonB */
) RETURNS TABLE (
	"idx" INT,  /* i32 */
	"value" double precision,  /* Option < f64 > */
	"score" double precision,  /* Option < f64 > */
	"is_anomaly" bool,  /* bool */
	"alert" bool,  /* bool */
	"expected" double precision,  /* Option < f64 > */
	"lower_bound" double precision,  /* Option < f64 > */
	"upper_bound" double precision  /* Option < f64 > */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'detect_anomalies_wrapper';
COMMENT ON FUNCTION analytics.detect_anomalies(double precision[], text, jsonb) IS
$$Runs an anomaly detector over a series (NULL or NaN elements are gaps): one row per element with idx (1-based), value, signed score, is_anomaly, alert (the anomaly starts an episode: no other anomaly in the cooldown points before it), expected value and lower/upper bound. Causal: each point is judged against the points before it only.
Methods: zscore (rolling mean/sd, threshold 3), mad (median/MAD modified z, 3.5), iqr (Tukey fences, k 1.5), ewma (EW mean/sd, 3), seasonal (same phase in past seasons + robust residual z, 3.5), cusum (level shifts, h 8), likelihood (Numenta's anomaly likelihood over a base detector's scores, default ewma with alpha 0.1; threshold 4). params: window, threshold, min_history, alpha (ewma), period (seasonal), slack (cusum), direction (both, up, down), base, short, history (likelihood), cooldown (alerts; default 0).
Example: select idx, value, score from analytics.detect_anomalies('{10,11,10,12,11,10,11,10,50,11}', 'mad', '{"window": 5}') where is_anomaly;$$;
REVOKE EXECUTE ON FUNCTION analytics.detect_anomalies(double precision[], text, jsonb) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.detect_anomalies(double precision[], text, jsonb) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- GrowthBook's power calculator, undone -------------------------------------------------------------------------
DROP FUNCTION analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision);

-- ---- Metric capping, undone: experiment_results and its helpers as before it ----------------------------------------
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean);
DROP FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean);
DROP FUNCTION analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean);
DROP FUNCTION analytics._quantile_bounds(bigint, double precision[]);
DROP FUNCTION analytics._quantile_grid(double precision);
DROP FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision);
DROP FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval);
DROP FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision);
DROP FUNCTION analytics._experiment_event_cap(uuid, integer, text, double precision, boolean);
DROP FUNCTION analytics._experiment_event_nth(uuid, integer, text, bigint, bigint, bigint);
ALTER TYPE analytics.experiment_result_row DROP ATTRIBUTE capped_at, DROP ATTRIBUTE std_error,
    DROP ATTRIBUTE control_risk;

CREATE FUNCTION analytics._experiment_moments(experiment_id uuid, experiment_key text, phase integer, metric text, kind text,
                                              metric_source text, unit_source text, operation_type text, pre interval)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    -- each assigned unit (grouped by its assignment row) with its value y after assignment (the denominator d for
    -- ratio metrics) and, for CUPED, its value x of the same metric in the lookback before assignment
    with units as (
        select a.variant_id,
               case when _experiment_moments.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at >= a.assigned_at) > 0)::int::double precision
                    else coalesce(sum(ev.value) filter (where ev.occurred_at >= a.assigned_at), 0) end as y,
               0::double precision as d,
               case when _experiment_moments.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at < a.assigned_at) > 0)::int::double precision
                    else coalesce(sum(ev.value) filter (where ev.occurred_at < a.assigned_at), 0) end as x
        from analytics.ab_experiment_assignments a
        left join analytics.ab_experiment_events ev
               on ev.user_id = a.user_id and ev.unit_id = a.unit_id and ev.metric = _experiment_moments.metric
              and (ev.experiment_id = a.experiment_id or ev.experiment_id is null)
              and ev.occurred_at >= a.assigned_at - _experiment_moments.pre
        where _experiment_moments.metric_source = 'events' and a.experiment_id = _experiment_moments.experiment_id and a.phase = _experiment_moments.phase
        group by a.id, a.variant_id
        union all
        select a.variant_id,
               coalesce(case _experiment_moments.metric
                   when 'latency_ms' then sum(s.duration_ms) filter (where s.start_time >= a.assigned_at)
                   when 'error_rate' then (count(*) filter (where s.start_time >= a.assigned_at and s.status = 'error'))::double precision
                   when 'cost_usd' then sum(s.cost_usd) filter (where s.start_time >= a.assigned_at)
                   when 'total_tokens' then (sum(s.total_tokens) filter (where s.start_time >= a.assigned_at))::double precision
                   when 'input_tokens' then (sum(s.input_tokens) filter (where s.start_time >= a.assigned_at))::double precision
                   when 'output_tokens' then (sum(s.output_tokens) filter (where s.start_time >= a.assigned_at))::double precision
                   else (count(s.id) filter (where s.start_time >= a.assigned_at))::double precision end, 0),
               case _experiment_moments.metric
                   when 'latency_ms' then count(s.duration_ms) filter (where s.start_time >= a.assigned_at)
                   else count(s.id) filter (where s.start_time >= a.assigned_at) end::double precision,
               coalesce(case _experiment_moments.metric
                   when 'cost_usd' then sum(s.cost_usd) filter (where s.start_time < a.assigned_at)
                   when 'total_tokens' then (sum(s.total_tokens) filter (where s.start_time < a.assigned_at))::double precision
                   when 'input_tokens' then (sum(s.input_tokens) filter (where s.start_time < a.assigned_at))::double precision
                   when 'output_tokens' then (sum(s.output_tokens) filter (where s.start_time < a.assigned_at))::double precision
                   else (count(s.id) filter (where s.start_time < a.assigned_at))::double precision end, 0)
        from analytics.ab_experiment_assignments a
        left join analytics.llm_traces s
               on s.user_id = a.user_id
              and case _experiment_moments.unit_source when 'metadata' then s.metadata->>'unit_id'
                                   when 'session_id' then s.session_id
                                   else s.conversation_id end = a.unit_id
              and (s.metadata->>'experiment' is null or s.metadata->>'experiment' = _experiment_moments.experiment_key)
              and (_experiment_moments.operation_type is null or s.operation_type = _experiment_moments.operation_type)
              and s.start_time >= a.assigned_at - _experiment_moments.pre
        where _experiment_moments.metric_source = 'traces' and a.experiment_id = _experiment_moments.experiment_id and a.phase = _experiment_moments.phase
        group by a.id, a.variant_id
    )
    select jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                        'moments', jsonb_build_object(
                                            'n', coalesce(m.n, 0), 'sum', coalesce(m.sy, 0), 'sum_squares', coalesce(m.syy, 0),
                                            'den_sum', coalesce(m.sd, 0), 'den_sum_squares', coalesce(m.sdd, 0),
                                            'cross_sum', coalesce(m.syd, 0), 'pre_sum', coalesce(m.sx, 0),
                                            'pre_sum_squares', coalesce(m.sxx, 0), 'pre_cross_sum', coalesce(m.sxy, 0)))
                     order by v.position)
    from analytics.ab_experiment_variants v
    left join (
        select u.variant_id, count(*) as n, sum(u.y) as sy, sum(u.y * u.y) as syy, sum(u.d) as sd, sum(u.d * u.d) as sdd,
               sum(u.y * u.d) as syd, sum(u.x) as sx, sum(u.x * u.x) as sxx, sum(u.x * u.y) as sxy
        from units u
        group by u.variant_id
    ) m on m.variant_id = v.id
    where v.experiment_id = _experiment_moments.experiment_id
$$;
COMMENT ON FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval) IS 'Internal: per-variant moments of an experiment metric, in one pass.';

CREATE FUNCTION analytics._experiment_event_moments(experiment_id uuid, phase integer, metric text, kind text)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    with assigned as (
        select a.variant_id, count(*) as n
        from analytics.ab_experiment_assignments a
        where a.experiment_id = _experiment_event_moments.experiment_id and a.phase = _experiment_event_moments.phase
        group by a.variant_id
    ), totals as (
        select t.variant_id, count(*) as converted, sum(t.total) as sy, sum(t.total * t.total) as syy
        from analytics.ab_experiment_unit_totals t
        where t.experiment_id = _experiment_event_moments.experiment_id and t.metric = _experiment_event_moments.metric
          and t.phase = _experiment_event_moments.phase
        group by t.variant_id
    )
    select jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                        'moments', jsonb_build_object(
                                            'n', coalesce(a.n, 0),
                                            'sum', coalesce(case when _experiment_event_moments.kind = 'binomial' then t.converted else t.sy end, 0),
                                            'sum_squares', coalesce(case when _experiment_event_moments.kind = 'binomial' then t.converted else t.syy end, 0),
                                            'den_sum', 0, 'den_sum_squares', 0, 'cross_sum', 0, 'pre_sum', 0,
                                            'pre_sum_squares', 0, 'pre_cross_sum', 0))
                     order by v.position)
    from analytics.ab_experiment_variants v
    left join assigned a on a.variant_id = v.id
    left join totals t on t.variant_id = v.id
    where v.experiment_id = _experiment_event_moments.experiment_id
$$;
COMMENT ON FUNCTION analytics._experiment_event_moments(uuid, integer, text, text) IS 'Internal: per-variant moments of an event metric from ab_experiment_unit_totals.';

CREATE FUNCTION analytics._experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'none',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL,
    sequential        boolean          DEFAULT false,
    prior_mean        double precision DEFAULT NULL,
    prior_variance    double precision DEFAULT NULL
) RETURNS SETOF analytics.experiment_result_row
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    ph int := coalesce(_experiment_results.phase, e.phase);
    kind text := metric_type;
    trace_kind text;
    pre interval := case when cuped then cuped_lookback else interval '0' end;
    -- trace metrics other than request_count are costs: lower is better
    lower boolean := coalesce(lower_is_better, metric_source = 'traces' and metric <> 'request_count');
    groups jsonb;
    control jsonb;
    srm_result jsonb;
    tests jsonb := '{}';
    adjusted double precision[];
    keys text[];
    g jsonb;
    t jsonb;
    r analytics.experiment_result_row;
    adjusted_ci double precision[];
begin
    if metric is null or metric = '' then
        raise exception 'metric: is required' using errcode = '22004';
    end if;
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if cuped is null or (cuped and (cuped_lookback is null or cuped_lookback <= interval '0')) then
        raise exception 'cuped_lookback: must be a positive interval, got %', coalesce(cuped_lookback::text, 'NULL')
            using errcode = '22023';
    end if;
    if metric_source = 'events' then
        kind := coalesce(kind, 'binomial');
        if kind not in ('binomial', 'mean') then
            raise exception 'metric_type: must be binomial (share of units with the event) or mean (event value per unit), got %',
                kind using errcode = '22023';
        end if;
    elsif metric_source = 'traces' then
        if metric not in ('latency_ms', 'error_rate', 'cost_usd', 'total_tokens', 'input_tokens', 'output_tokens', 'request_count') then
            raise exception 'metric: unknown trace metric "%"; allowed: latency_ms, error_rate, cost_usd, total_tokens, input_tokens, output_tokens, request_count',
                metric using errcode = '22023';
        end if;
        if unit_source is null or unit_source not in ('metadata', 'session_id', 'conversation_id') then
            raise exception 'unit_source: must be metadata (the span''s metadata.unit_id), session_id or conversation_id, got %',
                coalesce(unit_source, 'NULL') using errcode = '22023';
        end if;
        trace_kind := case when metric in ('latency_ms', 'error_rate') then 'ratio' else 'mean' end;
        if kind is not null and kind <> trace_kind then
            raise exception 'metric_type: the trace metric % is a % metric, got %', metric, trace_kind, kind
                using errcode = '22023';
        end if;
        kind := trace_kind;
    else
        raise exception 'metric_source: must be events (ab_experiment_events) or traces (llm_traces), got %',
            coalesce(metric_source, 'NULL') using errcode = '22023';
    end if;
    if sequential is null then
        raise exception 'sequential: must be true or false' using errcode = '22004';
    end if;
    if cuped and kind = 'ratio' then
        raise exception 'cuped: is available for binomial and mean metrics, not for the ratio metric %', metric using errcode = '22023';
    end if;

    if metric_source = 'events' and not cuped then
        -- the per-unit totals kept by triggers (sql/023_experiment_totals.sql): no join of assignments and events
        select m into groups from analytics._experiment_event_moments(e.id, ph, metric, kind) m;
    else
        select m into groups
        from analytics._experiment_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type, pre) m;
    end if;

    control := (select x from jsonb_array_elements(groups) x where (x->>'is_control')::boolean);
    srm_result := analytics.srm_check(
        (select array_agg((x->'moments'->>'n')::int) from jsonb_array_elements(groups) x),
        (select array_agg((x->>'weight')::double precision) from jsonb_array_elements(groups) x));

    for g in select x from jsonb_array_elements(groups) x loop
        t := analytics.compare_groups(control->'moments', g->'moments', kind, relative, alpha, cuped, sequential_tuning, lower,
                                      prior_mean, prior_variance);
        if sequential then
            -- GrowthBook with sequential testing on: the always-valid p-value and interval replace the fixed-horizon
            -- ones, and significance (after correction) follows them
            t := t || jsonb_build_object('p_value', t->'sequential_p_value', 'ci_lower', t->'sequential_ci_lower',
                                         'ci_upper', t->'sequential_ci_upper');
        end if;
        tests := tests || jsonb_build_object(g->>'key', t);
    end loop;

    -- correct the variants' p-values for comparing several variants with one control
    select array_agg(k order by k), array_agg((tests->k->>'p_value')::double precision order by k)
      into keys, adjusted
    from jsonb_object_keys(tests) k
    where tests->k->>'p_value' is not null
      and not exists (select 1 from jsonb_array_elements(groups) x where x->>'key' = k and (x->>'is_control')::boolean);
    if correction <> 'none' and keys is not null then
        adjusted := analytics.adjust_p_values(adjusted, correction);
    end if;

    for g in select x from jsonb_array_elements(groups) x loop
        t := tests->(g->>'key');
        r.variant_key := g->>'key';
        r.is_control := (g->>'is_control')::boolean;
        r.units := (g->'moments'->>'n')::bigint;
        r.value := (t->>'treatment_value')::double precision;
        r.srm_p_value := (srm_result->>'p_value')::double precision;
        r.srm := (srm_result->>'srm')::boolean;
        if r.is_control then
            r.effect := null; r.ci_lower := null; r.ci_upper := null; r.p_value := null; r.adjusted_p_value := null;
            r.ci_lower_adjusted := null; r.ci_upper_adjusted := null;
            r.significant := false; r.chance_to_beat_control := null; r.expected_loss := null; r.sequential_p_value := null;
            r.sequential_ci_lower := null; r.sequential_ci_upper := null; r.variance_reduction := null;
            r.note := srm_result->>'note';
        else
            r.effect := (t->>'effect')::double precision;
            r.ci_lower := (t->>'ci_lower')::double precision;
            r.ci_upper := (t->>'ci_upper')::double precision;
            r.p_value := (t->>'p_value')::double precision;
            r.adjusted_p_value := case when keys is null then null else adjusted[array_position(keys, r.variant_key)] end;
            r.significant := coalesce(r.adjusted_p_value < alpha, false);
            -- the interval that goes with the corrected p-value (GrowthBook's ciAdjusted); without a correction, the
            -- interval itself
            if correction <> 'none' and r.adjusted_p_value is not null and r.effect is not null and r.ci_lower is not null then
                adjusted_ci := analytics._adjusted_interval(r.effect, r.ci_lower, r.ci_upper, r.adjusted_p_value, alpha);
                r.ci_lower_adjusted := adjusted_ci[1];
                r.ci_upper_adjusted := adjusted_ci[2];
            else
                r.ci_lower_adjusted := r.ci_lower;
                r.ci_upper_adjusted := r.ci_upper;
            end if;
            r.chance_to_beat_control := (t->>'chance_to_beat_control')::double precision;
            r.expected_loss := (t->>'expected_loss')::double precision;
            r.sequential_p_value := (t->>'sequential_p_value')::double precision;
            r.sequential_ci_lower := (t->>'sequential_ci_lower')::double precision;
            r.sequential_ci_upper := (t->>'sequential_ci_upper')::double precision;
            r.variance_reduction := (t->>'variance_reduction')::double precision;
            r.note := coalesce(t->>'note', srm_result->>'note');
        end if;
        return next r;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision) IS
'Internal: the computation behind analytics.experiment_results, uncached (sql/041_cache.sql).';

CREATE OR REPLACE FUNCTION analytics._experiment_report(
    experiment_key    text,
    goal_metrics      jsonb,
    guardrail_metrics jsonb            DEFAULT '[]',
    correction        text             DEFAULT 'none',
    alpha             double precision DEFAULT 0.05,
    relative          boolean          DEFAULT true,
    sequential        boolean          DEFAULT false,
    phase             integer          DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    spec jsonb;
    kind text;
    i integer;
    rows jsonb;
    goals jsonb := '[]';
    guards jsonb := '[]';
    raw double precision[] := '{}';
    adjusted double precision[];
    k integer := 0;
    m integer;
    v integer;
    ci double precision[];
    rec jsonb;
    first_rows jsonb;
begin
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if goal_metrics is null or jsonb_typeof(goal_metrics) <> 'array' or jsonb_array_length(goal_metrics) = 0 then
        raise exception 'goal_metrics: must be a non-empty array of metrics ("signup" or {"metric": "signup", ...})'
            using errcode = '22023';
    end if;
    if guardrail_metrics is null or jsonb_typeof(guardrail_metrics) <> 'array' then
        raise exception 'guardrail_metrics: must be an array of metrics' using errcode = '22023';
    end if;
    for kind in select unnest(array['goal_metrics', 'guardrail_metrics']) loop
        for i in 0 .. jsonb_array_length(case kind when 'goal_metrics' then goal_metrics else guardrail_metrics end) - 1 loop
            spec := (case kind when 'goal_metrics' then goal_metrics else guardrail_metrics end)->i;
            if jsonb_typeof(spec) = 'string' then
                spec := jsonb_build_object('metric', spec #>> '{}');
            end if;
            if jsonb_typeof(spec) <> 'object' or jsonb_typeof(spec->'metric') is distinct from 'string' then
                raise exception '%[%]: must be a metric name or an object with "metric"', kind, i using errcode = '22023';
            end if;
            if exists (select 1 from jsonb_object_keys(spec) f
                       where f not in ('metric', 'source', 'type', 'unit_source', 'operation_type', 'lower_is_better', 'cuped')) then
                raise exception '%[%]: unknown field "%"; allowed: metric, source, type, unit_source, operation_type, lower_is_better, cuped',
                    kind, i, (select f from jsonb_object_keys(spec) f
                              where f not in ('metric', 'source', 'type', 'unit_source', 'operation_type', 'lower_is_better', 'cuped')
                              order by f limit 1) using errcode = '22023';
            end if;
            begin
                select jsonb_agg(to_jsonb(r) - 'ordinality' order by r.ordinality) into rows
                from analytics._experiment_results(experiment_key, spec->>'metric', spec->>'type', relative, alpha, 'none',
                    phase, coalesce(spec->>'source', 'events'), coalesce(spec->>'unit_source', 'metadata'),
                    spec->>'operation_type', coalesce((spec->>'cuped')::boolean, false), interval '14 days', 5000,
                    (spec->>'lower_is_better')::boolean, sequential) with ordinality r;
            exception when sqlstate '22023' or sqlstate '22004' or sqlstate '22P02' then
                raise exception '%[%]: %', kind, i, sqlerrm using errcode = '22023';
            end;
            first_rows := coalesce(first_rows, rows);
            if kind = 'goal_metrics' then
                goals := goals || jsonb_build_array(jsonb_build_object('metric', spec->>'metric', 'spec', spec, 'results', rows));
                -- in the rows' order, the order in which the loop below hands the adjusted values back
                raw := raw || array(select (x->>'p_value')::double precision
                                    from jsonb_array_elements(rows) with ordinality t(x, o)
                                    where not (x->>'is_control')::boolean order by o);
            else
                guards := guards || jsonb_build_array(jsonb_build_object('metric', spec->>'metric', 'spec', spec, 'results', rows));
            end if;
        end loop;
    end loop;

    -- one correction over every variant of every goal metric (NULL p-values, a test without a result, count as 1)
    adjusted := raw;
    if correction <> 'none' and cardinality(raw) > 0 then
        adjusted := analytics.adjust_p_values(array(select coalesce(p, 1) from unnest(raw) p), correction);
    end if;
    for m in 0 .. jsonb_array_length(goals) - 1 loop
        rows := goals->m->'results';
        for v in 0 .. jsonb_array_length(rows) - 1 loop
            rec := rows->v;
            if not (rec->>'is_control')::boolean then
                k := k + 1;
                rec := rec || jsonb_build_object('adjusted_p_value', case when rec->>'p_value' is null then null else adjusted[k] end);
                if correction <> 'none' and rec->>'p_value' is not null and rec->>'effect' is not null and rec->>'ci_lower' is not null then
                    ci := analytics._adjusted_interval((rec->>'effect')::double precision, (rec->>'ci_lower')::double precision,
                        (rec->>'ci_upper')::double precision, adjusted[k], alpha);
                    rec := rec || jsonb_build_object('ci_lower_adjusted', ci[1], 'ci_upper_adjusted', ci[2]);
                end if;
                rec := rec || jsonb_build_object('significant', coalesce((rec->>'adjusted_p_value')::double precision < alpha, false));
                rows := jsonb_set(rows, array[v::text], rec);
            end if;
        end loop;
        goals := jsonb_set(goals, array[m::text, 'results'], rows);
    end loop;
    -- guardrails: failing when significantly worse, uncorrected. "Worse" is the direction experiment_results' Bayesian
    -- view already took from lower_is_better (and its default for trace metrics): a chance to beat control below 1/2
    for m in 0 .. jsonb_array_length(guards) - 1 loop
        rows := guards->m->'results';
        for v in 0 .. jsonb_array_length(rows) - 1 loop
            rec := rows->v;
            if not (rec->>'is_control')::boolean then
                rec := rec || jsonb_build_object('status', case
                    when (rec->>'significant')::boolean and (rec->>'chance_to_beat_control')::double precision < 0.5
                        then 'failing'
                    else 'ok' end);
                rows := jsonb_set(rows, array[v::text], rec);
            end if;
        end loop;
        guards := jsonb_set(guards, array[m::text, 'results'], rows);
    end loop;

    return jsonb_build_object(
        'experiment', e.key, 'status', e.status, 'phase', coalesce(_experiment_report.phase, e.phase),
        'correction', correction, 'alpha', alpha, 'relative', relative, 'sequential', sequential,
        'variants', (select jsonb_agg(jsonb_build_object('key', x->>'variant_key', 'is_control', (x->>'is_control')::boolean,
                                                         'units', (x->>'units')::bigint))
                     from jsonb_array_elements(first_rows) x),
        'srm', jsonb_build_object('p_value', (first_rows->0->>'srm_p_value')::double precision,
                                  'srm', (first_rows->0->>'srm')::boolean),
        'goals', (select jsonb_agg(g - 'spec') from jsonb_array_elements(goals) g),
        'guardrails', coalesce((select jsonb_agg(g - 'spec') from jsonb_array_elements(guards) g), '[]'));
end
$$;

CREATE FUNCTION analytics.experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'none',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL,
    sequential        boolean          DEFAULT false,
    prior_mean        double precision DEFAULT NULL,
    prior_variance    double precision DEFAULT NULL,
    cache             boolean          DEFAULT true
) RETURNS SETOF analytics.experiment_result_row
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('experiment_results',
        jsonb_build_array(experiment_key, metric, metric_type, relative, alpha, correction, phase, metric_source,
                          unit_source, operation_type, cuped, cuped_lookback, sequential_tuning, lower_is_better,
                          sequential, prior_mean, prior_variance), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._experiment_results(experiment_key, metric, metric_type, relative, alpha,
            correction, phase, metric_source, unit_source, operation_type, cuped, cuped_lookback, sequential_tuning,
            lower_is_better, sequential, prior_mean, prior_variance);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._experiment_results(experiment_results.experiment_key, experiment_results.metric,
            experiment_results.metric_type, experiment_results.relative, experiment_results.alpha,
            experiment_results.correction, experiment_results.phase, experiment_results.metric_source,
            experiment_results.unit_source, experiment_results.operation_type, experiment_results.cuped,
            experiment_results.cuped_lookback, experiment_results.sequential_tuning,
            experiment_results.lower_is_better, experiment_results.sequential, experiment_results.prior_mean,
            experiment_results.prior_variance) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.experiment_result_row, c.result);
end
$$;
COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, chance to beat control and expected loss (Bayesian, Gaussian; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial and mean metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped"}. The correction (none by default, holm or bh) covers every variant of every goal metric together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]', correction => 'holm');$$;

REVOKE EXECUTE ON FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval),
    analytics._experiment_event_moments(uuid, integer, text, text),
    analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean) FROM PUBLIC;

DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval),
                analytics._experiment_event_moments(uuid, integer, text, text),
                analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Keys that include user_id, undone ----------------------------------------------------------------------------
ALTER TABLE analytics.ab_experiment_variants DROP CONSTRAINT ab_experiment_variants_experiment_fk;
ALTER TABLE analytics.ab_experiment_assignments DROP CONSTRAINT ab_experiment_assignments_experiment_fk,
    DROP CONSTRAINT ab_experiment_assignments_variant_fk;
ALTER TABLE analytics.ab_experiment_events DROP CONSTRAINT ab_experiment_events_experiment_fk;
ALTER TABLE analytics.ab_experiment_unit_totals DROP CONSTRAINT ab_experiment_unit_totals_assignment_id_fkey;
ALTER TABLE analytics.user_cohort_members DROP CONSTRAINT user_cohort_members_cohort_fk;
ALTER TABLE analytics.model_prices DROP CONSTRAINT model_prices_pkey, ADD CONSTRAINT model_prices_pkey PRIMARY KEY (id);
ALTER TABLE analytics.ab_experiments DROP CONSTRAINT ab_experiments_pkey,
    ADD CONSTRAINT ab_experiments_pkey PRIMARY KEY (id), ADD CONSTRAINT ab_experiments_id_owner UNIQUE (id, user_id);
ALTER TABLE analytics.ab_experiment_variants DROP CONSTRAINT ab_experiment_variants_pkey,
    DROP CONSTRAINT ab_experiment_variants_key_per_experiment, DROP CONSTRAINT ab_experiment_variants_position_per_experiment,
    DROP CONSTRAINT ab_experiment_variants_id_experiment,
    ADD CONSTRAINT ab_experiment_variants_pkey PRIMARY KEY (id),
    ADD CONSTRAINT ab_experiment_variants_key_per_experiment UNIQUE (experiment_id, key),
    ADD CONSTRAINT ab_experiment_variants_position_per_experiment UNIQUE (experiment_id, position),
    ADD CONSTRAINT ab_experiment_variants_id_experiment UNIQUE (id, experiment_id);
DROP INDEX analytics.ab_experiment_variants_one_control;
CREATE UNIQUE INDEX ab_experiment_variants_one_control ON analytics.ab_experiment_variants (experiment_id) WHERE is_control;
ALTER TABLE analytics.ab_experiment_assignments DROP CONSTRAINT ab_experiment_assignments_pkey,
    DROP CONSTRAINT ab_experiment_assignments_unit_per_phase,
    ADD CONSTRAINT ab_experiment_assignments_pkey PRIMARY KEY (id),
    ADD CONSTRAINT ab_experiment_assignments_unit_per_phase UNIQUE (experiment_id, unit_id, phase);
ALTER TABLE analytics.ab_experiment_events DROP CONSTRAINT ab_experiment_events_pkey, ADD CONSTRAINT ab_experiment_events_pkey PRIMARY KEY (id);
ALTER TABLE analytics.ab_experiment_unit_totals DROP CONSTRAINT ab_experiment_unit_totals_pkey,
    ADD CONSTRAINT ab_experiment_unit_totals_pkey PRIMARY KEY (assignment_id, metric);
ALTER TABLE analytics.anomaly_detections DROP CONSTRAINT anomaly_detections_pkey, ADD CONSTRAINT anomaly_detections_pkey PRIMARY KEY (id);
ALTER TABLE analytics.user_cohorts DROP CONSTRAINT user_cohorts_pkey,
    ADD CONSTRAINT user_cohorts_pkey PRIMARY KEY (id), ADD CONSTRAINT user_cohorts_id_owner UNIQUE (id, user_id);
ALTER TABLE analytics.user_cohort_members DROP CONSTRAINT user_cohort_members_pkey,
    ADD CONSTRAINT user_cohort_members_pkey PRIMARY KEY (cohort_id, member_id);
ALTER TABLE analytics.ab_experiment_variants ADD CONSTRAINT ab_experiment_variants_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_assignments ADD CONSTRAINT ab_experiment_assignments_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_assignments ADD CONSTRAINT ab_experiment_assignments_variant_fk FOREIGN KEY (variant_id, experiment_id)
    REFERENCES analytics.ab_experiment_variants (id, experiment_id) ON DELETE NO ACTION;
ALTER TABLE analytics.ab_experiment_events ADD CONSTRAINT ab_experiment_events_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_unit_totals ADD CONSTRAINT ab_experiment_unit_totals_assignment_id_fkey FOREIGN KEY (assignment_id)
    REFERENCES analytics.ab_experiment_assignments (id) ON DELETE CASCADE;
ALTER TABLE analytics.user_cohort_members ADD CONSTRAINT user_cohort_members_cohort_fk FOREIGN KEY (cohort_id, user_id)
    REFERENCES analytics.user_cohorts (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
CREATE OR REPLACE FUNCTION analytics._set_variants(experiment analytics.ab_experiments, variants jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n int;
    total double precision;
    controls int;
    v record;
begin
    if variants is null or jsonb_typeof(variants) <> 'array' then
        raise exception 'variants: must be a JSON array of {"key", "weight", "is_control", "name", "payload"} objects'
            using errcode = '22023';
    end if;
    n := jsonb_array_length(variants);
    if n < 2 then
        raise exception 'variants: an experiment needs at least two variants, got %', n using errcode = '22023';
    end if;
    for v in select e.value, e.ordinality - 1 as i from jsonb_array_elements(variants) with ordinality e loop
        if jsonb_typeof(v.value) <> 'object' or coalesce(v.value->>'key', '') = '' then
            raise exception 'variants[%].key: is required', v.i using errcode = '22023';
        end if;
        if v.value ? 'weight' and (jsonb_typeof(v.value->'weight') <> 'number'
                                   or (v.value->>'weight')::double precision < 0
                                   or (v.value->>'weight')::double precision > 1) then
            raise exception 'variants[%].weight: must be a number between 0 and 1, got %', v.i, v.value->'weight'
                using errcode = '22023';
        end if;
        if v.value ? 'is_control' and jsonb_typeof(v.value->'is_control') <> 'boolean' then
            raise exception 'variants[%].is_control: must be true or false', v.i using errcode = '22023';
        end if;
    end loop;
    if (select count(distinct e->>'key') from jsonb_array_elements(variants) e) <> n then
        raise exception 'variants: keys must be unique' using errcode = '22023';
    end if;
    controls := (select count(*) from jsonb_array_elements(variants) e where (e->>'is_control')::boolean);
    if controls > 1 then
        raise exception 'variants: exactly one variant can be the control, got %', controls using errcode = '22023';
    end if;
    if (select count(*) from jsonb_array_elements(variants) e where e ? 'weight') not in (0, n) then
        raise exception 'variants: give every variant a weight, or none (equal weights)' using errcode = '22023';
    end if;
    total := (select sum((e->>'weight')::double precision) from jsonb_array_elements(variants) e);
    if total is not null and abs(total - 1) > 1e-9 then
        raise exception 'variants: weights must sum to 1, got %', total using errcode = '22023';
    end if;

    delete from analytics.ab_experiment_variants where experiment_id = experiment.id
        and not exists (select 1 from analytics.ab_experiment_assignments a where a.variant_id = ab_experiment_variants.id);
    -- variants with assignments are kept (history) and updated in place by key; first moved out of the way of the
    -- unique positions and the single control
    update analytics.ab_experiment_variants set position = position + 100000, is_control = false
    where experiment_id = experiment.id;
    insert into analytics.ab_experiment_variants as t (user_id, experiment_id, key, name, position, weight, is_control, payload)
    select experiment.user_id, experiment.id, e.value->>'key', e.value->>'name', (e.ordinality - 1)::int,
           coalesce((e.value->>'weight')::double precision, 1.0 / n),
           coalesce((e.value->>'is_control')::boolean, controls = 0 and e.ordinality = 1),
           e.value->'payload'
    from jsonb_array_elements(variants) with ordinality e
    on conflict (experiment_id, key) do update set
        name = excluded.name, position = excluded.position, weight = excluded.weight,
        is_control = excluded.is_control, payload = excluded.payload;
    if (select count(*) from analytics.ab_experiment_variants where experiment_id = experiment.id) <> n then
        raise exception 'variants: a variant that already has assignments cannot be removed; keep its key (with weight 0)'
            using errcode = '55000';
    end if;
end
$$;
CREATE OR REPLACE FUNCTION analytics._transition(experiment_key text, action text, allowed_from text[], target text)
RETURNS analytics.ab_experiments
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key, true);
begin
    if not e.status = any (allowed_from) then
        raise exception 'experiment "%" is %; % needs it to be %', experiment_key, e.status, action,
            array_to_string(allowed_from, ' or ') using errcode = '55000';
    end if;
    update analytics.ab_experiments x set
        status = target,
        started_at = case when target = 'running' then coalesce(x.started_at, now()) else x.started_at end,
        ended_at = case when target in ('completed') then now() else x.ended_at end
    where x.id = e.id
    returning * into e;
    return e;
end
$$;
CREATE OR REPLACE FUNCTION analytics.complete_experiment(experiment_key text, winner text DEFAULT NULL)
RETURNS analytics.ab_experiments
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key, true);
begin
    if winner is not null and not exists (
            select 1 from analytics.ab_experiment_variants v where v.experiment_id = e.id and v.key = winner) then
        raise exception 'winner: "%" is not a variant of experiment "%"', winner, experiment_key using errcode = '22023';
    end if;
    e := analytics._transition(experiment_key, 'complete_experiment', '{running,paused}', 'completed');
    update analytics.ab_experiments x set winner_variant_key = winner where x.id = e.id returning * into e;
    return e;
end
$$;
CREATE OR REPLACE FUNCTION analytics.update_experiment_variants(experiment_key text, variants jsonb, new_phase boolean DEFAULT false)
RETURNS analytics.ab_experiments
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key, true);
begin
    if e.status in ('completed', 'archived') then
        raise exception 'experiment "%" is %; its variants can no longer change', experiment_key, e.status
            using errcode = '55000';
    end if;
    if e.status in ('running', 'paused') and not new_phase then
        raise exception 'experiment "%" is %: changing its variants or weights would move units already assigned; pass new_phase => true to start a new phase', experiment_key, e.status
            using errcode = '55000';
    end if;
    perform analytics._set_variants(e, variants);
    if e.status in ('running', 'paused') then
        update analytics.ab_experiments x set phase = x.phase + 1 where x.id = e.id returning * into e;
    end if;
    return e;
end
$$;
CREATE OR REPLACE FUNCTION analytics._assignment(experiment_key text, unit_id text, store boolean)
RETURNS analytics.variant_assignment
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    result analytics.variant_assignment;
    weights double precision[];
    variants analytics.ab_experiment_variants[];
    chosen analytics.ab_experiment_variants;
    h double precision;
    idx int;
begin
    if unit_id is null or unit_id = '' then
        raise exception 'unit_id: is required' using errcode = '22004';
    end if;
    result.experiment_key := e.key;
    result.phase := e.phase;
    result.in_experiment := false;
    result.stored := false;
    if e.status = 'completed' and e.winner_variant_key is not null then
        -- the experiment is over: everyone gets the winner
        select v.key, v.position, v.is_control, v.payload
          into result.variant_key, result.variation, result.is_control, result.payload
        from analytics.ab_experiment_variants v where v.experiment_id = e.id and v.key = e.winner_variant_key;
        return result;
    end if;
    if e.status <> 'running' then
        return result;
    end if;
    -- sticky: a unit keeps the variant it got first in this phase, whatever the weights say now
    select true, v.key, v.position, v.is_control, v.payload, a.hash_value, a.assigned_at, true
      into result.in_experiment, result.variant_key, result.variation, result.is_control, result.payload,
           result.hash_value, result.assigned_at, result.stored
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_variants v on v.id = a.variant_id
    where a.experiment_id = e.id and a.unit_id = _assignment.unit_id and a.phase = e.phase;
    if found then
        return result;
    end if;
    result.in_experiment := false;  -- SELECT INTO without a row left these NULL
    result.stored := false;
    -- one read of the variants; GrowthBook's decision (namespace, hash, coverage, weights) is made by the one
    -- implementation of it, analytics._gb_decide (Rust, checked against GrowthBook's cross-SDK cases)
    select array_agg(v.weight order by v.position), array_agg(v order by v.position) into weights, variants
    from analytics.ab_experiment_variants v where v.experiment_id = e.id;
    select d.variation, d.hash_value into idx, h
    from analytics._gb_decide(e.key, e.seed, e.hash_version, cardinality(weights), weights, e.coverage, e.namespace_name,
                              e.namespace_start, e.namespace_end, _assignment.unit_id) d;
    if not found then
        return result;
    end if;
    chosen := variants[idx + 1];
    result.hash_value := h;
    result.in_experiment := true;
    result.variant_key := chosen.key;
    result.variation := chosen.position;
    result.is_control := chosen.is_control;
    result.payload := chosen.payload;
    if store then
        insert into analytics.ab_experiment_assignments (user_id, experiment_id, variant_id, unit_id, phase, hash_value)
        values (e.user_id, e.id, chosen.id, _assignment.unit_id, e.phase, h)
        on conflict on constraint ab_experiment_assignments_unit_per_phase do nothing
        returning assigned_at into result.assigned_at;
        if not found then
            -- another session assigned this unit at the same moment: return what it stored
            return analytics._assignment(experiment_key, _assignment.unit_id, false);
        end if;
        result.stored := true;
    end if;
    return result;
end
$$;
CREATE OR REPLACE FUNCTION analytics._event_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'TRUNCATE' then
        truncate analytics.ab_experiment_unit_totals;
        return null;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        with d as (
            select a.id, o.metric, count(*) as events, sum(o.value) as total
            from old_rows o
            join analytics.ab_experiment_assignments a
              on a.user_id = o.user_id and a.unit_id = o.unit_id
             and (o.experiment_id is null or a.experiment_id = o.experiment_id) and o.occurred_at >= a.assigned_at
            group by a.id, o.metric
        ), changed as (
            update analytics.ab_experiment_unit_totals t
               set events = t.events - d.events, total = t.total - d.total
              from d
             where t.assignment_id = d.id and t.metric = d.metric and t.events > d.events
        )
        delete from analytics.ab_experiment_unit_totals t
        using d
        where t.assignment_id = d.id and t.metric = d.metric and t.events <= d.events;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        insert into analytics.ab_experiment_unit_totals as t
            (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
        select a.id, n.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(n.value)
        from new_rows n
        join analytics.ab_experiment_assignments a
          on a.user_id = n.user_id and a.unit_id = n.unit_id
         and (n.experiment_id is null or a.experiment_id = n.experiment_id) and n.occurred_at >= a.assigned_at
        group by a.id, n.metric
        on conflict (assignment_id, metric) do update
           set events = t.events + excluded.events, total = t.total + excluded.total;
    end if;
    return null;
end
$$;
CREATE OR REPLACE FUNCTION analytics._assignment_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'UPDATE' then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, true);
        end loop;
        delete from analytics.ab_experiment_unit_totals t using old_rows o where t.assignment_id = o.id;
    end if;
    for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
        perform analytics._lock_unit_bucket(b, true);
    end loop;
    insert into analytics.ab_experiment_unit_totals as t
        (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value)
    from new_rows a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, a.experiment_id, a.phase, a.variant_id, ev.metric
    on conflict (assignment_id, metric) do update
       set events = excluded.events, total = excluded.total;
    return null;
end
$$;
CREATE OR REPLACE FUNCTION analytics.rebuild_experiment_totals() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    n bigint;
begin
    lock table analytics.ab_experiment_assignments, analytics.ab_experiment_events in share mode;
    truncate analytics.ab_experiment_unit_totals;
    insert into analytics.ab_experiment_unit_totals (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value)
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, ev.metric;
    get diagnostics n = row_count;
    return n;
end
$$;

-- ---- Time-partitioned spans, undone: analytics.llm_traces unpartitioned again ------------------------------------
-- Every row (of every partition) is copied into a table as 0.1.0 has it; the partitions, their schema and their
-- functions go. The functions whose result is the table's row type are created again around the swap.
ALTER TABLE analytics.llm_traces RENAME TO llm_traces_0_2_0;
DROP FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid);
DROP FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean);
DROP FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
CREATE TABLE analytics.llm_traces (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               uuid NOT NULL DEFAULT analytics.current_user_id(),
    trace_id              text NOT NULL,
    span_id               text NOT NULL,
    parent_span_id        text,
    conversation_id       text,
    message_id            text,
    session_id            text,
    name                  text NOT NULL,
    operation_type        text NOT NULL DEFAULT 'unknown',
    status                text NOT NULL DEFAULT 'unset',
    status_message        text,
    level                 text NOT NULL DEFAULT 'default',
    start_time            timestamptz NOT NULL,
    end_time              timestamptz,
    completion_start_time timestamptz,
    duration_ms           double precision
                          GENERATED ALWAYS AS ((extract(epoch FROM (end_time - start_time)) * 1000)::double precision) STORED,
    provider              text,
    model                 text,
    input_tokens          bigint,
    output_tokens         bigint,
    total_tokens          bigint,
    cache_read_tokens     bigint,
    cache_write_tokens    bigint,
    reasoning_tokens      bigint,
    cost_usd              double precision,
    input                 jsonb,
    output                jsonb,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags                  text[] NOT NULL DEFAULT '{}'::text[],
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT llm_traces_span_key UNIQUE (user_id, trace_id, span_id),
    CONSTRAINT llm_traces_trace_id_check CHECK (length(trace_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_span_id_check CHECK (length(span_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_parent_span_id_check CHECK (parent_span_id IS NULL OR length(parent_span_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_not_own_parent CHECK (parent_span_id IS DISTINCT FROM span_id),
    CONSTRAINT llm_traces_name_check CHECK (length(name) BETWEEN 1 AND 1000),
    -- OpenTelemetry GenAI operation names (gen_ai.operation.name) plus the OpenInference span kinds that have no
    -- GenAI equivalent. Ingest maps aliases (llm, tool, agent, retriever, embedding, reranker) onto these.
    -- the enumerations are defined once, in the core crate (analytics_core::traces::ingest::{OPERATION_TYPES,
    -- STATUSES, LEVELS}); the #[pg_test] check_constraints_list_the_core_enumerations keeps these CHECKs equal to them
    CONSTRAINT llm_traces_operation_type_check CHECK (operation_type IN (
        'chat', 'text_completion', 'generate_content', 'embeddings', 'execute_tool', 'create_agent', 'invoke_agent',
        'retrieval', 'rerank', 'chain', 'guardrail', 'evaluator', 'unknown')),
    CONSTRAINT llm_traces_status_check CHECK (status IN ('ok', 'error', 'unset')),
    CONSTRAINT llm_traces_level_check CHECK (level IN ('debug', 'default', 'warning', 'error')),
    CONSTRAINT llm_traces_end_after_start CHECK (end_time >= start_time),
    CONSTRAINT llm_traces_first_token_in_span CHECK (
        completion_start_time >= start_time AND (end_time IS NULL OR completion_start_time <= end_time)),
    CONSTRAINT llm_traces_tokens_non_negative CHECK (
        input_tokens >= 0 AND output_tokens >= 0 AND total_tokens >= 0
        AND cache_read_tokens >= 0 AND cache_write_tokens >= 0 AND reasoning_tokens >= 0),
    -- In Postgres NaN sorts above every number (NaN >= 0 is true), so "< 'Infinity'" is what rejects NaN and Infinity.
    CONSTRAINT llm_traces_cost_usd_check CHECK (cost_usd >= 0 AND cost_usd < 'Infinity'::double precision),
    CONSTRAINT llm_traces_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT llm_traces_tags_check CHECK (cardinality(tags) <= 64 AND array_position(tags, NULL) IS NULL)
);

COMMENT ON TABLE analytics.llm_traces IS
'One row per span of an LLM application trace. Owner-scoped by user_id (row-level security). Write through analytics.record_span / analytics.ingest_spans / analytics.ingest_otlp or plain INSERT.';

-- The unique key (user_id, trace_id, span_id) serves "all spans of a trace"; this one serves tree walks.
CREATE INDEX llm_traces_user_trace_parent_idx ON analytics.llm_traces (user_id, trace_id, parent_span_id);
CREATE INDEX llm_traces_user_start_idx ON analytics.llm_traces (user_id, start_time DESC, id DESC);
CREATE INDEX llm_traces_user_conversation_idx ON analytics.llm_traces (user_id, conversation_id, start_time)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX llm_traces_user_session_idx ON analytics.llm_traces (user_id, session_id, start_time)
    WHERE session_id IS NOT NULL;
CREATE INDEX llm_traces_user_message_idx ON analytics.llm_traces (user_id, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX llm_traces_user_model_idx ON analytics.llm_traces (user_id, model, start_time)
    WHERE model IS NOT NULL;
CREATE INDEX llm_traces_user_operation_idx ON analytics.llm_traces (user_id, operation_type, start_time);
CREATE INDEX llm_traces_user_errors_idx ON analytics.llm_traces (user_id, start_time)
    WHERE status = 'error';
CREATE INDEX llm_traces_tags_idx ON analytics.llm_traces USING gin (tags);
CREATE INDEX llm_traces_user_duration_idx ON analytics.llm_traces (user_id, duration_ms);

CREATE TRIGGER llm_traces_touch_updated_at BEFORE UPDATE ON analytics.llm_traces
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();
INSERT INTO analytics.llm_traces (id, user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, input, output, metadata, tags, created_at, updated_at)
SELECT id, user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, input, output, metadata, tags, created_at, updated_at FROM analytics.llm_traces_0_2_0;
-- (out of the extension first, which also takes them off the list of tables pg_dump dumps the rows of; the
-- partitions maintenance made are not members and go with their parent)
ALTER EXTENSION analytics_ext DROP TABLE analytics_partitions.llm_traces_default;
ALTER EXTENSION analytics_ext DROP TABLE analytics.llm_traces_0_2_0;
-- (the default partition too, which maintenance leaves detached and empty)
DROP TABLE analytics_partitions.llm_traces_default;
DROP TABLE analytics.llm_traces_0_2_0;
DROP FUNCTION analytics.maintain_span_partitions(text, integer, interval, timestamptz);
DROP FUNCTION analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]);
DROP FUNCTION analytics._span_partition_label(timestamptz);
DROP FUNCTION analytics.span_partitions();
DROP FUNCTION analytics._span_partition_layout();
DROP FUNCTION analytics._check_one_row_per_span();
DROP FUNCTION analytics._lock_spans(uuid[], text[], text[], integer, integer, integer, integer);
DROP FUNCTION analytics._secure_span_partition(regclass);
DROP FUNCTION analytics._index_span_partition(regclass);
DROP SCHEMA analytics_partitions;
SELECT pg_catalog.pg_extension_config_dump('analytics.llm_traces', '');
CREATE TRIGGER llm_traces_cache_insert AFTER INSERT ON analytics.llm_traces REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER llm_traces_cache_update AFTER UPDATE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER llm_traces_cache_delete AFTER DELETE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER llm_traces_cache_truncate AFTER TRUNCATE ON analytics.llm_traces
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
ALTER TABLE analytics.llm_traces ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.llm_traces FORCE ROW LEVEL SECURITY;
CREATE POLICY llm_traces_select_own ON analytics.llm_traces FOR SELECT USING (user_id = (select analytics.current_user_id()));
CREATE POLICY llm_traces_insert_own ON analytics.llm_traces FOR INSERT WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY llm_traces_update_own ON analytics.llm_traces FOR UPDATE USING (user_id = (select analytics.current_user_id()))
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY llm_traces_delete_own ON analytics.llm_traces FOR DELETE USING (user_id = (select analytics.current_user_id()));
REVOKE ALL ON analytics.llm_traces FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.llm_traces TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
    user_id               uuid             DEFAULT NULL
) RETURNS analytics.llm_traces
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    stored analytics.llm_traces;
begin
    -- the same validation and upsert as a batch of one (errors name the field as spans[0].<field>)
    perform analytics.ingest_spans(jsonb_build_array(jsonb_build_object(
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
        'metadata', record_span.metadata, 'tags', to_jsonb(record_span.tags), 'user_id', record_span.user_id)));
    select t.* into stored
    from analytics.llm_traces t
    where t.user_id = coalesce(record_span.user_id, analytics.current_user_id())
      and t.trace_id = record_span.trace_id and t.span_id = record_span.span_id;
    return stored;
end
$$;
COMMENT ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid) IS
$$Stores one span (insert or update), with named arguments, and returns the stored row. Same rules as ingest_spans.
Example: select analytics.record_span(trace_id => 't1', span_id => 's1', name => 'chat', start_time => now(), model => 'gpt-4o');$$;
CREATE FUNCTION analytics."_search_spans"(
	"trace_id" TEXT DEFAULT NULL, /* Option < & str > */
	"conversation_id" TEXT DEFAULT NULL, /* Option < & str > */
	"message_id" TEXT DEFAULT NULL, /* Option < & str > */
	"session_id" TEXT DEFAULT NULL, /* Option < & str > */
	"operation_type" TEXT DEFAULT NULL, /* Option < & str > */
	"status" TEXT DEFAULT NULL, /* Option < & str > */
	"model" TEXT DEFAULT NULL, /* Option < & str > */
	"from_time" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"to_time" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"min_duration_ms" double precision DEFAULT NULL, /* Option < f64 > */
	"tag" TEXT DEFAULT NULL, /* Option < & str > */
	"after" TEXT DEFAULT NULL, /* Option < & str > */
	"limit" INT DEFAULT 50, /* Option < i32 > */
	"offset" INT DEFAULT 0, /* Option < i32 > */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS SETOF llm_traces /* :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox :: AllocatedByRust
> */
STABLE PARALLEL SAFE  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'search_spans_wrapper';
COMMENT ON FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
'Internal: the computation behind analytics.search_spans, uncached (sql/041_cache.sql).';
CREATE FUNCTION analytics.search_spans(
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
    user_id         uuid             DEFAULT NULL,
    cache           boolean          DEFAULT true
) RETURNS SETOF analytics.llm_traces
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('search_spans',
        jsonb_build_array(trace_id, conversation_id, message_id, session_id, operation_type, status, model, from_time,
                          to_time, min_duration_ms, tag, after, "limit", "offset", user_id), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._search_spans(trace_id, conversation_id, message_id, session_id,
            operation_type, status, model, from_time, to_time, min_duration_ms, tag, after, "limit", "offset", user_id);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._search_spans(search_spans.trace_id, search_spans.conversation_id, search_spans.message_id,
            search_spans.session_id, search_spans.operation_type, search_spans.status, search_spans.model,
            search_spans.from_time, search_spans.to_time, search_spans.min_duration_ms, search_spans.tag,
            search_spans.after, search_spans."limit", search_spans."offset", search_spans.user_id) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.llm_traces, c.result);
end
$$;
COMMENT ON FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean) IS
$$Spans matching all given filters, newest first (start_time desc, id desc). Keyset pagination: pass after => '<start_time>,<id>' of the last row; "limit" 1..1000 (default 50); "offset" also works.
Looks at the caller's rows (or user_id's); without a signed-in caller, at all rows the role may see (service_role). Cached 1 minute per caller (see get_trace_tree).
Example: select name, status, duration_ms from analytics.search_spans(status => 'error', "limit" => 10);$$;
REVOKE EXECUTE ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid), analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid), analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid),
                analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
                analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- Power as GrowthBook: sample_size and minimum_detectable_effect without method, as 0.1.0
DROP FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text);
DROP FUNCTION analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text);
DROP FUNCTION analytics._adjusted_interval(double precision, double precision, double precision, double precision, double precision);
DROP FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision);
CREATE FUNCTION analytics."compare_groups"(
	"control" jsonb, /* pgrx :: JsonB */
	"treatment" jsonb, /* pgrx :: JsonB */
	"metric_type" TEXT DEFAULT 'mean', /* & str */
	"relative" bool DEFAULT true, /* bool */
	"alpha" double precision DEFAULT 0.05, /* f64 */
	"cuped" bool DEFAULT false, /* bool */
	"sequential_tuning" double precision DEFAULT 5000.0, /* f64 */
	"lower_is_better" bool DEFAULT false /* bool */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compare_groups_wrapper';
REVOKE EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE FUNCTION analytics."sample_size"(
	"baseline" double precision, /* Option < f64 > */
	"mde" double precision, /* Option < f64 > */
	"metric_type" TEXT DEFAULT 'binomial', /* Option < & str > */
	"std_dev" double precision DEFAULT NULL, /* Option < f64 > */
	"relative" bool DEFAULT true, /* Option < bool > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"power" double precision DEFAULT 0.8, /* Option < f64 > */
	"variants" INT DEFAULT 2 /* Option < i32 > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sample_size_wrapper';
CREATE FUNCTION analytics."minimum_detectable_effect"(
	"baseline" double precision, /* Option < f64 > */
	"units_per_variant" bigint, /* Option < i64 > */
	"metric_type" TEXT DEFAULT 'binomial', /* Option < & str > */
	"std_dev" double precision DEFAULT NULL, /* Option < f64 > */
	"relative" bool DEFAULT true, /* Option < bool > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"power" double precision DEFAULT 0.8, /* Option < f64 > */
	"variants" INT DEFAULT 2 /* Option < i32 > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'minimum_detectable_effect_wrapper';
COMMENT ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer) IS
$$Units per variant to detect an effect of mde (relative to the baseline by default: 0.05 = +5%; relative => false for an absolute change) with the given power in a two-sided test (normal approximation, both tails, as statsmodels' NormalIndPower). std_dev of the per-unit value is required for metric_type 'mean'. With variants > 2 alpha is split over the comparisons with the control (Bonferroni).
Returns {"per_variant", "total", "per_variant_exact", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.sample_size(baseline => 0.10, mde => 0.05);$$;
COMMENT ON FUNCTION analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer) IS
$$The smallest increase (relative by default) that a test with units_per_variant units in every variant detects with the given power; the inverse of sample_size. Returns {"effect", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.minimum_detectable_effect(baseline => 0.10, units_per_variant => 20000);$$;
REVOKE EXECUTE ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer), analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer),
                analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- Result caches (undone next). The cache holds nothing that is not computed again: it is dropped with its write
-- triggers, and the read functions get back their form before it (their computations under their public names).
DO $triggers$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tg.tgname, c.relname FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
             WHERE tg.tgfoid = 'analytics._cache_note_writes()'::pg_catalog.regprocedure ORDER BY 2, 1
    LOOP
        EXECUTE format('DROP TRIGGER %I ON analytics.%I', t.tgname, t.relname);
    END LOOP;
END
$triggers$;
DROP FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid, boolean);
DROP FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean);
DROP FUNCTION analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean);
DROP FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean);
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean);
DROP FUNCTION analytics.anomaly_summary(timestamptz, timestamptz, text, uuid, boolean);
DROP FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean);
DROP FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer);
DROP FUNCTION analytics.purge_cache(boolean);
DROP FUNCTION analytics.cache_stats();
DROP FUNCTION analytics._cache_note_writes();
DROP FUNCTION analytics._cache_put(analytics.cache_lookup);
DROP FUNCTION analytics._cache_get(text, jsonb, boolean);
DROP FUNCTION analytics._cache_current(uuid, pg_snapshot, xid8);
DROP FUNCTION analytics._cache_key(name, text, jsonb);
DROP FUNCTION analytics._cache_ticket(bytea, pg_snapshot, timestamptz);
DROP FUNCTION analytics._cache_owner();
DROP FUNCTION analytics._cache_limits();
DROP FUNCTION analytics._cache_ttl(text);
DROP FUNCTION analytics._cache_count(text, boolean);
DROP FUNCTION analytics._cache_drain();
DROP FUNCTION analytics._cache_pending();
DROP TYPE analytics.cache_lookup;
DROP TABLE analytics.cache_entries;
DROP TABLE analytics.cache_writes;
DROP TABLE analytics.cache_events;
DROP TABLE analytics.cache_counters;
DROP FUNCTION analytics._anomaly_summary(timestamptz, timestamptz, text, uuid);
DROP TYPE analytics.anomaly_summary_row;
DROP FUNCTION analytics._get_trace_tree(text, integer, integer, boolean, uuid);
DROP FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
DROP FUNCTION analytics._search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
DROP FUNCTION analytics._trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid);
DROP TYPE analytics.trace_metrics_row;
DROP FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision);
DROP TYPE analytics.experiment_result_row;
CREATE FUNCTION analytics."get_trace_tree"(
	"trace_id" TEXT, /* Option < & str > */
	"max_depth" INT DEFAULT 100, /* i32 */
	"max_spans" INT DEFAULT 10000, /* i32 */
	"include_io" bool DEFAULT true, /* bool */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS jsonb /* Option < RawJsonb > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'get_trace_tree_wrapper';
CREATE FUNCTION analytics."search_spans"(
	"trace_id" TEXT DEFAULT NULL, /* Option < & str > */
	"conversation_id" TEXT DEFAULT NULL, /* Option < & str > */
	"message_id" TEXT DEFAULT NULL, /* Option < & str > */
	"session_id" TEXT DEFAULT NULL, /* Option < & str > */
	"operation_type" TEXT DEFAULT NULL, /* Option < & str > */
	"status" TEXT DEFAULT NULL, /* Option < & str > */
	"model" TEXT DEFAULT NULL, /* Option < & str > */
	"from_time" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"to_time" timestamp with time zone DEFAULT NULL, /* Option < TimestampWithTimeZone > */
	"min_duration_ms" double precision DEFAULT NULL, /* Option < f64 > */
	"tag" TEXT DEFAULT NULL, /* Option < & str > */
	"after" TEXT DEFAULT NULL, /* Option < & str > */
	"limit" INT DEFAULT 50, /* Option < i32 > */
	"offset" INT DEFAULT 0, /* Option < i32 > */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS SETOF analytics.llm_traces /* :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox :: AllocatedByRust
> */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'search_spans_wrapper';
CREATE FUNCTION analytics.search_traces(
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
    owner uuid := coalesce(search_traces.user_id, analytics.current_user_id());
    c record := analytics._parse_cursor(after);
    q text;
begin
    perform analytics._check_page("limit", "offset");
    -- a trace matches when one of its spans matches the span filters; times and duration are the trace's
    q := 'with matching as (select distinct s.user_id, s.trace_id from analytics.llm_traces s where '
        || analytics._span_filters(search_traces.trace_id, search_traces.conversation_id, message_id,
                                   search_traces.session_id, operation_type, status, model, tag, owner)
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
    return query execute q using search_traces.trace_id, search_traces.conversation_id, message_id,
        search_traces.session_id, operation_type, status, model, tag, from_time, to_time, min_duration_ms, owner,
        c.at_time, c.at_key, "limit", "offset";
end
$$;

CREATE FUNCTION analytics.trace_metrics(
    bucket         interval,
    from_time      timestamptz,
    to_time        timestamptz,
    group_by       text[]  DEFAULT '{}',
    operation_type text    DEFAULT NULL,
    root_only      boolean DEFAULT false,
    user_id        uuid    DEFAULT NULL
) RETURNS TABLE (
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
)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(trace_metrics.user_id, analytics.current_user_id());
    g text;
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
    if extract(epoch from to_time - from_time) / extract(epoch from bucket) > 100000 then
        raise exception 'bucket: % buckets between from_time and to_time; the limit is 100000',
            floor(extract(epoch from to_time - from_time) / extract(epoch from bucket)) using errcode = '22023';
    end if;
    foreach g in array coalesce(group_by, '{}') loop
        dims := dims || case g
            when 'model' then ', ''model'', s.model'
            when 'operation_type' then ', ''operation_type'', s.operation_type'
            when 'provider' then ', ''provider'', s.provider'
            when 'status' then ', ''status'', s.status'
            when 'name' then ', ''name'', s.name'
            when 'user' then ', ''user_id'', s.user_id'
            else null end;
        if dims is null then
            raise exception 'group_by: unknown dimension "%"; allowed: model, operation_type, provider, status, name, user', g
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

CREATE FUNCTION analytics.experiment_results(
    experiment_key    text,
    metric            text,
    metric_type       text             DEFAULT NULL,
    relative          boolean          DEFAULT true,
    alpha             double precision DEFAULT 0.05,
    correction        text             DEFAULT 'holm',
    phase             integer          DEFAULT NULL,
    metric_source     text             DEFAULT 'events',
    unit_source       text             DEFAULT 'metadata',
    operation_type    text             DEFAULT NULL,
    cuped             boolean          DEFAULT false,
    cuped_lookback    interval         DEFAULT '14 days',
    sequential_tuning double precision DEFAULT 5000,
    lower_is_better   boolean          DEFAULT NULL
) RETURNS TABLE (
    variant_key            text,
    is_control             boolean,
    units                  bigint,
    value                  double precision,
    effect                 double precision,
    ci_lower               double precision,
    ci_upper               double precision,
    p_value                double precision,
    adjusted_p_value       double precision,
    significant            boolean,
    chance_to_beat_control double precision,
    expected_loss          double precision,
    sequential_p_value     double precision,
    sequential_ci_lower    double precision,
    sequential_ci_upper    double precision,
    variance_reduction     double precision,
    srm_p_value            double precision,
    srm                    boolean,
    note                   text
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments := analytics._experiment(experiment_key);
    ph int := coalesce(experiment_results.phase, e.phase);
    kind text := metric_type;
    trace_kind text;
    pre interval := case when cuped then cuped_lookback else interval '0' end;
    -- trace metrics other than request_count are costs: lower is better
    lower boolean := coalesce(lower_is_better, metric_source = 'traces' and metric <> 'request_count');
    groups jsonb;
    control jsonb;
    srm_result jsonb;
    tests jsonb := '{}';
    adjusted double precision[];
    keys text[];
    g jsonb;
    t jsonb;
begin
    if metric is null or metric = '' then
        raise exception 'metric: is required' using errcode = '22004';
    end if;
    if correction is null or correction not in ('holm', 'bh', 'none') then
        raise exception 'correction: must be holm, bh or none, got %', coalesce(correction, 'NULL') using errcode = '22023';
    end if;
    if cuped is null or (cuped and (cuped_lookback is null or cuped_lookback <= interval '0')) then
        raise exception 'cuped_lookback: must be a positive interval, got %', coalesce(cuped_lookback::text, 'NULL')
            using errcode = '22023';
    end if;
    if metric_source = 'events' then
        kind := coalesce(kind, 'binomial');
        if kind not in ('binomial', 'mean') then
            raise exception 'metric_type: must be binomial (share of units with the event) or mean (event value per unit), got %',
                kind using errcode = '22023';
        end if;
    elsif metric_source = 'traces' then
        if metric not in ('latency_ms', 'error_rate', 'cost_usd', 'total_tokens', 'input_tokens', 'output_tokens', 'request_count') then
            raise exception 'metric: unknown trace metric "%"; allowed: latency_ms, error_rate, cost_usd, total_tokens, input_tokens, output_tokens, request_count',
                metric using errcode = '22023';
        end if;
        if unit_source is null or unit_source not in ('metadata', 'session_id', 'conversation_id') then
            raise exception 'unit_source: must be metadata (the span''s metadata.unit_id), session_id or conversation_id, got %',
                coalesce(unit_source, 'NULL') using errcode = '22023';
        end if;
        trace_kind := case when metric in ('latency_ms', 'error_rate') then 'ratio' else 'mean' end;
        if kind is not null and kind <> trace_kind then
            raise exception 'metric_type: the trace metric % is a % metric, got %', metric, trace_kind, kind
                using errcode = '22023';
        end if;
        kind := trace_kind;
    else
        raise exception 'metric_source: must be events (ab_experiment_events) or traces (llm_traces), got %',
            coalesce(metric_source, 'NULL') using errcode = '22023';
    end if;
    if cuped and kind = 'ratio' then
        raise exception 'cuped: is available for binomial and mean metrics, not for the ratio metric %', metric using errcode = '22023';
    end if;

    if metric_source = 'events' and not cuped then
        -- the per-unit totals kept by triggers (sql/023_experiment_totals.sql): no join of assignments and events
        select m into groups from analytics._experiment_event_moments(e.id, ph, metric, kind) m;
    else
        select m into groups
        from analytics._experiment_moments(e.id, e.key, ph, metric, kind, metric_source, unit_source, operation_type, pre) m;
    end if;

    control := (select x from jsonb_array_elements(groups) x where (x->>'is_control')::boolean);
    srm_result := analytics.srm_check(
        (select array_agg((x->'moments'->>'n')::int) from jsonb_array_elements(groups) x),
        (select array_agg((x->>'weight')::double precision) from jsonb_array_elements(groups) x));

    for g in select x from jsonb_array_elements(groups) x loop
        t := analytics.compare_groups(control->'moments', g->'moments', kind, relative, alpha, cuped, sequential_tuning, lower);
        tests := tests || jsonb_build_object(g->>'key', t);
    end loop;

    -- correct the variants' p-values for comparing several variants with one control
    select array_agg(k order by k), array_agg((tests->k->>'p_value')::double precision order by k)
      into keys, adjusted
    from jsonb_object_keys(tests) k
    where tests->k->>'p_value' is not null
      and not exists (select 1 from jsonb_array_elements(groups) x where x->>'key' = k and (x->>'is_control')::boolean);
    if correction <> 'none' and keys is not null then
        adjusted := analytics.adjust_p_values(adjusted, correction);
    end if;

    for g in select x from jsonb_array_elements(groups) x loop
        t := tests->(g->>'key');
        variant_key := g->>'key';
        is_control := (g->>'is_control')::boolean;
        units := (g->'moments'->>'n')::bigint;
        value := (t->>'treatment_value')::double precision;
        srm_p_value := (srm_result->>'p_value')::double precision;
        srm := (srm_result->>'srm')::boolean;
        if is_control then
            effect := null; ci_lower := null; ci_upper := null; p_value := null; adjusted_p_value := null;
            significant := false; chance_to_beat_control := null; expected_loss := null; sequential_p_value := null;
            sequential_ci_lower := null; sequential_ci_upper := null; variance_reduction := null;
            note := srm_result->>'note';
        else
            effect := (t->>'effect')::double precision;
            ci_lower := (t->>'ci_lower')::double precision;
            ci_upper := (t->>'ci_upper')::double precision;
            p_value := (t->>'p_value')::double precision;
            adjusted_p_value := case when keys is null then null else adjusted[array_position(keys, variant_key)] end;
            significant := coalesce(adjusted_p_value < alpha, false);
            chance_to_beat_control := (t->>'chance_to_beat_control')::double precision;
            expected_loss := (t->>'expected_loss')::double precision;
            sequential_p_value := (t->>'sequential_p_value')::double precision;
            sequential_ci_lower := (t->>'sequential_ci_lower')::double precision;
            sequential_ci_upper := (t->>'sequential_ci_upper')::double precision;
            variance_reduction := (t->>'variance_reduction')::double precision;
            note := coalesce(t->>'note', srm_result->>'note');
        end if;
        return next;
    end loop;
end
$$;

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
    perform analytics.check_rate_limit('run_anomaly_detection');
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

COMMENT ON FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid) IS
$$The trace as one nested jsonb document: {"trace_id", "span_count", "returned_spans", "truncated", "orphan_count", "cycle_count", "duration_ms", "total_tokens", "cost_usd", "error_count", "roots": [...]}.
Each span carries its columns, depth, self_ms, on_critical_path, orphan, cycle, a subtree rollup (span_count, error_count, total_tokens, cost_usd, duration_ms), children_truncated, and its children sorted by start time.
max_depth (0..1000, default 100) and max_spans (default 10000) cap the document, keeping the shallowest spans; include_io => false leaves out input/output.
NULL when the trace does not exist or is not the caller's. Example: select analytics.get_trace_tree('trace-rag-002', include_io => false);$$;
COMMENT ON FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
$$Spans matching all given filters, newest first (start_time desc, id desc). Keyset pagination: pass after => '<start_time>,<id>' of the last row; "limit" 1..1000 (default 50); "offset" also works.
Looks at the caller's rows (or user_id's); without a signed-in caller, at all rows the role may see (service_role).
Example: select name, status, duration_ms from analytics.search_spans(status => 'error', "limit" => 10);$$;
COMMENT ON FUNCTION analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
$$Traces with at least one span matching the span filters (trace_id, conversation_id, message_id, session_id, operation_type, status, model, tag), trace start within [from_time, to_time) and duration >= min_duration_ms, newest first.
Each row: root span, start/end, duration_ms, span_count, error_count, total_tokens, cost_usd, models, and the cursor to pass as after => for the next page.
Example: select trace_id, root_name, span_count, error_count from analytics.search_traces(status => 'error');$$;
COMMENT ON FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid) IS
$$Rollups per time bucket and group (group_by: model, operation_type, provider, status, name, user): request_count, error_count, error_rate, latency p50/p90/p95/p99 and time-to-first-token p50/p95 in ms, tokens and cost.
Percentiles are exact (percentile_cont). Buckets are aligned to from_time. Filters: operation_type, root_only (traces rather than spans).
Example: select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{model}');$$;
COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (holm, bh or none), significance, chance to beat control and expected loss (Bayesian, Gaussian; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial and mean metrics). Default phase: the current one.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;
REVOKE EXECUTE ON FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid),
    analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
    analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
    analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean)
    FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid),
                analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
                analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
                analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean)
                TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
DROP FUNCTION analytics.check_rate_limit(text, boolean);
DROP FUNCTION analytics._rate_limit_for(text, uuid);
DROP FUNCTION analytics._rate_limit_lock(uuid, text, boolean);
DROP FUNCTION analytics._rate_limit_rule(text, uuid);
DROP FUNCTION analytics._window_text(interval);
DROP FUNCTION analytics._caller_is_privileged();
DROP FUNCTION analytics._clock(text);
DROP FUNCTION analytics._builtin_rate_limits();
ALTER EXTENSION analytics_ext DROP TABLE analytics.rate_limits;
DROP TABLE analytics.rate_limits;
DROP TABLE analytics.rate_limit_state;
DROP TABLE analytics.rate_limit_rules_version;
DROP FUNCTION analytics._rate_limits_changed();
DROP FUNCTION analytics._rate_window_room(timestamptz[], timestamptz, interval, integer);
DROP FUNCTION analytics._rate_window_admit(timestamptz[], timestamptz, interval);
DROP FUNCTION analytics._rate_window_used(timestamptz[], timestamptz, interval);
DROP FUNCTION analytics._rate_window_retry(timestamptz[], timestamptz, interval, integer);
DROP FUNCTION analytics._rate_window_reset(timestamptz[], timestamptz, interval);

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
COMMENT ON FUNCTION analytics.equal_weights(integer) IS
$$n equal weights summing to 1 (GrowthBook's getEqualWeights); empty for n <= 0. Example: select analytics.equal_weights(3);$$;
COMMENT ON FUNCTION analytics.bucket_ranges(integer, double precision, double precision[]) IS
$$GrowthBook's getBucketRanges: an n x 2 array of [start, end) per variation. Coverage is clamped to [0, 1]; weights missing, of the wrong length, or not summing to 1 within 0.01 become equal weights; lowering coverage never moves a unit to another variation.
Example: select analytics.bucket_ranges(3, 0.5, '{0.2,0.3,0.5}');$$;
COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights: {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;
