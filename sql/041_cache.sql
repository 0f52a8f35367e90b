-- Result caches (docs/guardrails.md): the read functions a dashboard calls again and again keep their results for a
-- while, per owner, and every write by the owner to the data makes them stale at once.
--
--  * analytics.cache_entries: one result per owner, role, function and arguments (and TimeZone, IntervalStyle), with the snapshot
--    it was computed under. Served until its TTL (trace reads 1 minute, analytics 5 minutes) and only while no write
--    to the owner's data committed after that snapshot: a user never sees a result older than their own last write.
--  * analytics.cache_writes: which transactions wrote which owner's data (one row per owner and transaction, made by
--    statement triggers on every data table). Insert-only with a distinct key per transaction: writers never wait on
--    each other or on readers. An entry is stale when a write row exists whose transaction its snapshot does not
--    see — exact under concurrency, where a per-owner version counter is not (counters commit out of order).
--  * analytics.cache_events / cache_counters: hits and misses. Each connection tallies them in memory (the Rust
--    analytics._cache_count, analytics_core::cache) and writes the tally when it stores a result anyway or, serving
--    only hits, at most every 10 seconds: a hit costs no transaction id of its own. purge_cache folds the log into
--    the counters.
--
-- All four are UNLOGGED (a crash empties them: a cache loses nothing) and reached only through the SECURITY DEFINER
-- functions below, which take the owner from the JWT, never from an argument. Callers whose rows are not confined to
-- one owner are not cached: superusers and BYPASSRLS roles (service_role), sessions without a JWT sub.
-- A READ ONLY transaction (PostgREST GET, BEGIN READ ONLY, default_transaction_read_only) reads the cache and does
-- not fill it; on a hot standby (where unlogged tables cannot be read) the cache is off.

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
                                'rate_limits', 'rate_limit_rules_version', 'retention_policies', 'ab_experiment_unit_totals',
                                'ab_experiment_unit_counts')
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
$$Rollups per time bucket and group (group_by: model, operation_type, provider, status, name, user, end_user, cohort:<key> — whether the span's end user is a member of that cohort now): request_count, error_count, error_rate, latency p50/p90/p95/p99 and time-to-first-token p50/p95 in ms, tokens and cost.
Percentiles are exact (percentile_cont). Buckets are aligned to from_time. Filters: operation_type, root_only (traces rather than spans). Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{model}');$$;

COMMENT ON FUNCTION analytics.experiment_results(text, text, text, boolean, double precision, text, integer, text, text, text, boolean, interval, double precision, boolean, boolean, double precision, double precision, text, double precision, boolean, double precision, boolean, text, integer, text, boolean) IS
$$Every variant of an experiment against its control on one metric: units, value, effect (relative lift by default, as GrowthBook; relative => false for the difference), confidence interval, p-value, p-value corrected across variants (correction: none by default as GrowthBook, holm or bh) with the interval that goes with it (ci_lower_adjusted/ci_upper_adjusted, GrowthBook's ciAdjusted), significance, std_error, chance to beat control, expected loss and control_risk (Bayesian, Gaussian: GrowthBook's risk of shipping the treatment and of keeping the control; better means lower when lower_is_better, which defaults to true for the trace metrics except request_count), always-valid sequential p-value and confidence sequence (safe to check every day), and the sample-ratio-mismatch check against the planned weights (srm true when p < 0.001).
metric_source 'events': metric names an ab_experiment_events metric; metric_type 'binomial' (share of units with the event, default) or 'mean' (event value per unit, 0 without events). Counts the unit's events after its assignment, tied to this experiment or to no experiment, read from the per-unit totals that triggers keep in ab_experiment_unit_totals (with CUPED: from the events, in one pass).
metric_source 'traces': the unit's spans in llm_traces after its assignment — linked by unit_source (metadata: the span's metadata.unit_id, or session_id, conversation_id), skipping spans whose metadata.experiment names another experiment, optionally of one operation_type. Metrics: latency_ms and error_rate (per span: ratio metrics, delta method), cost_usd, total_tokens, input_tokens, output_tokens and request_count (per unit: mean metrics).
cuped => true reduces variance with the same metric in the cuped_lookback before assignment (binomial, mean and ratio metrics; for latency_ms and error_rate the unit's pre-period ratio, as GrowthBook's regression-adjusted ratio metrics). prior_mean and prior_variance (both, or neither for the flat prior) are GrowthBook's informative Gaussian prior on the effect for chance_to_beat_control and expected_loss. sequential => true is GrowthBook's sequential testing: p_value, ci_lower, ci_upper and significance are the always-valid ones (the fixed-horizon test is then not shown). capping (GrowthBook's metric capping: mean metrics, and the numerator of latency_ms and error_rate): 'absolute' caps each unit's value at cap_value; 'percentile' at the cap_value quantile (0.99: the 99th percentile) of every assigned unit's value, all variants together, zeros left out with cap_ignore_zeros; CUPED's pre-period values get the same cap; capped_at reports the cap. metric_type 'quantile' (a quantile of the units' values: their events' total, a trace metric's total, or their average latency or error rate) or 'quantile_event' (a quantile of every event's value, or of every span's latency_ms, cost_usd or tokens, the events clustered in their units) with quantile => 0.95 for the 95th percentile: GrowthBook's quantile metrics and gbstats' QuantileStatistic / QuantileClusteredStatistic (value: the variant's quantile; effect: its relative or absolute change); quantile_ignore_zeros leaves values of 0 out. dimension breaks the results down (GrowthBook's dimensions; a row per value and variant, the value in the dimension column, most units first): 'assigned_date' (UTC day of assignment), 'attribute.<name>' (an attribute stored by assign_variant), 'model', 'provider' or 'operation_type' (of the unit's first span after assignment that names one), 'cohort:<key>' ('in <key>' / 'not in <key>': the unit is a member of that cohort of end users now, or not); '(none)' for units without a value; beyond max_dimensions values (20) the rest is merged into '(other)' (left out for quantile metrics); each value has its own sample ratio check, and the correction covers variants and values together. alternative 'greater' or 'less' makes the frequentist and sequential tests one-sided (GrowthBook's one-sided t-tests): the treatment is higher, or lower; the interval's open end is NULL. Default phase: the current one. Cached 5 minutes per caller, stale at once after a write to the caller's data (a new event, assignment or span); cache => false computes afresh.
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

COMMENT ON FUNCTION analytics.experiment_report(text, jsonb, jsonb, text, double precision, boolean, boolean, integer, text, integer, text, boolean) IS
$$An experiment's results page as one jsonb document, for PostgREST clients: {"experiment", "status", "phase", "correction", "alpha", "relative", "sequential", "dimension", "alternative", "variants": [{"key", "is_control", "units"}], "srm": {"p_value", "srm"}, "goals": [{"metric", "results": [experiment_results rows]}], "guardrails": [{"metric", "results": [... with "status": "ok" | "failing"]}]}. With dimension (as in experiment_results), every metric's results are broken down by it and the correction also covers the dimension values.
goal_metrics and guardrail_metrics are arrays of metric names or of {"metric", "source" (events | traces), "type", "unit_source", "operation_type", "lower_is_better", "cuped", "capping", "cap_value", "cap_ignore_zeros", "quantile", "quantile_ignore_zeros"} (as in experiment_results). The correction (none by default, holm or bh) covers every variant of every goal metric (and dimension value) together, as GrowthBook, with adjusted intervals; guardrails are not corrected and fail when a variant is significantly worse. Cached 5 minutes per caller, stale at once after a write to the caller's data; cache => false computes afresh.
Example: select analytics.experiment_report('checkout-cta', '["signup", {"metric": "spend", "type": "mean"}]', correction => 'holm');$$;
