-- Experiment lifecycle and sticky assignment. All SECURITY INVOKER: an experiment belongs to the account that
-- created it (user_id); row-level security lets only that account (or a service_role back end) manage it and
-- assign units to it. Call these from your back end or an edge function with the owning account's JWT.
--
-- Lifecycle:  draft --start--> running <--pause/start--> paused;  running|paused --complete--> completed;
--             draft|paused|completed --archive--> archived.   Anything else: 55000 object_not_in_prerequisite_state.

-- The result of assign_variant / peek_variant.
CREATE TYPE analytics.variant_assignment AS (
    experiment_key text,
    in_experiment  boolean,
    variant_key    text,
    variation      integer,
    is_control     boolean,
    payload        jsonb,
    hash_value     double precision,
    phase          integer,
    assigned_at    timestamptz,
    stored         boolean
);
COMMENT ON TYPE analytics.variant_assignment IS
'A unit''s variant in an experiment: in_experiment false (and no variant) when the experiment is not running or the unit is outside its coverage or namespace; stored tells whether the assignment is recorded (sticky).';

-- _experiment: the caller's experiment by key, locked when asked; P0002 when it does not exist (or is not theirs).
CREATE FUNCTION analytics._experiment(experiment_key text, lock boolean DEFAULT false)
RETURNS analytics.ab_experiments
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    e analytics.ab_experiments;
begin
    if experiment_key is null then
        raise exception 'experiment_key: is required' using errcode = '22004';
    end if;
    if lock then
        select * into e from analytics.ab_experiments x
        where x.user_id = analytics.current_user_id() and x.key = experiment_key for update;
    else
        select * into e from analytics.ab_experiments x
        where x.user_id = analytics.current_user_id() and x.key = experiment_key;
    end if;
    if not found then
        raise exception 'experiment "%" not found', experiment_key using errcode = 'P0002';
    end if;
    return e;
end
$$;

