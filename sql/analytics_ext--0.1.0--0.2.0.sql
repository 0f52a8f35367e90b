-- analytics_ext 0.1.0 -> 0.2.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.2.0')
--
-- Every change to the SQL surface made after the 0.1.0 release goes here, in the order it is made, and its undoing
-- into analytics_ext--0.2.0--0.1.0.sql. tests/integration/upgrade_test.sh checks that 0.1.0 updated by this script
-- has exactly the schema of a fresh 0.2.0 install, that the downgrade gives exactly a fresh 0.1.0, and that every
-- row survives 0.1.0 -> 0.2.0 -> 0.1.0 -> 0.2.0.
--
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.2.0'" to load this file. \quit

-- Statistics as GrowthBook computes them (binomial t-test of the reported effect; SRM skips zero-weight groups):
-- the code is in the shared library, the SQL surface changes only in the functions' documentation.
COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true.
Returns the test (binomial: GrowthBook's t-test of the reported effect with variances p(1 - p) and Welch's df; mean: Welch; ratio: Welch on delta-method variances; relative lift by default) with control_value, treatment_value, chance_to_beat_control and expected_loss (Gaussian posterior, flat prior; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;
COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights, as GrowthBook's check_srm (a group with weight 0 is left out of the sum): {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;

-- Retention policies per owner and analytics.apply_retention() (sql/012_retention.sql), with what 900_security.sql
-- gives every table and function on a fresh install
CREATE TABLE analytics.retention_policies (
    user_id    uuid PRIMARY KEY,
    keep_days  integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_policies_keep_days_check CHECK (keep_days BETWEEN 1 AND 36500)
);
COMMENT ON TABLE analytics.retention_policies IS
'How many days of spans each owner keeps (e.g. 30 for a free plan); analytics.apply_retention() deletes older spans. Written by the DBA or service_role; owners read their own.';

CREATE FUNCTION analytics.apply_retention(default_keep_days integer DEFAULT NULL, as_of timestamptz DEFAULT now())
RETURNS TABLE (user_id uuid, keep_days integer, spans_deleted bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if default_keep_days is not null and (default_keep_days < 1 or default_keep_days > 36500) then
        raise exception 'default_keep_days: must be between 1 and 36500 days, or NULL to keep spans of owners without a policy, got %',
            default_keep_days using errcode = '22023';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    -- each owner's limit: their policy, else the default (none: kept); spans that started before it are deleted
    return query
    with limits as (
        select o.user_id, coalesce(p.keep_days, default_keep_days) as keep_days
        from (select distinct t.user_id from analytics.llm_traces t) o
        left join analytics.retention_policies p on p.user_id = o.user_id
    ), deleted as (
        delete from analytics.llm_traces t
        using limits l
        where t.user_id = l.user_id and l.keep_days is not null
          and t.start_time < apply_retention.as_of - make_interval(days => l.keep_days)
        returning t.user_id
    )
    select l.user_id, l.keep_days, count(d.user_id)
    from limits l left join deleted d on d.user_id = l.user_id
    where l.keep_days is not null
    group by l.user_id, l.keep_days
    order by l.user_id;
end
$$;
COMMENT ON FUNCTION analytics.apply_retention(integer, timestamptz) IS
$$Deletes every owner's spans that started more than keep_days before as_of: keep_days from analytics.retention_policies, else default_keep_days (NULL: spans of owners without a policy are kept). Returns one row per owner with a limit: user_id, keep_days, spans_deleted. For the DBA or a pg_cron job (not granted to API roles); under row-level security a caller deletes only rows it may see.
Example: select * from analytics.apply_retention(default_keep_days => 90);$$;
ALTER TABLE analytics.retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.retention_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY retention_policies_select_own ON analytics.retention_policies FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_insert_own ON analytics.retention_policies FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_update_own ON analytics.retention_policies FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_delete_own ON analytics.retention_policies FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.retention_policies'::regclass, '');
REVOKE ALL ON analytics.retention_policies FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION analytics.apply_retention(integer, timestamptz) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON analytics.retention_policies TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.retention_policies TO service_role;
    END IF;
END
$grants$;

-- Rate limits (sql/040_rate_limits.sql): the limits, the limiter's state and functions, as a fresh install has them
CREATE TABLE analytics.rate_limits (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid,
    action            text NOT NULL,
    max_calls         integer,
    per               interval NOT NULL,
    exempt_privileged boolean NOT NULL DEFAULT true,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rate_limits_owner_action_key UNIQUE NULLS NOT DISTINCT (user_id, action),
    CONSTRAINT rate_limits_action_check CHECK (action ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT rate_limits_max_calls_check CHECK (max_calls BETWEEN 1 AND 100000),
    CONSTRAINT rate_limits_per_check CHECK (per >= interval '1 second' AND per <= interval '1 day')
);
COMMENT ON TABLE analytics.rate_limits IS
$$Rate limits per action: max_calls (NULL: unlimited) in any rolling window of length per. user_id NULL: the default for every owner (overrides the built-in default of ingest, create_experiment, run_anomaly_detection); user_id set: that owner's plan. exempt_privileged: superusers and service_role (roles with BYPASSRLS) are not limited. Written by the DBA or service_role; owners read their own rows and the defaults.$$;

CREATE TRIGGER rate_limits_touch_updated_at BEFORE UPDATE ON analytics.rate_limits
FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

CREATE UNLOGGED TABLE analytics.rate_limit_state (
    user_id  uuid NOT NULL,
    action   text NOT NULL,
    admitted timestamptz[] NOT NULL,
    PRIMARY KEY (user_id, action)
);
COMMENT ON TABLE analytics.rate_limit_state IS
'Per owner and action, the times of the calls admitted within the current window, oldest first; kept by analytics.check_rate_limit(). UNLOGGED: emptied by a crash, which resets the limits and loses no data. Owners read their own; nobody but the limiter writes it.';

-- The built-in defaults, used for an action without a row in analytics.rate_limits.
-- (No SET clause: it is inlined into the queries of the limiter, whose search_path is ''; its body is constants.)
CREATE FUNCTION analytics._builtin_rate_limits(OUT action text, OUT max_calls integer, OUT per interval)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    values ('ingest', 100, interval '1 minute'),
           ('create_experiment', 10, interval '1 hour'),
           ('run_anomaly_detection', 60, interval '1 hour')
$$;
COMMENT ON FUNCTION analytics._builtin_rate_limits() IS
'The built-in rate limits: ingest 100 per minute (ingest_spans, ingest_otlp, record_span), create_experiment 10 per hour, run_anomaly_detection 60 per hour. A row in analytics.rate_limits overrides them. Internal.';

-- The limiter's clock: clock_timestamp(), or the test clock analytics.rate_limit_clock, which only a session
-- whose login role is a superuser may use (tests move time without sleeping; an API caller cannot move it).
CREATE FUNCTION analytics._rate_limit_now() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
SET search_path = ''
AS $$
declare
    clock text := current_setting('analytics.rate_limit_clock', true);
begin
    if clock is null or clock = '' then
        return pg_catalog.clock_timestamp();
    end if;
    if not coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = session_user), false) then
        raise exception 'analytics.rate_limit_clock: the test clock may only be set in a superuser''s session'
            using errcode = '42501';
    end if;
    return clock::timestamptz;
end
$$;
COMMENT ON FUNCTION analytics._rate_limit_now() IS
'The rate limiter''s clock: clock_timestamp(), or the setting analytics.rate_limit_clock in a superuser''s session (tests). Internal.';

-- A window as people write it ('1 minute', '10 seconds', '1 hour'), whatever the session's IntervalStyle.
CREATE FUNCTION analytics._window_text(per interval) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = ''
AS $$
    select case when s % 86400 = 0 then (s / 86400) || ' day' when s % 3600 = 0 then (s / 3600) || ' hour'
                when s % 60 = 0 then (s / 60) || ' minute' else s || ' second' end
           || case when s in (1, 60, 3600, 86400) then '' else 's' end
    from (select ceil(extract(epoch from per))::bigint as s) w
$$;
COMMENT ON FUNCTION analytics._window_text(interval) IS
'A rate-limit window as text (''1 minute'', ''10 seconds''), independent of IntervalStyle. Internal.';

-- The limit that applies to the caller for an action, and whether the caller is exempt from it. PL/pgSQL so that
-- its plans are cached (a SQL function with a SET clause is planned again on every call: 200 us).
CREATE FUNCTION analytics._rate_limit_for(action text, owner uuid,
    OUT max_calls integer, OUT per interval, OUT exempt boolean, OUT defined boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    -- the owner's row, else the default row (user_id NULL sorts last), else the built-in default
    select l.max_calls, l.per, l.exempt_privileged into max_calls, per, exempt
    from analytics.rate_limits l
    where l.action = _rate_limit_for.action and (l.user_id = _rate_limit_for.owner or l.user_id is null)
    order by l.user_id nulls last
    limit 1;
    defined := found;
    if not defined then
        select b.max_calls, b.per, true into max_calls, per, exempt
        from analytics._builtin_rate_limits() b where b.action = _rate_limit_for.action;
        defined := found;
    end if;
    if exempt then
        -- the role the call runs as: inside a SECURITY DEFINER function current_user is its owner, while the setting
        -- role is what PostgREST's SET LOCAL ROLE (or a psql SET ROLE) chose
        exempt := coalesce((select r.rolsuper or r.rolbypassrls from pg_catalog.pg_roles r
                            where r.rolname = coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user)),
                           false);
    end if;
end
$$;
COMMENT ON FUNCTION analytics._rate_limit_for(text, uuid) IS
'The rate limit of an action for an owner (their row, else the default row, else the built-in default; defined = false when none) and whether the calling role is exempt from it. Internal.';

CREATE FUNCTION analytics.check_rate_limit(action text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    rule record;
    read_only boolean := pg_catalog.current_setting('transaction_read_only')::boolean;
    adm timestamptz[];
    n integer;
    i integer := 1;
    used integer;
    t timestamptz;
    retry integer;
    window_s double precision;
    info text;
    win text;
    msg text;
    hnt text;
begin
    if check_rate_limit.action is null then
        raise exception 'action: is required' using errcode = '22004';
    end if;
    select * into rule from analytics._rate_limit_for(check_rate_limit.action, owner);
    if not rule.defined then
        raise exception 'action: no rate limit is defined for "%"; insert one into analytics.rate_limits (built-in: ingest, create_experiment, run_anomaly_detection)',
            check_rate_limit.action using errcode = 'P0002';
    end if;
    -- the writing function that called us may now proceed (see analytics._ingest_spans)
    perform pg_catalog.set_config('analytics.rate_limit_admitted', check_rate_limit.action, true);
    -- not limited: no owner to count against (a DBA's session, a back end without a user), an exempt role, no limit
    if owner is null or rule.exempt or rule.max_calls is null then
        return jsonb_build_object('action', check_rate_limit.action, 'limited', false);
    end if;

    if read_only then
        -- a READ ONLY transaction (PostgREST GET, a read replica) can check but not record: nothing is consumed
        select s.admitted into adm from analytics.rate_limit_state s
        where s.user_id = owner and s.action = check_rate_limit.action;
    else
        -- one admission at a time per owner and action: the row lock is held until the caller's transaction ends,
        -- so a concurrent call counts this one once it commits (or not at all if it rolls back)
        select s.admitted into adm from analytics.rate_limit_state s
        where s.user_id = owner and s.action = check_rate_limit.action for update;
        if not found then
            insert into analytics.rate_limit_state (user_id, action, admitted)
            values (owner, check_rate_limit.action, '{}') on conflict do nothing;
            select s.admitted into adm from analytics.rate_limit_state s
            where s.user_id = owner and s.action = check_rate_limit.action for update;
        end if;
    end if;
    adm := coalesce(adm, '{}');
    n := coalesce(array_length(adm, 1), 0);
    -- now, after the lock, never before the last admission: the times stay in order
    t := greatest(analytics._rate_limit_now(), adm[n]);
    while i <= n and adm[i] <= t - rule.per loop
        i := i + 1;
    end loop;
    used := n - i + 1;
    window_s := extract(epoch from rule.per);

    if used >= rule.max_calls then
        -- a slot frees when the admission at position used - max_calls + 1 of the window leaves it
        win := analytics._window_text(rule.per);
        retry := greatest(1, ceil(extract(epoch from adm[i + used - rule.max_calls] + rule.per - t))::integer);
        info := jsonb_build_object('action', check_rate_limit.action, 'limit', rule.max_calls,
            'window', win, 'window_seconds', window_s, 'remaining', 0,
            'retry_after_seconds', retry)::text;
        msg := format('rate limit exceeded: %s allows %s calls per %s; retry after %s s',
                      check_rate_limit.action, rule.max_calls, win, retry);
        hnt := format('Retry after %s seconds.', retry);
        if pg_catalog.current_setting('analytics.rate_limit_sqlstate', true) = 'PT429' then
            -- PostgREST < 12: the status without headers
            raise sqlstate 'PT429' using message = msg, detail = info, hint = hnt;
        end if;
        raise sqlstate 'PGRST' using
            message = jsonb_build_object('code', 'rate_limited', 'message', msg, 'details', info, 'hint', hnt)::text,
            detail = jsonb_build_object('status', 429, 'headers', jsonb_build_object(
                'Retry-After', retry::text, 'RateLimit-Limit', rule.max_calls::text, 'RateLimit-Remaining', '0',
                'RateLimit-Reset', retry::text,
                'RateLimit-Policy', format('%s;w=%s', rule.max_calls, ceil(window_s)::bigint)))::text;
    end if;

    if not read_only then
        update analytics.rate_limit_state s set admitted = adm[i:n] || t
        where s.user_id = owner and s.action = check_rate_limit.action;
        used := used + 1;
    end if;
    return jsonb_build_object('action', check_rate_limit.action, 'limited', true, 'limit', rule.max_calls,
        'window_seconds', window_s, 'remaining', rule.max_calls - used,
        'reset_seconds', ceil(extract(epoch from coalesce(adm[i], t) + rule.per - t))::integer);
end
$$;
COMMENT ON FUNCTION analytics.check_rate_limit(text) IS
$$Admits one call of an action for the caller (the JWT's sub) under its rate limit (analytics.rate_limits, else the built-in default), or rejects it: RAISE SQLSTATE 'PGRST' that PostgREST (>= 12) answers with HTTP 429 and the headers Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy; the body's details (JSON text) has action, limit, window, window_seconds, remaining and retry_after_seconds. With the setting analytics.rate_limit_sqlstate = 'PT429' it raises SQLSTATE PT429 (PostgREST < 12: status 429, no headers). Exact sliding window: never more than max_calls admitted in any window of length per. A rejection rolls back the transaction, so it consumes nothing. Not limited: callers without a sub, superusers and service_role (unless the limit says exempt_privileged = false). In a READ ONLY transaction it only checks. An action without any limit raises P0002.
Returns {"action", "limited", "limit", "window_seconds", "remaining", "reset_seconds"}. ingest_spans, ingest_otlp, record_span, create_experiment and run_anomaly_detection call it; a Supabase project may call it from its own db_pre_request function for actions of its own.
Example: select analytics.check_rate_limit('ingest');$$;

CREATE FUNCTION analytics.rate_limit_status()
RETURNS TABLE (action text, max_calls integer, per interval, used integer, remaining integer, reset_at timestamptz,
               exempt boolean)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    t timestamptz := analytics._rate_limit_now();
begin
    if owner is null then
        raise exception 'no user: call with a JWT whose claims have a sub (request.jwt.claims)' using errcode = '42501';
    end if;
    return query
    with actions as (
        select b.action from analytics._builtin_rate_limits() b
        union
        select l.action from analytics.rate_limits l where l.user_id = owner or l.user_id is null
    )
    select a.action, r.max_calls, r.per,
           w.used, case when r.max_calls is not null then greatest(r.max_calls - w.used, 0) end,
           w.oldest + r.per, r.exempt
    from actions a
    cross join lateral analytics._rate_limit_for(a.action, owner) r
    left join analytics.rate_limit_state s on s.user_id = owner and s.action = a.action
    cross join lateral (
        select count(x)::integer as used, min(x) as oldest
        from unnest(coalesce(s.admitted, '{}')) x where x > t - r.per
    ) w
    order by a.action;
end
$$;
COMMENT ON FUNCTION analytics.rate_limit_status() IS
$$The caller's rate limits, one row per action: max_calls (NULL: unlimited) per window, calls used in the current window, remaining, reset_at (when the oldest counted call leaves the window; NULL when none is counted) and exempt (the calling role is not limited).
Example: select * from analytics.rate_limit_status();$$;

-- analytics.ingest_spans and analytics.ingest_otlp become PL/pgSQL (the limiter first) around the Rust
-- implementations analytics._ingest_spans / _ingest_otlp (new symbols; the 0.1.0 symbols stay in the library)
DROP FUNCTION analytics.ingest_spans(jsonb);
DROP FUNCTION analytics.ingest_otlp(jsonb);
CREATE FUNCTION analytics."_ingest_otlp"(
	"payload" jsonb /* Option < JsonbText > */
) RETURNS jsonb /* pgrx :: JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ingest_otlp_admitted_wrapper';
CREATE FUNCTION analytics."_ingest_spans"(
	"spans" jsonb /* Option < RawJsonb > */
) RETURNS jsonb /* pgrx :: JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ingest_spans_admitted_wrapper';
-- The ingest functions: the limiter first, then the Rust implementation (analytics._ingest_spans/_ingest_otlp,
-- which refuse to run unless check_rate_limit admitted the call in this transaction: calling them directly through
-- PostgREST cannot skip the limit).
CREATE FUNCTION analytics.ingest_spans(spans jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    perform analytics.check_rate_limit('ingest');
    return analytics._ingest_spans(spans);
end
$$;

CREATE FUNCTION analytics.ingest_otlp(payload jsonb) RETURNS jsonb
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

COMMENT ON FUNCTION analytics.ingest_otlp(jsonb) IS
$$Stores the spans of an OpenTelemetry OTLP/JSON ExportTraceServiceRequest ({"resourceSpans": [...]}): hex ids, unix-nano times, status codes; gen_ai.* and OpenInference attributes map to columns (model, provider, tokens, conversation id, input/output messages...), everything else goes to metadata.otel.
Same rules and result as ingest_spans; errors name the span by path, e.g. resourceSpans[0].scopeSpans[0].spans[3].spanId.
Example: select analytics.ingest_otlp(pg_read_file('export.json')::jsonb);$$;

COMMENT ON FUNCTION analytics._ingest_spans(jsonb) IS
'The implementation of analytics.ingest_spans (Rust). Runs only after analytics.check_rate_limit(''ingest'') admitted the call in this transaction, else 42501: call analytics.ingest_spans. Internal.';
COMMENT ON FUNCTION analytics._ingest_otlp(jsonb) IS
'The implementation of analytics.ingest_otlp (Rust). Runs only after analytics.check_rate_limit(''ingest'') admitted the call in this transaction, else 42501: call analytics.ingest_otlp. Internal.';

-- create_experiment and run_anomaly_detection call the limiter first
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
    perform analytics.check_rate_limit('create_experiment');
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
Rate limited (action 'create_experiment', default 10 per hour per user; see analytics.check_rate_limit).
Example: select analytics.create_experiment('system-prompt-v2', 'Concise prompt', '[{"key":"control","weight":0.5},{"key":"concise","weight":0.5}]');$$;
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
COMMENT ON FUNCTION analytics.run_anomaly_detection(text, interval, interval, text[], text, jsonb, timestamptz, uuid) IS
$$Builds a metric series from the caller's spans (the definitions of trace_metrics: request_count, error_count, error_rate, latency_p50/p90/p95/p99, ttft_p50/p95 in ms, input_tokens, output_tokens, tokens, cost), one per group_by dimension, over the whole buckets of lookback before end_time; runs the detector; records each anomaly in anomaly_detections (one row per owner, metric, dimension, bucket and method: a re-run updates, never duplicates; status and acknowledgement are kept) and returns the rows recorded. New warning/critical findings that are alerts (with a cooldown in params, only the first anomaly of an episode) are announced with pg_notify('analytics_anomalies', json). Severity: critical at twice the threshold (iqr: beyond the outer fence), else warning.
Counts, tokens and cost are 0 in buckets without spans; rates and percentiles are gaps there. A scheduled job without a JWT passes user_id. Rate limited for API callers (action 'run_anomaly_detection', default 60 per hour per user; see analytics.check_rate_limit).
Example: select bucket_start, observed, expected, severity from analytics.run_anomaly_detection('latency_p95', '1 hour', '7 days', group_by => '{model}');$$;

-- what 900_security.sql gives these tables and functions on a fresh install
ALTER TABLE analytics.rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.rate_limits FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics.rate_limit_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.rate_limit_state FORCE ROW LEVEL SECURITY;
CREATE POLICY rate_limits_select_own ON analytics.rate_limits FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limits_insert_own ON analytics.rate_limits FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limits_update_own ON analytics.rate_limits FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limits_delete_own ON analytics.rate_limits FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limits_select_defaults ON analytics.rate_limits FOR SELECT USING (user_id IS NULL);
CREATE POLICY rate_limit_state_select_own ON analytics.rate_limit_state FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limit_state_insert_own ON analytics.rate_limit_state FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limit_state_update_own ON analytics.rate_limit_state FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY rate_limit_state_delete_own ON analytics.rate_limit_state FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.rate_limits'::regclass, '');
REVOKE ALL ON analytics.rate_limits, analytics.rate_limit_state FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._rate_limit_now(), analytics._window_text(interval),
    analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text), analytics.rate_limit_status(),
    analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
    analytics.ingest_otlp(jsonb) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        GRANT EXECUTE ON FUNCTION analytics.check_rate_limit(text) TO anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON analytics.rate_limits, analytics.rate_limit_state TO authenticated;
        GRANT EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._rate_limit_now(), analytics._window_text(interval),
            analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text), analytics.rate_limit_status(),
            analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
            analytics.ingest_otlp(jsonb) TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.rate_limits TO service_role;
        GRANT SELECT ON analytics.rate_limit_state TO service_role;
        GRANT EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._rate_limit_now(), analytics._window_text(interval),
            analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text), analytics.rate_limit_status(),
            analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
            analytics.ingest_otlp(jsonb) TO service_role;
    END IF;
END
$grants$;
