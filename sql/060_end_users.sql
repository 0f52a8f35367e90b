-- End users: the people the owner's LLM application serves (Langfuse's userId, OpenTelemetry's enduser.id), as
-- opposed to the owner (user_id, the account whose JWT calls us). Spans carry them in llm_traces.end_user_id (every
-- ingest path sets it: ingest_spans' "end_user_id", record_span(end_user_id => ...), OTLP's enduser.id / user.id /
-- langfuse.user.id); their properties (plan, country, signup date...) live in analytics.end_user_profiles
-- (sql/030_anomalies_cohorts.sql, beside the cohorts), set by analytics.identify_end_user. docs/cohorts.md.

-- ---- identify_end_user -------------------------------------------------------------------------------------------
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
