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
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true. For metric_type 'quantile' / 'quantile_event' (gbstats' QuantileStatistic / QuantileClusteredStatistic): "quantile_level", "quantile_n" (values), "quantile_nstar", "quantile", "quantile_lower", "quantile_upper" (the order statistics of GrowthBook's grid), and for 'quantile_event' n = units with sum, sum_squares, den_sum, den_sum_squares, cross_sum over units of their events at or below the quantile and of their events.
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
    user_id       uuid NOT NULL,
    action        text NOT NULL,
    admitted      timestamptz[] NOT NULL,
    max_calls     integer,
    per           interval,
    rules_version bigint NOT NULL,
    PRIMARY KEY (user_id, action)
) WITH (fillfactor = 50);
COMMENT ON TABLE analytics.rate_limit_state IS
'Per owner and action, the times of the calls admitted within the current window, oldest first, and the limit that applied (max_calls per per, copied from analytics.rate_limits at rules_version); kept by analytics.check_rate_limit(). UNLOGGED: emptied by a crash, which resets the limits and loses no data. Owners read their own; nobody but the limiter writes it.';

-- The version of the limits: every change to analytics.rate_limits adds one (statement trigger below), in the
-- changing transaction. A window row carries the limit it was admitted under and the version it was read at, so an
-- admission needs no lookup of the limits while the version is the same; a row read at an older version takes the
-- lookup again. Whatever the order of a change and a first call, the copy cannot outlive a change: a copy read
-- before the change committed carries the older version (the version is read before the limits).
CREATE TABLE analytics.rate_limit_rules_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO analytics.rate_limit_rules_version (version) VALUES (1);
COMMENT ON TABLE analytics.rate_limit_rules_version IS
'One row: the version of analytics.rate_limits, raised by every change to it. The rate limiter compares it with the version its copy of a limit was read at. Internal.';

CREATE FUNCTION analytics._rate_limits_changed() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
begin
    -- whoever may change the limits (the DBA, service_role) raises the version; the row lock is held until the
    -- change commits, so two changes are ordered
    update analytics.rate_limit_rules_version set version = version + 1;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._rate_limits_changed() IS
'Trigger on analytics.rate_limits: raises analytics.rate_limit_rules_version, so the limiter reads the changed limits on its next call. Internal.';
CREATE TRIGGER rate_limits_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON analytics.rate_limits
FOR EACH STATEMENT EXECUTE FUNCTION analytics._rate_limits_changed();

-- The window arithmetic, in Rust (src/rate_limits.rs over analytics_core::rate_window): times in microseconds, a
-- window a fixed duration (1 day = 86,400 s across a daylight-saving change), a call recorded at the later of the
-- clock and the last admission.
CREATE FUNCTION analytics._rate_window_room(admitted timestamptz[], t timestamptz, per interval, max_calls integer)
RETURNS boolean LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'rate_window_room_wrapper';
COMMENT ON FUNCTION analytics._rate_window_room(timestamptz[], timestamptz, interval, integer) IS
'Whether a call at t fits in the window: fewer than max_calls admissions in the last per. Internal.';
CREATE FUNCTION analytics._rate_window_admit(admitted timestamptz[], t timestamptz, per interval)
RETURNS timestamptz[] LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'rate_window_admit_wrapper';
COMMENT ON FUNCTION analytics._rate_window_admit(timestamptz[], timestamptz, interval) IS
'The window after admitting a call at t: the admissions still in it, then the call. Internal.';
CREATE FUNCTION analytics._rate_window_used(admitted timestamptz[], t timestamptz, per interval)
RETURNS integer LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'rate_window_used_wrapper';
COMMENT ON FUNCTION analytics._rate_window_used(timestamptz[], timestamptz, interval) IS
'The admissions in the window at t. Internal.';
CREATE FUNCTION analytics._rate_window_retry(admitted timestamptz[], t timestamptz, per interval, max_calls integer)
RETURNS integer LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'rate_window_retry_wrapper';
COMMENT ON FUNCTION analytics._rate_window_retry(timestamptz[], timestamptz, interval, integer) IS
'Whole seconds (rounded up) until a call refused at t would be admitted; 0 when it would be now. Internal.';
CREATE FUNCTION analytics._rate_window_reset(admitted timestamptz[], t timestamptz, per interval)
RETURNS timestamptz LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'rate_window_reset_wrapper';
COMMENT ON FUNCTION analytics._rate_window_reset(timestamptz[], timestamptz, interval) IS
'When the oldest admission in the window at t leaves it; NULL when the window is empty. Internal.';

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

-- The clock of the limiter and the cache: clock_timestamp(), or a test clock (a setting), which only a session whose
-- login role is a superuser may set (tests move time without sleeping; an API caller cannot move it). In Rust
-- (src/identity.rs): asked on every limited call, it reads the role cache rather than querying pg_roles.
CREATE FUNCTION analytics._clock(setting text) RETURNS timestamptz
LANGUAGE c VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clock_wrapper';
COMMENT ON FUNCTION analytics._clock(text) IS
'clock_timestamp(), or the time in the given setting (analytics.rate_limit_clock, analytics.cache_clock) when the session''s login role is a superuser (tests). Internal.';

-- The start of an admission, in Rust (src/rate_limits.rs): the lock of the owner's window for the action, then the
-- clock; NULL unless always or an API caller in a transaction that can record the call. Not for API roles (it would
-- let one hold another owner's lock): analytics.check_rate_limit (SECURITY DEFINER) calls it.
CREATE FUNCTION analytics._rate_limit_lock(owner uuid, action text, always boolean) RETURNS timestamptz
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'rate_limit_lock_wrapper';
COMMENT ON FUNCTION analytics._rate_limit_lock(uuid, text, boolean) IS
'Takes the transaction-level advisory lock (1634628204, hashtext(owner::text || action)) of an owner''s rate-limit window and then reads the limiter''s clock (analytics._clock(''analytics.rate_limit_clock'')); with always = false it does neither and answers NULL in a READ ONLY transaction or for a superuser or BYPASSRLS role. Internal: called by analytics.check_rate_limit.';

-- Whether the role a call runs as sees every owner's rows (superuser, BYPASSRLS: service_role, a DBA's job): exempt
-- from rate limits, not cached, sees every owner's cache statistics. Inside a SECURITY DEFINER function current_user
-- is its owner, while the setting role is what PostgREST's SET LOCAL ROLE (or a psql SET ROLE) chose: Postgres's
-- "outer" user. In Rust (src/identity.rs), from the role cache: no query on every limited or cached call.
CREATE FUNCTION analytics._caller_is_privileged() RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'caller_is_privileged_wrapper';
COMMENT ON FUNCTION analytics._caller_is_privileged() IS
'Whether the role the call runs as (the setting role, else the session user) is a superuser or has BYPASSRLS. Internal.';

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

-- The limit of an action for an owner: their row, else the default row (user_id NULL), else the built-in default;
-- no row when the action has none. (SQL without a SET clause: inlined into the queries that use it.)
CREATE FUNCTION analytics._rate_limit_rule(action text, owner uuid)
RETURNS TABLE (max_calls integer, per interval, exempt_privileged boolean)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select r.max_calls, r.per, r.exempt_privileged
    from (select l.max_calls, l.per, l.exempt_privileged, case when l.user_id is null then 1 else 0 end as rank
          from analytics.rate_limits l
          where l.action = _rate_limit_rule.action and (l.user_id = _rate_limit_rule.owner or l.user_id is null)
          union all
          select b.max_calls, b.per, true, 2 from analytics._builtin_rate_limits() b where b.action = _rate_limit_rule.action) r
    order by r.rank
    limit 1
$$;
COMMENT ON FUNCTION analytics._rate_limit_rule(text, uuid) IS
'The rate limit of an action for an owner: their row of analytics.rate_limits, else the default row, else the built-in default (no row when none). Internal.';

