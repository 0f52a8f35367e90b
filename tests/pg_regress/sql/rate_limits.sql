-- Rate limits (sql/040_rate_limits.sql): an exact sliding window per owner and action, enforced inside the writing
-- functions before they write, rejected as PostgREST >= 12 turns into HTTP 429 with Retry-After. Time comes from
-- the test clock analytics.rate_limit_clock (honoured in a superuser's session only), never from sleeps.
\pset null '·'
\set A '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''
\set B '''bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'''
delete from analytics.rate_limits;   -- setup.sql's unlimited defaults: the built-in ones apply again
delete from analytics.rate_limit_state;
delete from analytics.llm_traces;
delete from analytics.ab_experiments;

-- regress.call_at(at, stmt): the test clock set to `at`, then one statement as in its own request; answers its
-- jsonb result, 'ok' for another result, or what the error carried, with the JSON PostgREST parses (message,
-- detail) parsed
create function regress.call_at(at timestamptz, stmt text) returns jsonb
language plpgsql as $$
declare
    st text; msg text; det text; hnt text; res text;
begin
    perform set_config('analytics.rate_limit_clock', at::text, false);
    begin
        execute stmt into res;
        return case when res like '{%' then res::jsonb else '"ok"' end;
    exception when others then
        get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail, hnt = pg_exception_hint;
        return jsonb_build_object('sqlstate', st,
            'message', case when st = 'PGRST' then msg::jsonb else to_jsonb(msg) end,
            'detail', case when det like '{%' then det::jsonb else to_jsonb(nullif(det, '')) end,
            'hint', nullif(hnt, ''));
    end;
end
$$;

-- limits are data; bad rows are refused with the field named by the constraint
select regress.attempt($$insert into analytics.rate_limits (action, max_calls, per) values ('ingest', 0, '1 minute')$$) as zero_calls,
       regress.attempt($$insert into analytics.rate_limits (action, max_calls, per) values ('ingest', 5, '0 s')$$) as empty_window,
       regress.attempt($$insert into analytics.rate_limits (action, max_calls, per) values ('Ingest Spans', 5, '1 minute')$$) as bad_action;
select regress.attempt($$insert into analytics.rate_limits (action, max_calls, per) values ('ingest', 5, '1 minute'), ('ingest', 6, '1 minute')$$) as two_defaults;

-- Alice (an API user, as PostgREST runs her requests) has the built-in limits
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', false) is not null as alice;
set analytics.rate_limit_clock = '2026-11-20 12:00:00+00';
select * from analytics.rate_limit_status();

-- 100 ingest calls (record_span, ingest_spans and ingest_otlp count alike) over 49.5 s are admitted ...
select count(*) filter (where not r ? 'sqlstate') as admitted, count(*) as calls
from generate_series(0, 99) k,
     lateral regress.call_at(timestamptz '2026-11-20 12:00:00+00' + k * interval '0.5 s', case k % 3
         when 0 then format($$select analytics.record_span('t-%s', 's', 'step', '2026-11-20 11:00+00')$$, k)
         when 1 then format($$select analytics.ingest_spans('[{"trace_id":"t-%s","span_id":"s","name":"step","start_time":"2026-11-20T11:00:00Z"}]')$$, k)
         else format($$select analytics.ingest_otlp('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"00f067aa0ba902b7","name":"step","startTimeUnixNano":"1763636400000000000"}]}]}]}')$$,
                     lpad(to_hex(k), 32, '0')) end) r;
select used, remaining, reset_at from analytics.rate_limit_status() where action = 'ingest';

-- ... and the 101st, at 12:00:50, is not: SQLSTATE PGRST with the body and the status and headers PostgREST sends
-- (Retry-After: the first call leaves the window at 12:01:00, in 10 s)
reset role;
create temp table before_reject as
select c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from analytics.%I', c.relname), false, false, '')))[1]::text as n
from pg_class c join pg_namespace s on s.oid = c.relnamespace where s.nspname = 'analytics' and c.relkind in ('r', 'p');
create temp table state_before as select * from analytics.rate_limit_state;
set role authenticated;
select jsonb_pretty(regress.call_at('2026-11-20 12:00:50+00',
    $$select analytics.ingest_spans('[{"trace_id":"t-100","span_id":"s","name":"step","start_time":"2026-11-20T11:00:00Z"}]')$$)) as rejected;
-- what PostgREST requires of it: message with "code" and "message" and string "details"/"hint"; detail with an
-- integer status and string headers
select jsonb_typeof(r->'message'->'code') as code, jsonb_typeof(r->'message'->'details') as details,
       jsonb_typeof(r->'message'->'hint') as hint, jsonb_typeof(r->'detail'->'status') as status,
       (select bool_and(jsonb_typeof(v) = 'string') from jsonb_each(r->'detail'->'headers') h(k, v)) as headers_are_strings,
       (r->'message'->>'details')::jsonb->'retry_after_seconds' as body_retry_after
from (select regress.call_at('2026-11-20 12:00:50+00', $$select analytics.check_rate_limit('ingest')$$) as r) x;

-- the rejected calls changed nothing: every table has the rows it had, the limiter's state is unchanged
reset role;
select count(*) as tables_checked,
       count(*) filter (where b.n is distinct from (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from analytics.%I', b.relname), false, false, '')))[1]::text) as tables_changed
from before_reject b;
select (select array_agg(admitted) from state_before) = (select array_agg(admitted) from analytics.rate_limit_state) as state_unchanged;
select count(*) as spans_stored from analytics.llm_traces;
set role authenticated;

-- the window slides: at 12:01:00 the first call has left it (one slot), at 12:01:00.2 the window is full again
-- until the second call leaves it at 12:01:00.5 (Retry-After rounds up to whole seconds: 1)
select regress.call_at('2026-11-20 12:01:00+00', $$select analytics.record_span('t-101', 's', 'step', '2026-11-20 11:00+00')$$) as at_12_01_00,
       regress.call_at('2026-11-20 12:01:00.2+00', $$select analytics.check_rate_limit('ingest')$$)->'detail'->'headers' as at_12_01_00_2;

-- a READ ONLY transaction (PostgREST GET, a read replica) checks without recording: one slot stays free
begin transaction read only;
select regress.call_at('2026-11-20 12:01:00.5+00', $$select analytics.check_rate_limit('ingest')$$)->'remaining' as read_only_remaining,
       regress.call_at('2026-11-20 12:01:00.5+00', $$select analytics.check_rate_limit('ingest')$$)->'remaining' as again_not_consumed;
commit;
select regress.call_at('2026-11-20 12:01:00.5+00', $$select analytics.check_rate_limit('ingest')$$)->'remaining' as read_write_consumes;
begin transaction read only;
select regress.call_at('2026-11-20 12:01:00.7+00', $$select analytics.check_rate_limit('ingest')$$)->'detail'->'headers'->>'Retry-After' as read_only_over_limit_retry_after;
commit;

-- never more than 100 in any 60 s window of the admitted calls
reset role;
select max(c) as most_in_any_window, count(*) as admitted_in_state
from (select count(*) over (order by x range between interval '59.999999 s' preceding and current row) as c
      from analytics.rate_limit_state s, unnest(s.admitted) x where s.action = 'ingest') w;
set role authenticated;

-- the implementation cannot be called around the limiter
select regress.attempt($$select analytics._ingest_spans('[{"trace_id":"x","span_id":"s","name":"step","start_time":"2026-11-20T11:00:00Z"}]')$$) as direct_ingest,
       regress.attempt($$select analytics._ingest_otlp('{"resourceSpans":[]}')$$) as direct_otlp;

-- Alice cannot change her limit nor reset her window; she sees her own rows and the defaults only
select regress.attempt($$delete from analytics.rate_limit_state$$) as reset_window,
       regress.attempt($$update analytics.rate_limit_state set admitted = '{}'$$) as empty_window,
       regress.attempt($$insert into analytics.rate_limits (user_id, action, max_calls, per) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest', 100000, '1 s')$$) as raise_own_limit;
-- nor the version of the limits (a stale version sends her calls to the lookup; an API role has no privilege on it)
select regress.attempt($$select version from analytics.rate_limit_rules_version$$) as read_version,
       regress.attempt($$update analytics.rate_limit_rules_version set version = version + 1$$) as raise_version;
-- nor hold another user's lock (which would make their calls wait until her transaction ends)
select regress.attempt($$select analytics._rate_limit_lock('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'ingest', true)$$) as hold_lock;
reset role;
insert into analytics.rate_limits (user_id, action, max_calls, per) values (:B, 'ingest', 5, '1 second'), (null, 'export_csv', 2, '1 hour');
set role authenticated;
select action, user_id is null as is_default, max_calls from analytics.rate_limits order by action;

-- an owner's plan beats the default; Bob's 5 per second leave Alice's window alone
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', false) is not null as bob;
select array_agg(case when r ? 'sqlstate' then 'retry ' || (r->'detail'->'headers'->>'Retry-After') else 'ok' end order by k) as bob_calls
from generate_series(0, 6) k,
     lateral regress.call_at(timestamptz '2026-11-20 12:01:00+00' + k * interval '0.1 s', $$select analytics.check_rate_limit('ingest')$$) r;
select action, max_calls, per, used, remaining from analytics.rate_limit_status() where action in ('ingest', 'export_csv');
-- (check_rate_limit is SECURITY DEFINER: it counted Bob's calls in Bob's window only)
reset role;
select user_id = :A as alice, cardinality(admitted) as in_window from analytics.rate_limit_state where action = 'ingest' order by 1;
set role authenticated;

-- a changed limit applies from the next call (each window row carries the limit it was admitted under and the
-- version of analytics.rate_limits it was read at; every change raises the version): raised to 102 per minute,
-- Alice's full window admits one more call; back to the default, the next is refused
reset role;
insert into analytics.rate_limits (user_id, action, max_calls, per) values (:A, 'ingest', 102, '1 minute');
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', false) is not null as alice;
select regress.call_at('2026-11-20 12:01:00.8+00', $$select analytics.check_rate_limit('ingest')$$) as raised_limit;
reset role;
delete from analytics.rate_limits where user_id = :A;
set role authenticated;
select regress.call_at('2026-11-20 12:01:00.9+00', $$select analytics.check_rate_limit('ingest')$$)->'detail'->'headers' as default_again;

-- a window is a fixed duration: '1 day' is 86,400 s across a daylight-saving change in the session's time zone
-- (Berlin leaves summer time on 2026-10-25: 24 h after 12:00 CEST is 11:00 CET, when the first call leaves)
reset role;
insert into analytics.rate_limits (user_id, action, max_calls, per) values (:A, 'daily_digest', 1, '1 day');
set role authenticated;
set timezone = 'Europe/Berlin';
select regress.call_at('2026-10-24 12:00+02', $$select analytics.check_rate_limit('daily_digest')$$)->'remaining' as first_digest,
       regress.call_at('2026-10-25 10:59:59+01', $$select analytics.check_rate_limit('daily_digest')$$)->'detail'->'headers'->>'Retry-After' as a_second_early,
       regress.call_at('2026-10-25 11:00+01', $$select analytics.check_rate_limit('daily_digest')$$)->'remaining' as after_86400_s;
reset timezone;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', false) is not null as bob;

-- a project's own action (its db_pre_request function calls check_rate_limit): a limit must exist for it
select regress.call_at('2026-11-20 12:01:01+00', $$select analytics.check_rate_limit('export_csv')$$) as first,
       regress.call_at('2026-11-20 12:01:02+00', $$select analytics.check_rate_limit('export_csv')$$) as second,
       regress.call_at('2026-11-20 12:01:03+00', $$select analytics.check_rate_limit('export_csv')$$)->'message'->>'message' as third;
select regress.attempt($$select analytics.check_rate_limit('export_pdf')$$) as undefined_action,
       regress.attempt($$select analytics.check_rate_limit(null)$$) as null_action;

-- create_experiment: 10 per hour
select array_agg(case when r ? 'sqlstate' then 'retry ' || (r->'detail'->'headers'->>'Retry-After') else r #>> '{}' end order by k) as bob_experiments
from generate_series(1, 11) k,
     lateral regress.call_at(timestamptz '2026-11-20 12:00:00+00' + k * interval '1 minute',
         format($$select analytics.create_experiment('exp-%s', 'Experiment %s', '[{"key":"a"},{"key":"b"}]')$$, k, k)) r;
reset role;
select count(*) as experiments_stored from analytics.ab_experiments where user_id = :B;

-- PostgREST < 12: SQLSTATE PT429 (status 429, no headers), the same facts in message, detail and hint
set analytics.rate_limit_sqlstate = 'PT429';
set role authenticated;
select jsonb_pretty(regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('create_experiment')$$)) as pt429;
reset analytics.rate_limit_sqlstate;

-- service_role (BYPASSRLS) and superusers are exempt, unless the limit says otherwise
set role service_role;
select regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('create_experiment')$$) as service_role_exempt;
reset role;
select regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('create_experiment')$$) as superuser_exempt;
insert into analytics.rate_limits (user_id, action, max_calls, per, exempt_privileged) values (:B, 'create_experiment', 10, '1 hour', false);
set role service_role;
select regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('create_experiment')$$)->'detail'->'headers'->>'Retry-After' as service_role_limited;
select * from analytics.rate_limit_status() where action = 'create_experiment';
reset role;

-- unlimited (max_calls NULL) for one owner's plan
update analytics.rate_limits set max_calls = null where user_id = :B and action = 'create_experiment';
set role authenticated;
select regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('create_experiment')$$) as unlimited_plan;

-- callers without a sub are not limited (nothing to count against); the test clock is a superuser's only
select set_config('request.jwt.claims', '', false) is not null as anonymous;
select regress.call_at('2026-11-20 12:30:00+00', $$select analytics.check_rate_limit('ingest')$$) as no_sub;
reset role;
set session authorization authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', false) is not null as alice;
select regress.attempt($$select analytics.check_rate_limit('ingest')$$) as clock_in_api_session;
reset session authorization;
reset analytics.rate_limit_clock;

-- answer => false (what our writing functions pass): admitted and counted alike, NULL instead of the answer, on the
-- first call (the lookup) and the next (the one-statement admission); held until the transaction ends: the lock
-- (1634628204, hashtext(owner::text || action)), the one that any admission of this owner and action takes
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"cccccccc-cccc-4ccc-8ccc-cccccccccccc","role":"authenticated"}', false) is not null as carol;
begin;
set local analytics.rate_limit_clock = '2026-11-20 13:00:00+00';
select analytics.check_rate_limit('create_experiment', answer => false) is null as first_call_no_answer;
set local analytics.rate_limit_clock = '2026-11-20 13:00:01+00';
select analytics.check_rate_limit('create_experiment', answer => false) is null as next_call_no_answer;
select count(*) as window_lock
from pg_locks l
where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.mode = 'ExclusiveLock' and l.objsubid = 2
  and l.classid::bigint = 1634628204
  and l.objid::bigint = (hashtext('cccccccc-cccc-4ccc-8ccc-cccccccccccc' || 'create_experiment')::bigint & 4294967295);
commit;
set analytics.rate_limit_clock = '2026-11-20 13:00:02+00';
select action, used, remaining from analytics.rate_limit_status() where action = 'create_experiment';
reset analytics.rate_limit_clock;
reset role;

-- back to what setup.sql gives the other tests
delete from analytics.rate_limits;
delete from analytics.rate_limit_state;
delete from analytics.ab_experiments;
delete from analytics.llm_traces;
insert into analytics.rate_limits (action, max_calls, per)
values ('ingest', null, '1 minute'), ('create_experiment', null, '1 hour'), ('run_anomaly_detection', null, '1 hour');
drop function regress.call_at(timestamptz, text);
