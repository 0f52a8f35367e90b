-- Ingest failures (sql/042_ingest_failures.sql): a batch refused by validation stores no span; through PostgREST
-- (request.method set, role authenticated, the JWT's claims) it is answered with status 400 and PostgREST's error
-- body, and recorded in analytics.ingest_failures for its owner only; elsewhere it raises as before.
\pset null '·'
delete from analytics.llm_traces;
delete from analytics.ingest_failures;

-- regress.postgrest(sub, stmt): one request as PostgREST runs it (a transaction with role authenticated, the JWT's
-- claims and request.method), committed; answers the HTTP status it would send and the function's result
create function regress.postgrest(sub text, stmt text) returns table (status text, body jsonb)
language plpgsql as $$
declare
    res jsonb;
begin
    perform set_config('request.method', 'POST', true);
    perform set_config('request.jwt.claims', jsonb_build_object('sub', sub, 'role', 'authenticated')::text, true);
    perform set_config('response.status', '', true);
    execute 'set local role authenticated';
    execute stmt into res;
    execute 'reset role';
    return query select coalesce(nullif(current_setting('response.status', true), ''), '200'), res;
end
$$;
grant execute on function regress.postgrest(text, text) to authenticated;

-- Alice sends a batch whose second span ends before it starts: 400, the error names the field, nothing is stored
select * from regress.postgrest('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', $$select analytics.ingest_spans('[
    {"trace_id":"t1","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"},
    {"trace_id":"t1","span_id":"s2","name":"tool","start_time":"2026-11-20T09:00:05Z","end_time":"2026-11-20T09:00:01Z"}]')$$);
select count(*) as spans_stored from analytics.llm_traces;
-- an OTLP payload that is not one, and a good batch, for Bob
select * from regress.postgrest('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', $$select analytics.ingest_otlp('{"resourceSpans": 7}')$$);
select * from regress.postgrest('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', $$select analytics.ingest_spans('[
    {"trace_id":"t9","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"}]')$$);

-- each owner sees their own failure only (as PostgREST would serve GET /ingest_failures)
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select function, sqlstate, message, location, span_index, trace_id, span_id, batch_size, payload_bytes > 0 as has_bytes
from analytics.ingest_failures;
select rejected_calls, rejected_spans, error_codes, last_message
from analytics.ingest_failure_summary(now() - interval '1 hour', now() + interval '1 hour', '1 day');
-- a log: the owner deletes their failures but does not rewrite them
select regress.attempt($$update analytics.ingest_failures set message = 'fine'$$) as rewrite;
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select function, sqlstate, message, location, span_index, batch_size from analytics.ingest_failures;
select count(*) as bobs_spans from analytics.llm_traces;
commit;

-- record_span: a span row cannot carry the error, so it raises (22023; PostgREST answers 400) and nothing is kept
select regress.attempt($$select * from regress.postgrest('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
    $q$select to_jsonb(analytics.record_span('t2', 's1', 'chat', '2026-11-20 09:00+00', '2026-11-20 08:00+00'))$q$)$$) as record_span;
-- outside PostgREST (psql, a back end's SQL) the error is raised as before, and not recorded
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.attempt($$select analytics.ingest_spans('[{"trace_id":"t1","span_id":"s1"}]')$$) as psql_error;
commit;
select user_id, function, count(*) from analytics.ingest_failures group by 1, 2 order by 1, 2;

-- ingest health: accepted calls are counted (through PostgREST, per owner), refused ones come from the failures
delete from analytics.ingest_stats;
select status from regress.postgrest('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', $$select analytics.ingest_spans('[
    {"trace_id":"h1","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z"},
    {"trace_id":"h1","span_id":"s2","name":"tool","start_time":"2026-11-20T09:00:01Z"}]')$$);
select status from regress.postgrest('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', $$select analytics.ingest_otlp('{"resourceSpans":[{"scopeSpans":[{"spans":[
    {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"chat","startTimeUnixNano":"1763629200000000000"}]}]}]}')$$);
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select function, sum(calls) as calls, sum(spans) as spans, sum(bytes) > 0 as bytes from analytics.ingest_stats group by 1 order by 1;
select calls, rejected_calls, spans_stored, rejected_spans, bytes > 0 as bytes, round(failure_rate::numeric, 3) as failure_rate, error_codes
from analytics.ingest_health(now() - interval '1 hour', now() + interval '1 hour', '1 day');
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select calls, rejected_calls, spans_stored, rejected_spans, round(failure_rate::numeric, 3) as failure_rate, error_codes
from analytics.ingest_health(now() - interval '1 hour', now() + interval '1 hour', '1 day');
commit;
-- outside PostgREST's identity (psql without a JWT sub) a call is not counted
select analytics.ingest_spans('[{"trace_id":"h2","span_id":"s1","name":"chat","start_time":"2026-11-20T09:00:00Z","user_id":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}]') ->> 'stored' as stored;
select sum(calls) as calls_counted from analytics.ingest_stats;
select regress.attempt($$select * from analytics.ingest_health(bucket => '30 seconds')$$) as small_bucket,
       regress.attempt($$select * from analytics.ingest_health(now(), now() - interval '1 day')$$) as backwards;
delete from analytics.ingest_stats;

-- bad arguments of the summary
select regress.attempt($$select * from analytics.ingest_failure_summary(now(), now() - interval '1 day')$$) as backwards,
       regress.attempt($$select * from analytics.ingest_failure_summary(bucket => '1 month')$$) as month_bucket;
delete from analytics.ingest_failures;
delete from analytics.llm_traces;