-- The limit that applies to the caller for an action, and whether the caller is exempt from it. PL/pgSQL so that
-- its plans are cached (a SQL function with a SET clause is planned again on every call: 200 us).
CREATE FUNCTION analytics._rate_limit_for(action text, owner uuid,
    OUT max_calls integer, OUT per interval, OUT exempt boolean, OUT defined boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    select r.max_calls, r.per, r.exempt_privileged and analytics._caller_is_privileged() into max_calls, per, exempt
    from analytics._rate_limit_rule(_rate_limit_for.action, _rate_limit_for.owner) r;
    defined := found;
end
$$;
COMMENT ON FUNCTION analytics._rate_limit_for(text, uuid) IS
'The rate limit of an action for an owner (their row, else the default row, else the built-in default; defined = false when none) and whether the calling role is exempt from it. Internal.';

CREATE FUNCTION analytics.check_rate_limit(action text, answer boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    read_only boolean;
    privileged boolean;
    result jsonb;
    ver bigint;
    lim_max integer;
    lim_per interval;
    lim_exempt boolean;
    defined boolean;
    adm timestamptz[];
    used integer;
    t timestamptz;
    retry integer;
    window_s double precision;
    info text;
    win text;
    msg text;
    hnt text;
begin
    -- the common case, an API caller who has called before (a role that is neither superuser nor BYPASSRLS is
    -- never exempt) in a transaction that can record the call: _rate_limit_lock takes the owner's lock for the
    -- action (one admission at a time per owner and action, until the caller's transaction ends: a concurrent call
    -- counts this one once it commits, or not at all if it rolls back; every writer of the window takes this lock
    -- first, so nothing below waits once it is held) and then reads the clock; it answers NULL for any other caller
    -- (and, being STRICT, for a NULL action). One statement then checks the window against the limit copied into it
    -- (still the current version of the limits), records the call and builds the answer unless the caller wants
    -- none (our writing functions: answer => false).
    t := analytics._rate_limit_lock(owner, check_rate_limit.action, false);
    if t is not null then
        update analytics.rate_limit_state s
        set admitted = analytics._rate_window_admit(s.admitted, t, s.per)
        where s.user_id = owner and s.action = check_rate_limit.action
          and s.rules_version = (select v.version from analytics.rate_limit_rules_version v)
          and analytics._rate_window_room(s.admitted, t, s.per, s.max_calls)
        returning case when check_rate_limit.answer then jsonb_build_object('action', s.action, 'limited', true,
            'limit', s.max_calls, 'window_seconds', pg_catalog.date_part('epoch', s.per),
            'remaining', s.max_calls - cardinality(s.admitted),
            'reset_seconds', ceil(pg_catalog.date_part('epoch', s.per)
                                  - pg_catalog.date_part('epoch', s.admitted[cardinality(s.admitted)] - s.admitted[1]))::integer)
            end
        into result;
        if found then
            info := pg_catalog.set_config('analytics.rate_limit_admitted', check_rate_limit.action, true);
            return result;
        end if;
    end if;

    -- everything else: a first call, a changed limit, a full window (refused below), no limit, a privileged or
    -- READ ONLY caller. The version first, then the limit: a limit changed in between is read again next time.
    if check_rate_limit.action is null then
        raise exception 'action: is required' using errcode = '22004';
    end if;
    read_only := pg_catalog.current_setting('transaction_read_only')::boolean;
    privileged := analytics._caller_is_privileged();
    select v.version into ver from analytics.rate_limit_rules_version v;
    select r.max_calls, r.per, r.exempt, r.defined into lim_max, lim_per, lim_exempt, defined
    from analytics._rate_limit_for(check_rate_limit.action, owner) r;
    if not defined then
        raise exception 'action: no rate limit is defined for "%"; insert one into analytics.rate_limits (built-in: ingest, create_experiment, run_anomaly_detection)',
            check_rate_limit.action using errcode = 'P0002';
    end if;
    -- the writing function that called us may now proceed (see analytics._ingest_spans)
    info := pg_catalog.set_config('analytics.rate_limit_admitted', check_rate_limit.action, true);
    -- not limited: no owner to count against (a DBA's session, a back end without a user), an exempt role, no limit
    if owner is null or lim_exempt or lim_max is null then
        return case when check_rate_limit.answer then jsonb_build_object('action', check_rate_limit.action, 'limited', false) end;
    end if;

    if read_only then
        -- a READ ONLY transaction (PostgREST GET, a read replica) can check but not record: nothing is consumed
        t := analytics._clock('analytics.rate_limit_clock');
    elsif privileged then
        -- a privileged role that a limit does not exempt (exempt_privileged = false): the lock and clock of above
        t := analytics._rate_limit_lock(owner, check_rate_limit.action, true);
    end if;
    select s.admitted into adm from analytics.rate_limit_state s
    where s.user_id = owner and s.action = check_rate_limit.action;
    adm := coalesce(adm, '{}');
    window_s := pg_catalog.date_part('epoch', lim_per);

    if not analytics._rate_window_room(adm, t, lim_per, lim_max) then
        win := analytics._window_text(lim_per);
        retry := analytics._rate_window_retry(adm, t, lim_per, lim_max);
        info := jsonb_build_object('action', check_rate_limit.action, 'limit', lim_max,
            'window', win, 'window_seconds', window_s, 'remaining', 0,
            'retry_after_seconds', retry)::text;
        msg := format('rate limit exceeded: %s allows %s calls per %s; retry after %s s',
                      check_rate_limit.action, lim_max, win, retry);
        hnt := format('Retry after %s seconds.', retry);
        if pg_catalog.current_setting('analytics.rate_limit_sqlstate', true) = 'PT429' then
            -- PostgREST < 12: the status without headers
            raise sqlstate 'PT429' using message = msg, detail = info, hint = hnt;
        end if;
        raise sqlstate 'PGRST' using
            message = jsonb_build_object('code', 'rate_limited', 'message', msg, 'details', info, 'hint', hnt)::text,
            detail = jsonb_build_object('status', 429, 'headers', jsonb_build_object(
                'Retry-After', retry::text, 'RateLimit-Limit', lim_max::text, 'RateLimit-Remaining', '0',
                'RateLimit-Reset', retry::text,
                'RateLimit-Policy', format('%s;w=%s', lim_max, ceil(window_s)::bigint)))::text;
    end if;

    if read_only then
        used := analytics._rate_window_used(adm, t, lim_per);
    else
        -- record the call with the limit it was admitted under, for the next call's one-statement path
        adm := analytics._rate_window_admit(adm, t, lim_per);
        insert into analytics.rate_limit_state (user_id, action, admitted, max_calls, per, rules_version)
        values (owner, check_rate_limit.action, adm, lim_max, lim_per, ver)
        on conflict on constraint rate_limit_state_pkey do update
        set admitted = excluded.admitted, max_calls = excluded.max_calls, per = excluded.per,
            rules_version = excluded.rules_version;
        used := cardinality(adm);
    end if;
    if check_rate_limit.answer is not true then
        return null;
    end if;
    return jsonb_build_object('action', check_rate_limit.action, 'limited', true, 'limit', lim_max,
        'window_seconds', window_s, 'remaining', lim_max - used,
        'reset_seconds', ceil(coalesce(pg_catalog.date_part('epoch',
            analytics._rate_window_reset(adm, t, lim_per) - greatest(t, adm[cardinality(adm)])), window_s))::integer);
end
$$;
COMMENT ON FUNCTION analytics.check_rate_limit(text, boolean) IS
$$Admits one call of an action for the caller (the JWT's sub) under its rate limit (analytics.rate_limits, else the built-in default), or rejects it: RAISE SQLSTATE 'PGRST' that PostgREST (>= 12) answers with HTTP 429 and the headers Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy; the body's details (JSON text) has action, limit, window, window_seconds, remaining and retry_after_seconds. With the setting analytics.rate_limit_sqlstate = 'PT429' it raises SQLSTATE PT429 (PostgREST < 12: status 429, no headers). Exact sliding window: never more than max_calls admitted in any window of length per. A rejection rolls back the transaction, so it consumes nothing. Not limited: callers without a sub, superusers and service_role (unless the limit says exempt_privileged = false). In a READ ONLY transaction it only checks. An action without any limit raises P0002.
Returns {"action", "limited", "limit", "window_seconds", "remaining", "reset_seconds"}; with answer => false (or NULL) it returns NULL and skips building the answer (what ingest_spans, ingest_otlp, record_span, create_experiment and run_anomaly_detection do). A Supabase project may call it from its own db_pre_request function for actions of its own.
Example: select analytics.check_rate_limit('ingest');$$;

CREATE FUNCTION analytics.rate_limit_status()
RETURNS TABLE (action text, max_calls integer, per interval, used integer, remaining integer, reset_at timestamptz,
               exempt boolean)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    t timestamptz := analytics._clock('analytics.rate_limit_clock');
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
           analytics._rate_window_reset(w.admitted, t, r.per), r.exempt
    from actions a
    cross join lateral analytics._rate_limit_for(a.action, owner) r
    left join analytics.rate_limit_state s on s.user_id = owner and s.action = a.action
    cross join lateral (
        select coalesce(s.admitted, '{}') as admitted,
               analytics._rate_window_used(coalesce(s.admitted, '{}'), t, r.per) as used
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
    perform analytics.check_rate_limit('ingest', answer => false);
    return analytics._ingest_spans(spans);
end
$$;

CREATE FUNCTION analytics.ingest_otlp(payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    perform analytics.check_rate_limit('ingest', answer => false);
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
ALTER TABLE analytics.rate_limit_rules_version ENABLE ROW LEVEL SECURITY;
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
REVOKE ALL ON analytics.rate_limits, analytics.rate_limit_state, analytics.rate_limit_rules_version FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._clock(text), analytics._caller_is_privileged(), analytics._window_text(interval),
    analytics._rate_limit_lock(uuid, text, boolean), analytics._rate_limit_rule(text, uuid), analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text, boolean),
    analytics.rate_limit_status(), analytics._rate_limits_changed(),
    analytics._rate_window_room(timestamptz[], timestamptz, interval, integer),
    analytics._rate_window_admit(timestamptz[], timestamptz, interval),
    analytics._rate_window_used(timestamptz[], timestamptz, interval),
    analytics._rate_window_retry(timestamptz[], timestamptz, interval, integer),
    analytics._rate_window_reset(timestamptz[], timestamptz, interval),
    analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
    analytics.ingest_otlp(jsonb) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        GRANT EXECUTE ON FUNCTION analytics.check_rate_limit(text, boolean) TO anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON analytics.rate_limits, analytics.rate_limit_state TO authenticated;
        GRANT EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._clock(text), analytics._caller_is_privileged(), analytics._window_text(interval),
            analytics._rate_limit_rule(text, uuid), analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text, boolean),
            analytics.rate_limit_status(), analytics._rate_limits_changed(),
            analytics._rate_window_room(timestamptz[], timestamptz, interval, integer),
            analytics._rate_window_admit(timestamptz[], timestamptz, interval),
            analytics._rate_window_used(timestamptz[], timestamptz, interval),
            analytics._rate_window_retry(timestamptz[], timestamptz, interval, integer),
            analytics._rate_window_reset(timestamptz[], timestamptz, interval),
            analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
            analytics.ingest_otlp(jsonb) TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.rate_limits TO service_role;
        GRANT SELECT ON analytics.rate_limit_state TO service_role;
        GRANT EXECUTE ON FUNCTION analytics._builtin_rate_limits(), analytics._clock(text), analytics._caller_is_privileged(), analytics._window_text(interval),
            analytics._rate_limit_rule(text, uuid), analytics._rate_limit_for(text, uuid), analytics.check_rate_limit(text, boolean),
            analytics.rate_limit_status(), analytics._rate_limits_changed(),
            analytics._rate_window_room(timestamptz[], timestamptz, interval, integer),
            analytics._rate_window_admit(timestamptz[], timestamptz, interval),
            analytics._rate_window_used(timestamptz[], timestamptz, interval),
            analytics._rate_window_retry(timestamptz[], timestamptz, interval, integer),
            analytics._rate_window_reset(timestamptz[], timestamptz, interval),
            analytics._ingest_spans(jsonb), analytics._ingest_otlp(jsonb), analytics.ingest_spans(jsonb),
            analytics.ingest_otlp(jsonb) TO service_role;
    END IF;
END
$grants$;

-- Result caches (sql/041_cache.sql): get_trace_tree, search_spans, search_traces, trace_metrics and
-- experiment_results become cached PL/pgSQL (a new last argument, cache) around their computations, which keep the
-- old bodies under internal names (_get_trace_tree, ...; the Rust ones with their 0.1.0 symbols); anomaly_summary is
-- new; the cache's tables, functions and write triggers as a fresh install has them.
DROP FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid);
DROP FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
DROP FUNCTION analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
DROP FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid);
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean);
CREATE FUNCTION analytics."_get_trace_tree"(
	"trace_id" TEXT, /* Option < & str > */
	"max_depth" INT DEFAULT 100, /* i32 */
	"max_spans" INT DEFAULT 10000, /* i32 */
	"include_io" bool DEFAULT true, /* bool */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS jsonb /* Option < RawJsonb > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'get_trace_tree_wrapper';
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
) RETURNS SETOF analytics.llm_traces /* :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox :: AllocatedByRust
> */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'search_spans_wrapper';
CREATE FUNCTION analytics."_cache_count"(
	"function" TEXT, /* & str */
	"hit" bool /* bool */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cache_count_wrapper';
CREATE FUNCTION analytics."_cache_drain"() RETURNS TABLE (
	"user_id" TEXT,  /* String */
	"function_name" TEXT,  /* String */
	"hits" bigint,  /* i64 */
	"misses" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cache_drain_wrapper';
CREATE FUNCTION analytics."_cache_pending"() RETURNS TABLE (
	"user_id" TEXT,  /* String */
	"function_name" TEXT,  /* String */
	"hits" bigint,  /* i64 */
	"misses" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cache_pending_wrapper';
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
    note                   text
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

-- run_anomaly_detection reads the uncached computation
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

COMMENT ON FUNCTION analytics._get_trace_tree(text, integer, integer, boolean, uuid) IS
'Internal: the computation behind analytics.get_trace_tree, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
'Internal: the computation behind analytics.search_spans, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid) IS
'Internal: the computation behind analytics.search_traces, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid) IS
'Internal: the computation behind analytics.trace_metrics, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision) IS
'Internal: the computation behind analytics.experiment_results, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer) IS
'Internal: the computation behind analytics.experiment_report, uncached (sql/041_cache.sql).';
COMMENT ON FUNCTION analytics._anomaly_summary(timestamptz, timestamptz, text, uuid) IS
'Internal: the computation behind analytics.anomaly_summary, uncached (sql/041_cache.sql).';

-- sql/041_cache.sql
CREATE UNLOGGED TABLE analytics.cache_entries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid NOT NULL,
    role        name NOT NULL,
    fn          text NOT NULL,
    key_hash    bytea NOT NULL,
    args        jsonb NOT NULL,
    result      jsonb,
    snap        pg_snapshot NOT NULL,
    filler_xid  xid8 NOT NULL,
    computed_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    bytes       integer NOT NULL
);
CREATE INDEX cache_entries_lookup_idx ON analytics.cache_entries (user_id, fn, key_hash, computed_at DESC);
CREATE INDEX cache_entries_owner_idx ON analytics.cache_entries (user_id, computed_at DESC);
CREATE INDEX cache_entries_expires_idx ON analytics.cache_entries (expires_at);
COMMENT ON TABLE analytics.cache_entries IS
'Cached results of the read functions, per owner, role, function and arguments, with the snapshot each was computed under (a write by the owner committed after it makes the entry stale). UNLOGGED. Written and read only by analytics._cache_get / _cache_put; see analytics.cache_stats() and purge_cache().';

CREATE UNLOGGED TABLE analytics.cache_writes (
    user_id      uuid NOT NULL,
    xid          xid8 NOT NULL,
    committed_by timestamptz,
    PRIMARY KEY (user_id, xid)
);
COMMENT ON TABLE analytics.cache_writes IS
'Which transaction wrote which owner''s data (user_id 00000000-0000-0000-0000-000000000000: every owner, after a TRUNCATE), recorded by statement triggers on the data tables; committed_by: a time by which purge_cache saw it committed. UNLOGGED.';

CREATE UNLOGGED TABLE analytics.cache_events (
    user_id uuid NOT NULL,
    fn      text NOT NULL,
    hits    bigint NOT NULL,
    misses  bigint NOT NULL
);
CREATE INDEX cache_events_owner_idx ON analytics.cache_events (user_id, fn);
COMMENT ON TABLE analytics.cache_events IS
'Hits and misses as connections write their tallies (one row per owner and function per write); analytics.purge_cache() folds them into analytics.cache_counters. UNLOGGED.';

CREATE UNLOGGED TABLE analytics.cache_counters (
    user_id uuid NOT NULL,
    fn      text NOT NULL,
    hits    bigint NOT NULL DEFAULT 0,
    misses  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, fn)
);
COMMENT ON TABLE analytics.cache_counters IS
'Hits and misses per owner and function folded in by analytics.purge_cache(). UNLOGGED.';

CREATE TYPE analytics.cache_lookup AS (
    fn          text,
    args        jsonb,
    hit         boolean,
    fill        boolean,
    result      jsonb,
    snap        pg_snapshot,
    computed_at timestamptz
);
COMMENT ON TYPE analytics.cache_lookup IS
'What analytics._cache_get found: hit and result, or fill = true with the snapshot and time to store a result under (analytics._cache_put). Internal.';

-- ---- settings --------------------------------------------------------------------------------------------------------
-- The cached functions and how long their results live. (No SET clause: inlined into the callers.)
CREATE FUNCTION analytics._cache_ttl(fn text) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    select case fn
        when 'get_trace_tree' then interval '1 minute'
        when 'search_traces' then interval '1 minute'
        when 'search_spans' then interval '1 minute'
        when 'trace_metrics' then interval '5 minutes'
        when 'experiment_results' then interval '5 minutes'
        when 'experiment_report' then interval '5 minutes'
        when 'anomaly_summary' then interval '5 minutes'
    end
$$;
COMMENT ON FUNCTION analytics._cache_ttl(text) IS
'How long a cached result of each function lives: get_trace_tree, search_traces, search_spans 1 minute; trace_metrics, experiment_results, experiment_report, anomaly_summary 5 minutes (the longest; purge_cache relies on it). NULL: not a cached function. Internal.';

-- Limits per entry and per owner: a result larger than 1 MB (as stored, compressed) is not kept; beyond 1,000
-- entries or 32 MB per owner the oldest go first.
CREATE FUNCTION analytics._cache_limits(OUT max_entry_bytes integer, OUT max_owner_bytes bigint, OUT max_owner_entries integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
begin
    max_entry_bytes := 1048576;
    max_owner_bytes := 33554432;
    max_owner_entries := 1000;
end
$$;
COMMENT ON FUNCTION analytics._cache_limits() IS
'Cache limits: at most 1 MB per entry (compressed size), 32 MB and 1,000 entries per owner (the oldest are evicted first). Internal.';

-- ---- who is cached ---------------------------------------------------------------------------------------------------
-- The owner whose cache this call uses, or NULL when it is not cached: analytics.cache = off, a hot standby, no JWT
-- sub, or a role that sees more than one owner's rows (superuser, BYPASSRLS). The role is the one the call runs as
-- (see analytics._caller_is_privileged).
CREATE FUNCTION analytics._cache_owner(OUT owner uuid, OUT role name)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    if coalesce(pg_catalog.current_setting('analytics.cache', true), '') in ('off', 'false', '0') or pg_catalog.pg_is_in_recovery() then
        return;
    end if;
    if analytics._caller_is_privileged() then
        return;
    end if;
    role := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user);
    owner := analytics.current_user_id();
end
$$;
COMMENT ON FUNCTION analytics._cache_owner() IS
'The owner (JWT sub) and role whose cache a call uses; owner NULL when the call is not cached (analytics.cache = off, hot standby, no sub, superuser or BYPASSRLS role). Internal.';

-- The entry key: role, TimeZone (timestamps are rendered in it), IntervalStyle (interval arguments are), function
-- and arguments.
CREATE FUNCTION analytics._cache_key(role name, fn text, args jsonb) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select pg_catalog.sha256(pg_catalog.convert_to(
        pg_catalog.concat_ws(E'\x1f', role, pg_catalog.current_setting('TimeZone'),
                             pg_catalog.current_setting('IntervalStyle'), fn, args::text), 'UTF8'))
$$;
COMMENT ON FUNCTION analytics._cache_key(name, text, jsonb) IS
'SHA-256 of role, TimeZone, IntervalStyle, function name and arguments: the key of a cache entry within its owner. Internal.';

-- The ticket of a miss: what analytics._cache_get sets (transaction-local) and analytics._cache_put checks, so that a
-- result is stored only under the key, snapshot and time of a lookup made in the same transaction.
CREATE FUNCTION analytics._cache_ticket(key_hash bytea, snap pg_snapshot, computed_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select encode(pg_catalog.sha256(pg_catalog.convert_to(
        pg_catalog.concat_ws(E'\x1f', encode(key_hash, 'hex'), snap::text, computed_at::text), 'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION analytics._cache_ticket(bytea, pg_snapshot, timestamptz) IS
'The ticket of a cache miss (SHA-256 of key, snapshot and time) that analytics._cache_get sets and analytics._cache_put checks. Internal.';

-- Whether a result computed under snap (by transaction filler) is still current for owner: no write to the owner's
-- data (or a TRUNCATE) committed that the snapshot does not see, and no write by the filling transaction itself
-- (a transaction's own xid is never in its own snapshot's in-progress list). Writes older than the snapshot's xmin are
-- visible to it: the index range starts there, so a check reads only the writes made since the entry.
-- (PL/pgSQL so that its plan is kept: a SQL function with a subquery is not inlined and is planned on every call.)
CREATE FUNCTION analytics._cache_current(owner uuid, snap pg_snapshot, filler xid8) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    return not exists (
        select 1 from analytics.cache_writes w
        where w.user_id in (owner, '00000000-0000-0000-0000-000000000000'::uuid)
          and w.xid >= pg_catalog.pg_snapshot_xmin(snap)
          and (w.xid = filler or not pg_catalog.pg_visible_in_snapshot(w.xid, snap)));
end
$$;
COMMENT ON FUNCTION analytics._cache_current(uuid, pg_snapshot, xid8) IS
'True when no write to the owner''s data committed after the snapshot (nor by the transaction filler): the entry computed under it is current. Internal.';

-- ---- lookup and store ------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics._cache_get(fn text, args jsonb, enabled boolean DEFAULT true) RETURNS analytics.cache_lookup
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    r analytics.cache_lookup;
    who record;
    k bytea;
    t timestamptz;
    e record;
    ro boolean;
    due boolean;
begin
    r.fn := fn;
    r.args := args;
    r.hit := false;
    r.fill := false;
    if analytics._cache_ttl(fn) is null then
        raise exception 'fn: "%" is not a cached function', fn using errcode = '22023';
    end if;
    if not coalesce(enabled, true) then
        return r;
    end if;
    who := analytics._cache_owner();
    if who.owner is null then
        return r;
    end if;
    k := analytics._cache_key(who.role, fn, args);
    -- the time first, then the snapshot (below): an entry never outlives its TTL counted from before its snapshot
    t := analytics._clock('analytics.cache_clock');
    select c.result, c.snap, c.filler_xid into e
    from analytics.cache_entries c
    where c.user_id = who.owner and c.fn = _cache_get.fn and c.key_hash = k and c.expires_at > t
    order by c.computed_at desc
    limit 1;
    if found and analytics._cache_current(who.owner, e.snap, e.filler_xid) then
        r.hit := true;
        r.result := e.result;
    end if;
    -- counted in this connection's tally, written with a miss's result or every 10 s (never in a READ ONLY transaction)
    -- (a statement of its own: in "count(...) and not ro" the planner would drop the call when ro is true)
    ro := pg_catalog.current_setting('transaction_read_only')::boolean;
    due := analytics._cache_count(fn, r.hit);
    if due and not ro then
        insert into analytics.cache_events (user_id, fn, hits, misses)
        select d.user_id::uuid, d.function_name, d.hits, d.misses from analytics._cache_drain() d;
    end if;
    if not ro then
        if not r.hit then
            r.fill := true;
            r.computed_at := t;
            r.snap := pg_catalog.pg_current_snapshot();
            -- the ticket analytics._cache_put accepts, for this transaction only: an API caller cannot forge one
            -- (PostgREST gives them no way to set it, and each request is its own transaction)
            perform pg_catalog.set_config('analytics.cache_ticket', analytics._cache_ticket(k, r.snap, r.computed_at), true);
        end if;
    end if;
    return r;
end
$$;
COMMENT ON FUNCTION analytics._cache_get(text, jsonb, boolean) IS
'Looks up the caller''s cached result of fn(args): hit and result, or (in a read-write transaction) fill = true with the snapshot and time to store the result under. Counts the hit or miss (this connection''s tally, written when due). Internal: called by the cached functions.';

CREATE FUNCTION analytics._cache_put(lookup analytics.cache_lookup) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    who record;
    lim record;
    k bytea;
    sz integer;
    new_id bigint;
    victims bigint[];
begin
    if lookup is null or not coalesce(lookup.fill, false) or lookup.snap is null or lookup.computed_at is null
       or pg_catalog.current_setting('transaction_read_only')::boolean then
        return false;
    end if;
    who := analytics._cache_owner();
    if who.owner is null then
        return false;
    end if;
    k := analytics._cache_key(who.role, lookup.fn, lookup.args);
    if pg_catalog.current_setting('analytics.cache_ticket', true) is distinct from
       analytics._cache_ticket(k, lookup.snap, lookup.computed_at) then
        raise exception 'lookup: not the lookup analytics._cache_get returned in this transaction'
            using errcode = '42501';
    end if;
    perform pg_catalog.set_config('analytics.cache_ticket', '', true);
    lim := analytics._cache_limits();
    sz := coalesce(pg_catalog.pg_column_size(lookup.result), 0);
    -- too large to keep; or stale already (this transaction wrote the owner's data, or a write committed meanwhile)
    if sz > lim.max_entry_bytes
       or not analytics._cache_current(who.owner, lookup.snap, pg_catalog.pg_current_xact_id()) then
        return false;
    end if;
    insert into analytics.cache_entries (user_id, role, fn, key_hash, args, result, snap, filler_xid, computed_at,
                                         expires_at, bytes)
    values (who.owner, who.role, lookup.fn, k, lookup.args, lookup.result, lookup.snap, pg_catalog.pg_current_xact_id(),
            lookup.computed_at, lookup.computed_at + analytics._cache_ttl(lookup.fn), sz)
    returning id into new_id;
    -- the entries this one replaces, and the owner's oldest beyond the limits; rows another transaction is deleting
    -- are skipped, never waited for
    select array_agg(v.id) into victims
    from (select c.id,
                 sum(c.bytes) over w as running_bytes,
                 row_number() over w as n,
                 c.fn = lookup.fn and c.key_hash = k as same_key
          from analytics.cache_entries c
          where c.user_id = who.owner
          window w as (order by c.computed_at desc, c.id desc)) v
    where v.id <> new_id and (v.same_key or v.running_bytes > lim.max_owner_bytes or v.n > lim.max_owner_entries);
    if victims is not null then
        delete from analytics.cache_entries d
        where d.id in (select c.id from analytics.cache_entries c where c.id = any(victims) for update skip locked);
    end if;
    return true;
end
$$;
COMMENT ON FUNCTION analytics._cache_put(analytics.cache_lookup) IS
'Stores the result of a miss that analytics._cache_get returned in this transaction (only that lookup: 42501 otherwise), unless it is larger than 1 MB or already stale; evicts the entry it replaces and the owner''s oldest beyond 1,000 entries or 32 MB. Internal: called by the cached functions.';

-- ---- invalidation: every write to an owner's data ---------------------------------------------------------------------
CREATE FUNCTION analytics._cache_note_writes() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
begin
    if tg_op = 'TRUNCATE' then
        insert into analytics.cache_writes (user_id, xid)
        values ('00000000-0000-0000-0000-000000000000', pg_catalog.pg_current_xact_id()) on conflict do nothing;
    elsif tg_op = 'INSERT' then
        insert into analytics.cache_writes (user_id, xid)
        select distinct n.user_id, pg_catalog.pg_current_xact_id() from new_rows n on conflict do nothing;
    elsif tg_op = 'DELETE' then
        insert into analytics.cache_writes (user_id, xid)
        select distinct o.user_id, pg_catalog.pg_current_xact_id() from old_rows o on conflict do nothing;
    else
        insert into analytics.cache_writes (user_id, xid)
        select u.user_id, pg_catalog.pg_current_xact_id()
        from (select n.user_id from new_rows n union select o.user_id from old_rows o) u
        on conflict do nothing;
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._cache_note_writes() IS
'Statement trigger of every data table: records that this transaction wrote the data of the owners of the rows it changed (TRUNCATE: of every owner), which makes their cached results stale once it commits. Internal.';

-- Every table that holds an owner's data, now and later (tests/pg_regress/sql/cache.sql checks the list). Not: the
-- cache itself, the rate limiter, plans (retention policies, rate limits) and the experiment totals (derived from
-- events and assignments by their triggers, in the same statements).
DO $triggers$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
          AND c.relname NOT IN ('cache_entries', 'cache_writes', 'cache_events', 'cache_counters', 'rate_limit_state',
                                'rate_limits', 'rate_limit_rules_version', 'retention_policies', 'ab_experiment_unit_totals')
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON analytics.%I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes()', t.relname || '_cache_insert', t.relname);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON analytics.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes()', t.relname || '_cache_update', t.relname);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON analytics.%I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes()', t.relname || '_cache_delete', t.relname);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON analytics.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes()', t.relname || '_cache_truncate', t.relname);
    END LOOP;
END
$triggers$;

-- ---- statistics and maintenance --------------------------------------------------------------------------------------
-- Privileged callers (superuser, BYPASSRLS: service_role, a pg_cron job) see and purge every owner's entries;
-- everybody else only their own.
CREATE FUNCTION analytics.cache_stats() RETURNS TABLE (
    user_id       uuid,
    function_name text,
    entries       bigint,
    live_entries  bigint,
    bytes         bigint,
    hits          bigint,
    misses        bigint,
    hit_rate      double precision
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    everyone boolean := analytics._caller_is_privileged();
    owner uuid := analytics.current_user_id();
    t timestamptz := analytics._clock('analytics.cache_clock');
begin
    if not everyone and owner is null then
        raise exception 'cache_stats: no caller identity (request.jwt.claims has no sub)' using errcode = '42501';
    end if;
    return query
    with e as (
        select c.user_id, c.fn, count(*) as entries, count(*) filter (where c.expires_at > t) as live, sum(c.bytes) as bytes
        from analytics.cache_entries c where everyone or c.user_id = owner group by 1, 2
    ), h as (
        select x.user_id, x.fn, sum(x.hits) as hits, sum(x.misses) as misses
        from (select k.user_id, k.fn, k.hits, k.misses from analytics.cache_counters k
              union all
              select v.user_id, v.fn, v.hits, v.misses from analytics.cache_events v
              union all
              -- this connection's latest calls, not written yet
              select p.user_id::uuid, p.function_name, p.hits, p.misses from analytics._cache_pending() p) x
        where everyone or x.user_id = owner
        group by 1, 2
    )
    select coalesce(e.user_id, h.user_id), coalesce(e.fn, h.fn), coalesce(e.entries, 0), coalesce(e.live, 0),
           coalesce(e.bytes, 0)::bigint, coalesce(h.hits, 0)::bigint, coalesce(h.misses, 0)::bigint,
           case when coalesce(h.hits, 0) + coalesce(h.misses, 0) > 0
                then h.hits::double precision / (h.hits + h.misses) end
    from e full join h on h.user_id = e.user_id and h.fn = e.fn
    order by 1, 2;
end
$$;
COMMENT ON FUNCTION analytics.cache_stats() IS
$$The result cache per owner and function: entries (live_entries: not yet expired), bytes (as stored, compressed), hits, misses and hit_rate since the counters started. Each connection writes its counts with its next miss or every 10 seconds (the caller's own connection is always up to date). An owner sees their own rows; superusers and service_role see every owner's.
Example: select function_name, entries, hits, misses, hit_rate from analytics.cache_stats();$$;

CREATE FUNCTION analytics.purge_cache(expired_only boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    everyone boolean := analytics._caller_is_privileged();
    owner uuid := analytics.current_user_id();
    t timestamptz := analytics._clock('analytics.cache_clock');
    own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
    entries bigint;
    freed bigint;
    writes bigint;
begin
    if not everyone and owner is null then
        raise exception 'purge_cache: no caller identity (request.jwt.claims has no sub)' using errcode = '42501';
    end if;
    if expired_only is null then
        raise exception 'expired_only: must be true or false' using errcode = '22004';
    end if;
    -- one purge at a time (they fold the same counters)
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('analytics.purge_cache'));
    with d as (
        delete from analytics.cache_entries c
        where (everyone or c.user_id = owner) and (not expired_only or c.expires_at <= t)
        returning c.bytes
    ) select count(*), coalesce(sum(d.bytes), 0) into entries, freed from d;

    with d as (
        delete from analytics.cache_events v where everyone or v.user_id = owner returning v.user_id, v.fn, v.hits, v.misses
    )
    insert into analytics.cache_counters as k (user_id, fn, hits, misses)
    select d.user_id, d.fn, sum(d.hits), sum(d.misses)
    from d group by 1, 2 order by 1, 2
    on conflict (user_id, fn) do update set hits = k.hits + excluded.hits, misses = k.misses + excluded.misses;

    -- The write log: a write row visible here has committed (unless it is this transaction's), so it committed by t.
    -- An entry that does not see it was computed before it committed, hence expires before committed_by + the
    -- longest TTL; after that (plus a minute of clock skew between sessions) nothing can need the row.
    update analytics.cache_writes w set committed_by = t
    where w.committed_by is null and w.xid is distinct from own
      and (everyone or w.user_id = owner);
    delete from analytics.cache_writes w
    where w.committed_by < t - analytics._cache_ttl('trace_metrics') - interval '1 minute'
      and (everyone or w.user_id = owner);
    get diagnostics writes = row_count;
    return jsonb_build_object('entries_removed', entries, 'bytes_removed', freed, 'write_records_removed', writes);
end
$$;
COMMENT ON FUNCTION analytics.purge_cache(boolean) IS
$$Removes expired cache entries (expired_only => false: every entry), folds the hit/miss log into the counters and drops write records no entry can need any more; returns {"entries_removed", "bytes_removed", "write_records_removed"}. Superusers and service_role purge every owner's cache (schedule it: select cron.schedule('analytics-purge-cache', '* * * * *', 'select analytics.purge_cache()')); an owner purges only their own.
Example: select analytics.purge_cache();$$;

-- ---- the cached functions ------------------------------------------------------------------------------------------
-- Each is PL/pgSQL around its computation (analytics._<name>): look up, else compute and store. VOLATILE because a
-- call may store; through PostgREST, POST fills the cache and GET (a READ ONLY transaction) reads it.

CREATE FUNCTION analytics.get_trace_tree(
    trace_id   text,
    max_depth  integer DEFAULT 100,
    max_spans  integer DEFAULT 10000,
    include_io boolean DEFAULT true,
    user_id    uuid    DEFAULT NULL,
    cache      boolean DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('get_trace_tree',
        jsonb_build_array(trace_id, max_depth, max_spans, include_io, user_id), cache);
begin
    if c.hit then
        return c.result;
    end if;
    c.result := analytics._get_trace_tree(trace_id, max_depth, max_spans, include_io, user_id);
    perform analytics._cache_put(c);
    return c.result;
end
$$;

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
    user_id         uuid             DEFAULT NULL,
    cache           boolean          DEFAULT true
) RETURNS SETOF analytics.trace_summary
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('search_traces',
        jsonb_build_array(trace_id, conversation_id, message_id, session_id, operation_type, status, model, from_time,
                          to_time, min_duration_ms, tag, after, "limit", "offset", user_id), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._search_traces(trace_id, conversation_id, message_id, session_id,
            operation_type, status, model, from_time, to_time, min_duration_ms, tag, after, "limit", "offset", user_id);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._search_traces(search_traces.trace_id, search_traces.conversation_id, search_traces.message_id,
            search_traces.session_id, search_traces.operation_type, search_traces.status, search_traces.model,
            search_traces.from_time, search_traces.to_time, search_traces.min_duration_ms, search_traces.tag,
            search_traces.after, search_traces."limit", search_traces."offset", search_traces.user_id) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.trace_summary, c.result);
end
$$;

CREATE FUNCTION analytics.trace_metrics(
    bucket         interval,
    from_time      timestamptz,
    to_time        timestamptz,
    group_by       text[]  DEFAULT '{}',
    operation_type text    DEFAULT NULL,
    root_only      boolean DEFAULT false,
    user_id        uuid    DEFAULT NULL,
    cache          boolean DEFAULT true
) RETURNS SETOF analytics.trace_metrics_row
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('trace_metrics',
        jsonb_build_array(bucket, from_time, to_time, group_by, operation_type, root_only, user_id), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._trace_metrics(bucket, from_time, to_time, group_by, operation_type,
                                                             root_only, user_id);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._trace_metrics(trace_metrics.bucket, trace_metrics.from_time, trace_metrics.to_time,
            trace_metrics.group_by, trace_metrics.operation_type, trace_metrics.root_only, trace_metrics.user_id)
            with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.trace_metrics_row, c.result);
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

CREATE FUNCTION analytics.anomaly_summary(
    from_time timestamptz,
    to_time   timestamptz DEFAULT NULL,
    status    text        DEFAULT NULL,
    user_id   uuid        DEFAULT NULL,
    cache     boolean     DEFAULT true
) RETURNS SETOF analytics.anomaly_summary_row
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('anomaly_summary',
        jsonb_build_array(from_time, to_time, status, user_id), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._anomaly_summary(from_time, to_time, status, user_id);
        return;
    end if;
    if c.fill then
        select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') into c.result
        from analytics._anomaly_summary(anomaly_summary.from_time, anomaly_summary.to_time, anomaly_summary.status,
                                        anomaly_summary.user_id) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.anomaly_summary_row, c.result);
end
$$;

-- ---- documentation ---------------------------------------------------------------------------------------------------
COMMENT ON FUNCTION analytics.get_trace_tree(text, integer, integer, boolean, uuid, boolean) IS
$$The trace as one nested jsonb document: {"trace_id", "span_count", "returned_spans", "truncated", "orphan_count", "cycle_count", "duration_ms", "total_tokens", "cost_usd", "error_count", "roots": [...]}.
Each span carries its columns, depth, self_ms, on_critical_path, orphan, cycle, a subtree rollup (span_count, error_count, total_tokens, cost_usd, duration_ms), children_truncated, and its children sorted by start time.
max_depth (0..1000, default 100) and max_spans (default 10000) cap the document, keeping the shallowest spans; include_io => false leaves out input/output.
NULL when the trace does not exist or is not the caller's. Cached 1 minute per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.get_trace_tree('trace-rag-002', include_io => false);$$;

COMMENT ON FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean) IS
$$Spans matching all given filters, newest first (start_time desc, id desc). Keyset pagination: pass after => '<start_time>,<id>' of the last row; "limit" 1..1000 (default 50); "offset" also works.
Looks at the caller's rows (or user_id's); without a signed-in caller, at all rows the role may see (service_role). Cached 1 minute per caller (see get_trace_tree).
Example: select name, status, duration_ms from analytics.search_spans(status => 'error', "limit" => 10);$$;

COMMENT ON FUNCTION analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean) IS
$$Traces with at least one span matching the span filters (trace_id, conversation_id, message_id, session_id, operation_type, status, model, tag), trace start within [from_time, to_time) and duration >= min_duration_ms, newest first.
Each row: root span, start/end, duration_ms, span_count, error_count, total_tokens, cost_usd, models, and the cursor to pass as after => for the next page. Cached 1 minute per caller (see get_trace_tree).
Example: select trace_id, root_name, span_count, error_count from analytics.search_traces(status => 'error');$$;

COMMENT ON FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean) IS
$$Rollups per time bucket and group (group_by: model, operation_type, provider, status, name, user): request_count, error_count, error_rate, latency p50/p90/p95/p99 and time-to-first-token p50/p95 in ms, tokens and cost.
Percentiles are exact (percentile_cont). Buckets are aligned to from_time. Filters: operation_type, root_only (traces rather than spans). Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{model}');$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, chance to beat control and expected loss (Bayesian, Gaussian; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial and mean metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;

COMMENT ON FUNCTION analytics.anomaly_summary(timestamptz, timestamptz, text, uuid, boolean) IS
$$The recorded anomalies per metric and dimension whose bucket starts in [from_time, to_time) (to_time NULL: no end), optionally of one status: how many, by status and severity, first and last bucket, last detection, largest |score| and the detectors that found them; most open first. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select metric, dimension, anomalies, open, critical from analytics.anomaly_summary(now() - interval '7 days');$$;

COMMENT ON FUNCTION analytics._cache_count(text, boolean) IS
'Counts a cached call (hit or miss) of the caller (JWT sub) in this connection''s tally; true when the tally is due to be written (a miss, or 10 s since the last write). Internal.';
COMMENT ON FUNCTION analytics._cache_drain() IS
'Takes this connection''s tally of cache hits and misses for writing to analytics.cache_events. Internal.';
COMMENT ON FUNCTION analytics._cache_pending() IS
'This connection''s tally of cache hits and misses not written yet (left in place). Internal.';

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped"}. The correction (none by default, holm or bh) covers every variant of every goal metric together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]', correction => 'holm');$$;

-- what 900_security.sql gives these tables and functions on a fresh install: RLS with the owner policies (not FORCEd:
-- only the SECURITY DEFINER functions reach them), not dumped, no privilege for any API role; EXECUTE for
-- authenticated and service_role on every new function but the cache's internals
DO $security$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['cache_counters', 'cache_entries', 'cache_events', 'cache_writes'] LOOP
        EXECUTE format('ALTER TABLE analytics.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON analytics.%I FOR SELECT USING (user_id = (select analytics.current_user_id()))',
            t || '_select_own', t);
        EXECUTE format('CREATE POLICY %I ON analytics.%I FOR INSERT WITH CHECK (user_id = (select analytics.current_user_id()))',
            t || '_insert_own', t);
        EXECUTE format('CREATE POLICY %I ON analytics.%I FOR UPDATE USING (user_id = (select analytics.current_user_id()))'
            ' WITH CHECK (user_id = (select analytics.current_user_id()))', t || '_update_own', t);
        EXECUTE format('CREATE POLICY %I ON analytics.%I FOR DELETE USING (user_id = (select analytics.current_user_id()))',
            t || '_delete_own', t);
        EXECUTE format('REVOKE ALL ON analytics.%I FROM PUBLIC', t);
    END LOOP;
END
$security$;
REVOKE EXECUTE ON FUNCTION analytics._get_trace_tree(text, integer, integer, boolean, uuid),
    analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
    analytics._search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
    analytics._trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid),
    analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision),
    analytics._anomaly_summary(timestamptz, timestamptz, text, uuid),
    analytics.get_trace_tree(text, integer, integer, boolean, uuid, boolean),
    analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean),
    analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean),
    analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean),
    analytics.anomaly_summary(timestamptz, timestamptz, text, uuid, boolean),
    analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean), analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer),
    analytics._cache_ttl(text), analytics._cache_limits(), analytics._cache_owner(), analytics._cache_key(name, text, jsonb), analytics._cache_ticket(bytea, pg_snapshot, timestamptz),
    analytics._cache_current(uuid, pg_snapshot, xid8), analytics._cache_get(text, jsonb, boolean),
    analytics._cache_put(analytics.cache_lookup), analytics._cache_note_writes(), analytics.cache_stats(),
    analytics.purge_cache(boolean), analytics._cache_count(text, boolean), analytics._cache_drain(),
    analytics._cache_pending() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._get_trace_tree(text, integer, integer, boolean, uuid),
                analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
                analytics._search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid),
                analytics._trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid),
                analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision),
                analytics._anomaly_summary(timestamptz, timestamptz, text, uuid),
                analytics.get_trace_tree(text, integer, integer, boolean, uuid, boolean),
                analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean),
                analytics.search_traces(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean),
                analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean),
                analytics.anomaly_summary(timestamptz, timestamptz, text, uuid, boolean),
                analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean), analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer),
                analytics._cache_ttl(text), analytics._cache_limits(), analytics._cache_owner(), analytics._cache_key(name, text, jsonb), analytics._cache_ticket(bytea, pg_snapshot, timestamptz),
                analytics._cache_get(text, jsonb, boolean), analytics._cache_put(analytics.cache_lookup), analytics.cache_stats(),
                analytics.purge_cache(boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- Power as GrowthBook's calculator computes it (method => 'growthbook', the default; 'statsmodels' keeps 0.1.0's
-- figures): sample_size and minimum_detectable_effect take a last argument method (new symbols; 0.1.0's stay);
-- _adjusted_interval, the interval of a corrected p-value (experiment_results' ci_lower/upper_adjusted)
DROP FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer);
DROP FUNCTION analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer);
CREATE FUNCTION analytics."sample_size"(
	"baseline" double precision, /* Option < f64 > */
	"mde" double precision, /* Option < f64 > */
	"metric_type" TEXT DEFAULT 'binomial', /* Option < & str > */
	"std_dev" double precision DEFAULT NULL, /* Option < f64 > */
	"relative" bool DEFAULT true, /* Option < bool > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"power" double precision DEFAULT 0.8, /* Option < f64 > */
	"variants" INT DEFAULT 2, /* Option < i32 > */
	"method" TEXT DEFAULT 'growthbook' /* Option < & str > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'plan_sample_size_wrapper';
CREATE FUNCTION analytics."minimum_detectable_effect"(
	"baseline" double precision, /* Option < f64 > */
	"units_per_variant" bigint, /* Option < i64 > */
	"metric_type" TEXT DEFAULT 'binomial', /* Option < & str > */
	"std_dev" double precision DEFAULT NULL, /* Option < f64 > */
	"relative" bool DEFAULT true, /* Option < bool > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"power" double precision DEFAULT 0.8, /* Option < f64 > */
	"variants" INT DEFAULT 2, /* Option < i32 > */
	"method" TEXT DEFAULT 'growthbook' /* Option < & str > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'plan_minimum_detectable_effect_wrapper';
-- compare_groups takes GrowthBook's informative Gaussian prior (prior_mean, prior_variance) and reports the
-- posterior (new symbol; 0.1.0's stays)
DROP FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean);
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
CREATE FUNCTION analytics."_adjusted_interval"(
	"effect" double precision, /* Option < f64 > */
	"ci_lower" double precision, /* Option < f64 > */
	"ci_upper" double precision, /* Option < f64 > */
	"adjusted_p_value" double precision, /* Option < f64 > */
	"alpha" double precision /* Option < f64 > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < Option < f64 > > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'adjusted_interval_wrapper';
COMMENT ON FUNCTION analytics._adjusted_interval(double precision, double precision, double precision, double precision, double precision) IS
'Internal: the interval that goes with a corrected p-value, as GrowthBook''s ciAdjusted: effect ± z(1 - alpha/2)·|effect / z(1 - p_adjusted/2)| when that is wider than the interval given, the whole line when p_adjusted is 1; a one-sided interval (an end NULL: open) is kept but for the whole line, no interval stays NULL; {lower, upper}. Used by experiment_results and experiment_report.';
REVOKE EXECUTE ON FUNCTION analytics._adjusted_interval(double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._adjusted_interval(double precision, double precision, double precision, double precision, double precision) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
COMMENT ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text) IS
$$Units per variant to detect an effect of mde (relative to the baseline by default: 0.05 = +5%; relative => false for an absolute change) with the given power in a two-sided test. std_dev of the per-unit value is required for metric_type 'mean'.
method 'growthbook' (default) computes as GrowthBook's power calculator: the delta-method error of the relative lift with the control's variance for both groups, both tails, alpha as given (variants only split the traffic): 10% baseline, +5% needs 59,409 per variant. method 'statsmodels': each group's own variance, the difference's error (statsmodels' NormalIndPower), alpha split over the comparisons with the control when variants > 2 (Bonferroni): 57,760.
Returns {"per_variant", "total", "per_variant_exact", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.sample_size(baseline => 0.10, mde => 0.05);$$;
COMMENT ON FUNCTION analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text) IS
$$The smallest increase (relative by default) that a test with units_per_variant units in every variant detects with the given power; the inverse of sample_size, by the same method ('growthbook': GrowthBook's closed form; 'statsmodels'). Returns {"effect", "treatment_value", "alpha_per_comparison"}.
Example: select analytics.minimum_detectable_effect(baseline => 0.10, units_per_variant => 20000);$$;
REVOKE EXECUTE ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text),
    analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text),
                analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;


-- ---- Time-partitioned spans (sql/010_traces.sql, sql/013_partitions.sql) ------------------------------------------
-- analytics.llm_traces becomes range-partitioned by start_time, with a unique index on (user_id, trace_id, span_id)
-- in every partition. Every row is copied into the default partition (one INSERT ... SELECT: plan for the time and the WAL
-- of a full copy of the table); a DBA's analytics.maintain_span_partitions() then moves them into partitions of
-- their own (docs/operations.md#partitions). The functions whose result is the table's row type are created again
-- around the swap.
ALTER TABLE analytics.llm_traces RENAME TO llm_traces_0_1_0;
DROP FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid);
DROP FUNCTION analytics.search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid, boolean);
DROP FUNCTION analytics._search_spans(text, text, text, text, text, text, text, timestamptz, timestamptz, double precision, text, text, integer, integer, uuid);
CREATE TABLE analytics.llm_traces (
    id                    uuid NOT NULL DEFAULT gen_random_uuid(),
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
    -- true: cost_usd was computed at ingest from a price (analytics.model_prices or the built-in list), so
    -- analytics.recompute_costs may redo it; false: sent by the client (or not known)
    cost_computed         boolean NOT NULL DEFAULT false,
    input                 jsonb,
    output                jsonb,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags                  text[] NOT NULL DEFAULT '{}'::text[],
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

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
) PARTITION BY RANGE (start_time);

COMMENT ON TABLE analytics.llm_traces IS
'One row per span of an LLM application trace. Owner-scoped by user_id (row-level security). Write through analytics.record_span / analytics.ingest_spans / analytics.ingest_otlp or plain INSERT.';

CREATE TRIGGER llm_traces_touch_updated_at BEFORE UPDATE ON analytics.llm_traces
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();
CREATE SCHEMA analytics_partitions;
REVOKE ALL ON SCHEMA analytics_partitions FROM PUBLIC;
COMMENT ON SCHEMA analytics_partitions IS
'Partitions of analytics.llm_traces, made and dropped by analytics.maintain_span_partitions(). Not for API roles: query analytics.llm_traces.';

-- Row-level security of one partition, the same as the parent's (tests/pg_regress/sql/partitions.sql compares them).
CREATE FUNCTION analytics._secure_span_partition(part regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    r text;
begin
    if part is null then
        raise exception 'part: must name a partition of analytics.llm_traces' using errcode = '22004';
    end if;
    execute format('alter table %s enable row level security', part);
    execute format('alter table %s force row level security', part);
    execute format('create policy llm_traces_select_own on %s for select using (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_insert_own on %s for insert with check (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_update_own on %s for update using (user_id = (select analytics.current_user_id()))'
                   ' with check (user_id = (select analytics.current_user_id()))', part);
    execute format('create policy llm_traces_delete_own on %s for delete using (user_id = (select analytics.current_user_id()))', part);
    execute format('revoke all on %s from public', part);
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if exists (select 1 from pg_catalog.pg_roles where rolname = r) then
            execute format('revoke all on %s from %I', part, r);
        end if;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics._secure_span_partition(regclass) IS
'Gives a partition of analytics.llm_traces the parent''s row-level security (enabled, forced, one policy per command) and no privileges for API roles. Internal.';

-- The indexes of every partition (named after it). The unique one serves "all spans of a trace" and keeps one row
-- per span within the partition; the next one tree walks; trace_time where a trace's stored spans are (ingest
-- searches only those partitions for the spans of a batch); the rest the filters of search_spans and trace_metrics.
CREATE FUNCTION analytics._index_span_partition(part regclass) RETURNS void
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
COMMENT ON FUNCTION analytics._index_span_partition(regclass) IS
'Creates the indexes of a partition of analytics.llm_traces (the parent has none: sql/010_traces.sql says why). Internal.';

-- The default partition of a fresh install (and of a database just updated from 0.1.0): every span lands here until
-- the first analytics.maintain_span_partitions(), which moves them into range partitions covering all time and
-- detaches it (see "the partitions" below). It stays, detached and empty, a member of the extension: a restore from
-- pg_dump recreates it attached (beside the dumped range partitions, which leave it nothing to hold) and the next
-- maintenance detaches it again.
CREATE TABLE analytics_partitions.llm_traces_default PARTITION OF analytics.llm_traces DEFAULT;
SELECT analytics._index_span_partition('analytics_partitions.llm_traces_default');
SELECT analytics._secure_span_partition('analytics_partitions.llm_traces_default');
SELECT pg_catalog.pg_extension_config_dump('analytics_partitions.llm_traces_default', '');

-- ---- one row per span ------------------------------------------------------------------------------------------------
-- The locks under which every writer of spans checks that a span has one row, by level: the owner, then the trace,
-- then the span, each level in ascending key order (so writers of the same spans wait for each other instead of
-- deadlocking). A batch of up to max_span_locks spans locks its spans (and its traces and owners shared); a larger
-- one with up to max_trace_locks traces locks its traces (owners shared); a larger one its owners. A writer thus
-- holds at most about max_span_locks + max_trace_locks locks. A caller that knows how many distinct spans and traces
-- (with an owner) the arrays hold passes them (ingest does: counting 100,000 spans here took 0.2 s).
CREATE FUNCTION analytics._lock_spans(owners uuid[], trace_ids text[], span_ids text[],
                                      max_span_locks integer DEFAULT 128, max_trace_locks integer DEFAULT 64,
                                      span_count integer DEFAULT NULL, trace_count integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n_spans integer := span_count;
    n_traces integer := trace_count;
    spans_locked boolean;
    traces_locked boolean;
    lvl record;
    waited boolean := false;
begin
    if n_spans is null or n_traces is null then
        select count(distinct (o, t, s)), count(distinct (o, t)) into n_spans, n_traces
        from unnest(owners, trace_ids, span_ids) as x(o, t, s) where o is not null;
    end if;
    spans_locked := n_spans <= max_span_locks;
    traces_locked := spans_locked or n_traces <= max_trace_locks;
    -- the levels in order, each with its keys in ascending order (a level not locked has none) and whether its locks
    -- are exclusive: the lowest level locked is exclusive, the ones above it shared
    for lvl in
        select l.keys, l.exclusive
        from (values
            (1, array(select distinct pg_catalog.hashtextextended(o::text, 1) from unnest(owners) as x(o)
                      where o is not null order by 1), not traces_locked),
            (2, case when traces_locked then
                    array(select distinct pg_catalog.hashtextextended(o::text || '/' || t, 2)
                          from unnest(owners, trace_ids) as x(o, t) where o is not null order by 1) end, not spans_locked),
            (3, case when spans_locked then
                    array(select distinct pg_catalog.hashtextextended(o::text || '/' || t || '/' || s, 3)
                          from unnest(owners, trace_ids, span_ids) as x(o, t, s) where o is not null order by 1) end, true)
        ) l(level, keys, exclusive)
        where l.keys is not null
        order by l.level
    loop
        -- one statement per level, its keys in array order: each lock tried first, and waited for when taken
        select waited or coalesce(bool_or(case
                   when lvl.exclusive then case when pg_catalog.pg_try_advisory_xact_lock(k) then false
                                                else pg_catalog.pg_advisory_xact_lock(k) is not null end
                   else case when pg_catalog.pg_try_advisory_xact_lock_shared(k) then false
                             else pg_catalog.pg_advisory_xact_lock_shared(k) is not null end end), false)
          into waited
        from unnest(lvl.keys) as k;
    end loop;
    -- under REPEATABLE READ the snapshot predates what the other writer committed: retry rather than miss it
    if waited and current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'spans: another transaction wrote the same spans concurrently; retry the call'
            using errcode = '40001';
    end if;
end
$$;
COMMENT ON FUNCTION analytics._lock_spans(uuid[], text[], text[], integer, integer, integer, integer) IS
'Takes the transaction locks under which a writer of spans checks that a span has one row: owner, trace and span locks in one global order (spans for batches of up to max_span_locks spans, else traces for up to max_trace_locks traces, else owners; span_count and trace_count, when given, are the distinct spans and traces of the arrays). Internal.';

-- INSERT and UPDATE by plain SQL (a PostgREST POST to the table, psql): a partition's unique index refuses a second
-- row of a span in that partition; a second row in another partition (another start_time) is refused here. Ingest
-- checks this itself (and says so with the transaction-local setting analytics.spans_checked, which only lets a
-- session skip the check of its own rows).
CREATE FUNCTION analytics._check_one_row_per_span() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    dup record;
begin
    if current_setting('analytics.spans_checked', true) = 'on' then
        return null;
    end if;
    perform analytics._lock_spans(array_agg(n.user_id), array_agg(n.trace_id), array_agg(n.span_id)) from new_rows n;
    -- one index probe per new row (LATERAL ... LIMIT 1), never a scan of the table (a join left to the planner
    -- could hash the whole table, or merge on (user_id, trace_id) alone). Before the table's first ANALYZE the
    -- planner may still probe the (user_id, trace_id, start_time) index instead of the span key, which reads the
    -- whole trace per row: one 20,000-span trace inserted at once into a never-analyzed table took 77 s
    select t.trace_id, t.span_id, t.start_time into dup
    from new_rows n
    cross join lateral (
        select t.trace_id, t.span_id, t.start_time from analytics.llm_traces t
        where t.user_id = n.user_id and t.trace_id = n.trace_id and t.span_id = n.span_id and t.start_time <> n.start_time
        limit 1) t
    limit 1;
    if found then
        raise exception 'span: trace_id %, span_id % is already stored with start_time %', dup.trace_id, dup.span_id, dup.start_time
            using errcode = '23505',
                  hint = 'Re-send it through analytics.ingest_spans (which moves a span whose start_time changed), or UPDATE its start_time.';
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._check_one_row_per_span() IS
'Statement trigger of analytics.llm_traces: raises 23505 when an INSERT or UPDATE leaves a span (user_id, trace_id, span_id) with rows of two start times. Internal.';

CREATE TRIGGER llm_traces_one_row_per_span_insert AFTER INSERT ON analytics.llm_traces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._check_one_row_per_span();
CREATE TRIGGER llm_traces_one_row_per_span_update AFTER UPDATE ON analytics.llm_traces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._check_one_row_per_span();

-- ---- the partitions ----------------------------------------------------------------------------------------------------
-- Once maintenance ran, every start time has a range partition and there is no DEFAULT partition:
--   * period partitions, llm_traces_p<from> (a day, a week or a month, UTC), made ahead and for the periods that have
--     spans, dropped whole by retention;
--   * where no period partition is, the rest of the time line: llm_traces_before_<to> (everything earlier than the
--     first period), llm_traces_after_<from> (everything from the end of the last one on) and llm_traces_gap_<from>_<to>
--     (between two periods). They hold the spans of backfills and of clocks far ahead until maintenance makes periods
--     for them, and are usually empty.
-- Without a default partition, which may hold any time, the planner knows the partitions are ordered by time: a
-- newest-first search without a time bound reads the newest partition first and stops when its page is full
-- (an ordered Append) instead of merging the indexes of every partition (a MergeAppend).

-- The partitions of analytics.llm_traces with their bounds (NULL: unbounded) and kind: 'period', 'rest' (before,
-- after, gap) or 'default'.
CREATE FUNCTION analytics._span_partition_layout()
RETURNS TABLE (part regclass, name text, kind text, from_time timestamptz, to_time timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    select c.oid::regclass, c.relname::text,
           case when pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' then 'default'
                when c.relname ~ '^llm_traces_(before|after|gap)_' then 'rest'
                else 'period' end,
           (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'analytics.llm_traces'::regclass
$$;
COMMENT ON FUNCTION analytics._span_partition_layout() IS
'The partitions of analytics.llm_traces: bounds (NULL: unbounded) and kind (period, rest: before/after/gap, default). Internal.';

CREATE FUNCTION analytics.span_partitions()
RETURNS TABLE (partition text, from_time timestamptz, to_time timestamptz, spans_estimate bigint, bytes bigint)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    select l.part::text, l.from_time, l.to_time, greatest(c.reltuples, 0)::bigint, pg_catalog.pg_total_relation_size(l.part)
    from analytics._span_partition_layout() l
    join pg_catalog.pg_class c on c.oid = l.part
    order by l.kind = 'default', l.from_time nulls first, l.to_time nulls last
$$;
COMMENT ON FUNCTION analytics.span_partitions() IS
$$The partitions of analytics.llm_traces in time order: name, time range [from_time, to_time) (NULL: unbounded; both NULL for the default partition of a database maintenance has not run on), estimated rows (as of the last ANALYZE) and total bytes with indexes and TOAST. For the DBA.
Example: select partition, from_time, to_time from analytics.span_partitions();$$;

-- A new partition [lo, hi) (NULL: unbounded) named name, filled with the rows of that range from the tables sources
-- (partitions just detached), then secured, indexed and attached: a table of its own until then, so that its rows are
-- copied without the triggers of analytics.llm_traces and indexed once, and a CHECK matching its bounds spares the
-- attach a scan. Returns the rows copied.
CREATE FUNCTION analytics._make_span_partition(name text, lo timestamptz, hi timestamptz, sources regclass[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = ''
SET TimeZone = 'UTC'
AS $$
declare
    part regclass;
    cols text;
    src regclass;
    n bigint;
    copied bigint := 0;
    bounds text := coalesce('start_time >= ' || quote_literal(lo), 'true') || ' and ' || coalesce('start_time < ' || quote_literal(hi), 'true');
begin
    -- (maintain_span_partitions' names and bounds always pass; these name what a direct call got wrong)
    if name is null or name !~ '^[a-z_][a-z0-9_]{0,62}$' then
        raise exception 'name: a partition name is 1 to 63 lower-case letters, digits and underscores, got %', quote_nullable(name)
            using errcode = '22023';
    elsif not isfinite(lo) or not isfinite(hi) then
        raise exception 'lo, hi: the bounds are finite times (NULL: unbounded), got % and %', lo, hi using errcode = '22023';
    elsif lo >= hi then
        raise exception 'hi: must be after lo (%), got %', lo, hi using errcode = '22023';
    end if;
    select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into cols
    from pg_catalog.pg_attribute a
    where a.attrelid = 'analytics.llm_traces'::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
    execute format('create table analytics_partitions.%I (like analytics.llm_traces including defaults including constraints including generated including storage including compression)', name);
    part := format('analytics_partitions.%I', name)::regclass;
    perform analytics._secure_span_partition(part);
    foreach src in array coalesce(sources, '{}') loop
        execute format('insert into %s (%s) select %s from %s where %s', part, cols, cols, src, bounds);
        get diagnostics n = row_count;
        copied := copied + n;
    end loop;
    perform analytics._index_span_partition(part);
    execute format('alter table %s add constraint %I check (%s)', part, name || '_range', bounds);
    execute format('alter table analytics.llm_traces attach partition %s for values from (%s) to (%s)',
                   part, coalesce(quote_literal(lo), 'MINVALUE'), coalesce(quote_literal(hi), 'MAXVALUE'));
    execute format('alter table %s drop constraint %I', part, name || '_range');
    return copied;
end
$$;
COMMENT ON FUNCTION analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]) IS
'Creates and attaches the partition [lo, hi) (NULL: unbounded) of analytics.llm_traces, filled with the rows of that range from the given detached partitions, with the parent''s row-level security and the partitions'' indexes. Internal.';

-- A partition bound in a partition's name: YYYYMMDD, and _HH24MISS when it is not midnight (UTC).
CREATE FUNCTION analytics._span_partition_label(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET TimeZone = 'UTC'
AS $$
    select pg_catalog.to_char(t, 'YYYYMMDD') || case when t <> pg_catalog.date_trunc('day', t) then pg_catalog.to_char(t, '"_"HH24MISS') else '' end
$$;
COMMENT ON FUNCTION analytics._span_partition_label(timestamptz) IS
'A bound of a partition of analytics.llm_traces as its name writes it: YYYYMMDD, with _HH24MISS when not at midnight UTC. Internal.';

CREATE FUNCTION analytics.maintain_span_partitions(
    period   text        DEFAULT 'month',
    premake  integer     DEFAULT 3,
    retain   interval    DEFAULT NULL,
    as_of    timestamptz DEFAULT now()
) RETURNS TABLE (action text, partition text, from_time timestamptz, to_time timestamptz, spans bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = ''
SET TimeZone = 'UTC'
AS $$
declare
    step interval;
    cutoff timestamptz;
    p record;
    n bigint;
    want tstzrange[];           -- the periods to cover
    more tstzrange[];
    g tstzrange;
    gap tstzrange;
    covered tstzmultirange;     -- by period partitions, kept and new
    stretches tstzrange[];      -- the rest of the time line, between and around them
    new_periods tstzrange[] := '{}';
    pieces tstzrange[] := '{}';
    replaced regclass[] := '{}';
    old_rows bigint := 0;
    new_rows bigint := 0;
    part regclass;
    piece tstzrange;
    name text;
    cache_cleared boolean := false;
begin
    if period is null or period not in ('day', 'week', 'month') then
        raise exception 'period: must be day, week or month, got %', coalesce(period, 'NULL') using errcode = '22023';
    end if;
    if premake is null or premake < 0 or premake > 366 then
        raise exception 'premake: must be between 0 and 366 periods, got %', coalesce(premake::text, 'NULL') using errcode = '22023';
    end if;
    if retain is not null and (retain <= interval '0' or retain > interval '1000 years') then
        raise exception 'retain: must be a positive interval of at most 1000 years or NULL (keep every partition), got %', retain
            using errcode = '22023';
    end if;
    -- partitions are named and bounded by dates of years 1 to 9999, premade up to 366 periods ahead
    if as_of is null or not isfinite(as_of) or as_of < timestamptz '0002-01-01 00:00+00' or as_of >= timestamptz '9000-01-01 00:00+00' then
        raise exception 'as_of: must be a finite time between the years 2 and 8999, got %', coalesce(as_of::text, 'NULL')
            using errcode = '22023';
    end if;
    -- the partitions' owner, seeing every owner's rows (it moves them between partitions)
    if not pg_catalog.pg_has_role(current_user, (select c.relowner from pg_catalog.pg_class c where c.oid = 'analytics.llm_traces'::regclass), 'USAGE')
       or not exists (select 1 from pg_catalog.pg_roles r where r.rolname = current_user and (r.rolsuper or r.rolbypassrls)) then
        raise exception 'maintain_span_partitions: only the owner of analytics.llm_traces with BYPASSRLS or superuser (the DBA, or a pg_cron job of theirs) may create and drop partitions'
            using errcode = '42501';
    end if;
    -- one maintenance at a time: the layout it reads stays as it read it until it commits
    perform pg_catalog.pg_advisory_xact_lock(1634628204, pg_catalog.hashtext('analytics.maintain_span_partitions'));
    step := ('1 ' || period)::interval;
    cutoff := case when retain is null then null else as_of - retain end;

    -- 1. retention: the period partitions that end at or before the cutoff are dropped (a metadata operation: no row
    --    is read; the count of spans reported is the planner's estimate); the other partitions' spans that started
    --    before it are deleted (row by row: they are few)
    if cutoff is not null then
        for p in select l.part, l.part::text as name, l.from_time, l.to_time, greatest(c.reltuples, 0)::bigint as estimate
                 from analytics._span_partition_layout() l join pg_catalog.pg_class c on c.oid = l.part
                 where l.kind = 'period' and l.to_time <= cutoff order by l.from_time loop
            if not cache_cleared then
                -- cached results may include these spans: as after a TRUNCATE, every owner's entries become stale
                insert into analytics.cache_writes (user_id, xid)
                values ('00000000-0000-0000-0000-000000000000', pg_catalog.pg_current_xact_id()) on conflict do nothing;
                cache_cleared := true;
            end if;
            execute format('drop table %s', p.part);
            return query select 'dropped'::text, p.name, p.from_time, p.to_time, p.estimate;
        end loop;
        for p in select l.part from analytics._span_partition_layout() l
                 where l.kind <> 'period' and (l.from_time is null or l.from_time < cutoff) order by l.from_time nulls first loop
            execute format('delete from %s where start_time < $1', p.part) using cutoff;
            get diagnostics n = row_count;
            if n > 0 then
                insert into analytics.cache_writes (user_id, xid)
                values ('00000000-0000-0000-0000-000000000000', pg_catalog.pg_current_xact_id()) on conflict do nothing;
                return query select 'deleted'::text, p.part::text, null::timestamptz, cutoff, n;
            end if;
        end loop;
    end if;

    -- 2. the periods to cover: the one holding as_of and premake ahead, and every period with spans outside the period
    --    partitions (none before the cutoff); a period partly covered by partitions of another size gets partitions
    --    for its gaps
    want := array(select tstzrange(g0, g0 + step)
                  from generate_series(date_trunc(period, as_of), date_trunc(period, as_of) + step * premake, step) g0);
    for p in select l.part from analytics._span_partition_layout() l where l.kind <> 'period' loop
        execute format('select array(select tstzrange(d, d + $1) from (select distinct date_trunc($2, start_time) as d from %s'
                       ' where $3::timestamptz is null or start_time >= $3) x)', p.part)
            into more using step, period, cutoff;
        want := want || more;
    end loop;
    covered := (select coalesce(range_agg(tstzrange(l.from_time, l.to_time)), '{}')
                from analytics._span_partition_layout() l where l.kind = 'period');
    for g in select distinct w from unnest(want) w order by 1 loop
        for gap in select x from unnest(tstzmultirange(g) - covered) x order by 1 loop
            new_periods := new_periods || gap;
        end loop;
        covered := covered + tstzmultirange(g);
    end loop;

    -- 3. the layout to reach: the period partitions kept and new, and the rest of the time line in before/after/gap
    --    partitions, one per stretch between periods. A rest partition that spans its stretch exactly is kept; the
    --    others (and the default partition) are detached, their spans copied into the new partitions of their times
    --    and they are dropped (the default partition is kept, detached and empty)
    stretches := array(select unnest(tstzmultirange(tstzrange(null, null)) - covered));
    pieces := new_periods || array(
        select r from unnest(stretches) r
        where not exists (select 1 from analytics._span_partition_layout() l
                          where l.kind = 'rest' and tstzrange(l.from_time, l.to_time) = r));
    replaced := array(
        select l.part from analytics._span_partition_layout() l
        where l.kind = 'default' or l.kind = 'rest' and not tstzrange(l.from_time, l.to_time) = any (stretches)
        order by l.from_time nulls first);
    for p in select l.part, l.kind, l.from_time, l.to_time from analytics._span_partition_layout() l
             where l.part = any (replaced) order by l.from_time nulls first loop
        execute format('select count(*) from %s', p.part) into n;
        old_rows := old_rows + n;
        execute format('alter table analytics.llm_traces detach partition %s', p.part);
        return query select case p.kind when 'default' then 'detached' else 'replaced' end, p.part::text, p.from_time, p.to_time, n;
    end loop;
    for piece in select x from unnest(pieces) x order by 1 loop
        name := case when piece = any (new_periods) then 'llm_traces_p' || analytics._span_partition_label(lower(piece))
                     when lower_inf(piece) and upper_inf(piece) then 'llm_traces_after_min'
                     when lower_inf(piece) then 'llm_traces_before_' || analytics._span_partition_label(upper(piece))
                     when upper_inf(piece) then 'llm_traces_after_' || analytics._span_partition_label(lower(piece))
                     else 'llm_traces_gap_' || analytics._span_partition_label(lower(piece)) || '_' || analytics._span_partition_label(upper(piece)) end;
        n := analytics._make_span_partition(name, lower(piece), upper(piece), replaced);
        new_rows := new_rows + n;
        return query select 'created'::text, 'analytics_partitions.' || quote_ident(name), lower(piece), upper(piece), n;
    end loop;
    -- every span of the detached partitions is in exactly one new partition (they covered the same times)
    if new_rows <> old_rows then
        raise exception 'maintain_span_partitions: % spans were in the partitions replaced, % copied into the new ones', old_rows, new_rows
            using errcode = 'XX000';
    end if;
    foreach part in array replaced loop
        if part = 'analytics_partitions.llm_traces_default'::regclass then
            truncate analytics_partitions.llm_traces_default;
        else
            execute format('drop table %s', part);
        end if;
    end loop;

    -- 4. each owner's retention policy (analytics.retention_policies), on top of the partitions dropped above
    return query
    select 'retention'::text, r.user_id::text, null::timestamptz, as_of - make_interval(days => r.keep_days), r.spans_deleted
    from analytics.apply_retention(null, as_of) r
    where r.spans_deleted > 0;
end
$$;
COMMENT ON FUNCTION analytics.maintain_span_partitions(text, integer, interval, timestamptz) IS
$$Partition maintenance of analytics.llm_traces, for a pg_cron job of the DBA: drops the period partitions that end more than retain before as_of (NULL: none) and deletes older spans of the other partitions, creates the partitions of the period holding as_of and premake periods ahead and of every period with spans outside the period partitions (period: day, week or month, UTC boundaries), keeps the rest of the time line in before/after/gap partitions (the first run replaces the default partition by them), and applies each owner's retention policy. New partitions get the parent's row-level security. Returns one row per action: dropped, deleted (spans of a before/after/gap partition), created (with the spans copied in), replaced (a before/after/gap partition whose spans went to the new ones), detached (the default partition, once), retention (per owner).
Example: select * from analytics.maintain_span_partitions(period => 'month', premake => 3, retain => '13 months');$$;

-- the copy: spans are unique per (user_id, trace_id, span_id) in the old table already
SELECT pg_catalog.set_config('analytics.spans_checked', 'on', true);
INSERT INTO analytics.llm_traces (id, user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, input, output, metadata, tags, created_at, updated_at)
SELECT id, user_id, trace_id, span_id, parent_span_id, conversation_id, message_id, session_id, name, operation_type, status, status_message, level, start_time, end_time, completion_start_time, provider, model, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, input, output, metadata, tags, created_at, updated_at FROM analytics.llm_traces_0_1_0;
SELECT pg_catalog.set_config('analytics.spans_checked', '', true);
-- (out of the extension first, which also takes it off the list of tables pg_dump dumps the rows of)
ALTER EXTENSION analytics_ext DROP TABLE analytics.llm_traces_0_1_0;
DROP TABLE analytics.llm_traces_0_1_0;
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
REVOKE EXECUTE ON FUNCTION analytics._secure_span_partition(regclass), analytics._index_span_partition(regclass), analytics._lock_spans(uuid[], text[], text[], integer, integer, integer, integer),
    analytics._check_one_row_per_span(), analytics.span_partitions(), analytics._span_partition_layout(),
    analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]), analytics._span_partition_label(timestamptz),
    analytics.maintain_span_partitions(text, integer, interval, timestamptz) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._lock_spans(uuid[], text[], text[], integer, integer, integer, integer),
                analytics._check_one_row_per_span() TO %I', r);
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


-- ---- Keys that include user_id (sql/010_traces.sql, 020, 023, 030; docs/scaling.md) -------------------------------
-- Every primary, unique and foreign key includes user_id, so that every table can be distributed by user_id. The
-- foreign keys that point at the keys being replaced go first and come back pointing at the new ones; the functions
-- whose statements name the keys (ON CONFLICT, GROUP BY on a key) follow them.
ALTER TABLE analytics.ab_experiment_variants DROP CONSTRAINT ab_experiment_variants_experiment_fk;
ALTER TABLE analytics.ab_experiment_assignments DROP CONSTRAINT ab_experiment_assignments_experiment_fk,
    DROP CONSTRAINT ab_experiment_assignments_variant_fk;
ALTER TABLE analytics.ab_experiment_events DROP CONSTRAINT ab_experiment_events_experiment_fk;
ALTER TABLE analytics.ab_experiment_unit_totals DROP CONSTRAINT ab_experiment_unit_totals_assignment_id_fkey;
ALTER TABLE analytics.user_cohort_members DROP CONSTRAINT user_cohort_members_cohort_fk;
ALTER TABLE analytics.model_prices DROP CONSTRAINT model_prices_pkey, ADD CONSTRAINT model_prices_pkey PRIMARY KEY (id, user_id);
ALTER TABLE analytics.ab_experiments DROP CONSTRAINT ab_experiments_pkey, DROP CONSTRAINT ab_experiments_id_owner,
    ADD CONSTRAINT ab_experiments_pkey PRIMARY KEY (id, user_id);
ALTER TABLE analytics.ab_experiment_variants DROP CONSTRAINT ab_experiment_variants_pkey,
    DROP CONSTRAINT ab_experiment_variants_key_per_experiment, DROP CONSTRAINT ab_experiment_variants_position_per_experiment,
    DROP CONSTRAINT ab_experiment_variants_id_experiment,
    ADD CONSTRAINT ab_experiment_variants_pkey PRIMARY KEY (id, user_id),
    ADD CONSTRAINT ab_experiment_variants_key_per_experiment UNIQUE (experiment_id, key, user_id),
    ADD CONSTRAINT ab_experiment_variants_position_per_experiment UNIQUE (experiment_id, position, user_id),
    ADD CONSTRAINT ab_experiment_variants_id_experiment UNIQUE (id, experiment_id, user_id);
DROP INDEX analytics.ab_experiment_variants_one_control;
CREATE UNIQUE INDEX ab_experiment_variants_one_control ON analytics.ab_experiment_variants (experiment_id, user_id) WHERE is_control;
ALTER TABLE analytics.ab_experiment_assignments DROP CONSTRAINT ab_experiment_assignments_pkey,
    DROP CONSTRAINT ab_experiment_assignments_unit_per_phase,
    ADD CONSTRAINT ab_experiment_assignments_pkey PRIMARY KEY (id, user_id),
    ADD CONSTRAINT ab_experiment_assignments_unit_per_phase UNIQUE (experiment_id, unit_id, phase, user_id);
ALTER TABLE analytics.ab_experiment_events DROP CONSTRAINT ab_experiment_events_pkey, ADD CONSTRAINT ab_experiment_events_pkey PRIMARY KEY (id, user_id);
ALTER TABLE analytics.ab_experiment_unit_totals DROP CONSTRAINT ab_experiment_unit_totals_pkey,
    ADD CONSTRAINT ab_experiment_unit_totals_pkey PRIMARY KEY (assignment_id, metric, user_id);
ALTER TABLE analytics.anomaly_detections DROP CONSTRAINT anomaly_detections_pkey, ADD CONSTRAINT anomaly_detections_pkey PRIMARY KEY (id, user_id);
ALTER TABLE analytics.user_cohorts DROP CONSTRAINT user_cohorts_pkey, DROP CONSTRAINT user_cohorts_id_owner,
    ADD CONSTRAINT user_cohorts_pkey PRIMARY KEY (id, user_id);
ALTER TABLE analytics.user_cohort_members DROP CONSTRAINT user_cohort_members_pkey,
    ADD CONSTRAINT user_cohort_members_pkey PRIMARY KEY (cohort_id, member_id, user_id);
ALTER TABLE analytics.ab_experiment_variants ADD CONSTRAINT ab_experiment_variants_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_assignments ADD CONSTRAINT ab_experiment_assignments_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_assignments ADD CONSTRAINT ab_experiment_assignments_variant_fk FOREIGN KEY (variant_id, experiment_id, user_id)
    REFERENCES analytics.ab_experiment_variants (id, experiment_id, user_id) ON DELETE NO ACTION;
ALTER TABLE analytics.ab_experiment_events ADD CONSTRAINT ab_experiment_events_experiment_fk FOREIGN KEY (experiment_id, user_id)
    REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE analytics.ab_experiment_unit_totals ADD CONSTRAINT ab_experiment_unit_totals_assignment_id_fkey FOREIGN KEY (assignment_id, user_id)
    REFERENCES analytics.ab_experiment_assignments (id, user_id) ON DELETE CASCADE;
ALTER TABLE analytics.user_cohort_members ADD CONSTRAINT user_cohort_members_cohort_fk FOREIGN KEY (cohort_id, user_id)
    REFERENCES analytics.user_cohorts (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE;
CREATE OR REPLACE FUNCTION analytics._set_variants(experiment analytics.ab_experiments, variants jsonb) RETURNS void
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
    where x.id = e.id and x.user_id = e.user_id
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
    update analytics.ab_experiments x set winner_variant_key = winner where x.id = e.id and x.user_id = e.user_id returning * into e;
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
        update analytics.ab_experiments x set phase = x.phase + 1 where x.id = e.id and x.user_id = e.user_id returning * into e;
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

-- ---- Metric capping (sql/022_experiments_lifecycle.sql, 023, 041): experiment_results' capping, cap_value,
-- cap_ignore_zeros and the capped_at column; the per-unit values in an inlinable function of their own; the columns
-- std_error and control_risk (GrowthBook's risk of keeping the control) ------------------------------------------
ALTER TYPE analytics.experiment_result_row ADD ATTRIBUTE capped_at double precision,
    ADD ATTRIBUTE std_error double precision, ADD ATTRIBUTE control_risk double precision;
DROP FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval);
DROP FUNCTION analytics._experiment_event_moments(uuid, integer, text, text);
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, boolean);
DROP FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision);

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
CREATE FUNCTION analytics._experiment_event_cap(experiment_id uuid, phase integer, metric text, q double precision,
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
CREATE FUNCTION analytics._experiment_event_nth(experiment_id uuid, phase integer, metric text, k bigint,
                                                negatives bigint, zeros bigint)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    -- (callable through PostgREST as every function an API role may execute: its arguments are checked)
    if k < 0 then
        raise exception 'k: must not be negative, got %', k using errcode = '22023';
    elsif negatives < 0 then
        raise exception 'negatives: must not be negative, got %', negatives using errcode = '22023';
    elsif zeros < 0 then
        raise exception 'zeros: must not be negative, got %', zeros using errcode = '22023';
    end if;
    return case
        when k < negatives then
            (select t.total from analytics.ab_experiment_unit_totals t
             where t.experiment_id = _experiment_event_nth.experiment_id and t.metric = _experiment_event_nth.metric
               and t.phase = _experiment_event_nth.phase and t.total < 0
             order by t.total offset k limit 1)
        -- (numeric: two counts near the bigint limit do not overflow their sum)
        when k < negatives::numeric + zeros then 0
        else
            (select t.total from analytics.ab_experiment_unit_totals t
             where t.experiment_id = _experiment_event_nth.experiment_id and t.metric = _experiment_event_nth.metric
               and t.phase = _experiment_event_nth.phase and t.total > 0
             order by t.total offset k - negatives - zeros limit 1)
    end;
end
$$;
COMMENT ON FUNCTION analytics._experiment_event_nth(uuid, integer, text, bigint, bigint, bigint) IS 'Internal: the k-th smallest unit total of an event metric, zeros included (analytics._experiment_event_cap).';

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

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped", "capping", "cap_value", "cap_ignore_zeros"} (as in experiment_results). The correction (none by default, holm or bh) covers every variant of every goal metric together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]', correction => 'holm');$$;

REVOKE EXECUTE ON FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
    analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision),
    analytics._experiment_event_moments(uuid, integer, text, text, double precision),
    analytics._experiment_event_cap(uuid, integer, text, double precision, boolean),
    analytics._experiment_event_nth(uuid, integer, text, bigint, bigint, bigint),
    analytics._quantile_grid(double precision), analytics._quantile_bounds(bigint, double precision[]),
    analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean),
    analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean) FROM PUBLIC;

DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
                analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision),
                analytics._experiment_event_moments(uuid, integer, text, text, double precision),
                analytics._experiment_event_cap(uuid, integer, text, double precision, boolean),
                analytics._experiment_event_nth(uuid, integer, text, bigint, bigint, bigint),
                analytics._quantile_grid(double precision), analytics._quantile_bounds(bigint, double precision[]),
                analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean),
                analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- GrowthBook's power calculator (src/experiments/sql.rs, sql/021_experiments_functions.sql): power_analysis ----
CREATE FUNCTION analytics."power_analysis"(
	"baseline" double precision, /* Option < f64 > */
	"effect" double precision, /* Option < f64 > */
	"units" bigint, /* Option < i64 > */
	"metric_type" TEXT DEFAULT 'binomial', /* Option < & str > */
	"std_dev" double precision DEFAULT NULL, /* Option < f64 > */
	"variants" INT DEFAULT 2, /* Option < i32 > */
	"alpha" double precision DEFAULT 0.05, /* Option < f64 > */
	"power" double precision DEFAULT 0.8, /* Option < f64 > */
	"engine" TEXT DEFAULT 'frequentist', /* Option < & str > */
	"sequential_tuning" double precision DEFAULT NULL, /* Option < f64 > */
	"prior_mean" double precision DEFAULT NULL, /* Option < f64 > */
	"prior_std_dev" double precision DEFAULT NULL /* Option < f64 > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'power_analysis_wrapper';
COMMENT ON FUNCTION analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision) IS
$$GrowthBook's power calculator for one metric: the power of an experiment with units in all (split evenly over variants) to detect the lift effect (0.05 = +5%) in a two-sided test, and the MDE, the smallest lift it detects with the given power. baseline is the control's conversion rate (metric_type 'binomial') or mean ('mean', with std_dev of the per-unit value); the control's variance is used for both groups, the lift's error by the delta method.
engine 'frequentist' (fixed horizon; sequential_tuning: GrowthBook's sequential testing, whose wider always-valid intervals lower the power) or 'bayesian' (flat prior, or the proper prior N(prior_mean, prior_std_dev²) on the lift; the MDE by GrowthBook's grid of 0.001 then 0.00001). Reproduces GrowthBook's own test figures to 5 decimals.
Returns {"power", "mde", "units_per_variant"}, with "mde": null and a "note" when no lift reaches the power.
Example: select analytics.power_analysis(baseline => 0.10, effect => 0.05, units => 100000);$$;
REVOKE EXECUTE ON FUNCTION analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- NAB: detect_anomalies and detect_series_anomalies report an anomaly score in [0, 1] (new symbol; 0.1.0's
-- stays); the surprise detector, the default of detect_anomalies, detect_series_anomalies and run_anomaly_detection
ALTER TABLE analytics.anomaly_detections DROP CONSTRAINT anomaly_detections_method_check,
    ADD CONSTRAINT anomaly_detections_method_check CHECK (method IN ('zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood', 'surprise'));
DROP FUNCTION analytics.detect_anomalies(double precision[], text, jsonb);
CREATE FUNCTION analytics."detect_anomalies"(
	"values" double precision[], /* Vec < Option < f64 > > */
	"method" TEXT DEFAULT 'surprise', /* & str */
	"params" jsonb DEFAULT '{}' /* pgrx :: JsonB */
) RETURNS TABLE (
	"idx" INT,  /* i32 */
	"value" double precision,  /* Option < f64 > */
	"score" double precision,  /* Option < f64 > */
	"anomaly_score" double precision,  /* Option < f64 > */
	"is_anomaly" bool,  /* bool */
	"alert" bool,  /* bool */
	"expected" double precision,  /* Option < f64 > */
	"lower_bound" double precision,  /* Option < f64 > */
	"upper_bound" double precision  /* Option < f64 > */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'detect_anomalies_scored_wrapper';
COMMENT ON FUNCTION analytics.detect_anomalies(double precision[], text, jsonb) IS
$$Runs an anomaly detector over a series (NULL or NaN elements are gaps): one row per element with idx (1-based), value, signed score, anomaly_score (in [0, 1], higher = more anomalous: the score on the log scale of Numenta's anomaly likelihood, for surprise u / (1 + u); what NAB's scorer sweeps a threshold over), is_anomaly, alert (the anomaly starts an episode: no other anomaly in the cooldown points before it), expected value and lower/upper bound. Causal: each point is judged against the points before it only.
Methods (default surprise): zscore (rolling mean/sd, threshold 3), mad (median/MAD modified z, 3.5), iqr (Tukey fences, k 1.5), ewma (EW mean/sd, 3), seasonal (same phase in past seasons + robust residual z, 3.5), cusum (level shifts, h 8), likelihood (Numenta's anomaly likelihood over a base detector's scores, default ewma with alpha 0.1; threshold 4), surprise (robust z in a short and a long window and against the same time of day in past periods, relative to the series' own 99th-percentile surprise, once per episode; threshold 1.8; the best on NAB). params: window, threshold, min_history, alpha (ewma), period (seasonal, surprise: points per day), slack (cusum), direction (both, up, down), base, short, history (likelihood, surprise), long, rest, seasons (surprise), cooldown (alerts; default 0).
Example: select idx, value, score, anomaly_score from analytics.detect_anomalies('{10,11,10,12,11,10,11,10,50,11}', 'mad', '{"window": 5}') where is_anomaly;$$;
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
DROP FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval);
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
COMMENT ON FUNCTION analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval) IS
$$detect_anomalies over (ts, value) pairs (default method surprise), returned in time order with the same columns. With bucket, the points must lie on a grid of that width starting at the first timestamp, and missing buckets are gaps (so seasonal periods stay aligned); without, the points follow each other in time order.
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

