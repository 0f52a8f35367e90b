-- End users, cohorts and retention, as PostgREST calls them: two owners, Alice and Bob, each in a transaction with
-- `set local role authenticated` and their JWT claims, with end users of the same ids. (The retention triangle against
-- an independent calculation, with a daylight-saving change: tests/integration/retention_oracle_test.sh.)
\pset null '·'
set timezone = 'UTC';
-- what the earlier tests left
delete from analytics.llm_traces;
delete from analytics.user_cohorts;
delete from analytics.ab_experiment_events where metric = 'purchase';
\set A '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''
\set B '''bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'''

-- ---- end users on spans: every ingest path -------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- JSON: the field end_user_id
select analytics.ingest_spans($$[
  {"trace_id":"c-1","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-02T09:00:00Z","end_user_id":"u1","cost_usd":0.5,"total_tokens":100},
  {"trace_id":"c-2","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-03T09:00:00Z","end_user_id":"u1","cost_usd":0.25},
  {"trace_id":"c-3","span_id":"a","name":"search","operation_type":"retrieval","start_time":"2026-11-05T09:00:00Z","end_user_id":"u2","session_id":"s-9","status":"error"},
  {"trace_id":"c-4","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-06T09:00:00Z","end_user_id":"u2"},
  {"trace_id":"c-5","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-06T10:00:00Z"}
]$$::jsonb) as stored;
-- record_span: the argument end_user_id
select (analytics.record_span('c-6', 'a', 'chat', '2026-11-07T09:00:00Z', operation_type => 'chat', end_user_id => 'u3')).end_user_id;
-- OTLP: enduser.id / user.id / langfuse.user.id on the span, else on the resource
select analytics.ingest_otlp($${"resourceSpans":[{"resource":{"attributes":[{"key":"enduser.id","value":{"stringValue":"u4"}}]},
  "scopeSpans":[{"spans":[
    {"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef","name":"chat","startTimeUnixNano":"1794042000000000000",
     "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}}]},
    {"traceId":"0123456789abcdef0123456789abcdef","spanId":"1123456789abcdef","name":"chat","startTimeUnixNano":"1794042060000000000",
     "attributes":[{"key":"langfuse.user.id","value":{"stringValue":"u5"}}]}]}]}]}$$::jsonb) ->> 'stored' as otlp_stored;
select trace_id, end_user_id from analytics.llm_traces order by start_time, trace_id;
-- a re-send without the field keeps it; with another value replaces it
select analytics.ingest_spans('[{"trace_id":"c-1","span_id":"a","name":"chat","start_time":"2026-11-02T09:00:00Z","status":"ok"}]') ->> 'stored' as resent;
select end_user_id, status from analytics.llm_traces where trace_id = 'c-1';
-- bad end user ids name the field
select regress.attempt($$select analytics.ingest_spans('[{"trace_id":"x","span_id":"a","name":"n","start_time":"2026-11-02T09:00:00Z","end_user_id":"  "}]')$$) as blank,
       regress.attempt($$select analytics.ingest_spans('[{"trace_id":"x","span_id":"a","name":"n","start_time":"2026-11-02T09:00:00Z","end_user_id":{"id":1}}]')$$) as object;
select regress.attempt($$select analytics.record_span('x', 'a', 'n', now(), end_user_id => repeat('u', 257))$$) as too_long;

-- ---- profiles --------------------------------------------------------------------------------------------------
select end_user_id, properties from analytics.identify_end_user('u1', '{"plan": "pro", "country": "DE", "seats": 5}');
-- merged: keys sent win, a key sent as null is removed
select properties from analytics.identify_end_user('u1', '{"country": null, "seats": 7}');
select properties from analytics.identify_end_user('u2', '{"plan": "free", "seats": 1}', replace => true);
select properties from analytics.identify_end_user('u9', '{"plan": "pro"}');
select regress.attempt($$select analytics.identify_end_user('', '{}')$$) as empty_id,
       regress.attempt($$select analytics.identify_end_user('u1', '[1]')$$) as not_object;

-- ---- end_users: activity per end user ----------------------------------------------------------------------------
select * from analytics.end_users() order by end_user_id;
select end_user_id, spans, first_seen, last_seen from analytics.end_users(from_time => '2026-11-05', to_time => '2026-11-07');
select end_user_id from analytics.end_users(search => 'U1');
select regress.attempt($$select * from analytics.end_users("limit" => 0)$$) as bad_limit,
       regress.attempt($$select * from analytics.end_users('2026-11-07', '2026-11-05')$$) as bad_window;
commit;

-- ---- Bob: the same end user ids, his own -------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select analytics.ingest_spans($$[
  {"trace_id":"b-1","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-02T09:00:00Z","end_user_id":"u1"},
  {"trace_id":"b-2","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-03T09:00:00Z","end_user_id":"u1"},
  {"trace_id":"b-3","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-04T09:00:00Z","end_user_id":"u1"}
]$$::jsonb) ->> 'stored' as stored;
select end_user_id, spans, properties from analytics.end_users();
select count(*) as alices_profiles_seen from analytics.end_user_profiles where user_id = :A;
commit;

-- ---- static cohorts ----------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select key, name, definition, refreshed_at from analytics.create_cohort('beta', name => 'Beta testers');
select analytics.add_cohort_members('beta', '["u2", "u3", 42]') as added;
select analytics.add_cohort_members('beta', '["u2"]') as added_again;
-- from a query
select analytics.add_cohort_members('beta', (select jsonb_agg(end_user_id) from analytics.end_users() where end_user_id in ('u4', 'u5'))) as from_query;
select member_id, properties from analytics.cohort_members('beta');
select regress.attempt($$select analytics.add_cohort_members('beta', '["u1", ""]')$$) as empty_member,
       regress.attempt($$select analytics.add_cohort_members('beta', '{"u1": true}')$$) as not_array,
       regress.attempt($$select analytics.add_cohort_members('nope', '["u1"]')$$) as no_cohort,
       regress.attempt($$select analytics.create_cohort('beta')$$) as duplicate,
       regress.attempt($$select analytics.create_cohort('has space')$$) as bad_key;
commit;
-- membership is history: a removal ends a stay, a later add starts another
update analytics.user_cohort_members set entered_at = '2026-11-01' where user_id = :A;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.remove_cohort_members('beta', '["u3", "u7"]') as removed;
select member_id from analytics.cohort_members('beta');
select member_id from analytics.cohort_members('beta', at => '2026-11-15');
select member_id, exited_at is not null as exited from analytics.user_cohort_members order by member_id, entered_at;
commit;

-- ---- dynamic cohorts: history across entries and exits ---------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- chatted at least twice in the 7 days before the moment of refresh: u1 (Nov 2, 3), u2 (Nov 6 and, below, Nov 8)
select analytics.ingest_spans('[{"trace_id":"c-7","span_id":"a","name":"chat","operation_type":"chat","start_time":"2026-11-08T09:00:00Z","end_user_id":"u2"}]') ->> 'stored' as stored;
insert into analytics.user_cohorts (key, name, definition)
values ('chatty', 'Chatty', '{"performed": {"operation_type": "chat"}, "at_least": 2, "within": "7 days"}');
select analytics.refresh_cohort('chatty', '2026-11-04T00:00:00Z') as nov_4;
select analytics.refresh_cohort('chatty', '2026-11-09T00:00:00Z') as nov_9;
select analytics.refresh_cohort('chatty', '2026-11-10T00:00:00Z') as nov_10;
select analytics.refresh_cohort('chatty', '2026-11-16T00:00:00Z') as nov_16;
select m.member_id, m.entered_at, m.exited_at
from analytics.user_cohort_members m join analytics.user_cohorts c on c.id = m.cohort_id where c.key = 'chatty'
order by m.entered_at, m.member_id;
select d as at, (select string_agg(member_id, ', ') from analytics.cohort_members('chatty', d)) as members
from unnest(array['2026-11-03', '2026-11-04', '2026-11-08', '2026-11-09', '2026-11-09T12:00', '2026-11-10', '2026-11-15', '2026-11-16']::timestamptz[]) d;
-- the history is written in time order
select regress.attempt($$select analytics.refresh_cohort('chatty', '2026-11-12')$$) as back_in_time;
-- a refresh with nothing changed changes nothing
select analytics.refresh_cohort('chatty', '2026-11-16T00:00:00Z') -> 'entered' as entered, analytics.refresh_cohort('chatty', '2026-11-17T00:00:00Z') -> 'exited' as exited;

-- every kind of condition, each against what it should select at Nov 9 (u3 left beta today, so was in it then); the
-- query lists the cases that select anything else
create temporary table cases (rule jsonb, expected text) on commit drop;
insert into cases values
  ('{"property": "plan", "eq": "pro"}', 'u1, u9'),
  ('{"property": "plan", "ne": "pro"}', 'u2, u3, u4, u5'),
  ('{"property": "plan", "in": ["free", "team"]}', 'u2'),
  ('{"property": "plan", "not_in": ["free"]}', 'u1, u3, u4, u5, u9'),
  ('{"property": "seats", "gte": 5}', 'u1'),
  ('{"property": "seats", "lt": 5}', 'u2'),
  ('{"property": "plan", "contains": "re"}', 'u2'),
  ('{"property": "seats", "exists": true}', 'u1, u2'),
  ('{"property": "seats", "exists": false}', 'u3, u4, u5, u9'),
  ('{"performed": {}, "within": "2 days"}', 'u2, u3, u4, u5'),
  ('{"performed": {"operation_type": "retrieval", "status": "error"}}', 'u2'),
  ('{"performed": {"name": "chat"}, "at_least": 2, "at_most": 2}', 'u1, u2'),
  ('{"performed": {}, "from": "2026-11-05T00:00:00Z", "to": "2026-11-07T00:00:00Z"}', 'u2'),
  ('{"performed": {"event": "purchase"}, "at_least": 1}', 'u1'),
  ('{"first_seen": {"within": "3 days"}}', 'u3, u4, u5'),
  ('{"first_seen": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-05T00:00:00Z"}}', 'u1'),
  ('{"last_seen": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-05T00:00:00Z"}}', 'u1'),
  ('{"cost": {"gte": 0.75}}', 'u1'),
  ('{"cost": {"lt": 0.75}}', 'u2, u3, u4, u5, u9'),
  ('{"tokens": {"gt": 0}, "within": "30 days"}', 'u1'),
  ('{"assigned": {"experiment": "cohort-exp"}}', 'u1, u2'),
  ('{"assigned": {"experiment": "cohort-exp", "variant": "control"}}', 'u1'),
  ('{"in_cohort": "beta"}', '42, u2, u3, u4, u5'),
  ('{"not": {"in_cohort": "beta"}}', 'u1, u9'),
  ('{"and": [{"in_cohort": "beta"}, {"not": {"property": "plan", "eq": "free"}}]}', '42, u3, u4, u5'),
  ('{"or": [{"property": "plan", "eq": "pro"}, {"performed": {"operation_type": "retrieval"}}]}', 'u1, u2, u9');
-- an experiment and an event for the assigned / event conditions
select key from analytics.create_experiment('cohort-exp', 'Cohort experiment', '[{"key":"control"},{"key":"treatment"}]');
select status from analytics.start_experiment('cohort-exp');
insert into analytics.ab_experiment_assignments (experiment_id, variant_id, unit_id, assigned_at)
select e.id, v.id, u, at from analytics.ab_experiments e join analytics.ab_experiment_variants v on v.experiment_id = e.id,
     (values ('u1', 'control', '2026-11-02'::timestamptz), ('u2', 'treatment', '2026-11-02'), ('u9', 'treatment', '2026-11-10')) x(u, vk, at)
where e.key = 'cohort-exp' and v.key = x.vk;
insert into analytics.ab_experiment_events (unit_id, metric, occurred_at) values ('u1', 'purchase', '2026-11-03'), ('u2', 'purchase', '2026-11-12');
select c.rule, c.expected,
       (select string_agg(x, ', ' order by x) from analytics.preview_cohort(c.rule, '2026-11-09') x(x)) as got
from cases c
where c.expected is distinct from (select string_agg(x, ', ' order by x) from analytics.preview_cohort(c.rule, '2026-11-09') x(x));
select count(*) as conditions_checked from cases;
commit;

-- ---- invalid rules fail with 22023 naming the rule path, by every path that writes a cohort ----------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"and": [{"property": "plan", "eq": "pro"}, {"performed": {"operation_type": "chat"}, "at_least": 0}]}')$$) as at_least;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"or": [{"in_cohort": "beta"}, {"not": {"performd": {}}}]}')$$) as unknown_condition;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"performed": {"operation_type": "chat"}, "within": "a while"}')$$) as within;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"and": [{"in_cohort": "no-such-cohort"}]}')$$) as missing_cohort;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"assigned": {"experiment": "cohort-exp", "variant": "purple"}}')$$) as missing_variant;
select regress.attempt($$select analytics.create_cohort('bad', rule => '{"in_cohort": "bad"}')$$) as itself;
-- PostgREST's table endpoint (a plain INSERT or UPDATE) gets the same check
select regress.attempt($$insert into analytics.user_cohorts (key, name, definition) values ('bad', 'Bad', '{"cost": {"gte": "lots"}}')$$) as insert_checked;
select regress.attempt($$update analytics.user_cohorts set definition = '{"first_seen": {}}' where key = 'chatty'$$) as update_checked;
-- a cycle through another cohort
select key from analytics.create_cohort('loyal', rule => '{"and": [{"in_cohort": "chatty"}, {"in_cohort": "beta"}]}');
select regress.attempt($$select analytics.update_cohort('chatty', rule => '{"or": [{"performed": {}}, {"in_cohort": "loyal"}]}')$$) as cycle;
-- static and dynamic cohorts are changed their own way
select regress.attempt($$select analytics.add_cohort_members('chatty', '["u1"]')$$) as add_to_dynamic,
       regress.attempt($$select analytics.update_cohort('beta', rule => '{"performed": {}}')$$) as rule_for_static;
