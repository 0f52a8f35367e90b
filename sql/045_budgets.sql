-- Budgets: an owner's LLM spend limits per day or month (UTC), for all models or one model / provider, with alerts
-- at thresholds (50/80/100 % by default) written once per threshold and period and announced with
-- pg_notify('analytics_alerts'), a status an app reads before it calls an LLM, and hard budgets that make
-- analytics.check_budget answer HTTP 429 through PostgREST (the rate limiter's shape, sql/040_rate_limits.sql).
-- Spend is the sum of cost_usd of the owner's spans that started in the period (sent, or computed from prices); a
-- budget's model matches the span's model as stored (exact, or a prefix ending in '*').

CREATE TABLE analytics.budgets (
    user_id    uuid             NOT NULL DEFAULT analytics.current_user_id(),
    key        text             NOT NULL,
    amount_usd double precision NOT NULL,
    period     text             NOT NULL DEFAULT 'month',
    -- NULL: every model; an exact name or a prefix ending in '*' (as analytics.model_prices)
    model      text,
    -- NULL: every provider
    provider   text,
    -- percentages of amount_usd at which an alert fires
    thresholds double precision[] NOT NULL DEFAULT '{50,80,100}',
    -- hard: analytics.check_budget refuses (HTTP 429) once the period's spend reaches amount_usd
    hard       boolean          NOT NULL DEFAULT false,
    enabled    boolean          NOT NULL DEFAULT true,
    created_at timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT budgets_pkey PRIMARY KEY (user_id, key),
    CONSTRAINT budgets_key_check CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    CONSTRAINT budgets_amount_check CHECK (amount_usd > 0 AND amount_usd < 'Infinity'::double precision),
    CONSTRAINT budgets_period_check CHECK (period IN ('day', 'month')),
    CONSTRAINT budgets_model_check CHECK (model IS NULL OR (length(model) BETWEEN 1 AND 256 AND model <> '*')),
    CONSTRAINT budgets_thresholds_check CHECK (
        cardinality(thresholds) BETWEEN 1 AND 10 AND array_position(thresholds, NULL) IS NULL
        AND 0 < ALL (thresholds) AND 1000 >= ALL (thresholds))
);
COMMENT ON TABLE analytics.budgets IS
'An owner''s LLM spend budgets: amount_usd per period (day or month, UTC), for every model or one model (exact or prefix*) / provider; alerts at thresholds (percent of the amount, default 50, 80, 100) via analytics.evaluate_budgets; hard budgets make analytics.check_budget raise HTTP 429 once spent.';

CREATE TABLE analytics.budget_alerts (
    id           uuid             NOT NULL DEFAULT gen_random_uuid(),
    user_id      uuid             NOT NULL DEFAULT analytics.current_user_id(),
    budget_key   text             NOT NULL,
    period_start timestamptz      NOT NULL,
    threshold    double precision NOT NULL,
    spent_usd    double precision NOT NULL,
    amount_usd   double precision NOT NULL,
    fired_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT budget_alerts_pkey PRIMARY KEY (user_id, id),
    -- once per threshold and period
    CONSTRAINT budget_alerts_once UNIQUE (user_id, budget_key, period_start, threshold),
    CONSTRAINT budget_alerts_budget_fkey FOREIGN KEY (user_id, budget_key) REFERENCES analytics.budgets (user_id, key)
        ON DELETE CASCADE ON UPDATE CASCADE
);
COMMENT ON TABLE analytics.budget_alerts IS
'Thresholds of analytics.budgets crossed: one row per budget, period and threshold, written (and announced with pg_notify(''analytics_alerts'')) by analytics.evaluate_budgets. Supabase Realtime can deliver the rows.';

-- ---- spend of one budget over [from_time, to_time) ---------------------------------------------------------------------
CREATE FUNCTION analytics._budget_spent(owner uuid, model text, provider text, from_time timestamptz, to_time timestamptz)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
    select coalesce(sum(t.cost_usd), 0)
    from analytics.llm_traces t
    where t.user_id = _budget_spent.owner
      and t.start_time >= _budget_spent.from_time and t.start_time < _budget_spent.to_time
      and (_budget_spent.model is null
           or (right(_budget_spent.model, 1) = '*' and starts_with(t.model, left(_budget_spent.model, -1)))
           or t.model = _budget_spent.model)
      and (_budget_spent.provider is null or t.provider = _budget_spent.provider)
$$;
COMMENT ON FUNCTION analytics._budget_spent(uuid, text, text, timestamptz, timestamptz) IS
'The cost_usd sum of an owner''s spans that started in [from_time, to_time), of a model (exact or prefix*) and provider (NULL: any). Internal: analytics.budget_status.';

-- ---- budget_status ----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.budget_status(
    as_of   timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS TABLE (
    budget_key       text,
    period           text,
    period_start     timestamptz,
    period_end       timestamptz,
    model            text,
    provider         text,
    amount_usd       double precision,
    spent_usd        double precision,
    remaining_usd    double precision,
    used_percent     double precision,
    projected_usd    double precision,
    hard             boolean,
    exceeded         boolean,
    thresholds_crossed double precision[]
)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(budget_status.user_id, analytics.current_user_id());
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose budgets to read'
            using errcode = '42501';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    if not isfinite(as_of) or as_of >= timestamptz '294276-01-01 00:00+00' then
        raise exception 'as_of: must be a finite time before the year 294276 (the period''s end must be a timestamp), got %', as_of
            using errcode = '22023';
    end if;
    return query
    with p as (
        select b.*,
               date_trunc(b.period, as_of, 'UTC') as p_start,
               date_trunc(b.period, as_of, 'UTC') + case b.period when 'day' then interval '1 day' else interval '1 month' end as p_end
        from analytics.budgets b
        where b.user_id = owner and b.enabled
    ), s as (
        -- spans that started in the period up to and including as_of (timestamps have microsecond resolution)
        select p.*, analytics._budget_spent(owner, p.model, p.provider, p.p_start, least(p.p_end, as_of + interval '1 microsecond')) as spent
        from p
    )
    select s.key, s.period, s.p_start, s.p_end, s.model, s.provider, s.amount_usd, s.spent,
           greatest(s.amount_usd - s.spent, 0), 100 * s.spent / s.amount_usd,
           -- the period's spend at the run rate so far (elapsed share of the period)
           case when as_of > s.p_start
                then s.spent * extract(epoch from s.p_end - s.p_start) / extract(epoch from least(as_of, s.p_end) - s.p_start)
           end,
           s.hard, s.spent >= s.amount_usd,
           coalesce((select array_agg(x order by x) from unnest(s.thresholds) x where 100 * s.spent / s.amount_usd >= x), '{}')
    from s
    order by s.key;
end
$$;
COMMENT ON FUNCTION analytics.budget_status(timestamptz, uuid) IS
$$The caller's (or user_id's) enabled budgets in the period containing as_of (UTC days or months): amount, spend so far (cost_usd of the spans that started in the period up to as_of), remaining, percent used, the period's projected spend at the run rate so far, whether a hard budget is exceeded, and the thresholds crossed. An app can read it before calling an LLM; analytics.check_budget raises instead.
Example: select budget_key, spent_usd, remaining_usd, used_percent from analytics.budget_status();$$;

-- ---- evaluate_budgets: alerts at thresholds, once per threshold and period ------------------------------------------
CREATE FUNCTION analytics.evaluate_budgets(
    as_of   timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS SETOF analytics.budget_alerts
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(evaluate_budgets.user_id, analytics.current_user_id());
    st record;
    x double precision;
    done analytics.budget_alerts;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose budgets to evaluate'
            using errcode = '42501';
    end if;
    for st in select * from analytics.budget_status(as_of, owner) loop
        foreach x in array st.thresholds_crossed loop
            done := null;
            insert into analytics.budget_alerts as a (user_id, budget_key, period_start, threshold, spent_usd, amount_usd, fired_at)
            values (owner, st.budget_key, st.period_start, x, st.spent_usd, st.amount_usd, as_of)
            on conflict (user_id, budget_key, period_start, threshold) do nothing
            returning a.* into done;
            if done.id is not null then
                perform pg_catalog.pg_notify('analytics_alerts', jsonb_build_object(
                    'kind', 'budget', 'user_id', owner, 'alert_id', done.id, 'budget', st.budget_key,
                    'period_start', st.period_start, 'period_end', st.period_end, 'threshold_percent', x,
                    'spent_usd', st.spent_usd, 'amount_usd', st.amount_usd, 'hard', st.hard)::text);
                return next done;
            end if;
        end loop;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics.evaluate_budgets(timestamptz, uuid) IS
$$Checks the caller's (or user_id's, for a scheduled job without a JWT) budgets at as_of: each threshold crossed in the current period for the first time writes a row of analytics.budget_alerts and announces it once with pg_notify('analytics_alerts', json with kind 'budget'). Returns the alerts written by this run; re-running writes nothing new until another threshold or period is reached. A pg_cron job calls it (docs/operations.md#budgets).
Example: select budget_key, threshold, spent_usd from analytics.evaluate_budgets();$$;

-- ---- check_budget: HTTP 429 from a hard budget ------------------------------------------------------------------------
CREATE FUNCTION analytics.check_budget(
    model    text DEFAULT NULL,
    provider text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    st record;
    retry integer;
    info text;
    msg text;
    hnt text;
    result jsonb := '[]';
begin
    if owner is null then
        raise exception 'check_budget: no caller identity (request.jwt.claims has no sub)' using errcode = '42501';
    end if;
    for st in
        select s.* from analytics.budget_status(now(), owner) s
        where (s.model is null or check_budget.model is null
               or (right(s.model, 1) = '*' and starts_with(check_budget.model, left(s.model, -1)))
               or s.model = check_budget.model)
          and (s.provider is null or check_budget.provider is null or s.provider = check_budget.provider)
        order by s.budget_key
    loop
        if st.hard and st.exceeded then
            retry := greatest(1, ceil(extract(epoch from st.period_end - now()))::integer);
            info := jsonb_build_object('budget', st.budget_key, 'period', st.period, 'amount_usd', st.amount_usd,
                'spent_usd', st.spent_usd, 'period_end', st.period_end, 'retry_after_seconds', retry)::text;
            msg := format('budget exceeded: %s allows %s USD per %s, %s USD spent; retry after %s s',
                          st.budget_key, st.amount_usd, st.period, round(st.spent_usd::numeric, 6), retry);
            hnt := format('The budget resets at %s; raise amount_usd in analytics.budgets to allow more.', st.period_end);
            if pg_catalog.current_setting('analytics.rate_limit_sqlstate', true) = 'PT429' then
                raise sqlstate 'PT429' using message = msg, detail = info, hint = hnt;
            end if;
            raise sqlstate 'PGRST' using
                message = jsonb_build_object('code', 'budget_exceeded', 'message', msg, 'details', info, 'hint', hnt)::text,
                detail = jsonb_build_object('status', 429, 'headers',
                    jsonb_build_object('Retry-After', retry::text))::text;
        end if;
        result := result || jsonb_build_object('budget', st.budget_key, 'remaining_usd', st.remaining_usd,
            'used_percent', st.used_percent, 'hard', st.hard);
    end loop;
    return jsonb_build_object('allowed', true, 'budgets', result);
end
$$;
COMMENT ON FUNCTION analytics.check_budget(text, text) IS
$$Before an LLM call: raises SQLSTATE 'PGRST' that PostgREST (>= 12) answers with HTTP 429, Retry-After (seconds to the end of the period) and a body with code 'budget_exceeded' when a hard budget of the caller that covers this model / provider (NULL: any budget) is spent; with analytics.rate_limit_sqlstate = 'PT429' it raises PT429 (PostgREST < 12), as analytics.check_rate_limit does. Otherwise returns {"allowed": true, "budgets": [{budget, remaining_usd, used_percent, hard}]}.
Example: select analytics.check_budget('gpt-4o-mini');$$;