-- _set_variants: validates a variants array and (re)writes the experiment's variants.
CREATE FUNCTION analytics._set_variants(experiment analytics.ab_experiments, variants jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n int;
    total numeric;
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
        -- compared as numeric: 1e400 and 1e-400 are jsonb numbers that double precision cannot hold
        if v.value ? 'weight' and (jsonb_typeof(v.value->'weight') <> 'number'
                                   or (v.value->'weight')::numeric < 0
                                   or (v.value->'weight')::numeric > 1) then
            raise exception 'variants[%].weight: must be a number between 0 and 1, got %', v.i,
                case when length(v.value->>'weight') > 40 then left(v.value->>'weight', 20) || '... ('
                     || length(v.value->>'weight') || ' characters)' else v.value->>'weight' end
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
    total := (select sum((e->'weight')::numeric) from jsonb_array_elements(variants) e);
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
           coalesce(round((e.value->'weight')::numeric, 17)::double precision, 1.0 / n),
           coalesce((e.value->>'is_control')::boolean, controls = 0 and e.ordinality = 1),
           e.value->'payload'
    from jsonb_array_elements(variants) with ordinality e
    on conflict (experiment_id, key, user_id) do update set
        name = excluded.name, position = excluded.position, weight = excluded.weight,
        is_control = excluded.is_control, payload = excluded.payload;
    if (select count(*) from analytics.ab_experiment_variants where experiment_id = experiment.id) <> n then
        raise exception 'variants: a variant that already has assignments cannot be removed; keep its key (with weight 0)'
            using errcode = '55000';
    end if;
end
$$;

CREATE FUNCTION analytics.create_experiment(
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
    perform analytics.check_rate_limit('create_experiment', answer => false);
    if create_experiment.key is null or create_experiment.name is null or hash_version is null then
        raise exception '%: is required', case when create_experiment.key is null then 'key'
                                              when create_experiment.name is null then 'name' else 'hash_version' end
            using errcode = '22004';
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

-- _transition: moves an experiment between states, or explains why it cannot.
CREATE FUNCTION analytics._transition(experiment_key text, action text, allowed_from text[], target text)
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
    where x.id = e.id and x.user_id = e.user_id
    returning * into e;
    return e;
end
$$;

CREATE FUNCTION analytics.start_experiment(experiment_key text) RETURNS analytics.ab_experiments
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._transition(experiment_key, 'start_experiment', '{draft,paused}', 'running') $$;

CREATE FUNCTION analytics.pause_experiment(experiment_key text) RETURNS analytics.ab_experiments
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._transition(experiment_key, 'pause_experiment', '{running}', 'paused') $$;

CREATE FUNCTION analytics.archive_experiment(experiment_key text) RETURNS analytics.ab_experiments
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._transition(experiment_key, 'archive_experiment', '{draft,paused,completed}', 'archived') $$;

CREATE FUNCTION analytics.complete_experiment(experiment_key text, winner text DEFAULT NULL)
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
    update analytics.ab_experiments x set winner_variant_key = winner where x.id = e.id and x.user_id = e.user_id returning * into e;
    return e;
end
$$;

-- Changing who gets what: allowed in draft; while running or paused only together with a new phase (assignments of
-- the old phase are kept for analysis, units are assigned afresh); never after completion.
CREATE FUNCTION analytics.update_experiment_variants(experiment_key text, variants jsonb, new_phase boolean DEFAULT false)
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
        update analytics.ab_experiments x set phase = x.phase + 1 where x.id = e.id and x.user_id = e.user_id returning * into e;
    end if;
    return e;
end
$$;

-- _assignment: the variant of a unit, stored (sticky) or computed with GrowthBook's rules; stores it when asked.
CREATE FUNCTION analytics._assignment(experiment_key text, unit_id text, store boolean, attributes jsonb DEFAULT NULL)
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
    if attributes is not null and jsonb_typeof(attributes) <> 'object' then
        raise exception 'attributes: must be a JSON object of the unit''s attributes ({"country": "DE", "plan": "pro"}), got %',
            jsonb_typeof(attributes) using errcode = '22023';
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
        insert into analytics.ab_experiment_assignments (user_id, experiment_id, variant_id, unit_id, phase, hash_value,
                                                         attributes)
        values (e.user_id, e.id, chosen.id, _assignment.unit_id, e.phase, h, coalesce(_assignment.attributes, '{}'))
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

CREATE FUNCTION analytics.assign_variant(experiment_key text, unit_id text, attributes jsonb DEFAULT NULL)
RETURNS analytics.variant_assignment
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._assignment(experiment_key, unit_id, true, attributes) $$;

CREATE FUNCTION analytics.peek_variant(experiment_key text, unit_id text) RETURNS analytics.variant_assignment
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._assignment(experiment_key, unit_id, false) $$;

COMMENT ON FUNCTION analytics.create_experiment(text, text, jsonb, text, text, integer, double precision, text, double precision, double precision, text) IS
$$Creates a draft experiment owned by the caller with its variants: a JSON array of {"key", "weight", "is_control", "name", "payload"}.
At least two variants with unique keys; weights all given and summing to 1 (within 1e-9), or all left out (equal weights); at most one flagged control (none flagged: the first is the control).
Rate limited (action 'create_experiment', default 10 per hour per user; see analytics.check_rate_limit).
Example: select analytics.create_experiment('system-prompt-v2', 'Concise prompt', '[{"key":"control","weight":0.5},{"key":"concise","weight":0.5}]');$$;
COMMENT ON FUNCTION analytics.start_experiment(text) IS 'Starts (or resumes) an experiment: draft or paused -> running. Example: select analytics.start_experiment(''system-prompt-v2'');';
COMMENT ON FUNCTION analytics.pause_experiment(text) IS 'Pauses a running experiment (running -> paused): no new assignments, stored ones remain. Example: select analytics.pause_experiment(''system-prompt-v2'');';
COMMENT ON FUNCTION analytics.complete_experiment(text, text) IS 'Completes an experiment (running or paused -> completed), optionally naming the winning variant. Example: select analytics.complete_experiment(''system-prompt-v2'', winner => ''concise'');';
COMMENT ON FUNCTION analytics.archive_experiment(text) IS 'Archives an experiment that is not running (draft, paused or completed -> archived). Example: select analytics.archive_experiment(''system-prompt-v2'');';
COMMENT ON FUNCTION analytics.update_experiment_variants(text, jsonb, boolean) IS
$$Replaces an experiment's variants/weights. In draft freely; while running or paused only with new_phase => true, which starts a new phase (units are assigned afresh, earlier assignments are kept); never after completion.
Example: select analytics.update_experiment_variants('system-prompt-v2', '[{"key":"control","weight":0.2},{"key":"concise","weight":0.8}]', new_phase => true);$$;
COMMENT ON FUNCTION analytics.assign_variant(text, text, jsonb) IS
$$The unit's variant in a running experiment, with GrowthBook's rules (bit-identical to the SDKs), stored on first assignment and returned again afterwards (sticky within the phase, even if weights change). attributes (a JSON object: country, plan, browser, ...) are stored with the first assignment and kept (a later call does not change them): experiment_results breaks results down by them (dimension => 'attribute.country'), as GrowthBook's experiment dimensions. Not in the experiment (in_experiment false, nothing stored) when it is not running or the unit is outside its coverage or namespace; once completed with a winner, everyone gets the winner (in_experiment false). Two sessions assigning the same unit at once store one row.
Example: select variant_key, payload from analytics.assign_variant('system-prompt-v2', 'visitor-42', attributes => '{"country": "DE"}');$$;
COMMENT ON FUNCTION analytics.peek_variant(text, text) IS
$$Like assign_variant but stores nothing: the stored assignment if there is one, else the variant the unit would get (stored false).
Example: select variant_key, stored from analytics.peek_variant('system-prompt-v2', 'visitor-42');$$;
COMMENT ON FUNCTION analytics._experiment(text, boolean) IS 'Internal: the caller''s experiment by key (P0002 when missing).';
COMMENT ON FUNCTION analytics._set_variants(analytics.ab_experiments, jsonb) IS 'Internal: validates and writes an experiment''s variants.';
COMMENT ON FUNCTION analytics._transition(text, text, text[], text) IS 'Internal: lifecycle transition with its checks.';
COMMENT ON FUNCTION analytics._assignment(text, text, boolean, jsonb) IS 'Internal: sticky GrowthBook assignment of a unit (stored with its attributes when store).';
COMMENT ON FUNCTION analytics._gb_decide(text, text, integer, integer, double precision[], double precision, text, double precision, double precision, text) IS 'Internal: GrowthBook''s assignment decision for one unit: (variation, hash_value), or no row when the unit is not in the experiment.';


-- _experiment_unit_values: each assigned unit (one row per assignment) with its value y after assignment, the
-- denominator d for ratio metrics and, for CUPED, its value x of the same metric in the `pre` lookback before
-- assignment (and x's denominator e for a ratio metric). Inlined into the queries that read it (a set-returning SQL function without SET clauses, STABLE, one
-- SELECT: every name in it is schema-qualified), so the callers stay one query that Postgres may run in parallel.
CREATE FUNCTION analytics._experiment_unit_values(experiment_id uuid, experiment_key text, phase integer, metric text,
                                                  kind text, metric_source text, unit_source text, operation_type text,
                                                  pre interval)
RETURNS TABLE (variant_id uuid, y double precision, d double precision, x double precision, e double precision,
               assignment_id uuid)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select a.variant_id,
           case when _experiment_unit_values.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at >= a.assigned_at) > 0)::int::double precision
                else coalesce(sum(ev.value) filter (where ev.occurred_at >= a.assigned_at), 0) end as y,
           0::double precision as d,
           case when _experiment_unit_values.kind = 'binomial' then (count(ev.id) filter (where ev.occurred_at < a.assigned_at) > 0)::int::double precision
                else coalesce(sum(ev.value) filter (where ev.occurred_at < a.assigned_at), 0) end as x,
           0::double precision as e,
           a.id
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
               when 'latency_ms' then sum(s.duration_ms) filter (where s.start_time < a.assigned_at)
               when 'error_rate' then (count(*) filter (where s.start_time < a.assigned_at and s.status = 'error'))::double precision
               when 'cost_usd' then sum(s.cost_usd) filter (where s.start_time < a.assigned_at)
               when 'total_tokens' then (sum(s.total_tokens) filter (where s.start_time < a.assigned_at))::double precision
               when 'input_tokens' then (sum(s.input_tokens) filter (where s.start_time < a.assigned_at))::double precision
               when 'output_tokens' then (sum(s.output_tokens) filter (where s.start_time < a.assigned_at))::double precision
               else (count(s.id) filter (where s.start_time < a.assigned_at))::double precision end, 0),
           case _experiment_unit_values.metric
               when 'latency_ms' then count(s.duration_ms) filter (where s.start_time < a.assigned_at)
               else count(s.id) filter (where s.start_time < a.assigned_at) end::double precision,
           a.id
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