-- refresh_cohorts: a cohort after the cohorts its rule names (loyal after chatty)
select r->>'cohort' as cohort, r->>'members' as members from analytics.refresh_cohorts(at => '2026-11-20') r;
-- a rule naming a cohort deleted since is refused at refresh, naming the path
delete from analytics.user_cohorts where key = 'loyal';
select key from analytics.create_cohort('gone-ref', rule => '{"and": [{"performed": {}}, {"in_cohort": "beta"}]}');
commit;
delete from analytics.user_cohorts where key = 'beta' and user_id = :B;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
update analytics.user_cohorts set key = 'beta-renamed' where key = 'beta';
select regress.attempt($$select analytics.refresh_cohort('gone-ref')$$) as named_cohort_gone;
update analytics.user_cohorts set key = 'beta' where key = 'beta-renamed';
rollback;

-- ---- Bob cannot see, use or name Alice's cohorts and end users ------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select count(*) as cohorts_seen from analytics.user_cohorts;
select count(*) as members_seen from analytics.user_cohort_members;
select regress.attempt($$select * from analytics.cohort_members('chatty')$$) as members_of_alices,
       regress.attempt($$select analytics.refresh_cohort('chatty')$$) as refresh_alices,
       regress.attempt($$select analytics.add_cohort_members('beta', '["u1"]')$$) as add_to_alices;
