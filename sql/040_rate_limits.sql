-- Rate limits: how many calls of an action each owner (the JWT's sub) may make in any rolling window, enforced
-- inside our writing functions before they write, and answered through PostgREST as HTTP 429 with Retry-After
-- (docs/guardrails.md).
--
--  * analytics.rate_limits: the limits as data. A row with user_id NULL overrides the built-in default of an action
--    for every owner; a row with a user_id is that owner's plan. Written by the DBA or service_role; owners read
--    theirs and the defaults (one extra SELECT policy, below).
--  * analytics.rate_limit_state: per owner and action, the times of the calls admitted within the window, oldest
--    first (an exact sliding window: at most max_calls in ANY window of length per, never about twice as many as a
--    fixed window or a token bucket admits across a boundary). UNLOGGED: a crash empties it, which resets the
--    limits and loses no data.
--  * analytics.check_rate_limit(action): admits a call (records it) or raises SQLSTATE 'PGRST' with status 429 and
--    Retry-After / RateLimit-* headers. Raising rolls back the caller's whole transaction, so a rejected call writes
--    nothing and consumes no quota. Our writing functions call it first; a project may call it from its own
--    db_pre_request function for actions of its own.
--
-- Written in PL/pgSQL on purpose: a PGRST error must be raised by SQL, a raise from inside the Rust library would
-- reach PostgREST as XX000 (pgrx re-raises errors it catches with the codes it knows).

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

-- The ingest functions: the limiter first, then the Rust implementation (analytics._ingest_spans/_ingest_otlp,
-- which refuse to run unless check_rate_limit admitted the call in this transaction: calling them directly through
-- PostgREST cannot skip the limit).
CREATE FUNCTION analytics.ingest_spans(spans jsonb) RETURNS jsonb
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

CREATE FUNCTION analytics.ingest_otlp(payload jsonb) RETURNS jsonb
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

COMMENT ON FUNCTION analytics.ingest_otlp(jsonb) IS
$$Stores the spans of an OpenTelemetry OTLP/JSON ExportTraceServiceRequest ({"resourceSpans": [...]}): hex ids, unix-nano times, status codes; gen_ai.* and OpenInference attributes map to columns (model, provider, tokens, conversation id, input/output messages...), everything else goes to metadata.otel.
Same rules and result as ingest_spans; errors name the span by path, e.g. resourceSpans[0].scopeSpans[0].spans[3].spanId.
Example: select analytics.ingest_otlp(pg_read_file('export.json')::jsonb);$$;

COMMENT ON FUNCTION analytics._ingest_spans(jsonb) IS
'The implementation of analytics.ingest_spans (Rust). Runs only after analytics.check_rate_limit(''ingest'') admitted the call in this transaction, else 42501: call analytics.ingest_spans. Internal.';
COMMENT ON FUNCTION analytics._ingest_otlp(jsonb) IS
'The implementation of analytics.ingest_otlp (Rust). Runs only after analytics.check_rate_limit(''ingest'') admitted the call in this transaction, else 42501: call analytics.ingest_otlp. Internal.';