-- ---- Ingest failures recorded (sql/042_ingest_failures.sql): a batch refused by validation is answered through
-- PostgREST with status 400 and recorded in analytics.ingest_failures; the wrappers and record_span pass it on
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

ALTER TABLE analytics.ingest_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.ingest_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY ingest_failures_select_own ON analytics.ingest_failures FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_failures_insert_own ON analytics.ingest_failures FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_failures_update_own ON analytics.ingest_failures FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_failures_delete_own ON analytics.ingest_failures FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.ingest_failures'::regclass, '');
REVOKE ALL ON analytics.ingest_failures FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT, INSERT, DELETE ON analytics.ingest_failures TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.ingest_failures TO service_role;
    END IF;
END
$grants$;
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

REVOKE EXECUTE ON FUNCTION analytics._ingest_failed(text, jsonb, jsonb) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._ingest_failed(text, jsonb, jsonb) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
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
REVOKE EXECUTE ON FUNCTION analytics.ingest_failure_summary(timestamptz, timestamptz, interval) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.ingest_failure_summary(timestamptz, timestamptz, interval) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE OR REPLACE FUNCTION analytics.ingest_spans(spans jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    result jsonb;
begin
    perform analytics.check_rate_limit('ingest', answer => false);
    result := analytics._ingest_spans(spans);
    if result ? 'error' then
        -- refused by validation, nothing stored: recorded and answered (sql/042_ingest_failures.sql)
        return analytics._ingest_failed('ingest_spans', result->'error', spans);
    end if;
    -- stored: counted for the owner's ingest health (sql/042_ingest_failures.sql)
    return analytics._ingest_succeeded('ingest_spans', result, spans);
end
$$;
CREATE OR REPLACE FUNCTION analytics.ingest_otlp(payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    result jsonb;
begin
    perform analytics.check_rate_limit('ingest', answer => false);
    result := analytics._ingest_otlp(payload);
    if result ? 'error' then
        -- refused by validation, nothing stored: recorded and answered (sql/042_ingest_failures.sql)
        return analytics._ingest_failed('ingest_otlp', result->'error', payload);
    end if;
    -- stored: counted for the owner's ingest health (sql/042_ingest_failures.sql)
    return analytics._ingest_succeeded('ingest_otlp', result, payload);
end
$$;
COMMENT ON FUNCTION analytics.ingest_spans(jsonb) IS
$$Stores a batch of spans (JSON array of span objects, at most 100,000) in one all-or-nothing statement.
Re-sending a span (same owner, trace_id, span_id) updates it: fields sent win, fields left out keep their value, metadata objects are merged.
Children may arrive before their parents. Errors name the element and field, e.g. 'spans[3].end_time: is before start_time' (22023); a batch with an error stores no span. Through PostgREST such a refusal is answered with HTTP 400 and the error body instead of an exception, and recorded in analytics.ingest_failures; elsewhere it raises.
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

-- ---- Alert rules (sql/043_alert_rules.sql): thresholds over ingest failures and trace metrics, episodes in
-- analytics.alerts announced once with pg_notify('analytics_alerts')
CREATE TABLE analytics.alert_rules (
    user_id    uuid             NOT NULL DEFAULT analytics.current_user_id(),
    key        text             NOT NULL,
    metric     text             NOT NULL,
    operator   text             NOT NULL DEFAULT '>',
    threshold  double precision NOT NULL,
    window_length interval      NOT NULL DEFAULT '5 minutes',
    cooldown   interval         NOT NULL DEFAULT '30 minutes',
    enabled    boolean          NOT NULL DEFAULT true,
    created_at timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT alert_rules_pkey PRIMARY KEY (user_id, key),
    CONSTRAINT alert_rules_key_check CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    CONSTRAINT alert_rules_metric_check CHECK (metric IN ('ingest_failures', 'ingest_failure_rate', 'request_count',
        'error_count', 'error_rate', 'latency_p50', 'latency_p90', 'latency_p95', 'latency_p99', 'ttft_p50', 'ttft_p95',
        'input_tokens', 'output_tokens', 'tokens', 'cost')),
    CONSTRAINT alert_rules_operator_check CHECK (operator IN ('>', '>=', '<', '<=')),
    CONSTRAINT alert_rules_threshold_check CHECK (threshold NOT IN ('NaN', 'Infinity', '-Infinity')),
    CONSTRAINT alert_rules_window_check CHECK (window_length > interval '0' AND window_length <= interval '31 days'
        AND extract(month from window_length) = 0 AND extract(year from window_length) = 0),
    CONSTRAINT alert_rules_cooldown_check CHECK (cooldown >= interval '0')
);
COMMENT ON TABLE analytics.alert_rules IS
'An owner''s alert rules: metric operator threshold over the last whole window (ingest_failures: refused ingest calls; ingest_failure_rate: refused spans / (refused spans + spans stored by the calls accepted in the window, counted per minute); the trace metrics of analytics.trace_metrics), evaluated by analytics.evaluate_alert_rules. cooldown: the quiet time after an episode is resolved before the rule may fire again.';

CREATE TABLE analytics.alerts (
    id          uuid             NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid             NOT NULL DEFAULT analytics.current_user_id(),
    rule_key    text             NOT NULL,
    metric      text             NOT NULL,
    operator    text             NOT NULL,
    threshold   double precision NOT NULL,
    value       double precision NOT NULL,
    status      text             NOT NULL DEFAULT 'firing',
    fired_at    timestamptz      NOT NULL,
    last_seen   timestamptz      NOT NULL,
    resolved_at timestamptz,
    CONSTRAINT alerts_pkey PRIMARY KEY (user_id, id),
    CONSTRAINT alerts_rule_fkey FOREIGN KEY (user_id, rule_key) REFERENCES analytics.alert_rules (user_id, key)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT alerts_status_check CHECK (status IN ('firing', 'resolved')),
    CONSTRAINT alerts_resolved_check CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- one open episode per rule
CREATE UNIQUE INDEX alerts_one_firing_idx ON analytics.alerts (user_id, rule_key) WHERE status = 'firing';
CREATE INDEX alerts_user_time_idx ON analytics.alerts (user_id, fired_at);
COMMENT ON TABLE analytics.alerts IS
'Alert episodes of analytics.alert_rules: fired_at (the window end of the first breach), last_seen (of the latest), the value that last breached, resolved_at once an evaluation found no breach. Supabase Realtime can deliver the rows; pg_notify(''analytics_alerts'') announces each new episode once.';

ALTER TABLE analytics.alert_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.alert_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY alert_rules_select_own ON analytics.alert_rules FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY alert_rules_insert_own ON analytics.alert_rules FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY alert_rules_update_own ON analytics.alert_rules FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY alert_rules_delete_own ON analytics.alert_rules FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.alert_rules'::regclass, '');
REVOKE ALL ON analytics.alert_rules FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.alert_rules TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
ALTER TABLE analytics.alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY alerts_select_own ON analytics.alerts FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY alerts_insert_own ON analytics.alerts FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY alerts_update_own ON analytics.alerts FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY alerts_delete_own ON analytics.alerts FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.alerts'::regclass, '');
REVOKE ALL ON analytics.alerts FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.alerts TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE FUNCTION analytics._alert_metric(metric text, owner uuid, from_time timestamptz, to_time timestamptz)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    rejected bigint;
    started bigint;
    m analytics.trace_metrics_row;
begin
    if not isfinite(from_time) or not isfinite(to_time) then
        raise exception 'from_time, to_time: must be finite times, got % and %', from_time, to_time using errcode = '22023';
    end if;
    if metric = 'ingest_failures' then
        return (select count(*) from analytics.ingest_failures f
                where f.user_id = owner and f.failed_at >= from_time and f.failed_at < to_time);
    end if;
    if metric = 'ingest_failure_rate' then
        select coalesce(sum(greatest(coalesce(f.batch_size, 1), 1)), 0) into rejected
        from analytics.ingest_failures f
        where f.user_id = owner and f.failed_at >= from_time and f.failed_at < to_time;
        -- spans stored by the calls accepted in the window (ingest_stats: per minute)
        select coalesce(sum(s.spans), 0) into started from analytics.ingest_stats s
        where s.user_id = owner and s.bucket_start >= from_time and s.bucket_start < to_time;
        return case when rejected + started > 0 then rejected::double precision / (rejected + started) end;
    end if;
    select * into m from analytics._trace_metrics(to_time - from_time, from_time, to_time, user_id => owner) limit 1;
    return case metric
        when 'request_count' then coalesce(m.request_count, 0) when 'error_count' then coalesce(m.error_count, 0)
        when 'error_rate' then m.error_rate
        when 'latency_p50' then m.latency_p50_ms when 'latency_p90' then m.latency_p90_ms
        when 'latency_p95' then m.latency_p95_ms when 'latency_p99' then m.latency_p99_ms
        when 'ttft_p50' then m.ttft_p50_ms when 'ttft_p95' then m.ttft_p95_ms
        when 'input_tokens' then coalesce(m.input_tokens, 0) when 'output_tokens' then coalesce(m.output_tokens, 0)
        when 'tokens' then coalesce(m.total_tokens, 0) when 'cost' then coalesce(m.cost_usd, 0) end;
end
$$;
COMMENT ON FUNCTION analytics._alert_metric(text, uuid, timestamptz, timestamptz) IS
'The value of an alert rule''s metric for one owner over [from_time, to_time); NULL when there is no data (rates and percentiles without spans). Internal: analytics.evaluate_alert_rules.';

REVOKE EXECUTE ON FUNCTION analytics._alert_metric(text, uuid, timestamptz, timestamptz) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._alert_metric(text, uuid, timestamptz, timestamptz) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE FUNCTION analytics.evaluate_alert_rules(
    as_of   timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS SETOF analytics.alerts
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(evaluate_alert_rules.user_id, analytics.current_user_id());
    r analytics.alert_rules;
    open_alert analytics.alerts;
    done analytics.alerts;
    window_end timestamptz;
    v double precision;
    breach boolean;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose rules to evaluate'
            using errcode = '42501';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    for r in select * from analytics.alert_rules a where a.user_id = owner and a.enabled order by a.key loop
        -- the last whole window before as_of, on a grid of the window's length (as run_anomaly_detection's buckets)
        window_end := date_bin(r.window_length, as_of, timestamptz '2000-01-01 00:00+00');
        v := analytics._alert_metric(r.metric, owner, window_end - r.window_length, window_end);
        breach := case r.operator when '>' then v > r.threshold when '>=' then v >= r.threshold
                                  when '<' then v < r.threshold else v <= r.threshold end;
        select * into open_alert from analytics.alerts a
        where a.user_id = owner and a.rule_key = r.key and a.status = 'firing' for update;
        if coalesce(breach, false) then
            if open_alert.id is not null then
                -- the same episode: remembered, not announced again
                update analytics.alerts a set last_seen = greatest(a.last_seen, window_end), value = v
                where a.user_id = owner and a.id = open_alert.id;
            elsif not exists (select 1 from analytics.alerts a
                              where a.user_id = owner and a.rule_key = r.key and a.status = 'resolved'
                                and a.resolved_at > window_end - r.cooldown) then
                insert into analytics.alerts as a (user_id, rule_key, metric, operator, threshold, value, fired_at, last_seen)
                values (owner, r.key, r.metric, r.operator, r.threshold, v, window_end, window_end)
                on conflict (user_id, rule_key) where status = 'firing' do nothing
                returning a.* into done;
                if done.id is not null then
                    perform pg_catalog.pg_notify('analytics_alerts', jsonb_build_object(
                        'user_id', owner, 'alert_id', done.id, 'rule', r.key, 'metric', r.metric,
                        'operator', r.operator, 'threshold', r.threshold, 'value', v, 'window_start', window_end - r.window_length,
                        'window_end', window_end, 'status', 'firing')::text);
                    return next done;
                end if;
            end if;
        elsif open_alert.id is not null and window_end > open_alert.last_seen then
            update analytics.alerts a set status = 'resolved', resolved_at = window_end
            where a.user_id = owner and a.id = open_alert.id
            returning a.* into done;
            return next done;
        end if;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics.evaluate_alert_rules(timestamptz, uuid) IS
$$Evaluates every enabled rule of the caller (or of user_id, for a scheduled job without a JWT) over its last whole window before as_of: a breach with no open episode opens one (a row in analytics.alerts, announced once with pg_notify('analytics_alerts', json) — unless the rule's cooldown since the last resolved episode has not passed), a breach during an open episode updates it silently, and the first window without a breach resolves it. Returns the alerts opened or resolved by this run. Re-running for the same as_of changes nothing.
Example: select rule_key, status, value from analytics.evaluate_alert_rules(now());$$;
REVOKE EXECUTE ON FUNCTION analytics.evaluate_alert_rules(timestamptz, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.evaluate_alert_rules(timestamptz, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- LLM costs (sql/044_costs.sql): a reasoning-token price, the built-in price list, which price applies, and
-- recomputing stored costs. (llm_traces.cost_computed is a column of the partitioned table created above.)
ALTER TABLE analytics.model_prices ADD COLUMN reasoning_usd_per_mtok double precision;
ALTER TABLE analytics.model_prices ADD CONSTRAINT model_prices_reasoning_check CHECK (
        reasoning_usd_per_mtok >= 0 AND reasoning_usd_per_mtok < 'Infinity'::double precision);
COMMENT ON TABLE analytics.model_prices IS
'An owner''s prices per million tokens by model (exact name or prefix*), optionally per provider, from effective_from on: input, output, cache read and write (NULL: the input price), reasoning (NULL: the output price). Ingest uses them, before the built-in list (analytics.builtin_model_prices), to compute cost_usd of spans sent without one; analytics.recompute_costs applies changed prices to stored spans.';
CREATE FUNCTION analytics."builtin_model_prices"() RETURNS TABLE (
	"model" TEXT,  /* String */
	"provider" TEXT,  /* String */
	"input_usd_per_mtok" double precision,  /* f64 */
	"output_usd_per_mtok" double precision,  /* f64 */
	"cache_read_usd_per_mtok" double precision,  /* f64 */
	"cache_write_usd_per_mtok" double precision,  /* f64 */
	"reasoning_usd_per_mtok" double precision,  /* f64 */
	"as_of" date,  /* pgrx :: datum :: Date */
	"source" TEXT  /* String */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'builtin_model_prices_wrapper';
COMMENT ON FUNCTION analytics.builtin_model_prices() IS
$$The built-in price list, one row per model name: USD per million input, output, cache-read, cache-write and reasoning tokens (standard tier, prompts up to 200k tokens, 5-minute cache writes), the day the price was read (as_of) and its source. Ingest prices a span sent without cost_usd from it when the owner has no matching row in analytics.model_prices; the setting analytics.builtin_prices = off switches it off.
Example: select model, input_usd_per_mtok, output_usd_per_mtok from analytics.builtin_model_prices() where provider = 'anthropic';$$;
REVOKE EXECUTE ON FUNCTION analytics.builtin_model_prices() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.builtin_model_prices() TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE FUNCTION analytics."model_price"(
	"model" TEXT, /* Option < & str > */
	"provider" TEXT DEFAULT NULL, /* Option < & str > */
	"at" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS TABLE (
	"origin" TEXT,  /* String */
	"price_model" TEXT,  /* String */
	"price_provider" TEXT,  /* Option < String > */
	"input_usd_per_mtok" double precision,  /* f64 */
	"output_usd_per_mtok" double precision,  /* f64 */
	"cache_read_usd_per_mtok" double precision,  /* f64 */
	"cache_write_usd_per_mtok" double precision,  /* f64 */
	"reasoning_usd_per_mtok" double precision,  /* f64 */
	"source" TEXT  /* String */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'model_price_wrapper';
COMMENT ON FUNCTION analytics.model_price(text, text, timestamptz, uuid) IS
$$The price ingest applies to a span of this model (and provider) starting at `at`, for the caller (or user_id): the owner's most specific row of analytics.model_prices (origin 'owner'), else the built-in one (origin 'builtin'), else no row. Cache prices default to the input price, the reasoning price to the output price.
Example: select origin, input_usd_per_mtok, output_usd_per_mtok from analytics.model_price('gpt-4o-mini');$$;
REVOKE EXECUTE ON FUNCTION analytics.model_price(text, text, timestamptz, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.model_price(text, text, timestamptz, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
CREATE FUNCTION analytics."recompute_costs"(
	"from_time" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"to_time" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"model" TEXT DEFAULT NULL, /* Option < & str > */
	"include_sent" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"spans_examined" bigint,  /* i64 */
	"spans_updated" bigint,  /* i64 */
	"cost_before_usd" double precision,  /* f64 */
	"cost_after_usd" double precision  /* f64 */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recompute_costs_wrapper';
COMMENT ON FUNCTION analytics.recompute_costs(timestamptz, timestamptz, text, boolean) IS
$$Applies today's prices (analytics.model_prices, then the built-in list) to the caller's stored spans that started in [from_time, to_time), optionally of one model: a cost computed at ingest (cost_computed) or missing is recomputed; a cost the client sent is kept unless include_sent. A span no price applies to any more loses its computed cost. Returns the spans examined and updated and the total cost before and after. Reads and writes in chunks of 10,000 spans.
Example: select * from analytics.recompute_costs(now() - interval '30 days', now());$$;
REVOKE EXECUTE ON FUNCTION analytics.recompute_costs(timestamptz, timestamptz, text, boolean) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.recompute_costs(timestamptz, timestamptz, text, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Budgets (sql/045_budgets.sql): spend limits per day or month, alerts at thresholds, HTTP 429 from hard budgets.
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

ALTER TABLE analytics.budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY budgets_select_own ON analytics.budgets FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY budgets_insert_own ON analytics.budgets FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY budgets_update_own ON analytics.budgets FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY budgets_delete_own ON analytics.budgets FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.budgets'::regclass, '');
REVOKE ALL ON analytics.budgets FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.budgets TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
ALTER TABLE analytics.budget_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.budget_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY budget_alerts_select_own ON analytics.budget_alerts FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY budget_alerts_insert_own ON analytics.budget_alerts FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY budget_alerts_update_own ON analytics.budget_alerts FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY budget_alerts_delete_own ON analytics.budget_alerts FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.budget_alerts'::regclass, '');
REVOKE ALL ON analytics.budget_alerts FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.budget_alerts TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
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
REVOKE EXECUTE ON FUNCTION analytics._budget_spent(uuid, text, text, timestamptz, timestamptz) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._budget_spent(uuid, text, text, timestamptz, timestamptz) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
REVOKE EXECUTE ON FUNCTION analytics.budget_status(timestamptz, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.budget_status(timestamptz, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
REVOKE EXECUTE ON FUNCTION analytics.evaluate_budgets(timestamptz, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.evaluate_budgets(timestamptz, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
REVOKE EXECUTE ON FUNCTION analytics.check_budget(text, text) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.check_budget(text, text) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Storage and usage (sql/046_usage.sql): storage per owner and trace, daily usage snapshots, projections, cost report.
CREATE FUNCTION analytics."_project_trend"(
	"xs" double precision[], /* :: std :: option :: Option < Vec < Option < f64 > > > */
	"ys" double precision[], /* :: std :: option :: Option < Vec < Option < f64 > > > */
	"last_x" double precision, /* Option < f64 > */
	"horizons" INT[], /* :: std :: option :: Option < Vec < Option < i32 > > > */
	"stock" bool, /* Option < bool > */
	"level" double precision /* Option < f64 > */
) RETURNS TABLE (
	"horizon_days" INT,  /* i32 */
	"projected" double precision,  /* f64 */
	"lower_bound" double precision,  /* Option < f64 > */
	"upper_bound" double precision,  /* Option < f64 > */
	"slope_per_day" double precision,  /* f64 */
	"r_squared" double precision,  /* f64 */
	"days_fitted" INT  /* i32 */
)
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'project_trend_wrapper';
-- Storage and usage: what an owner's spans take on disk (measured per row, indexes apportioned), biggest traces,
-- a daily usage snapshot per owner written idempotently by a pg_cron job, projections of storage and spend from
-- a least-squares trend over the snapshots (analytics_core::usage), and a cost report.
--
-- Bytes of a span: its heap tuple as stored — header, null bitmap and data, with values TOASTed out of line counted at
-- their stored (compressed) size; pg_column_size of the whole row — aligned to 8 bytes, plus its 4-byte line pointer.
-- Index bytes are apportioned by row count: each index of llm_traces has one entry per span, so an owner's share of
-- the indexes is their share of the rows (of the planner's row estimate, pg_class.reltuples, which autovacuum and
-- ANALYZE keep). Not attributed to anyone: free space in pages, dead rows not yet vacuumed, TOAST chunk headers and
-- the free space and visibility maps; storage_summary reports the tables' total beside the owners' figures.

COMMENT ON FUNCTION analytics._project_trend(double precision[], double precision[], double precision, integer[], boolean, double precision) IS
'A least-squares line through (xs, ys) and, per horizon, a stock''s value or a flow''s total ahead of last_x with its prediction interval (analytics_core::usage). Internal: analytics.usage_projection.';
REVOKE EXECUTE ON FUNCTION analytics._project_trend(double precision[], double precision[], double precision, integer[], boolean, double precision) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._project_trend(double precision[], double precision[], double precision, integer[], boolean, double precision) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- sizes of the span table ------------------------------------------------------------------------------------------
CREATE FUNCTION analytics._span_relation_sizes(OUT table_bytes bigint, OUT index_bytes bigint, OUT rows_estimate bigint)
RETURNS record
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
    select coalesce(sum(pg_catalog.pg_table_size(p.relid)), 0)::bigint,
           coalesce(sum(pg_catalog.pg_indexes_size(p.relid)), 0)::bigint,
           coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
    from pg_catalog.pg_partition_tree('analytics.llm_traces'::regclass) p
    join pg_catalog.pg_class c on c.oid = p.relid
    where p.isleaf
$$;
COMMENT ON FUNCTION analytics._span_relation_sizes() IS
'The partitions of analytics.llm_traces together: table bytes (heap, TOAST, maps), index bytes, and the planner''s row estimate. Internal: storage_summary, storage_by_trace, snapshot_usage.';
REVOKE EXECUTE ON FUNCTION analytics._span_relation_sizes() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._span_relation_sizes() TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- the stored bytes of one span row, read through analytics.llm_traces or from one of its partitions (no SET clause,
-- and STABLE like pg_column_size, so that it is inlined into the queries that call it: a function declared IMMUTABLE
-- around a STABLE one is not, and costs a call per row)
CREATE FUNCTION analytics._span_bytes(s anyelement)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE STRICT
AS $$
    select ((pg_catalog.pg_column_size(s) + 7) / 8 * 8 + 4)::bigint
$$;
COMMENT ON FUNCTION analytics._span_bytes(anyelement) IS
'The bytes a span row (of analytics.llm_traces or of one of its partitions) takes in its table: the tuple (TOASTed values at their stored size) aligned to 8 bytes, plus its line pointer. Internal.';
REVOKE EXECUTE ON FUNCTION analytics._span_bytes(anyelement) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._span_bytes(anyelement) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- storage_summary --------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.storage_summary()
RETURNS TABLE (
    user_id           uuid,
    spans             bigint,
    traces            bigint,
    row_bytes         bigint,
    index_bytes       bigint,
    total_bytes       bigint,
    bytes_per_span    double precision,
    bytes_per_trace   double precision,
    table_total_bytes bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    sz record;
begin
    select * into sz from analytics._span_relation_sizes();
    return query
    with o as (
        select t.user_id as owner, count(*) as n, count(distinct t.trace_id) as tr, sum(analytics._span_bytes(t)) as rb
        from analytics.llm_traces t
        group by t.user_id
    ), tot as (
        select coalesce(sum(o.n), 0) as n from o
    )
    select o.owner, o.n, o.tr, o.rb::bigint,
           (sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1))::bigint,
           (o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1))::bigint,
           ((o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1)) / o.n)::double precision,
           ((o.rb + sz.index_bytes::numeric * o.n / greatest(sz.rows_estimate, tot.n, 1)) / o.tr)::double precision,
           sz.table_bytes + sz.index_bytes
    from o, tot
    order by 6 desc, 1;
end
$$;
COMMENT ON FUNCTION analytics.storage_summary() IS
$$Storage of spans per owner the caller may read (a user: themselves; the DBA, service_role or a BYPASSRLS job: every owner): spans, traces, measured row bytes (TOASTed values at their stored size), the owner's share of the indexes (by row count), their total, bytes per span and per trace, and the span tables' total size (pg_total_relation_size of every partition) for comparison: the difference is free space, dead rows not yet vacuumed and TOAST overhead.
Example: select spans, traces, total_bytes, round(bytes_per_span) as bytes_per_span from analytics.storage_summary();$$;
REVOKE EXECUTE ON FUNCTION analytics.storage_summary() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.storage_summary() TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- storage_by_trace: the biggest traces -------------------------------------------------------------------------------
CREATE FUNCTION analytics.storage_by_trace(
    from_time timestamptz DEFAULT now() - interval '7 days',
    to_time   timestamptz DEFAULT now(),
    "limit"   integer     DEFAULT 20,
    user_id   uuid        DEFAULT NULL
) RETURNS TABLE (
    trace_id       text,
    spans          bigint,
    started_at     timestamptz,
    total_bytes    bigint,
    row_bytes      bigint,
    index_bytes    bigint,
    input_bytes    bigint,
    output_bytes   bigint,
    metadata_bytes bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(storage_by_trace.user_id, analytics.current_user_id());
    sz record;
    total_rows bigint;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose traces to measure'
            using errcode = '42501';
    end if;
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if "limit" is null or "limit" < 1 or "limit" > 1000 then
        raise exception 'limit: must be between 1 and 1000, got %', coalesce("limit"::text, 'NULL') using errcode = '22023';
    end if;
    select * into sz from analytics._span_relation_sizes();
    total_rows := greatest(sz.rows_estimate, 1);
    return query
    select t.trace_id, count(*), min(t.start_time),
           (sum(analytics._span_bytes(t)) + sz.index_bytes::numeric * count(*) / total_rows)::bigint,
           sum(analytics._span_bytes(t))::bigint,
           (sz.index_bytes::numeric * count(*) / total_rows)::bigint,
           coalesce(sum(pg_catalog.pg_column_size(t.input)), 0)::bigint,
           coalesce(sum(pg_catalog.pg_column_size(t.output)), 0)::bigint,
           sum(pg_catalog.pg_column_size(t.metadata))::bigint
    from analytics.llm_traces t
    where t.user_id = owner and t.start_time >= from_time and t.start_time < to_time
    group by t.trace_id
    order by 4 desc, 1
    limit "limit";
end
$$;
COMMENT ON FUNCTION analytics.storage_by_trace(timestamptz, timestamptz, integer, uuid) IS
$$The caller's (or user_id's) biggest traces among the spans that started in [from_time, to_time): spans, first start, total bytes (measured rows plus the index share by row count), and the stored (compressed) bytes of input, output and metadata — where the bytes go. Up to "limit" traces (1 to 1000), biggest first.
Example: select trace_id, spans, total_bytes, output_bytes from analytics.storage_by_trace(now() - interval '1 day', now(), 5);$$;
REVOKE EXECUTE ON FUNCTION analytics.storage_by_trace(timestamptz, timestamptz, integer, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.storage_by_trace(timestamptz, timestamptz, integer, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- usage snapshots --------------------------------------------------------------------------------------------------
CREATE TABLE analytics.usage_snapshots (
    user_id            uuid             NOT NULL DEFAULT analytics.current_user_id(),
    day                date             NOT NULL,
    -- stored when the snapshot was taken: spans that started before the end of the day, and their bytes
    spans_stored       bigint           NOT NULL,
    bytes_stored       bigint           NOT NULL,
    -- the day's activity: spans and traces that started on it, their tokens and LLM cost
    spans              bigint           NOT NULL,
    traces             bigint           NOT NULL,
    input_tokens       bigint           NOT NULL,
    output_tokens      bigint           NOT NULL,
    cache_read_tokens  bigint           NOT NULL,
    cache_write_tokens bigint           NOT NULL,
    reasoning_tokens   bigint           NOT NULL,
    cost_usd           double precision NOT NULL,
    taken_at           timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT usage_snapshots_pkey PRIMARY KEY (user_id, day)
);
COMMENT ON TABLE analytics.usage_snapshots IS
'One row per owner and day (UTC), written by analytics.snapshot_usage: spans and bytes stored (spans that started before the end of the day, as of taken_at; bytes as analytics.storage_summary measures them), and the day''s spans, traces, tokens by kind and LLM cost. The history analytics.usage_projection fits.';
ALTER TABLE analytics.usage_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.usage_snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_snapshots_select_own ON analytics.usage_snapshots FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY usage_snapshots_insert_own ON analytics.usage_snapshots FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY usage_snapshots_update_own ON analytics.usage_snapshots FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY usage_snapshots_delete_own ON analytics.usage_snapshots FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_snapshots'::regclass, '');
REVOKE ALL ON analytics.usage_snapshots FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.usage_snapshots TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

CREATE FUNCTION analytics.snapshot_usage(
    day     date DEFAULT ((now() AT TIME ZONE 'UTC')::date - 1),
    user_id uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    day_start timestamptz;
    day_end timestamptz;
    sz record;
    written integer;
begin
    if snapshot_usage.day is null then
        raise exception 'day: is required' using errcode = '22004';
    end if;
    day_start := snapshot_usage.day::timestamp AT TIME ZONE 'UTC';
    day_end := day_start + interval '1 day';
    select * into sz from analytics._span_relation_sizes();
    -- every owner the caller may read (a job: all of them), or one
    with stored as (
        select s.user_id as owner, s.spans as n, s.row_bytes as rb
        from analytics._stored_by_owner(day_end, snapshot_usage.user_id) s
    ), total as (
        select greatest(sz.rows_estimate, coalesce(sum(stored.n), 0), 1) as n from stored
    ), active as (
        select t.user_id as owner, count(*) as spans, count(distinct t.trace_id) as traces,
               sum(t.input_tokens)::bigint as input_tokens, sum(t.output_tokens)::bigint as output_tokens,
               sum(t.cache_read_tokens)::bigint as cache_read_tokens, sum(t.cache_write_tokens)::bigint as cache_write_tokens,
               sum(t.reasoning_tokens)::bigint as reasoning_tokens, sum(t.cost_usd) as cost_usd
        from analytics.llm_traces t
        where t.start_time >= day_start and t.start_time < day_end
          and (snapshot_usage.user_id is null or t.user_id = snapshot_usage.user_id)
        group by t.user_id
    )
    insert into analytics.usage_snapshots as u (user_id, day, spans_stored, bytes_stored, spans, traces, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, taken_at)
    select s.owner, snapshot_usage.day, s.n, (s.rb + sz.index_bytes::numeric * s.n / total.n)::bigint,
           coalesce(d.spans, 0), coalesce(d.traces, 0), coalesce(d.input_tokens, 0), coalesce(d.output_tokens, 0),
           coalesce(d.cache_read_tokens, 0), coalesce(d.cache_write_tokens, 0), coalesce(d.reasoning_tokens, 0),
           coalesce(d.cost_usd, 0), now()
    from stored s cross join total left join active d on d.owner = s.owner
    on conflict (user_id, day) do update set
        spans_stored = excluded.spans_stored, bytes_stored = excluded.bytes_stored, spans = excluded.spans,
        traces = excluded.traces, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
        cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,
        reasoning_tokens = excluded.reasoning_tokens, cost_usd = excluded.cost_usd, taken_at = excluded.taken_at;
    get diagnostics written = row_count;
    return written;
end
$$;
COMMENT ON FUNCTION analytics.snapshot_usage(date, uuid) IS
$$Writes the usage snapshot of one day (UTC; default yesterday) for every owner the caller may read — a pg_cron job: all of them — or for user_id: one row per owner in analytics.usage_snapshots, replaced when run again for the same day (idempotent). Returns the number of owners written. Run by a job that reads every owner (superuser or BYPASSRLS, with pg_read_all_stats), it measures only the days that are new or were written since its last run and reads the settled ones from its cache (analytics.usage_cache_days).
Example: select analytics.snapshot_usage(current_date - 1);$$;
REVOKE EXECUTE ON FUNCTION analytics.snapshot_usage(date, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.snapshot_usage(date, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- usage_projection -------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.usage_projection(
    metric   text      DEFAULT 'cost_usd',
    horizons integer[] DEFAULT '{30,90,365}',
    history  integer   DEFAULT 90,
    level    double precision DEFAULT 0.95,
    as_of    date      DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    user_id  uuid      DEFAULT NULL
) RETURNS TABLE (
    horizon_days  integer,
    until_day     date,
    projected     double precision,
    lower_bound   double precision,
    upper_bound   double precision,
    slope_per_day double precision,
    r_squared     double precision,
    days_fitted   integer
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(usage_projection.user_id, analytics.current_user_id());
    stock boolean;
    xs double precision[];
    ys double precision[];
    last_day date;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose usage to project'
            using errcode = '42501';
    end if;
    stock := case metric when 'bytes_stored' then true when 'spans_stored' then true
                         when 'cost_usd' then false when 'spans' then false when 'tokens' then false
                         when 'input_tokens' then false when 'output_tokens' then false end;
    if stock is null then
        raise exception 'metric: must be one of bytes_stored, spans_stored (stored on a day) or cost_usd, spans, tokens, input_tokens, output_tokens (per day), got %',
            coalesce(metric, 'NULL') using errcode = '22023';
    end if;
    if history is null or history < 2 or history > 3660 then
        raise exception 'history: must be between 2 and 3660 days, got %', coalesce(history::text, 'NULL') using errcode = '22023';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    select array_agg((s.day - as_of)::double precision order by s.day),
           array_agg(case metric when 'bytes_stored' then s.bytes_stored::double precision
                                 when 'spans_stored' then s.spans_stored::double precision
                                 when 'cost_usd' then s.cost_usd when 'spans' then s.spans::double precision
                                 when 'tokens' then (s.input_tokens + s.output_tokens)::double precision
                                 when 'input_tokens' then s.input_tokens::double precision
                                 else s.output_tokens::double precision end order by s.day),
           max(s.day)
    into xs, ys, last_day
    from analytics.usage_snapshots s
    where s.user_id = owner and s.day < as_of and s.day >= as_of - history;
    if coalesce(cardinality(xs), 0) < 2 then
        raise exception 'usage_snapshots: % day% of history before % for this owner; a trend needs at least 2 (analytics.snapshot_usage writes one a day)',
            coalesce(cardinality(xs), 0), case when cardinality(xs) = 1 then '' else 's' end, as_of
            using errcode = 'P0002';
    end if;
    return query
    select p.horizon_days, last_day + p.horizon_days, p.projected, p.lower_bound, p.upper_bound, p.slope_per_day,
           p.r_squared, p.days_fitted
    from analytics._project_trend(xs, ys, (last_day - as_of)::double precision, horizons, stock, level) p;
end
$$;
COMMENT ON FUNCTION analytics.usage_projection(text, integer[], integer, double precision, date, uuid) IS
$$Projects the caller's (or user_id's) usage from a least-squares line through the daily snapshots of the last `history` days before as_of: for a stock (bytes_stored, spans_stored) its value `h` days after the last snapshot, for a flow (cost_usd, spans, tokens, input_tokens, output_tokens) the total of the next `h` days, each with the prediction interval at `level` (the fit's uncertainty and the days' own scatter; NULL bounds with only two days). Values and bounds are floored at 0. Raises P0002 with fewer than two snapshots.
Example: select horizon_days, projected, lower_bound, upper_bound from analytics.usage_projection('cost_usd', '{30,90,365}');$$;
REVOKE EXECUTE ON FUNCTION analytics.usage_projection(text, integer[], integer, double precision, date, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.usage_projection(text, integer[], integer, double precision, date, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- cost_report ------------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.cost_report(
    from_time timestamptz DEFAULT now() - interval '30 days',
    to_time   timestamptz DEFAULT now(),
    group_by  text[]      DEFAULT '{model}'
) RETURNS TABLE (
    day                date,
    model              text,
    provider           text,
    operation_type     text,
    spans              bigint,
    input_tokens       bigint,
    output_tokens      bigint,
    cache_read_tokens  bigint,
    cache_write_tokens bigint,
    reasoning_tokens   bigint,
    cost_usd           double precision,
    unpriced_spans     bigint
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    by_day boolean;
    by_model boolean;
    by_provider boolean;
    by_operation boolean;
    bad text;
begin
    if from_time is null or to_time is null or to_time <= from_time then
        raise exception 'to_time: must be after from_time' using errcode = '22023';
    end if;
    if group_by is null then
        raise exception 'group_by: is required (an array of day, model, provider, operation_type; {} for one total)' using errcode = '22004';
    end if;
    select g into bad from unnest(group_by) g where g is null or g not in ('day', 'model', 'provider', 'operation_type') limit 1;
    if found then
        raise exception 'group_by: must name day, model, provider or operation_type, got %', coalesce(bad, 'NULL') using errcode = '22023';
    end if;
    by_day := 'day' = any(group_by);
    by_model := 'model' = any(group_by);
    by_provider := 'provider' = any(group_by);
    by_operation := 'operation_type' = any(group_by);
    return query
    select g.d, g.m, g.p, g.o, count(*), sum(g.input_tokens)::bigint, sum(g.output_tokens)::bigint,
           sum(g.cache_read_tokens)::bigint, sum(g.cache_write_tokens)::bigint, sum(g.reasoning_tokens)::bigint,
           coalesce(sum(g.cost_usd), 0),
           count(*) filter (where g.cost_usd is null and (g.input_tokens is not null or g.output_tokens is not null))
    from (select case when by_day then (t.start_time AT TIME ZONE 'UTC')::date end as d,
                 case when by_model then t.model end as m,
                 case when by_provider then t.provider end as p,
                 case when by_operation then t.operation_type end as o,
                 t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.cost_usd
          from analytics.llm_traces t
          where t.start_time >= from_time and t.start_time < to_time) g
    group by g.d, g.m, g.p, g.o
    order by g.d nulls first, 11 desc, g.m, g.p, g.o;
end
$$;
COMMENT ON FUNCTION analytics.cost_report(timestamptz, timestamptz, text[]) IS
$$The caller's LLM spend over the spans that started in [from_time, to_time), grouped by any of day (UTC), model, provider and operation_type (columns not grouped by are NULL; '{}' gives one total): spans, tokens by kind, cost, and the spans with tokens but no cost (no price applied: add one to analytics.model_prices, then analytics.recompute_costs).
Example: select model, spans, cost_usd from analytics.cost_report(now() - interval '30 days', now(), '{model}');$$;
REVOKE EXECUTE ON FUNCTION analytics.cost_report(timestamptz, timestamptz, text[]) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.cost_report(timestamptz, timestamptz, text[]) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Ingest health (sql/042_ingest_failures.sql): successful calls counted per owner, minute and connection; ingest_health.
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
ALTER TABLE analytics.ingest_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.ingest_stats FORCE ROW LEVEL SECURITY;
CREATE POLICY ingest_stats_select_own ON analytics.ingest_stats FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_stats_insert_own ON analytics.ingest_stats FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_stats_update_own ON analytics.ingest_stats FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ingest_stats_delete_own ON analytics.ingest_stats FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.ingest_stats'::regclass, '');
REVOKE ALL ON analytics.ingest_stats FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.ingest_stats TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
REVOKE EXECUTE ON FUNCTION analytics._ingest_succeeded(text, jsonb, jsonb) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._ingest_succeeded(text, jsonb, jsonb) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

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
REVOKE EXECUTE ON FUNCTION analytics.ingest_health(timestamptz, timestamptz, interval) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.ingest_health(timestamptz, timestamptz, interval) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Usage snapshot cache (sql/046_usage.sql): the settled days' stored spans and bytes per owner kept per partition,
-- late writes logged by a row trigger; snapshot_usage (above) reads it through _stored_by_owner.
-- ---- the cache of settled days: what makes the daily snapshot cheap ---------------------------------------------------
-- "Stored on day D" needs every span that started before the end of D, measured row by row: a scan of the whole table
-- and a pg_column_size of every row, every day. Spans of days that are over change rarely (a late span, a re-send, a
-- deletion), so snapshot_usage keeps per partition, per UTC day and per owner the spans and row bytes of the days that
-- are settled, and on later runs reads those and measures only what is new or changed:
--
--  * a day is settled once it ended more than a day before the run and before every transaction still open started
--    (pg_stat_activity.xact_start): any write that could still commit after the run then either touches a later day or
--    meets the trigger below;
--  * a write (INSERT, UPDATE, DELETE through analytics.llm_traces) of spans that started more than a day before the
--    writing moment makes the table's statement trigger log their days in usage_cache_changes (a statement of recent
--    spans logs nothing); the next snapshot measures those days again. The log rows are deleted before the day is
--    measured again, so a write that commits in between is measured now and logged once more (measured again next
--    time: never missed);
--  * TRUNCATE and VACUUM FULL give a partition a new file node and drop its cache; a dropped or detached partition's
--    cache is dropped with it; TRUNCATE usage_cache_partitions, usage_cache_days resets the cache.
--
-- The cache is used when the caller reads every owner's spans (superuser or BYPASSRLS, as a pg_cron job) and may read
-- pg_stat_activity of every session (superuser or pg_read_all_stats); any other call measures directly. Its tables are
-- local to the node: no API role has any privilege on them and they are not dumped (partition OIDs change on restore).
CREATE TABLE analytics.usage_cache_partitions (
    relid        oid         NOT NULL,
    relfilenode  oid         NOT NULL,
    from_time    timestamptz NOT NULL,
    to_time      timestamptz NOT NULL,
    cached_until timestamptz NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_cache_partitions_pkey PRIMARY KEY (relid)
);
COMMENT ON TABLE analytics.usage_cache_partitions IS
'Per partition of analytics.llm_traces: the days [from_time, cached_until) whose spans and row bytes per owner are in analytics.usage_cache_days, valid while the partition keeps its file node (relfilenode). Kept by analytics.snapshot_usage; TRUNCATE it with analytics.usage_cache_days to reset. Local to the node, not dumped.';

CREATE TABLE analytics.usage_cache_days (
    relid     oid    NOT NULL,
    day       date   NOT NULL,
    user_id   uuid   NOT NULL,
    spans     bigint NOT NULL,
    row_bytes bigint NOT NULL,
    CONSTRAINT usage_cache_days_pkey PRIMARY KEY (relid, day, user_id)
);
COMMENT ON TABLE analytics.usage_cache_days IS
'Per partition, UTC day and owner with spans that day: the spans and their row bytes (as analytics._span_bytes measures them), for the settled days of analytics.usage_cache_partitions. Kept by analytics.snapshot_usage. Local to the node, not dumped.';

CREATE TABLE analytics.usage_cache_changes (
    day       date        NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_cache_changes_day_idx ON analytics.usage_cache_changes (day);
COMMENT ON TABLE analytics.usage_cache_changes IS
'UTC days of spans written more than a day after they started (late spans, re-sends, deletions), logged by a trigger of analytics.llm_traces once per day and transaction: analytics.snapshot_usage measures those days again and deletes the rows. Local to the node, not dumped.';

-- node-local bookkeeping: RLS enabled, not forced, no policy, no privilege for API roles, not dumped (sql/900_security.sql)
ALTER TABLE analytics.usage_cache_partitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.usage_cache_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.usage_cache_changes ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON analytics.usage_cache_partitions, analytics.usage_cache_days, analytics.usage_cache_changes FROM PUBLIC;

CREATE FUNCTION analytics._usage_log_change() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    cutoff timestamptz := pg_catalog.clock_timestamp() - interval '1 day';
    days date[];
    d date;
    seen text;
begin
    -- the UTC days of the statement's spans that started more than a day ago (an UPDATE: old and new, it may move a
    -- span); logging a day that is not settled is harmless. A statement of recent spans logs nothing.
    if tg_op = 'INSERT' then
        days := array(select distinct (n.start_time AT TIME ZONE 'UTC')::date from new_rows n where n.start_time < cutoff);
    elsif tg_op = 'DELETE' then
        days := array(select distinct (o.start_time AT TIME ZONE 'UTC')::date from old_rows o where o.start_time < cutoff);
    else
        days := array(select (n.start_time AT TIME ZONE 'UTC')::date from new_rows n where n.start_time < cutoff
                      union
                      select (o.start_time AT TIME ZONE 'UTC')::date from old_rows o where o.start_time < cutoff);
    end if;
    foreach d in array days loop
        seen := 'analytics.usage_logged_' || pg_catalog.to_char(d, 'YYYYMMDD');
        -- once per day and transaction (a late batch of a thousand spans logs one row); the setting is transaction-local
        if pg_catalog.current_setting(seen, true) is distinct from 'on' then
            insert into analytics.usage_cache_changes (day) values (d);
            perform pg_catalog.set_config(seen, 'on', true);
        end if;
    end loop;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._usage_log_change() IS
'Statement trigger of analytics.llm_traces (INSERT, UPDATE, DELETE, with the transition tables): logs the UTC days of the statement''s spans that started more than a day before the write in analytics.usage_cache_changes (once per day and transaction). SECURITY DEFINER because API roles have no privilege on that table; it returns nothing. Internal.';

REVOKE EXECUTE ON FUNCTION analytics._usage_log_change() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._usage_log_change() TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- statement triggers: a batch of late spans costs one call, not one per span (a row trigger cost 0.4 s per 100,000
-- late spans); writes made directly into a partition, bypassing analytics.llm_traces, are not logged
CREATE TRIGGER llm_traces_usage_insert AFTER INSERT ON analytics.llm_traces REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();
CREATE TRIGGER llm_traces_usage_update AFTER UPDATE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();
CREATE TRIGGER llm_traces_usage_delete AFTER DELETE ON analytics.llm_traces REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_log_change();

-- Spans per owner that started before `until` and their row bytes: from the cache where it is valid (filling and
-- repairing it on the way), measured for the rest. One owner, or a caller who does not read every owner, is measured
-- directly.
CREATE FUNCTION analytics._stored_by_owner(until timestamptz, only_user uuid)
RETURNS TABLE (user_id uuid, spans bigint, row_bytes numeric)
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    cutoff timestamptz;
    p record;
    st analytics.usage_cache_partitions;
    want timestamptz;
    bad date[];
    fresh boolean;
    rest_from timestamptz;
    parts text[] := '{}';
begin
    if only_user is not null or not exists (
            select 1 from pg_catalog.pg_roles r
            where r.rolname = current_user and (r.rolsuper or r.rolbypassrls)
              and pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_days', 'SELECT, INSERT, DELETE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_partitions', 'SELECT, INSERT, UPDATE, DELETE')
              and pg_catalog.has_table_privilege('analytics.usage_cache_changes', 'DELETE')) then
        return query
        select t.user_id, count(*), sum(analytics._span_bytes(t))
        from analytics.llm_traces t
        where t.start_time < until and (only_user is null or t.user_id = only_user)
        group by t.user_id;
        return;
    end if;

    -- the settled days end here: a day before now, and before the oldest open transaction started; none while a
    -- prepared transaction (whose writes may be older) waits
    select pg_catalog.date_trunc('day', (least(pg_catalog.clock_timestamp(), min(a.xact_start)) - interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    into cutoff
    from pg_catalog.pg_stat_activity a where a.xact_start is not null;
    if exists (select 1 from pg_catalog.pg_prepared_xacts) then
        cutoff := '-infinity';
    end if;

    -- days logged that no bounded partition holds (spans in the default partition or in a before/after partition, which
    -- are always measured) are of no use
    delete from analytics.usage_cache_changes c
    where not exists (select 1 from analytics.span_partitions() p
                      where c.day >= (p.from_time AT TIME ZONE 'UTC')::date and c.day < (p.to_time AT TIME ZONE 'UTC')::date);
    -- partitions that are gone (dropped, detached) or rewritten (TRUNCATE, VACUUM FULL) lose their cache
    with gone as (
        delete from analytics.usage_cache_partitions s
        where not exists (select 1 from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
                          where i.inhparent = 'analytics.llm_traces'::regclass and i.inhrelid = s.relid
                            and c.relfilenode = s.relfilenode)
        returning s.relid
    )
    delete from analytics.usage_cache_days d using gone where d.relid = gone.relid;

    for p in
        select c.oid as relid, c.relfilenode, s.partition as name, s.from_time, s.to_time
        from analytics.span_partitions() s join pg_catalog.pg_class c on c.oid = s.partition::regclass
        order by c.oid
    loop
        if p.from_time is not null and p.from_time >= until then
            continue;                                   -- later than the day: nothing to count
        end if;
        want := least(p.to_time, cutoff, until);
        -- the default partition, a partition unbounded below or above (before/after), a range that does not start and
        -- end at UTC midnight, or nothing settled yet: measured
        if p.from_time is null or p.to_time is null or want <= p.from_time
           or p.from_time <> pg_catalog.date_trunc('day', p.from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           or p.to_time <> pg_catalog.date_trunc('day', p.to_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' then
            parts := parts || format('select t.user_id, count(*), sum(analytics._span_bytes(t)) from %s t where t.start_time < %L group by 1',
                                     p.name, until);
            continue;
        end if;

        insert into analytics.usage_cache_partitions (relid, relfilenode, from_time, to_time, cached_until)
        values (p.relid, p.relfilenode, p.from_time, p.to_time, p.from_time)
        on conflict (relid) do nothing
        returning true into fresh;
        if fresh then
            delete from analytics.usage_cache_days d where d.relid = p.relid;   -- left over from a reset
        end if;
        select * into st from analytics.usage_cache_partitions s where s.relid = p.relid for update;
        if st.from_time <> p.from_time or st.to_time <> p.to_time then    -- an OID reused by another partition
            delete from analytics.usage_cache_days d where d.relid = p.relid;
            update analytics.usage_cache_partitions s set from_time = p.from_time, to_time = p.to_time, cached_until = p.from_time
            where s.relid = p.relid returning * into st;
        end if;
        -- days written since they were measured: their log rows go first (before the days are measured again)
        with logged as (
            delete from analytics.usage_cache_changes c
            where c.day >= (p.from_time AT TIME ZONE 'UTC')::date and c.day < (p.to_time AT TIME ZONE 'UTC')::date
            returning c.day
        )
        select coalesce(array_agg(distinct l.day) filter (where l.day < (st.cached_until AT TIME ZONE 'UTC')::date), '{}')
        into bad from logged l;
        if exists (select 1 from unnest(bad) b where b >= (cutoff AT TIME ZONE 'UTC')::date) then
            -- a cached day is no longer settled (a clock set back, a prepared transaction): start the partition again
            delete from analytics.usage_cache_days d where d.relid = p.relid;
            update analytics.usage_cache_partitions s set cached_until = p.from_time where s.relid = p.relid returning * into st;
            bad := '{}';
        end if;
        if cardinality(bad) > 0 or want > st.cached_until then
            delete from analytics.usage_cache_days d
            where d.relid = p.relid and (d.day = any (bad) or (d.day >= (st.cached_until AT TIME ZONE 'UTC')::date
                                                            and d.day < (want AT TIME ZONE 'UTC')::date));
            -- (each row's bytes are taken below the aggregate, OFFSET 0: sorting or hashing whole rows would spill)
            execute format(
                'insert into analytics.usage_cache_days (relid, day, user_id, spans, row_bytes)
                 select %s, r.day, r.user_id, count(*), sum(r.bytes)
                 from (select (t.start_time AT TIME ZONE ''UTC'')::date as day, t.user_id, analytics._span_bytes(t) as bytes
                       from %s t
                       where (t.start_time >= %L and t.start_time < %L) or (t.start_time AT TIME ZONE ''UTC'')::date = any (%L::date[])
                       offset 0) r
                 group by 2, 3',
                p.relid, p.name, st.cached_until, greatest(want, st.cached_until), bad);
            update analytics.usage_cache_partitions s
            set cached_until = greatest(s.cached_until, want), computed_at = now()
            where s.relid = p.relid returning * into st;
        end if;
        parts := parts || format('select d.user_id, d.spans, d.row_bytes from analytics.usage_cache_days d where d.relid = %s and d.day < %L',
                                 p.relid, (least(st.cached_until, until) AT TIME ZONE 'UTC')::date);
        rest_from := greatest(p.from_time, st.cached_until);
        if least(p.to_time, until) > rest_from then
            parts := parts || format('select t.user_id, count(*), sum(analytics._span_bytes(t)) from %s t where t.start_time >= %L and t.start_time < %L group by 1',
                                     p.name, rest_from, least(p.to_time, until));
        end if;
    end loop;

    if cardinality(parts) > 0 then
        return query execute
            'select x.user_id, sum(x.n)::bigint, sum(x.b) from (' || array_to_string(parts, ' union all ')
            || ') x(user_id, n, b) group by 1';
    end if;
end
$$;
COMMENT ON FUNCTION analytics._stored_by_owner(timestamptz, uuid) IS
'Spans that started before `until` and their row bytes per owner (or for only_user): settled days from analytics.usage_cache_days (kept up to date on the way), the rest measured. Internal: analytics.snapshot_usage.';
REVOKE EXECUTE ON FUNCTION analytics._stored_by_owner(timestamptz, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._stored_by_owner(timestamptz, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Dimension breakdowns, CUPED of ratio metrics, one-sided tests (sql/020_experiments.sql, 021, 022, 023, 041):
-- experiment_results' and experiment_report's dimension, max_dimensions (GrowthBook's dimensions) and alternative;
-- assign_variant's attributes stored with the assignment and copied into the per-unit totals with its time; the
-- dimension column; the per-variant moment functions return a row per dimension value; the per-unit values carry the
-- pre-period denominator of a ratio metric; compare_groups gains alternative (its symbol, compare_two_groups_wrapper,
-- is 0.2.0's and reads the new argument; 0.1.0's compare_groups_wrapper is unchanged) ---------------------------
ALTER TABLE analytics.ab_experiment_assignments ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD CONSTRAINT ab_experiment_assignments_attributes_check CHECK (jsonb_typeof(attributes) = 'object');
ALTER TABLE analytics.ab_experiment_unit_totals ADD COLUMN assigned_at timestamptz, ADD COLUMN attributes jsonb;
UPDATE analytics.ab_experiment_unit_totals t SET assigned_at = a.assigned_at, attributes = a.attributes
FROM analytics.ab_experiment_assignments a WHERE a.id = t.assignment_id AND a.user_id = t.user_id;
ALTER TABLE analytics.ab_experiment_unit_totals ALTER COLUMN assigned_at SET NOT NULL, ALTER COLUMN attributes SET NOT NULL;
ALTER TYPE analytics.experiment_result_row ADD ATTRIBUTE dimension text;
DROP FUNCTION analytics._assignment(text, text, boolean);
DROP FUNCTION analytics.assign_variant(text, text);
DROP FUNCTION analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval);
DROP FUNCTION analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision);
DROP FUNCTION analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean);
DROP FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean);
DROP FUNCTION analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer);
DROP FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision);
DROP FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, boolean);
DROP FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, boolean);
DROP FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision);
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
	"prior_variance" double precision DEFAULT NULL, /* Option < f64 > */
	"alternative" TEXT DEFAULT 'two-sided' /* Option < & str > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compare_two_groups_wrapper';

COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true, and for cuped => true with 'ratio' (gbstats' RegressionAdjustedRatioStatistic) the pre-period denominator e's "pre_den_sum", "pre_den_sum_squares", "pre_den_cross_sum" (Σed), "pre_ratio_cross_sum" (Σxe), "post_num_pre_den_sum" (Σye), "pre_num_post_den_sum" (Σxd). For metric_type 'quantile' / 'quantile_event' (gbstats' QuantileStatistic / QuantileClusteredStatistic): "quantile_level", "quantile_n" (values), "quantile_nstar", "quantile", "quantile_lower", "quantile_upper" (the order statistics of GrowthBook's grid), and for 'quantile_event' n = units with sum, sum_squares, den_sum, den_sum_squares, cross_sum over units of their events at or below the quantile and of their events.
Returns the test (binomial: GrowthBook's t-test of the reported effect with variances p(1 - p) and Welch's df; mean: Welch; ratio: Welch on delta-method variances; relative lift by default) with control_value, treatment_value, chance_to_beat_control, expected_loss and control_risk (GrowthBook's risks of the treatment and of the control), posterior_mean and posterior_ci_lower/upper (Gaussian posterior: GrowthBook's flat prior, or its informative prior N(prior_mean, prior_variance) on the effect, both or neither; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. alternative 'greater' or 'less' makes the test and the sequential view one-sided (GrowthBook's one-sided t-tests and, as on its main branch, its sequential one-sided tests): the interval's open end is null. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;

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

COMMENT ON FUNCTION analytics._assignment(text, text, boolean, jsonb) IS 'Internal: sticky GrowthBook assignment of a unit (stored with its attributes when store).';

CREATE FUNCTION analytics.assign_variant(experiment_key text, unit_id text, attributes jsonb DEFAULT NULL)
RETURNS analytics.variant_assignment
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$ select analytics._assignment(experiment_key, unit_id, true, attributes) $$;

COMMENT ON FUNCTION analytics.assign_variant(text, text, jsonb) IS
$$The unit's variant in a running experiment, with GrowthBook's rules (bit-identical to the SDKs), stored on first assignment and returned again afterwards (sticky within the phase, even if weights change). attributes (a JSON object: country, plan, browser, ...) are stored with the first assignment and kept (a later call does not change them): experiment_results breaks results down by them (dimension => 'attribute.country'), as GrowthBook's experiment dimensions. Not in the experiment (in_experiment false, nothing stored) when it is not running or the unit is outside its coverage or namespace; once completed with a winner, everyone gets the winner (in_experiment false). Two sessions assigning the same unit at once store one row.
Example: select variant_key, payload from analytics.assign_variant('system-prompt-v2', 'visitor-42', attributes => '{"country": "DE"}');$$;

CREATE FUNCTION analytics._dimension_value(dimension text, assigned_at timestamptz, attributes jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    select coalesce(case when _dimension_value.dimension = 'assigned_date'
                              then to_char(_dimension_value.assigned_at at time zone 'UTC', 'YYYY-MM-DD')
                         when _dimension_value.dimension like 'attribute.%'
                              then _dimension_value.attributes ->> substr(_dimension_value.dimension, 11) end, '(none)')
$$;

COMMENT ON FUNCTION analytics._dimension_value(text, timestamptz, jsonb) IS 'Internal: an assignment''s value of the dimension assigned_date or attribute.<name> (''(none)'' without one).';

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

CREATE FUNCTION analytics._experiment_unit_dimensions(experiment_id uuid, experiment_key text, phase integer,
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

COMMENT ON FUNCTION analytics._experiment_unit_dimensions(uuid, text, integer, text, text) IS 'Internal: each assignment''s value of a dimension of experiment_results (inlined into the moment functions).';

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

CREATE FUNCTION analytics._check_dimension(dimension text, max_dimensions integer) RETURNS void
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

COMMENT ON FUNCTION analytics._check_dimension(text, integer) IS 'Internal: checks experiment_results'' dimension and max_dimensions.';

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

COMMENT ON FUNCTION analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text) IS
'Internal: the computation behind analytics.experiment_results, uncached (sql/041_cache.sql).';

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

CREATE FUNCTION analytics._experiment_event_moments(experiment_id uuid, phase integer, metric text, kind text,
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
    dimension         text             DEFAULT NULL,
    max_dimensions    integer          DEFAULT 20,
    alternative       text             DEFAULT 'two-sided',
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
                          quantile_ignore_zeros, dimension, max_dimensions, alternative), cache);
begin
    if not c.hit and not c.fill then
        return query select * from analytics._experiment_results(experiment_key, metric, metric_type, relative, alpha,
            correction, phase, metric_source, unit_source, operation_type, cuped, cuped_lookback, sequential_tuning,
            lower_is_better, sequential, prior_mean, prior_variance, capping, cap_value, cap_ignore_zeros, quantile,
            quantile_ignore_zeros, dimension, max_dimensions, alternative);
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
            experiment_results.quantile_ignore_zeros, experiment_results.dimension,
            experiment_results.max_dimensions, experiment_results.alternative) with ordinality r;
        perform analytics._cache_put(c);
    end if;
    return query select * from jsonb_populate_recordset(null::analytics.experiment_result_row, c.result);
end
$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, std_error, chance to beat control, expected loss and control_risk (Bayesian, Gaussian: GrowthBook's risk of shipping the treatment and of keeping the control; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial, mean and ratio metrics; for latency_ms and error_rate the unit's pre-period ratio, as GrowthBook's regression-adjusted ratio metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). capping (GrowthBook's metric capping: mean metrics, and the numerator of latency_ms and error_rate): 'absolute' caps each unit's value at cap_value; 'percentile' at the cap_value quantile (0.99: the 99th percentile) of every assigned unit's value, all variants together, zeros left out with cap_ignore_zeros; CUPED's pre-period values get the same cap; capped_at reports the cap. metric_type 'quantile' (a quantile of the units' values: their events' total, a trace metric's total, or their average latency or error rate) or 'quantile_event' (a quantile of every event's value, or of every span's latency_ms, cost_usd or tokens, the events clustered in their units) with quantile => 0.95 for the 95th percentile: GrowthBook's quantile metrics and gbstats' QuantileStatistic / QuantileClusteredStatistic (value: the variant's quantile; effect: its relative or absolute change); quantile_ignore_zeros leaves values of 0 out. dimension breaks the results down (GrowthBook's dimensions; a row per value and variant, the value in the dimension column, most units first): 'assigned_date' (UTC day of assignment), 'attribute.<name>' (an attribute stored by assign_variant), 'model', 'provider' or 'operation_type' (of the unit's first span after assignment that names one); '(none)' for units without a value; beyond max_dimensions values (20) the rest is merged into '(other)' (left out for quantile metrics); each value has its own sample ratio check, and the correction covers variants and values together. alternative 'greater' or 'less' makes the frequentist and sequential tests one-sided (GrowthBook's one-sided t-tests): the treatment is higher, or lower; the interval's open end is NULL. Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
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
    dimension         text             DEFAULT NULL,
    max_dimensions    integer          DEFAULT 20,
    alternative       text             DEFAULT 'two-sided',
    cache             boolean          DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    c analytics.cache_lookup := analytics._cache_get('experiment_report',
        jsonb_build_array(experiment_key, goal_metrics, guardrail_metrics, correction, alpha, relative, sequential, phase,
                          dimension, max_dimensions, alternative),
        cache);
begin
    if c.hit then
        return c.result;
    end if;
    c.result := analytics._experiment_report(experiment_key, goal_metrics, guardrail_metrics, correction, alpha, relative,
                                             sequential, phase, dimension, max_dimensions, alternative);
    perform analytics._cache_put(c);
    return c.result;
end
$$;

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "relative", "sequential", "dimension", "alternative", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}. With dimension (as in experiment_results), every metric's results are broken down by it and the correction also covers the dimension values.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped", "capping", "cap_value", "cap_ignore_zeros", "quantile", "quantile_ignore_zeros"} (as in experiment_results). The correction (none by default, holm or bh) covers every variant of every goal metric (and dimension value) together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
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
            (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total, assigned_at, attributes)
        select a.id, n.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(n.value), a.assigned_at,
               a.attributes
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
        (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total, assigned_at, attributes)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value), a.assigned_at,
           a.attributes
    from new_rows a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, a.experiment_id, a.phase, a.variant_id, a.assigned_at, a.attributes, ev.metric
    on conflict (assignment_id, metric, user_id) do update
       set events = excluded.events, total = excluded.total, assigned_at = excluded.assigned_at,
           attributes = excluded.attributes;
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

REVOKE EXECUTE ON FUNCTION analytics._assignment(text, text, boolean, jsonb),
    analytics.assign_variant(text, text, jsonb),
    analytics._dimension_value(text, timestamptz, jsonb),
    analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
    analytics._experiment_unit_dimensions(uuid, text, integer, text, text),
    analytics._experiment_merge_dimensions(jsonb[]),
    analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision, text),
    analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean, text),
    analytics._check_dimension(text, integer),
    analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text),
    analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text),
    analytics._experiment_event_moments(uuid, integer, text, text, double precision, text),
    analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean),
    analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text, boolean) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._assignment(text, text, boolean, jsonb),
                analytics.assign_variant(text, text, jsonb),
                analytics._dimension_value(text, timestamptz, jsonb),
                analytics._experiment_unit_values(uuid, text, integer, text, text, text, text, text, interval),
                analytics._experiment_unit_dimensions(uuid, text, integer, text, text),
                analytics._experiment_merge_dimensions(jsonb[]),
                analytics._experiment_moments(uuid, text, integer, text, text, text, text, text, interval, double precision, text),
                analytics._experiment_quantile_moments(uuid, text, integer, text, text, text, text, text, double precision, boolean, text),
                analytics._check_dimension(text, integer),
                analytics._experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text),
                analytics._experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text),
                analytics._experiment_event_moments(uuid, integer, text, text, double precision, text),
                analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean),
                analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text, boolean) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
REVOKE EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- Units per variant and value kept at write time (sql/023_experiment_totals.sql, 041, 900): the new derived
-- table analytics.ab_experiment_unit_counts, kept by statement triggers of the assignments (and of the experiments,
-- for deleted ones), read by experiment_results for the assigned units of an event metric (overall and per dimension
-- value) and by the percentile cap; rebuild_experiment_totals rebuilds it too. Filled here from the assignments.
-- Derived data like the totals: RLS forced with the owner policies, API roles read only, not dumped, no cache trigger.
CREATE TABLE analytics.ab_experiment_unit_counts (
    experiment_id  uuid     NOT NULL,
    phase          integer  NOT NULL,
    variant_id     uuid     NOT NULL,
    assigned_on    date     NOT NULL,
    attributes_key uuid     NOT NULL,
    shard          smallint NOT NULL,
    user_id        uuid     NOT NULL,
    attributes     jsonb    NOT NULL,
    units          bigint   NOT NULL,
    CONSTRAINT ab_experiment_unit_counts_pkey
        PRIMARY KEY (user_id, experiment_id, phase, variant_id, assigned_on, attributes_key, shard)
);

COMMENT ON TABLE analytics.ab_experiment_unit_counts IS
'Derived, kept by triggers: assigned units per experiment, phase, variant, UTC day of assignment and attribute set (summed over shards). Read by experiment_results; rebuild with analytics.rebuild_experiment_totals().';

ALTER TABLE analytics.ab_experiment_unit_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.ab_experiment_unit_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY ab_experiment_unit_counts_select_own ON analytics.ab_experiment_unit_counts FOR SELECT USING (user_id = (select analytics.current_user_id()));
CREATE POLICY ab_experiment_unit_counts_insert_own ON analytics.ab_experiment_unit_counts FOR INSERT WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ab_experiment_unit_counts_update_own ON analytics.ab_experiment_unit_counts FOR UPDATE USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY ab_experiment_unit_counts_delete_own ON analytics.ab_experiment_unit_counts FOR DELETE USING (user_id = (select analytics.current_user_id()));
REVOKE ALL ON analytics.ab_experiment_unit_counts FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT ON analytics.ab_experiment_unit_counts TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

CREATE FUNCTION analytics._assignment_counts_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    -- +1 or -1 per row of the statement's transition table, named changed_rows in every trigger below
    delta bigint := tg_argv[0]::bigint;
    zero analytics.ab_experiment_unit_counts[];
begin
    if tg_op = 'TRUNCATE' then
        truncate analytics.ab_experiment_unit_counts;
        return null;
    end if;
    with d as (
        select r.experiment_id, r.phase, r.variant_id, (r.assigned_at at time zone 'UTC')::date as assigned_on,
               r.attributes, r.user_id, count(*) * delta as units
        from changed_rows r
        -- not for an experiment that is gone (deleted, or its key changed: the assignments' cascade), whose rows the
        -- trigger of ab_experiments deletes
        where exists (select 1 from analytics.ab_experiments e where e.id = r.experiment_id and e.user_id = r.user_id)
        group by r.experiment_id, r.phase, r.variant_id, (r.assigned_at at time zone 'UTC')::date, r.attributes, r.user_id
    ), up as (
        insert into analytics.ab_experiment_unit_counts as c
            (experiment_id, phase, variant_id, assigned_on, attributes_key, shard, user_id, attributes, units)
        select d.experiment_id, d.phase, d.variant_id, d.assigned_on, pg_catalog.md5(d.attributes::text)::uuid,
               pg_catalog.pg_backend_pid() % 16, d.user_id, d.attributes, d.units
        from d
        order by 7, 1, 2, 3, 4, 5, 6
        on conflict (user_id, experiment_id, phase, variant_id, assigned_on, attributes_key, shard) do update
           set units = c.units + excluded.units
        returning c as row_after
    )
    select array_agg(up.row_after) into zero from up where (up.row_after).units = 0;
    if zero is not null then
        -- counts that reached 0 (rechecked on the row: one a concurrent writer changed since is kept)
        delete from analytics.ab_experiment_unit_counts c
        using unnest(zero) z
        where c.user_id = z.user_id and c.experiment_id = z.experiment_id and c.phase = z.phase
          and c.variant_id = z.variant_id and c.assigned_on = z.assigned_on and c.attributes_key = z.attributes_key
          and c.shard = z.shard and c.units = 0;
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._assignment_counts_trigger() IS 'Internal: keeps ab_experiment_unit_counts in step with ab_experiment_assignments (argument: +1 or -1 per row of changed_rows).';

CREATE FUNCTION analytics._experiment_counts_gone_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
begin
    if tg_op = 'DELETE' then
        delete from analytics.ab_experiment_unit_counts c
        using old_rows o
        where c.user_id = o.user_id and c.experiment_id = o.id;
    else
        delete from analytics.ab_experiment_unit_counts c
        using old_rows o
        where c.user_id = o.user_id and c.experiment_id = o.id
          and not exists (select 1 from new_rows n where n.id = o.id and n.user_id = o.user_id);
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._experiment_counts_gone_trigger() IS 'Internal: deletes the unit counts of experiments that no longer exist under their key (ab_experiment_unit_counts).';

CREATE TRIGGER ab_experiment_assignments_counts_insert AFTER INSERT ON analytics.ab_experiment_assignments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('1');
CREATE TRIGGER ab_experiment_assignments_counts_update_1_new AFTER UPDATE ON analytics.ab_experiment_assignments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('1');
CREATE TRIGGER ab_experiment_assignments_counts_update_2_old AFTER UPDATE ON analytics.ab_experiment_assignments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('-1');
CREATE TRIGGER ab_experiment_assignments_counts_delete AFTER DELETE ON analytics.ab_experiment_assignments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('-1');
CREATE TRIGGER ab_experiment_assignments_counts_truncate AFTER TRUNCATE ON analytics.ab_experiment_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('0');
CREATE TRIGGER ab_experiments_counts_delete AFTER DELETE ON analytics.ab_experiments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._experiment_counts_gone_trigger();
CREATE TRIGGER ab_experiments_counts_update AFTER UPDATE ON analytics.ab_experiments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._experiment_counts_gone_trigger();

INSERT INTO analytics.ab_experiment_unit_counts (experiment_id, phase, variant_id, assigned_on, attributes_key, shard,
                                                 user_id, attributes, units)
SELECT a.experiment_id, a.phase, a.variant_id, (a.assigned_at AT TIME ZONE 'UTC')::date,
       pg_catalog.md5(a.attributes::text)::uuid, 0, a.user_id, a.attributes, count(*)
FROM analytics.ab_experiment_assignments a
GROUP BY a.experiment_id, a.phase, a.variant_id, (a.assigned_at AT TIME ZONE 'UTC')::date, a.attributes, a.user_id;

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
    truncate analytics.ab_experiment_unit_counts;
    insert into analytics.ab_experiment_unit_counts (experiment_id, phase, variant_id, assigned_on, attributes_key, shard,
                                                     user_id, attributes, units)
    select a.experiment_id, a.phase, a.variant_id, (a.assigned_at at time zone 'UTC')::date,
           pg_catalog.md5(a.attributes::text)::uuid, 0, a.user_id, a.attributes, count(*)
    from analytics.ab_experiment_assignments a
    group by a.experiment_id, a.phase, a.variant_id, (a.assigned_at at time zone 'UTC')::date, a.attributes, a.user_id;
    return n;
end
$$;
COMMENT ON FUNCTION analytics.rebuild_experiment_totals() IS
$$Rebuilds analytics.ab_experiment_unit_totals and analytics.ab_experiment_unit_counts from every assignment and event (for a DBA: after restoring with pg_restore --disable-triggers, or to check the triggers). Needs the privileges to lock both tables and truncate the derived ones (the extension owner or a superuser); returns the number of totals rows written. Example: select analytics.rebuild_experiment_totals();$$;

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
            select null::text as dim, c.variant_id, sum(c.units)::bigint as n
            from analytics.ab_experiment_unit_counts c
            where c.experiment_id = $1 and c.phase = $2
            group by c.variant_id
            having sum(c.units) > 0
        ), totals as (
            select null::text as dim, t.variant_id, count(*) as converted, sum(least(t.total, $5)) as sy,
                   sum(least(t.total, $5) * least(t.total, $5)) as syy
            from analytics.ab_experiment_unit_totals t
            where t.experiment_id = $1 and t.metric = $3 and t.phase = $2
            group by t.variant_id
        )$q$ else $q$
        with assigned as (
            select analytics._dimension_value($6, c.assigned_on::timestamp at time zone 'UTC', c.attributes) as dim,
                   c.variant_id, sum(c.units)::bigint as n
            from analytics.ab_experiment_unit_counts c
            where c.experiment_id = $1 and c.phase = $2
            group by 1, c.variant_id
            having sum(c.units) > 0
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
    if not (q >= 0 and q <= 1) then  -- (NaN too)
        raise exception 'q: the cap''s percentile must be between 0 and 1, got %', q using errcode = '22023';
    end if;
    if ignore_zeros then
        return (select percentile_cont(q) within group (order by t.total)
                from analytics.ab_experiment_unit_totals t
                where t.experiment_id = _experiment_event_cap.experiment_id and t.metric = _experiment_event_cap.metric
                  and t.phase = _experiment_event_cap.phase and t.total <> 0);
    end if;
    select coalesce(sum(c.units), 0) into n from analytics.ab_experiment_unit_counts c
    where c.experiment_id = _experiment_event_cap.experiment_id and c.phase = _experiment_event_cap.phase;
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

REVOKE EXECUTE ON FUNCTION analytics._assignment_counts_trigger(), analytics._experiment_counts_gone_trigger() FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._assignment_counts_trigger(),
                analytics._experiment_counts_gone_trigger() TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- HTML views (sql/050_views.sql, as a fresh install has it): the media-type domain PostgREST serves as
-- text/html, the Rust renderers, and the view functions.
CREATE FUNCTION analytics."_trace_view"(
	"trace_id" TEXT, /* Option < & str > */
	"max_spans" INT DEFAULT 20000, /* i32 */
	"user_id" uuid DEFAULT NULL /* Option < Uuid > */
) RETURNS TEXT /* Option < String > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'trace_view_wrapper';
CREATE FUNCTION analytics."_render_experiment_view"(
	"data" jsonb /* Option < pgrx :: JsonB > */
) RETURNS TEXT /* String */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'render_experiment_view_wrapper';
CREATE FUNCTION analytics."_render_dashboard_view"(
	"data" jsonb /* Option < pgrx :: JsonB > */
) RETURNS TEXT /* String */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'render_dashboard_view_wrapper';
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
REVOKE EXECUTE ON FUNCTION analytics._trace_view(text, integer, uuid), analytics.trace_view(text, integer, uuid), analytics._experiment_view_data(text, jsonb, jsonb, text, double precision, integer), analytics._render_experiment_view(jsonb), analytics.experiment_view(text, jsonb, jsonb, text, double precision, integer), analytics._dashboard_trace(uuid, text), analytics._dashboard_view_data(timestamptz, timestamptz, interval, uuid), analytics._render_dashboard_view(jsonb), analytics.dashboard_view(timestamptz, timestamptz, interval, uuid) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics._trace_view(text, integer, uuid),
                analytics.trace_view(text, integer, uuid),
                analytics._experiment_view_data(text, jsonb, jsonb, text, double precision, integer),
                analytics._render_experiment_view(jsonb),
                analytics.experiment_view(text, jsonb, jsonb, text, double precision, integer),
                analytics._dashboard_trace(uuid, text),
                analytics._dashboard_view_data(timestamptz, timestamptz, interval, uuid),
                analytics._render_dashboard_view(jsonb),
                analytics.dashboard_view(timestamptz, timestamptz, interval, uuid) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- ---- End users, cohorts and retention (#15): the end user on spans (llm_traces.end_user_id, indexed in every
-- partition, set by every ingest path), their profiles, cohorts with rules and membership history, retention, and
-- cohorts as dimensions of trace_metrics and experiment_results. As a fresh install has it (sql/060-062).

ALTER TABLE analytics.llm_traces ADD COLUMN end_user_id text COLLATE "C",
    ADD CONSTRAINT llm_traces_end_user_id_check CHECK (length(end_user_id) BETWEEN 1 AND 256);

CREATE OR REPLACE FUNCTION analytics._index_span_partition(part regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    n text := (select c.relname from pg_catalog.pg_class c where c.oid = part);
begin
    if part is null then
        raise exception 'part: must name a partition of analytics.llm_traces' using errcode = '22004';
    end if;
    execute format('create unique index %I on %s (user_id, trace_id, span_id)', n || '_span_key', part);
    execute format('create index %I on %s (user_id, trace_id, parent_span_id)', n || '_trace_parent_idx', part);
    execute format('create index %I on %s (user_id, trace_id, start_time)', n || '_trace_time_idx', part);
    execute format('create index %I on %s (user_id, start_time desc, id desc)', n || '_start_idx', part);
    execute format('create index %I on %s (user_id, conversation_id, start_time) where conversation_id is not null', n || '_conversation_idx', part);
    execute format('create index %I on %s (user_id, session_id, start_time) where session_id is not null', n || '_session_idx', part);
    execute format('create index %I on %s (user_id, message_id) where message_id is not null', n || '_message_idx', part);
    execute format('create index %I on %s (user_id, end_user_id, start_time) where end_user_id is not null', n || '_end_user_idx', part);
    execute format('create index %I on %s (user_id, model, start_time) where model is not null', n || '_model_idx', part);
    execute format('create index %I on %s (user_id, operation_type, start_time)', n || '_operation_idx', part);
    execute format('create index %I on %s (user_id, start_time) where status = ''error''', n || '_errors_idx', part);
    execute format('create index %I on %s using gin (tags)', n || '_tags_idx', part);
    execute format('create index %I on %s (user_id, duration_ms)', n || '_duration_idx', part);
end
$$;

DO $indexes$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT k.oid, k.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
             WHERE i.inhparent = 'analytics.llm_traces'::regclass ORDER BY k.relname LOOP
        execute format('create index %I on %s (user_id, end_user_id, start_time) where end_user_id is not null', c.relname || '_end_user_idx', c.oid::regclass);
    END LOOP;
END
$indexes$;

DROP FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid);

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

COMMENT ON FUNCTION analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid, text) IS
$$Stores one span (insert or update), with named arguments, and returns the stored row. Same rules as ingest_spans. end_user_id: the application's end user the span served (not the owner, user_id).
Example: select analytics.record_span(trace_id => 't1', span_id => 's1', name => 'chat', start_time => now(), model => 'gpt-4o', end_user_id => 'customer-42');$$;

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

CREATE OR REPLACE FUNCTION analytics._check_dimension(dimension text, max_dimensions integer) RETURNS void
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

CREATE OR REPLACE FUNCTION analytics._experiment_unit_dimensions(experiment_id uuid, experiment_key text, phase integer,
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

COMMENT ON FUNCTION analytics.trace_metrics(interval, timestamptz, timestamptz, text[], text, boolean, uuid, boolean) IS
$$Rollups per time bucket and group (group_by: model, operation_type, provider, status, name, user, end_user, cohort:<key> — whether the span's end user is a member of that cohort now): request_count, error_count, error_rate, latency p50/p90/p95/p99 and time-to-first-token p50/p95 in ms, tokens and cost.
Percentiles are exact (percentile_cont). Buckets are aligned to from_time. Filters: operation_type, root_only (traces rather than spans). Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{model}');$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, std_error, chance to beat control, expected loss and control_risk (Bayesian, Gaussian: GrowthBook's risk of shipping the treatment and of keeping the control; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial, mean and ratio metrics; for latency_ms and error_rate the unit's pre-period ratio, as GrowthBook's regression-adjusted ratio metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). capping (GrowthBook's metric capping: mean metrics, and the numerator of latency_ms and error_rate): 'absolute' caps each unit's value at cap_value; 'percentile' at the cap_value quantile (0.99: the 99th percentile) of every assigned unit's value, all variants together, zeros left out with cap_ignore_zeros; CUPED's pre-period values get the same cap; capped_at reports the cap. metric_type 'quantile' (a quantile of the units' values: their events' total, a trace metric's total, or their average latency or error rate) or 'quantile_event' (a quantile of every event's value, or of every span's latency_ms, cost_usd or tokens, the events clustered in their units) with quantile => 0.95 for the 95th percentile: GrowthBook's quantile metrics and gbstats' QuantileStatistic / QuantileClusteredStatistic (value: the variant's quantile; effect: its relative or absolute change); quantile_ignore_zeros leaves values of 0 out. dimension breaks the results down (GrowthBook's dimensions; a row per value and variant, the value in the dimension column, most units first): 'assigned_date' (UTC day of assignment), 'attribute.<name>' (an attribute stored by assign_variant), 'model', 'provider' or 'operation_type' (of the unit's first span after assignment that names one), 'cohort:<key>' ('in <key>' / 'not in <key>': the unit is a member of that cohort of end users now, or not); '(none)' for units without a value; beyond max_dimensions values (20) the rest is merged into '(other)' (left out for quantile metrics); each value has its own sample ratio check, and the correction covers variants and values together. alternative 'greater' or 'less' makes the frequentist and sequential tests one-sided (GrowthBook's one-sided t-tests): the treatment is higher, or lower; the interval's open end is NULL. Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
Example: select variant_key, units, value, effect, p_value, chance_to_beat_control from analytics.experiment_results('system-prompt-v2', 'cost_usd', metric_source => 'traces');$$;

ALTER TABLE analytics.user_cohorts ADD COLUMN refreshed_at timestamptz;
ALTER TABLE analytics.user_cohort_members RENAME COLUMN added_at TO entered_at;
ALTER TABLE analytics.user_cohort_members ALTER COLUMN member_id TYPE text COLLATE "C",
    ADD COLUMN exited_at timestamptz,
    DROP CONSTRAINT user_cohort_members_pkey,
    ADD CONSTRAINT user_cohort_members_pkey PRIMARY KEY (cohort_id, member_id, entered_at, user_id),
    ADD CONSTRAINT user_cohort_members_exited_after_entered CHECK (exited_at >= entered_at);
CREATE UNIQUE INDEX user_cohort_members_open_key ON analytics.user_cohort_members (user_id, cohort_id, member_id)
    WHERE exited_at IS NULL;

COMMENT ON TABLE analytics.user_cohort_members IS
'Membership history of cohorts: one row per stay of an end user (member_id: an end_user_id or experiment unit id) in a cohort, from entered_at until exited_at (NULL: still a member). Written by analytics.refresh_cohort, add_cohort_members and remove_cohort_members.';

CREATE TABLE analytics.end_user_profiles (
    user_id     uuid NOT NULL DEFAULT analytics.current_user_id(),
    end_user_id text COLLATE "C" NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT end_user_profiles_pkey PRIMARY KEY (user_id, end_user_id),
    CONSTRAINT end_user_profiles_end_user_id_check CHECK (length(end_user_id) BETWEEN 1 AND 256),
    CONSTRAINT end_user_profiles_properties_is_object CHECK (jsonb_typeof(properties) = 'object')
);

COMMENT ON TABLE analytics.end_user_profiles IS
'Properties of an owner''s end users (the end_user_id of their spans), set by analytics.identify_end_user; cohort rules test them.';

CREATE TRIGGER end_user_profiles_touch_updated_at BEFORE UPDATE ON analytics.end_user_profiles
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

-- cached results are stale after the owner's writes, as for every data table (a fresh install: the loop of sql/041_cache.sql)
CREATE TRIGGER end_user_profiles_cache_insert AFTER INSERT ON analytics.end_user_profiles REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER end_user_profiles_cache_update AFTER UPDATE ON analytics.end_user_profiles
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER end_user_profiles_cache_delete AFTER DELETE ON analytics.end_user_profiles REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();
CREATE TRIGGER end_user_profiles_cache_truncate AFTER TRUNCATE ON analytics.end_user_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._cache_note_writes();


CREATE FUNCTION analytics.identify_end_user(
    end_user_id text,
    properties  jsonb   DEFAULT '{}'::jsonb,
    replace     boolean DEFAULT false,
    user_id     uuid    DEFAULT NULL
) RETURNS analytics.end_user_profiles
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(identify_end_user.user_id, analytics.current_user_id());
    stored analytics.end_user_profiles;
begin
    if owner is null then
        raise exception 'user_id: no caller (no JWT claim sub) and no user_id given' using errcode = '22004';
    end if;
    if identify_end_user.end_user_id is null or length(identify_end_user.end_user_id) not between 1 and 256
       or btrim(identify_end_user.end_user_id) = '' then
        raise exception 'end_user_id: must be a non-empty text of at most 256 characters, got %',
            coalesce(quote_literal(identify_end_user.end_user_id), 'null') using errcode = '22023';
    end if;
    if identify_end_user.properties is null or jsonb_typeof(identify_end_user.properties) <> 'object' then
        raise exception 'properties: must be a JSON object, got %',
            coalesce(jsonb_typeof(identify_end_user.properties), 'null') using errcode = '22023';
    end if;
    if identify_end_user.replace is null then
        raise exception 'replace: must be true or false, got null' using errcode = '22004';
    end if;
    -- merged into the stored properties (keys sent win; a key sent as null is removed), or replacing them
    insert into analytics.end_user_profiles as p (user_id, end_user_id, properties)
    values (owner, identify_end_user.end_user_id, jsonb_strip_nulls(identify_end_user.properties))
    on conflict on constraint end_user_profiles_pkey do update
        set properties = case when identify_end_user.replace then jsonb_strip_nulls(excluded.properties)
                              else jsonb_strip_nulls(p.properties || identify_end_user.properties) end
    returning p.* into stored;
    return stored;
end
$$;

COMMENT ON FUNCTION analytics.identify_end_user(text, jsonb, boolean, uuid) IS
$$Sets properties of one of the caller's end users (the end_user_id their spans carry): merged into the stored ones (keys sent win, a key sent as null is removed) or, with replace => true, replacing them. Returns the stored profile. Cohort rules test these properties ({"property": "plan", "eq": "pro"}).
Example: select end_user_id, properties from analytics.identify_end_user('customer-42', '{"plan": "pro", "country": "DE"}');$$;

-- ---- end_users -----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.end_users(
    from_time   timestamptz DEFAULT NULL,
    to_time     timestamptz DEFAULT NULL,
    search      text        DEFAULT NULL,
    "limit"     integer     DEFAULT 50,
    "offset"    integer     DEFAULT 0,
    user_id     uuid        DEFAULT NULL
) RETURNS TABLE (
    end_user_id  text,
    first_seen   timestamptz,
    last_seen    timestamptz,
    spans        bigint,
    traces       bigint,
    sessions     bigint,
    errors       bigint,
    total_tokens bigint,
    cost_usd     double precision,
    properties   jsonb
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(end_users.user_id, analytics.current_user_id());
begin
    perform analytics._check_page("limit", "offset");
    if end_users.from_time > end_users.to_time then
        raise exception 'to_time: must not be before from_time (% > %)', end_users.from_time, end_users.to_time
            using errcode = '22023';
    end if;
    -- the window's activity per end user (the (user_id, end_user_id, start_time) index of each partition), users
    -- with a profile but no span in it too when no window is given; first and last seen over all time, by index
    return query
    with activity as (
        select s.end_user_id, count(*) as spans, count(distinct s.trace_id) as traces,
               count(distinct s.session_id) as sessions, count(*) filter (where s.status = 'error') as errors,
               sum(s.total_tokens)::bigint as total_tokens, sum(s.cost_usd) as cost_usd,
               max(s.start_time) as last_in_window
        from analytics.llm_traces s
        where s.user_id = owner and s.end_user_id is not null
          and (end_users.search is null or strpos(lower(s.end_user_id), lower(end_users.search)) > 0)
          and (end_users.from_time is null or s.start_time >= end_users.from_time)
          and (end_users.to_time is null or s.start_time < end_users.to_time)
        group by s.end_user_id
    ), listed as (
        select coalesce(a.end_user_id, p.end_user_id) as end_user_id, a.spans, a.traces, a.sessions, a.errors,
               a.total_tokens, a.cost_usd, a.last_in_window, p.properties
        from activity a
        full join (select p.end_user_id, p.properties from analytics.end_user_profiles p
                   where p.user_id = owner
                     and (end_users.search is null or strpos(lower(p.end_user_id), lower(end_users.search)) > 0)) p
               on p.end_user_id = a.end_user_id
        where a.end_user_id is not null or (end_users.from_time is null and end_users.to_time is null)
        order by a.last_in_window desc nulls last, 1
        limit "limit" offset "offset"
    )
    select l.end_user_id,
           (select s.start_time from analytics.llm_traces s
            where s.user_id = owner and s.end_user_id = l.end_user_id order by s.start_time limit 1),
           (select s.start_time from analytics.llm_traces s
            where s.user_id = owner and s.end_user_id = l.end_user_id order by s.start_time desc limit 1),
           coalesce(l.spans, 0), coalesce(l.traces, 0), coalesce(l.sessions, 0), coalesce(l.errors, 0),
           l.total_tokens, l.cost_usd, coalesce(l.properties, '{}'::jsonb)
    from listed l
    order by l.last_in_window desc nulls last, l.end_user_id;
end
$$;

COMMENT ON FUNCTION analytics.end_users(timestamptz, timestamptz, text, integer, integer, uuid) IS
$$The caller's end users (the end_user_id of their spans, and those with a profile), most recently active first: first and last seen (over all time), and within [from_time, to_time) their spans, traces, sessions, error spans, tokens and cost, with their properties (analytics.identify_end_user). With a window, only end users active in it; search keeps the ids that contain it (ignoring case).
Example: select end_user_id, spans, traces, cost_usd, properties from analytics.end_users(from_time => '2026-11-01', to_time => '2026-12-01');$$;

ALTER TABLE analytics.end_user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.end_user_profiles FORCE ROW LEVEL SECURITY;
CREATE POLICY end_user_profiles_select_own ON analytics.end_user_profiles FOR SELECT USING (user_id = (select analytics.current_user_id()));
CREATE POLICY end_user_profiles_insert_own ON analytics.end_user_profiles FOR INSERT WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY end_user_profiles_update_own ON analytics.end_user_profiles FOR UPDATE USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY end_user_profiles_delete_own ON analytics.end_user_profiles FOR DELETE USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.end_user_profiles'::regclass, '');
REVOKE ALL ON analytics.end_user_profiles FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.end_user_profiles TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

CREATE FUNCTION analytics."_compile_cohort_rule"(
	"rule" jsonb /* Option < pgrx :: JsonB > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compile_cohort_rule_wrapper';

CREATE FUNCTION analytics._check_cohort_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
begin
    if new.definition is not null then
        perform analytics._compile_cohort_rule(new.definition);
    end if;
    return new;
end
$$;
COMMENT ON FUNCTION analytics._check_cohort_row() IS
'Trigger: a cohort''s rule (definition) must be valid (22023 naming the offending part, e.g. rule.and[1].at_least). Internal.';

CREATE TRIGGER user_cohorts_check_rule BEFORE INSERT OR UPDATE OF definition ON analytics.user_cohorts
    FOR EACH ROW EXECUTE FUNCTION analytics._check_cohort_row();

-- The cohort named key of owner, locked for a membership change; P0002 when there is none, 55000 when static is
-- true and it is dynamic (its members come from its rule).
CREATE FUNCTION analytics._cohort_for_update(key text, owner uuid, static boolean DEFAULT false) RETURNS analytics.user_cohorts
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $$
declare
    c analytics.user_cohorts;
begin
    if key is null then
        raise exception 'key: is required' using errcode = '22004';
    end if;
    select * into c from analytics.user_cohorts uc where uc.user_id = owner and uc.key = _cohort_for_update.key for update;
    if not found then
        raise exception 'key: no cohort "%"', key using errcode = 'P0002';
    end if;
    if static and c.definition is not null then
        raise exception 'key: cohort "%" is dynamic (it has a rule): its members come from analytics.refresh_cohort', c.key
            using errcode = '55000';
    end if;
    return c;
end
$$;
COMMENT ON FUNCTION analytics._cohort_for_update(text, uuid, boolean) IS 'Internal: the owner''s cohort by key, locked (P0002 if none; 55000 if static is asked for and it has a rule).';

-- The references of a rule must exist among the owner's cohorts and experiments, and cohorts must not refer to
-- each other in a cycle (self is the key of the cohort the rule belongs to).
CREATE FUNCTION analytics._check_cohort_references(rule jsonb, self text, owner uuid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
declare
    compiled jsonb := analytics._compile_cohort_rule(rule);
    ref jsonb;
    seen text[] := array[self];
    frontier text[];
    next_keys text[];
    refs text[];
    k text;
    d jsonb;
    path text;
begin
    for ref in select * from jsonb_array_elements(compiled->'experiments') loop
        if not exists (select 1 from analytics.ab_experiments e where e.user_id = owner and e.key = ref->>1) then
            raise exception '%.experiment: no experiment "%"', ref->>0, ref->>1 using errcode = '22023';
        end if;
        if ref->>2 is not null and not exists (
            select 1 from analytics.ab_experiment_variants v join analytics.ab_experiments e on e.id = v.experiment_id and e.user_id = v.user_id
            where e.user_id = owner and e.key = ref->>1 and v.key = ref->>2) then
            raise exception '%.variant: experiment "%" has no variant "%"', ref->>0, ref->>1, ref->>2 using errcode = '22023';
        end if;
    end loop;
    for ref in select * from jsonb_array_elements(compiled->'cohorts') loop
        path := ref->>0;
        if ref->>1 = self then
            raise exception '%: a cohort cannot contain itself ("%")', path, self using errcode = '22023';
        end if;
        if not exists (select 1 from analytics.user_cohorts c where c.user_id = owner and c.key = ref->>1) then
            raise exception '%: no cohort "%"', path, ref->>1 using errcode = '22023';
        end if;
        -- follow the referenced cohort's own references: reaching self again is a cycle
        frontier := array[ref->>1];
        while cardinality(frontier) > 0 loop
            next_keys := '{}';
            foreach k in array frontier loop
                continue when k = any(seen);
                seen := seen || k;
                select c.definition into d from analytics.user_cohorts c where c.user_id = owner and c.key = k;
                continue when d is null;
                refs := array(select x->>1 from jsonb_array_elements(analytics._compile_cohort_rule(d)->'cohorts') x);
                if self = any(refs) then
                    raise exception '%: cohort "%" refers back to "%" (a cycle)', path, k, self using errcode = '22023';
                end if;
                next_keys := next_keys || refs;
            end loop;
            frontier := next_keys;
        end loop;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics._check_cohort_references(jsonb, text, uuid) IS
'Internal: the experiments, variants and cohorts a rule names exist for the owner, and no cohort refers back to self (22023 naming the rule path).';

-- ---- create_cohort / update_cohort ----------------------------------------------------------------------------------
CREATE FUNCTION analytics.create_cohort(
    key         text,
    name        text        DEFAULT NULL,
    rule        jsonb       DEFAULT NULL,
    description text        DEFAULT NULL,
    at          timestamptz DEFAULT now(),
    user_id     uuid        DEFAULT NULL
) RETURNS analytics.user_cohorts
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(create_cohort.user_id, analytics.current_user_id());
    c analytics.user_cohorts;
begin
    if owner is null then
        raise exception 'user_id: no caller (no JWT claim sub) and no user_id given' using errcode = '22004';
    end if;
    if create_cohort.key is null or create_cohort.key !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$' then
        raise exception 'key: must be 1 to 200 letters, digits, "_", ".", ":" or "-" starting with a letter or digit, got %',
            coalesce(quote_literal(create_cohort.key), 'null') using errcode = '22023';
    end if;
    if rule is not null then
        perform analytics._check_cohort_references(rule, create_cohort.key, owner);
    end if;
    begin
        insert into analytics.user_cohorts (user_id, key, name, description, definition)
        values (owner, create_cohort.key, coalesce(create_cohort.name, create_cohort.key), create_cohort.description, rule)
        returning * into c;
    exception when unique_violation then
        raise exception 'key: a cohort "%" exists already', create_cohort.key using errcode = '23505';
    end;
    if rule is not null and create_cohort.at is not null then
        perform analytics.refresh_cohort(c.key, create_cohort.at, owner);
        select * into c from analytics.user_cohorts uc where uc.id = c.id and uc.user_id = owner;
    end if;
    return c;
end
$$;

CREATE FUNCTION analytics.update_cohort(
    key         text,
    name        text    DEFAULT NULL,
    rule        jsonb   DEFAULT NULL,
    description text    DEFAULT NULL,
    user_id     uuid    DEFAULT NULL
) RETURNS analytics.user_cohorts
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(update_cohort.user_id, analytics.current_user_id());
    c analytics.user_cohorts := analytics._cohort_for_update(update_cohort.key, owner);
begin
    if rule is not null then
        if c.definition is null then
            raise exception 'rule: cohort "%" is static (its members are added and removed); create a dynamic cohort instead', c.key
                using errcode = '55000';
        end if;
        perform analytics._check_cohort_references(rule, c.key, owner);
    end if;
    update analytics.user_cohorts uc
    set name = coalesce(update_cohort.name, uc.name),
        description = coalesce(update_cohort.description, uc.description),
        definition = coalesce(rule, uc.definition)
    where uc.id = c.id and uc.user_id = owner
    returning * into c;
    if rule is not null then
        perform analytics.refresh_cohort(c.key, greatest(now(), c.refreshed_at), owner);
        select * into c from analytics.user_cohorts uc where uc.id = c.id and uc.user_id = owner;
    end if;
    return c;
end
$$;

-- ---- evaluation -------------------------------------------------------------------------------------------------
-- The end users a rule selects at `at`. A set-returning function so that its query may run in parallel
-- workers even when the caller goes on to write (a statement that writes never runs in parallel): a behavioural rule
-- groups millions of spans by end user, per partition, in parallel, in memory (the settings analytics.retention has,
-- and why: sql/062_retention.sql). Over the 10M spans of bench/cohorts.sh: 14.5 s inside the writing statement,
-- 3.4 s here.
-- It takes the rule, never SQL: every API role may call it, and the only SQL it runs is what the core compiled.
CREATE FUNCTION analytics._cohort_matches(rule jsonb, at timestamptz, owner uuid) RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = ''
SET enable_partitionwise_aggregate = on
SET parallel_tuple_cost = 0.01
SET work_mem = '256MB'
SET jit = off
AS $$
declare
    compiled jsonb := analytics._compile_cohort_rule(rule);
begin
    return query execute compiled->>'sql' using owner, at, compiled->'params';
end
$$;
COMMENT ON FUNCTION analytics._cohort_matches(jsonb, timestamptz, uuid) IS
'Internal: the end_user_ids a cohort rule selects for owner at a moment (row-level security applies: only the caller''s rows).';

-- ---- preview ----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.preview_cohort(
    rule    jsonb,
    at      timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS TABLE (end_user_id text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(preview_cohort.user_id, analytics.current_user_id());
begin
    if at is null or not isfinite(at) then
        raise exception 'at: must be a finite time' using errcode = '22023';
    end if;
    perform analytics._check_cohort_references(rule, null, owner);
    return query select m from analytics._cohort_matches(rule, at, owner) m order by 1;
end
$$;

-- ---- refresh ----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.refresh_cohort(
    key     text,
    at      timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
-- the comparison of who matches with who is a member hashes both sets (hundreds of thousands of ids) in memory
SET work_mem = '256MB'
AS $$
declare
    owner uuid := coalesce(refresh_cohort.user_id, analytics.current_user_id());
    c analytics.user_cohorts := analytics._cohort_for_update(refresh_cohort.key, owner);
    matched text[];
    entered bigint := 0;
    exited bigint := 0;
    members bigint;
begin
    if at is null or not isfinite(at) then
        raise exception 'at: must be a finite time' using errcode = '22023';
    end if;
    if c.refreshed_at is not null and at < c.refreshed_at then
        raise exception 'at: % is before the cohort''s last refresh (%); its history is written in time order', at, c.refreshed_at
            using errcode = '22023';
    end if;
    if c.definition is not null then
        perform analytics._check_cohort_references(c.definition, c.key, owner);
        matched := array(select analytics._cohort_matches(c.definition, at, owner));
        -- who satisfies the rule at `at` (matched), compared with who is a member (one full join, hashed, of the
        -- members read before the insert: probing the index the insert is writing cost 3 s for 676,000 entrants):
        -- members not matched exit, matched end users who are not members enter, in key order (the indexes are then
        -- appended to, not written at random places)
        execute 'with matched as (select unnest($3::text[]) as end_user_id),
            members as materialized (select m.member_id from analytics.user_cohort_members m
                                     where m.user_id = $1 and m.cohort_id = $4 and m.exited_at is null),
            change as (select coalesce(r.end_user_id, m.member_id) as id, r.end_user_id is not null as enters
                       from matched r full join members m on m.member_id = r.end_user_id
                       where r.end_user_id is null or m.member_id is null),
            gone as (update analytics.user_cohort_members m set exited_at = $2
                     from change x
                     where not x.enters and m.user_id = $1 and m.cohort_id = $4 and m.member_id = x.id and m.exited_at is null
                     returning 1),
            came as (insert into analytics.user_cohort_members (user_id, cohort_id, member_id, entered_at)
                     select $1, $4, x.id, $2 from change x where x.enters order by x.id
                     returning 1)
            select (select count(*) from came), (select count(*) from gone), (select count(*) from members)'
        into entered, exited, members
        using owner, at, matched, c.id;
        members := members + entered - exited;
    else
        select count(*) into members from analytics.user_cohort_members m
        where m.user_id = owner and m.cohort_id = c.id and m.exited_at is null;
    end if;
    update analytics.user_cohorts uc set refreshed_at = at where uc.id = c.id and uc.user_id = owner;
    return jsonb_build_object('cohort', c.key, 'dynamic', c.definition is not null, 'at', at, 'members', members,
                              'entered', entered, 'exited', exited);
end
$$;

CREATE FUNCTION analytics.refresh_cohorts(
    user_id uuid        DEFAULT NULL,
    at      timestamptz DEFAULT now()
) RETURNS SETOF jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(refresh_cohorts.user_id, analytics.current_user_id());
    pending jsonb[];
    remaining jsonb[];
    item jsonb;
    done text[] := '{}';
    progressed boolean;
begin
    -- the dynamic cohorts visible to the caller (one owner; every owner for a DBA's job without a JWT), each with
    -- the cohorts its rule names: a cohort is refreshed after those, so "in_cohort" sees their new members
    select coalesce(array_agg(jsonb_build_object('owner', c.user_id, 'key', c.key,
               'needs', (select coalesce(jsonb_agg(x->>1), '[]') from jsonb_array_elements(analytics._compile_cohort_rule(c.definition)->'cohorts') x))
               order by c.user_id, c.key), '{}')
    into pending
    from analytics.user_cohorts c
    where c.definition is not null and (owner is null or c.user_id = owner);
    while cardinality(pending) > 0 loop
        remaining := '{}';
        progressed := false;
        foreach item in array pending loop
            if exists (select 1 from jsonb_array_elements_text(item->'needs') n
                       where (item->>'owner') || '/' || n <> all(done)
                         and exists (select 1 from analytics.user_cohorts d
                                     where d.user_id = (item->>'owner')::uuid and d.key = n and d.definition is not null)
                         and exists (select 1 from unnest(pending) p where p->>'owner' = item->>'owner' and p->>'key' = n)) then
                remaining := remaining || item;
            else
                return next analytics.refresh_cohort(item->>'key', greatest(at, (select c.refreshed_at from analytics.user_cohorts c
                    where c.user_id = (item->>'owner')::uuid and c.key = item->>'key')), (item->>'owner')::uuid);
                done := done || ((item->>'owner') || '/' || (item->>'key'));
                progressed := true;
            end if;
        end loop;
        if not progressed then
            raise exception 'rule: cohorts % refer to each other in a cycle', (select string_agg(p->>'key', ', ') from unnest(remaining) p)
                using errcode = '22023';
        end if;
        pending := remaining;
    end loop;
end
$$;

-- ---- static membership --------------------------------------------------------------------------------------------
-- The member ids of a jsonb array (texts, or numbers as their decimal text); 22023 naming members[i] otherwise.
CREATE FUNCTION analytics._member_ids(members jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
declare
    bad record;
begin
    if members is null or jsonb_typeof(members) <> 'array' then
        raise exception 'members: must be a JSON array of end user ids, got %', coalesce(jsonb_typeof(members), 'null')
            using errcode = '22023';
    end if;
    select i - 1 as i, v into bad from jsonb_array_elements(members) with ordinality as e(v, i)
    where not (jsonb_typeof(v) = 'number' or (jsonb_typeof(v) = 'string' and length(v #>> '{}') between 1 and 256 and btrim(v #>> '{}') <> ''))
    limit 1;
    if found then
        raise exception 'members[%]: must be an end user id (a non-empty text of at most 256 characters), got %', bad.i, bad.v
            using errcode = '22023';
    end if;
    return array(select distinct v #>> '{}' from jsonb_array_elements(members) v);
end
$$;
COMMENT ON FUNCTION analytics._member_ids(jsonb) IS 'Internal: the distinct ids of a jsonb array of end user ids (22023 naming the element otherwise).';

CREATE FUNCTION analytics.add_cohort_members(
    key     text,
    members jsonb,
    user_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(add_cohort_members.user_id, analytics.current_user_id());
    c analytics.user_cohorts := analytics._cohort_for_update(add_cohort_members.key, owner, static => true);
    ids text[] := analytics._member_ids(members);
    n bigint;
begin
    insert into analytics.user_cohort_members (user_id, cohort_id, member_id, entered_at)
    select owner, c.id, i, now() from unnest(ids) i
    where not exists (select 1 from analytics.user_cohort_members m
                      where m.user_id = owner and m.cohort_id = c.id and m.member_id = i and m.exited_at is null);
    get diagnostics n = row_count;
    return n;
end
$$;

CREATE FUNCTION analytics.remove_cohort_members(
    key     text,
    members jsonb,
    user_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(remove_cohort_members.user_id, analytics.current_user_id());
    c analytics.user_cohorts := analytics._cohort_for_update(remove_cohort_members.key, owner, static => true);
    ids text[] := analytics._member_ids(members);
    n bigint;
    gone bigint;
begin
    -- a stay that began in this very transaction never happened; any other ends now
    delete from analytics.user_cohort_members m
    where m.user_id = owner and m.cohort_id = c.id and m.member_id = any(ids) and m.exited_at is null and m.entered_at = now();
    get diagnostics gone = row_count;
    update analytics.user_cohort_members m set exited_at = now()
    where m.user_id = owner and m.cohort_id = c.id and m.member_id = any(ids) and m.exited_at is null;
    get diagnostics n = row_count;
    return n + gone;
end
$$;

-- ---- reading ------------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.cohort_members(
    key     text,
    at      timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS TABLE (member_id text, entered_at timestamptz, exited_at timestamptz, properties jsonb)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    owner uuid := coalesce(cohort_members.user_id, analytics.current_user_id());
    cid uuid;
begin
    if cohort_members.key is null then
        raise exception 'key: is required' using errcode = '22004';
    end if;
    if cohort_members.at is null then
        raise exception 'at: is required' using errcode = '22004';
    end if;
    select c.id into cid from analytics.user_cohorts c where c.user_id = owner and c.key = cohort_members.key;
    if cid is null then
        raise exception 'key: no cohort "%"', cohort_members.key using errcode = 'P0002';
    end if;
    return query
    select m.member_id, m.entered_at, m.exited_at, coalesce(p.properties, '{}'::jsonb)
    from analytics.user_cohort_members m
    left join analytics.end_user_profiles p on p.user_id = m.user_id and p.end_user_id = m.member_id
    where m.user_id = owner and m.cohort_id = cid
      and m.entered_at <= cohort_members.at and (m.exited_at is null or m.exited_at > cohort_members.at)
    order by m.member_id;
end
$$;

COMMENT ON FUNCTION analytics.create_cohort(text, text, jsonb, text, timestamptz, uuid) IS
$$Creates a cohort of the caller's end users: static (no rule: add_cohort_members / remove_cohort_members) or dynamic (a rule, refreshed at `at`, default now: a past moment starts the history then; NULL: not yet, and by refresh_cohort). Rules: {"and"|"or": [...]}, {"not": ...}, {"property": k, "eq"|"ne"|"in"|"not_in"|"gt"|"gte"|"lt"|"lte"|"contains"|"exists": v}, {"performed": {span filters} or {"event": metric}, "at_least", "at_most", "within" | "from"/"to"}, {"first_seen"|"last_seen": {"within" | "from"/"to"}}, {"cost"|"tokens": {"gte": x}, "within"}, {"assigned": {"experiment", "variant"}}, {"in_cohort": key}. An invalid rule fails with 22023 naming its path (rule.and[1].at_least).
Example: select key, refreshed_at is not null as refreshed from analytics.create_cohort('chatty', rule => '{"performed": {"operation_type": "chat"}, "at_least": 3, "within": "7 days"}');$$;
COMMENT ON FUNCTION analytics.update_cohort(text, text, jsonb, text, uuid) IS
$$Changes a cohort's name, description or (dynamic cohorts) rule; a new rule is checked like create_cohort's and applied by a refresh at once (history kept: who no longer matches exits, who newly matches enters). Arguments left NULL keep their value.
Example: select key, name from analytics.update_cohort('chatty', name => 'Chatty users');$$;
COMMENT ON FUNCTION analytics.refresh_cohort(text, timestamptz, uuid) IS
$$Evaluates a dynamic cohort's rule at `at` (default now; never before the last refresh) and records the change: end users who match and were not members enter (entered_at = at), members who no longer match exit (exited_at = at). Reads only the owner's data (their spans by the (user_id, end_user_id, start_time) and (user_id, start_time) indexes). Returns {"cohort", "dynamic", "at", "members", "entered", "exited"}.
Example: select analytics.refresh_cohort('chatty') ->> 'members';$$;
COMMENT ON FUNCTION analytics.refresh_cohorts(uuid, timestamptz) IS
$$Refreshes every dynamic cohort the caller may see (one owner; with no JWT and no user_id, every owner: a pg_cron job), each after the cohorts its rule names. One result of refresh_cohort per cohort.
Example: select count(*) from analytics.refresh_cohorts();$$;
COMMENT ON FUNCTION analytics.add_cohort_members(text, jsonb, uuid) IS
$$Adds end users (a JSON array of ids: '["u1", "u2"]', or from a query: (select jsonb_agg(end_user_id) from ...)) to a static cohort; those already members are left as they are. Returns the number that entered.
Example: select analytics.add_cohort_members('beta-testers', '["customer-42", "customer-7"]');$$;
COMMENT ON FUNCTION analytics.remove_cohort_members(text, jsonb, uuid) IS
$$Ends the membership of end users in a static cohort (exited_at = now; their history stays). Returns the number that left.
Example: select analytics.remove_cohort_members('beta-testers', '["customer-7"]');$$;
COMMENT ON FUNCTION analytics.cohort_members(text, timestamptz, uuid) IS
$$The members of a cohort at a moment (default now): those who entered at or before it and had not exited by then, with their stay and their end user properties.
Example: select member_id from analytics.cohort_members('beta-testers');$$;
COMMENT ON FUNCTION analytics._compile_cohort_rule(jsonb) IS
'Internal: validates a cohort rule (22023 naming the offending part) and compiles it to {"sql", "params", "cohorts", "experiments"} (analytics_core::cohorts::rule).';
COMMENT ON FUNCTION analytics.preview_cohort(jsonb, timestamptz, uuid) IS
$$The end users a cohort rule selects at a moment (default now), without saving anything: to try a rule before create_cohort. Same checks (22023 naming the rule path).
Example: select count(*) from analytics.preview_cohort('{"performed": {"operation_type": "chat"}, "within": "30 days"}');$$;

CREATE FUNCTION analytics."_retention_query"(
	"from_time" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"to_time" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"period" TEXT, /* Option < & str > */
	"periods" INT, /* Option < i32 > */
	"start_event" jsonb, /* Option < pgrx :: JsonB > */
	"return_event" jsonb, /* Option < pgrx :: JsonB > */
	"mode" TEXT, /* Option < & str > */
	"brackets" jsonb, /* Option < pgrx :: JsonB > */
	"calendar" bool, /* Option < bool > */
	"time_zone" TEXT, /* Option < & str > */
	"as_of" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"cohorts" TEXT[] /* :: std :: option :: Option < Vec < Option < String > > > */
) RETURNS jsonb /* pgrx :: JsonB */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'retention_query_wrapper';

CREATE FUNCTION analytics.retention(
    from_time    timestamptz,
    to_time      timestamptz,
    period       text        DEFAULT 'week',
    periods      integer     DEFAULT 8,
    start_event  jsonb       DEFAULT '{}'::jsonb,
    return_event jsonb       DEFAULT '{}'::jsonb,
    mode         text        DEFAULT 'n_day',
    brackets     jsonb       DEFAULT NULL,
    calendar     boolean     DEFAULT true,
    time_zone    text        DEFAULT 'UTC',
    cohorts      text[]      DEFAULT NULL,
    as_of        timestamptz DEFAULT now(),
    user_id      uuid        DEFAULT NULL
) RETURNS TABLE (
    cohort       text,
    cohort_start timestamptz,
    users        bigint,
    period_number integer,
    period_label text,
    eligible     bigint,
    returned     bigint,
    rate         double precision
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
-- First-seen cohorts over calendar periods group the owner's spans by end user, partition by partition in parallel
-- workers, then the end users by anchor period and return periods (analytics_core::cohorts::retention::calendar_sql).
-- The planner takes that plan with these settings (measured over 10M spans / 1M end users, bench/cohorts.sh): without
-- partitionwise aggregation and a cheaper tuple transfer it runs serially; it would sort 1M end users where hashing
-- them into ~100 groups does; the hash of 1M end users needs ~150 MB (a DBA may lower it: ALTER FUNCTION ... SET
-- work_mem); JIT compiling the query took 0.7 s of a 3 s run. With the default random_page_cost (4, disks that seek)
-- the planner reads the big partitions' wide rows sequentially (1.3 GB for a 6M-span month) rather than their
-- (user_id, end_user_id, start_time) index (300 MB, whose leaves inserts leave out of order): 5.4-6.4 s against
-- 2.6-3.0 s for the index; 1.1 is the usual figure for SSD and cloud storage.
SET enable_partitionwise_aggregate = on
SET parallel_tuple_cost = 0.01
SET enable_sort = off
SET work_mem = '256MB'
SET jit = off
SET random_page_cost = 1.1
AS $$
declare
    owner uuid := coalesce(retention.user_id, analytics.current_user_id());
    q jsonb;
    missing text;
begin
    if retention.as_of is null or not isfinite(retention.as_of) or retention.as_of >= timestamptz '294276-01-01 00:00+00' then
        raise exception 'as_of: must be a finite time before the year 294276' using errcode = '22023';
    end if;
    -- any zone Postgres converts with (reading pg_timezone_names instead costs ~30 ms a call)
    begin
        if retention.time_zone is null or pg_catalog.timezone(retention.time_zone, retention.as_of) is null then
            raise invalid_parameter_value;
        end if;
    exception when invalid_parameter_value then
        raise exception 'time_zone: unknown time zone %; use an IANA name such as ''Europe/Berlin'' (see pg_timezone_names)',
            coalesce(quote_literal(retention.time_zone), 'null') using errcode = '22023';
    end;
    q := analytics._retention_query(retention.from_time, retention.to_time, retention.period, retention.periods,
                                    retention.start_event, retention.return_event, retention.mode, retention.brackets,
                                    retention.calendar, retention.time_zone, retention.as_of, retention.cohorts);
    select k into missing from unnest(retention.cohorts) k
    where not exists (select 1 from analytics.user_cohorts c where c.user_id = owner and c.key = k) limit 1;
    if missing is not null then
        raise exception 'cohorts: no cohort "%"', missing using errcode = 'P0002';
    end if;
    return query execute q->>'sql' using owner, retention.as_of, q->'params';
end
$$;

COMMENT ON FUNCTION analytics.retention(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, text[], timestamptz, uuid) IS
$$Retention of the caller's end users. Each end user's anchor is their first start_event (span filters {"operation_type", "name", "model", "provider", "status"}, {} any span, or {"event": metric} an experiment event): ever, grouped by the anchor's period (cohort = its start date) when it falls in [from_time, to_time); or, with cohorts => array[keys], their first start_event in [from_time, to_time), one group per named cohort (current members). Period k: calendar days/weeks (Monday)/months in time_zone after the anchor's (calendar => true), or [anchor + k·L, anchor + (k+1)·L) with L = 24 h, 7 d, 30 d (calendar => false). Modes: n_day (returned in period k), unbounded (in period k or later), brackets ('[[1,1],[2,3],[4,7]]': in any period of the bracket). One row per cohort and period_number 0..periods (brackets: 0 and one per bracket, labelled): users (cohort size), eligible (period begun by as_of), returned (did return_event in it), rate = returned / eligible.
Example: select cohort, period_number, returned, rate from analytics.retention('2026-11-02', '2026-11-16', period => 'week', periods => 2) order by cohort_start, period_number;$$;
COMMENT ON FUNCTION analytics._retention_query(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, timestamptz, text[]) IS
'Internal: checks the arguments of analytics.retention (22023 naming the argument) and writes its query, {"sql", "params"} (analytics_core::cohorts::retention).';

REVOKE EXECUTE ON FUNCTION analytics.identify_end_user(text, jsonb, boolean, uuid), analytics.end_users(timestamptz, timestamptz, text, integer, integer, uuid), analytics._compile_cohort_rule(jsonb), analytics._check_cohort_row(), analytics._cohort_for_update(text, uuid, boolean), analytics._check_cohort_references(jsonb, text, uuid), analytics._cohort_matches(jsonb, timestamptz, uuid), analytics.create_cohort(text, text, jsonb, text, timestamptz, uuid), analytics.update_cohort(text, text, jsonb, text, uuid), analytics.preview_cohort(jsonb, timestamptz, uuid), analytics.refresh_cohort(text, timestamptz, uuid), analytics.refresh_cohorts(uuid, timestamptz), analytics._member_ids(jsonb), analytics.add_cohort_members(text, jsonb, uuid), analytics.remove_cohort_members(text, jsonb, uuid), analytics.cohort_members(text, timestamptz, uuid), analytics._retention_query(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, timestamptz, text[]), analytics.retention(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, text[], timestamptz, uuid), analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid, text) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION analytics.identify_end_user(text, jsonb, boolean, uuid), analytics.end_users(timestamptz, timestamptz, text, integer, integer, uuid), analytics._compile_cohort_rule(jsonb), analytics._check_cohort_row(), analytics._cohort_for_update(text, uuid, boolean), analytics._check_cohort_references(jsonb, text, uuid), analytics._cohort_matches(jsonb, timestamptz, uuid), analytics.create_cohort(text, text, jsonb, text, timestamptz, uuid), analytics.update_cohort(text, text, jsonb, text, uuid), analytics.preview_cohort(jsonb, timestamptz, uuid), analytics.refresh_cohort(text, timestamptz, uuid), analytics.refresh_cohorts(uuid, timestamptz), analytics._member_ids(jsonb), analytics.add_cohort_members(text, jsonb, uuid), analytics.remove_cohort_members(text, jsonb, uuid), analytics.cohort_members(text, timestamptz, uuid), analytics._retention_query(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, timestamptz, text[]), analytics.retention(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, text[], timestamptz, uuid), analytics.record_span(text, text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, timestamptz, text, text, bigint, bigint, bigint, bigint, bigint, bigint, double precision, jsonb, jsonb, jsonb, text[], uuid, text) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;

-- The variation counts equal_weights and bucket_ranges take (at most 10000), in their documentation
COMMENT ON FUNCTION analytics.equal_weights(integer) IS
$$n equal weights summing to 1 (GrowthBook's getEqualWeights); empty for n <= 0, at most 10000 (22023 above). Example: select analytics.equal_weights(3);$$;
COMMENT ON FUNCTION analytics.bucket_ranges(integer, double precision, double precision[]) IS
$$GrowthBook's getBucketRanges: an n x 2 array of [start, end) per variation (n at most 10000: 22023 above). Coverage is clamped to [0, 1]; weights missing, of the wrong length, or not summing to 1 within 0.01 become equal weights; lowering coverage never moves a unit to another variation.
Example: select analytics.bucket_ranges(3, 0.5, '{0.2,0.3,0.5}');$$;

-- The identity functions without a SET clause (sql/001_identity.sql): C code that resolves no names; the clause made
-- every call save, set and restore search_path
ALTER FUNCTION analytics.current_user_id() RESET search_path;
ALTER FUNCTION analytics.current_role_claim() RESET search_path;