select regress.attempt($$select analytics.create_cohort('mine', rule => '{"in_cohort": "beta"}')$$) as rule_naming_alices;
select regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-08', cohorts => array['beta'])$$) as retention_of_alices;
select regress.attempt($$select * from analytics.trace_metrics('1 day', '2026-11-01', '2026-11-08', group_by => '{cohort:beta}')$$) as metrics_by_alices;
-- the same key, his own: his end users only (u1 chatted three times for him)
select key from analytics.create_cohort('chatty', rule => '{"performed": {"operation_type": "chat"}, "at_least": 2}');
select member_id, properties from analytics.cohort_members('chatty');
select end_user_id from analytics.preview_cohort('{"property": "plan", "eq": "pro"}');
-- the internal evaluator takes a rule, never SQL (it is callable through PostgREST like every function)
select regress.attempt($$select analytics._cohort_matches('{"sql": "select pg_sleep(10)"}', now(), null)$$) as no_sql;
-- forging Alice's id as the owner of a row is refused by row-level security
select regress.attempt($$insert into analytics.user_cohorts (user_id, key, name) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'forged', 'x')$$, null, false) as forged_owner;
select regress.attempt($$insert into analytics.end_user_profiles (user_id, end_user_id) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'u1')$$, null, false) as forged_profile;
commit;