-- Dimension breakdowns (GrowthBook's dimensions): every assignment of the phase with the value of `dimension` for
-- its unit: 'assigned_date' (the UTC day of the assignment, GrowthBook's date of first exposure), 'attribute.<name>'
-- (the attribute assign_variant stored with the assignment, GrowthBook's experiment dimensions from exposures), or
-- 'model' / 'provider' / 'operation_type' (that field of the unit's first span after its assignment that names one,
-- the spans linked to units by unit_source as for trace metrics), or 'cohort:<key>' ('in <key>' for the units that
-- are members of the owner's cohort now, 'not in <key>' for the others). A unit without a value is in '(none)'. No rows when
-- dimension is NULL. Inlined into the moment functions (one SELECT, STABLE, schema-qualified names).
-- The value of a dimension of the assignment itself for one assignment (its UTC day, or an attribute given to
-- assign_variant; NULL for the trace dimensions): inlined (one expression, STABLE as to_char).
CREATE FUNCTION analytics._dimension_value(dimension text, assigned_at timestamptz, attributes jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select coalesce(case when _dimension_value.dimension = 'assigned_date'
                              then to_char(_dimension_value.assigned_at at time zone 'UTC', 'YYYY-MM-DD')
                         when _dimension_value.dimension like 'attribute.%'
                              then _dimension_value.attributes ->> substr(_dimension_value.dimension, 11) end, '(none)')
$$;
COMMENT ON FUNCTION analytics._dimension_value(text, timestamptz, jsonb) IS 'Internal: an assignment''s value of the dimension assigned_date or attribute.<name> (''(none)'' without one).';

CREATE FUNCTION analytics._experiment_unit_dimensions(experiment_id uuid, experiment_key text, phase integer,
                                                      dimension text, unit_source text)
RETURNS TABLE (assignment_id uuid, variant_id uuid, value text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select a.id, a.variant_id,
           case when _experiment_unit_dimensions.dimension in ('model', 'provider', 'operation_type')
                then coalesce(f.value, '(none)')
                when _experiment_unit_dimensions.dimension like 'cohort:%'
                -- the unit (an end user) is a member of the owner's cohort now, or not
                then case when exists (
                         select 1 from analytics.user_cohort_members m
                         join analytics.user_cohorts c on c.id = m.cohort_id and c.user_id = m.user_id
                         where c.user_id = a.user_id and c.key = substr(_experiment_unit_dimensions.dimension, 8)
                           and m.member_id = a.unit_id collate "C" and m.exited_at is null)
                     then 'in ' else 'not in ' end || substr(_experiment_unit_dimensions.dimension, 8)
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
COMMENT ON FUNCTION analytics._experiment_unit_dimensions(uuid, text, integer, text, text) IS 'Internal: each assignment''s value of a dimension of experiment_results (inlined into the moment functions).';

-- The groups of several dimension values as one, '(other)' (GrowthBook's dimensions beyond max_dimensions): the
-- moments of each variant summed (every unit is in one value, so the sums are those of the merged units).
CREATE FUNCTION analytics._experiment_merge_dimensions(dimensions jsonb[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
    with g as (
        select x->>'key' as key, (x->>'is_control')::boolean as is_control, (x->>'weight')::double precision as weight,
               t.o, x->'moments' as moments
        from unnest(_experiment_merge_dimensions.dimensions) d, jsonb_array_elements(d->'groups') with ordinality t(x, o)
    ), sums as (
        select g.key, kv.key as field, sum((kv.value #>> '{}')::double precision) as total
        from g, jsonb_each(g.moments) kv group by g.key, kv.key
    ), variants as (
        select g.key, bool_or(g.is_control) as is_control, max(g.weight) as weight, min(g.o) as position
        from g group by g.key
    )
    select jsonb_build_object('dimension', '(other)', 'groups',
               jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                            'moments', (select jsonb_object_agg(s.field, s.total) from sums s where s.key = v.key))
                         order by v.position))
    from variants v
$$;
COMMENT ON FUNCTION analytics._experiment_merge_dimensions(jsonb[]) IS 'Internal: dimension values merged into ''(other)'' by summing each variant''s moments.';

-- _experiment_moments: the moments of every variant's per-unit values, in one pass over the assignments and the
-- events or spans, as one jsonb row {"dimension", "groups": [per variant]} per value of `dimension` (one row, dimension
-- NULL, without one); values (and CUPED's pre-period values) above `cap` count as `cap` (metric capping; NULL: none).
-- A set-returning SQL function called in FROM runs its query to completion (materialize mode), so Postgres may use
-- parallel workers; PL/pgSQL's SELECT INTO and a scalar SQL function fetch row by row, which rules them out
-- (measured: 2.4 s against 1.3 s for 1M assignments and 1M events).
CREATE FUNCTION analytics._experiment_moments(experiment_id uuid, experiment_key text, phase integer, metric text, kind text,
                                              metric_source text, unit_source text, operation_type text, pre interval,
                                              cap double precision, dimension text)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    with m as (
        select dm.value as dim, c.variant_id, count(*) as n, sum(c.y) as sy, sum(c.y * c.y) as syy, sum(c.d) as sd,
               sum(c.d * c.d) as sdd, sum(c.y * c.d) as syd, sum(c.x) as sx, sum(c.x * c.x) as sxx, sum(c.x * c.y) as sxy,
               sum(c.e) as se, sum(c.e * c.e) as see, sum(c.e * c.d) as sed, sum(c.x * c.e) as sxe, sum(c.y * c.e) as sye,
               sum(c.x * c.d) as sxd
        from (select u.assignment_id, u.variant_id, least(u.y, _experiment_moments.cap) as y, u.d,
                     least(u.x, _experiment_moments.cap) as x, u.e
              from analytics._experiment_unit_values(_experiment_moments.experiment_id, _experiment_moments.experiment_key,
                       _experiment_moments.phase, _experiment_moments.metric, _experiment_moments.kind,
                       _experiment_moments.metric_source, _experiment_moments.unit_source,
                       _experiment_moments.operation_type, _experiment_moments.pre) u) c
        left join analytics._experiment_unit_dimensions(_experiment_moments.experiment_id, _experiment_moments.experiment_key,
                      _experiment_moments.phase, _experiment_moments.dimension, _experiment_moments.unit_source) dm
               on dm.assignment_id = c.assignment_id
        group by dm.value, c.variant_id
    )
    select jsonb_build_object('dimension', dl.dim, 'groups',
               jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                            'moments', jsonb_build_object(
                                                'n', coalesce(m.n, 0), 'sum', coalesce(m.sy, 0), 'sum_squares', coalesce(m.syy, 0),
                                                'den_sum', coalesce(m.sd, 0), 'den_sum_squares', coalesce(m.sdd, 0),
                                                'cross_sum', coalesce(m.syd, 0), 'pre_sum', coalesce(m.sx, 0),
                                                'pre_sum_squares', coalesce(m.sxx, 0), 'pre_cross_sum', coalesce(m.sxy, 0),
                                                'pre_den_sum', coalesce(m.se, 0), 'pre_den_sum_squares', coalesce(m.see, 0),
                                                'pre_den_cross_sum', coalesce(m.sed, 0), 'pre_ratio_cross_sum', coalesce(m.sxe, 0),
                                                'post_num_pre_den_sum', coalesce(m.sye, 0),
                                                'pre_num_post_den_sum', coalesce(m.sxd, 0)))
                         order by v.position))
    from (select m.dim from m union select null::text where _experiment_moments.dimension is null) dl
    cross join analytics.ab_experiment_variants v
    left join m on m.variant_id = v.id and m.dim is not distinct from dl.dim
    where v.experiment_id = _experiment_moments.experiment_id
    group by dl.dim
$$;
COMMENT ON FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision, text) IS 'Internal: per-variant moments of an experiment metric, in one pass, capped at cap, per value of a dimension.';

-- Quantile metrics (GrowthBook's quantile metrics): the order statistics at the 41 levels of _quantile_grid (in Rust,
-- src/experiments/sql.rs over analytics_core::experiments::analysis) and the pair of bounds for the number of values.
CREATE FUNCTION analytics._quantile_grid(quantile double precision) RETURNS double precision[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'quantile_grid_wrapper';
COMMENT ON FUNCTION analytics._quantile_grid(double precision) IS
'Internal: the levels of a quantile metric''s order statistics: the quantile, then its lower and upper bound for each n* of GrowthBook''s grid.';
CREATE FUNCTION analytics._quantile_bounds(n bigint, grid double precision[]) RETURNS double precision[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'quantile_bounds_wrapper';
COMMENT ON FUNCTION analytics._quantile_bounds(bigint, double precision[]) IS
'Internal: {n*, lower, upper} from the order statistics at _quantile_grid''s levels over n values.';

-- _experiment_quantile_moments: per variant, what gbstats' QuantileStatistic (kind 'quantile': a quantile of the units'
-- values) or QuantileClusteredStatistic (kind 'quantile_event': a quantile of every event's or span's value, the events
-- clustered in their units) needs, as the groups of _experiment_moments: n = the variant's units, quantile_n = the
-- values the quantile is over, the sample quantile and the bounds (percentile_cont: GrowthBook's PERCENTILE_CONT on
-- Postgres); for an event quantile, sums over units of the unit's events at or below the quantile (sum, sum_squares),
-- of its events (den_sum, den_sum_squares) and of their product (cross_sum). Values of 0 are left out with
-- ignore_zeros (GrowthBook's "ignore zeros"); NULL values (a unit without spans for a per-span average) always.
CREATE FUNCTION analytics._experiment_quantile_moments(experiment_id uuid, experiment_key text, phase integer, metric text,
                                                       kind text, metric_source text, unit_source text,
                                                       operation_type text, quantile double precision,
                                                       ignore_zeros boolean, dimension text)
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
    with dims as (
        select dm.assignment_id, dm.value
        from analytics._experiment_unit_dimensions(_experiment_quantile_moments.experiment_id,
                 _experiment_quantile_moments.experiment_key, _experiment_quantile_moments.phase,
                 _experiment_quantile_moments.dimension, _experiment_quantile_moments.unit_source) dm
    ),
    units as (
        -- one value per unit: its events' total, a trace metric's total, or its per-span average (latency, errors)
        select dm.value as dim, u.variant_id,
               case when _experiment_quantile_moments.metric_source = 'traces'
                         and _experiment_quantile_moments.metric in ('latency_ms', 'error_rate')
                    then u.y / nullif(u.d, 0) else u.y end as y
        from analytics._experiment_unit_values(_experiment_quantile_moments.experiment_id,
                 _experiment_quantile_moments.experiment_key, _experiment_quantile_moments.phase,
                 _experiment_quantile_moments.metric, 'mean', _experiment_quantile_moments.metric_source,
                 _experiment_quantile_moments.unit_source, _experiment_quantile_moments.operation_type, interval '0') u
        left join dims dm on dm.assignment_id = u.assignment_id
        where _experiment_quantile_moments.kind = 'quantile'
    ),
    assigned as (
        select a.id, a.variant_id, a.unit_id, a.user_id, a.experiment_id, a.assigned_at, dm.value as dim
        from analytics.ab_experiment_assignments a
        left join dims dm on dm.assignment_id = a.id
        where _experiment_quantile_moments.kind = 'quantile_event'
          and a.experiment_id = _experiment_quantile_moments.experiment_id and a.phase = _experiment_quantile_moments.phase
    ),
    events as (
        -- one value per event after the unit's assignment, or per span (its duration, cost or tokens)
        select a.id as unit, a.dim, a.variant_id, ev.value as y
        from assigned a
        join analytics.ab_experiment_events ev
          on ev.user_id = a.user_id and ev.unit_id = a.unit_id and ev.metric = _experiment_quantile_moments.metric
         and (ev.experiment_id = a.experiment_id or ev.experiment_id is null) and ev.occurred_at >= a.assigned_at
        where _experiment_quantile_moments.metric_source = 'events'
        union all
        select a.id, a.dim, a.variant_id,
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
        select e.unit, e.dim, e.variant_id, e.y from events e
        where e.y is not null and (not _experiment_quantile_moments.ignore_zeros or e.y <> 0)
    ),
    grids as (
        select c.dim, c.variant_id, count(*) as n,
               percentile_cont(analytics._quantile_grid(_experiment_quantile_moments.quantile)) within group (order by c.y) as grid
        from counted c group by c.dim, c.variant_id
        union all
        select u.dim, u.variant_id, count(*),
               percentile_cont(analytics._quantile_grid(_experiment_quantile_moments.quantile)) within group (order by u.y)
        from units u
        where u.y is not null and (not _experiment_quantile_moments.ignore_zeros or u.y <> 0)
        group by u.dim, u.variant_id
    ),
    clusters as (
        -- per unit: its events at or below its variant's quantile (b) and its events (c), then sums over units
        select pu.dim, pu.variant_id, count(*) as k, sum(pu.b) as sb, sum(pu.b * pu.b) as sbb, sum(pu.c) as sc,
               sum(pu.c * pu.c) as scc, sum(pu.b * pu.c) as sbc
        from (select a.dim, a.variant_id, a.id,
                     count(c.y) filter (where c.y <= g.grid[1])::double precision as b,
                     count(c.y)::double precision as c
              from assigned a
              left join counted c on c.unit = a.id
              left join grids g on g.variant_id = a.variant_id and g.dim is not distinct from a.dim
              group by a.dim, a.variant_id, a.id) pu
        group by pu.dim, pu.variant_id
    ),
    unit_counts as (
        select u.dim, u.variant_id, count(*) as k from units u group by u.dim, u.variant_id
    ),
    dim_list as (
        select uc.dim from unit_counts uc
        union select cl.dim from clusters cl
        union select null::text where _experiment_quantile_moments.dimension is null
    )
    select jsonb_build_object('dimension', dl.dim, 'groups',
               jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                            'moments', jsonb_build_object(
                                                'n', coalesce(cl.k, uc.k, 0),
                                                'sum', coalesce(cl.sb, 0), 'sum_squares', coalesce(cl.sbb, 0),
                                                'den_sum', coalesce(cl.sc, 0), 'den_sum_squares', coalesce(cl.scc, 0),
                                                'cross_sum', coalesce(cl.sbc, 0),
                                                'quantile_level', _experiment_quantile_moments.quantile,
                                                'quantile_n', coalesce(g.n, 0), 'quantile_nstar', coalesce(b.b[1], 100),
                                                'quantile', coalesce(g.grid[1], 0), 'quantile_lower', coalesce(b.b[2], 0),
                                                'quantile_upper', coalesce(b.b[3], 0)))
                         order by v.position))
    from dim_list dl
    cross join analytics.ab_experiment_variants v
    left join grids g on g.variant_id = v.id and g.dim is not distinct from dl.dim
    left join clusters cl on cl.variant_id = v.id and cl.dim is not distinct from dl.dim
    left join unit_counts uc on uc.variant_id = v.id and uc.dim is not distinct from dl.dim
    cross join lateral (select analytics._quantile_bounds(g.n, g.grid) as b) b
    where v.experiment_id = _experiment_quantile_moments.experiment_id
    group by dl.dim
$$;
COMMENT ON FUNCTION analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean, text) IS
'Internal: per-variant order statistics of a quantile metric (and, for an event quantile, its clusters), in one query, per value of a dimension.';

-- The dimension arguments of experiment_results and experiment_report, checked (22023 naming the argument).
CREATE FUNCTION analytics._check_dimension(dimension text, max_dimensions integer) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    if dimension is not null and dimension not in ('assigned_date', 'model', 'provider', 'operation_type')
       and not (dimension like 'attribute.%' and length(dimension) between 11 and 210)
       and not (dimension like 'cohort:%' and length(dimension) between 8 and 207) then
        raise exception 'dimension: unknown dimension "%"; allowed: assigned_date, attribute.<name> (an attribute given to assign_variant), model, provider, operation_type (of the unit''s first span after assignment), cohort:<key> (members of a cohort or not)',
            dimension using errcode = '22023';
    end if;
    if dimension like 'cohort:%' and not exists (select 1 from analytics.user_cohorts c where c.key = substr(dimension, 8)) then
        raise exception 'dimension: no cohort "%"', substr(dimension, 8) using errcode = 'P0002';
    end if;
    if max_dimensions is null or max_dimensions < 1 then
        raise exception 'max_dimensions: must be at least 1 (the dimension values shown, the rest merged into "(other)"), got %',
            coalesce(max_dimensions::text, 'NULL') using errcode = '22023';
    end if;
end
$$;
COMMENT ON FUNCTION analytics._check_dimension(text, integer) IS 'Internal: checks experiment_results'' dimension and max_dimensions.';

-- ---- experiment_results: every variant against the control on one metric, from events or from traces ----------
-- One row of analytics.experiment_results (sql/041_cache.sql caches it).
CREATE TYPE analytics.experiment_result_row AS (
    variant_key            text,
    is_control             boolean,
    units                  bigint,
    value                  double precision,
    effect                 double precision,
    ci_lower               double precision,
    ci_upper               double precision,
    p_value                double precision,
    adjusted_p_value       double precision,
    ci_lower_adjusted      double precision,
    ci_upper_adjusted      double precision,
    significant            boolean,
    chance_to_beat_control double precision,
    expected_loss          double precision,
    sequential_p_value     double precision,
    sequential_ci_lower    double precision,
    sequential_ci_upper    double precision,
    variance_reduction     double precision,
    srm_p_value            double precision,
    srm                    boolean,
    note                   text,
    capped_at              double precision,
    std_error              double precision,
    control_risk           double precision,
    dimension              text
);
COMMENT ON TYPE analytics.experiment_result_row IS 'One variant of analytics.experiment_results.';

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
          and dimension is distinct from 'provider' and dimension is distinct from 'operation_type'
          and (dimension is null or dimension not like 'cohort:%') then
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

COMMENT ON FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text) IS
'Internal: the computation behind analytics.experiment_results, uncached (sql/041_cache.sql).';

-- ---- experiment_report: goal and guardrail metrics in one document (cached: sql/041_cache.sql) -----------------
-- Each metric is experiment_results without a correction; the correction then covers every variant of every goal
-- metric together (GrowthBook corrects across variations and goal metrics, not guardrails), with the intervals that go
-- with the corrected p-values. A guardrail fails when a variant is significantly worse on it.
CREATE FUNCTION analytics._experiment_report(
    experiment_key    text,
    goal_metrics      jsonb,
    guardrail_metrics jsonb            DEFAULT '[]',
    correction        text             DEFAULT 'none',
    alpha             double precision DEFAULT 0.05,
    relative          boolean          DEFAULT true,
    sequential        boolean          DEFAULT false,
    phase             integer          DEFAULT NULL,
    dimension         text             DEFAULT NULL,
    max_dimensions    integer          DEFAULT 20,
    alternative       text             DEFAULT 'two-sided'
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
    perform analytics._check_dimension(dimension, max_dimensions);
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
                    (spec->>'quantile')::double precision, coalesce((spec->>'quantile_ignore_zeros')::boolean, false),
                    dimension, max_dimensions, alternative) with ordinality r;
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

    -- one correction over every variant of every goal metric in every dimension value (NULL p-values, a test without a
    -- result, count as 1)
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
                if correction <> 'none' and rec->>'p_value' is not null and rec->>'effect' is not null then
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

    -- the variants' units (summed over the dimension values, each unit being in one) and the sample ratio check of
    -- the whole experiment (with a dimension, each value's own check is in its rows)
    select jsonb_agg(jsonb_build_object('key', u.key, 'is_control', u.is_control, 'units', u.units) order by u.position),
           analytics.srm_check(array_agg(u.units::int order by u.position), array_agg(u.weight order by u.position))
      into rows, rec
    from (select v.key, v.is_control, v.position, v.weight, coalesce(sum((x->>'units')::bigint), 0) as units
          from analytics.ab_experiment_variants v
          left join jsonb_array_elements(first_rows) x on x->>'variant_key' = v.key
          where v.experiment_id = e.id
          group by v.key, v.is_control, v.position, v.weight) u;
    return jsonb_build_object(
        'experiment', e.key, 'status', e.status, 'phase', coalesce(_experiment_report.phase, e.phase),
        'correction', correction, 'alpha', alpha, 'relative', relative, 'sequential', sequential,
        'dimension', dimension, 'alternative', alternative,
        'variants', rows,
        'srm', jsonb_build_object('p_value', (rec->>'p_value')::double precision, 'srm', (rec->>'srm')::boolean),
        'goals', (select jsonb_agg(g - 'spec') from jsonb_array_elements(goals) g),
        'guardrails', coalesce((select jsonb_agg(g - 'spec') from jsonb_array_elements(guards) g), '[]'));
end
$$;
COMMENT ON FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text) IS
'Internal: the computation behind analytics.experiment_report, uncached (sql/041_cache.sql).';
