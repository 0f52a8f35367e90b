-- Cohorts: named sets of an owner's end users (tables in sql/030_anomalies_cohorts.sql). A static cohort's members
-- are added and removed explicitly; a dynamic cohort has a rule (user_cohorts.definition, the language of
-- analytics_core::cohorts::rule) that analytics.refresh_cohort evaluates, recording who entered and who left, so that
-- membership at any past moment is known. docs/cohorts.md.
--
-- Every function is SECURITY INVOKER: row-level security confines it to the caller's cohorts, end users and spans;
-- a rule names other cohorts and experiments by key, and keys are looked up among the same owner's only.

-- A rule is checked whenever a cohort is written, by any path (the API functions, PostgREST's table endpoints, plain
-- SQL): its syntax here (row-local, so pg_restore can load cohorts in any order); the cohorts and experiments it
-- names by analytics.create_cohort / update_cohort and again by every refresh.
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