-- ---- retention ---------------------------------------------------------------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
-- daily calendar cohorts by first span: u1 (Nov 2, 3), u2 (Nov 5, 6, 8), u3, u4, u5 (Nov 7)
select * from analytics.retention('2026-11-02', '2026-11-16', period => 'day', periods => 3, as_of => '2026-11-08T12:00:00Z');
select cohort, period_number, period_label, eligible, returned, rate
from analytics.retention('2026-11-02', '2026-11-09', period => 'day', periods => 4, mode => 'unbounded', calendar => false, as_of => '2026-11-08T12:00:00Z');
select cohort, period_number, period_label, eligible, returned
from analytics.retention('2026-11-02', '2026-11-09', period => 'day', mode => 'brackets', brackets => '[[1, 1], [2, 4]]', as_of => '2026-11-20');
-- start and return events: the first retrieval, then a chat; by a named cohort
select cohort, users, period_number, returned
from analytics.retention('2026-11-01', '2026-11-30', period => 'day', periods => 1, start_event => '{"operation_type": "retrieval"}',
                         return_event => '{"operation_type": "chat"}', as_of => '2026-11-20');
select cohort, users, period_number, returned
from analytics.retention('2026-11-01', '2026-11-30', period => 'week', periods => 1, cohorts => array['beta', 'chatty'], as_of => '2026-11-20');
select regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', period => 'fortnight')$$) as period,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', periods => 0)$$) as periods,
       regress.attempt($$select * from analytics.retention('2026-11-30', '2026-11-01')$$) as window,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', mode => 'brackets')$$) as no_brackets,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', mode => 'brackets', brackets => '[[2, 3], [3, 4]]')$$) as overlapping;
select regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', time_zone => 'Mars/Olympus')$$) as time_zone,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', start_event => '{"operation_type": "dance"}')$$) as start_event,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', return_event => '{"event": "buy", "model": "x"}')$$) as return_event,
       regress.attempt($$select * from analytics.retention('2026-11-01', '2026-11-30', cohorts => array['nope'])$$) as cohort;

-- ---- cohorts as dimensions ---------------------------------------------------------------------------------------
select dimension, request_count, cost_usd
from analytics.trace_metrics('30 days', '2026-11-01', '2026-12-01', group_by => '{cohort:beta}', cache => false) order by 1::text;
select regress.attempt($$select * from analytics.trace_metrics('1 day', '2026-11-01', '2026-11-08', group_by => '{cohort:nope}')$$) as no_cohort;
select analytics.add_cohort_members('beta', '["u1"]') as added;
-- the cached result is stale after the membership changed
select dimension, request_count
from analytics.trace_metrics('30 days', '2026-11-01', '2026-12-01', group_by => '{cohort:beta}') order by 1::text;
-- u1 (control) joined beta above, u2 (treatment) is in it, u9 (treatment) is not: each unit's membership now
select dimension, variant_key, units, value
from analytics.experiment_results('cohort-exp', 'purchase', dimension => 'cohort:beta', cache => false) order by 1, 2;
select regress.attempt($$select * from analytics.experiment_results('cohort-exp', 'purchase', dimension => 'cohort:nope')$$) as no_cohort;
commit;

-- ---- the whole of it is the caller's: Bob's retention sees his end users only ------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select cohort, users, period_number, returned from analytics.retention('2026-11-01', '2026-11-30', period => 'day', periods => 2, as_of => '2026-11-20');
commit;
