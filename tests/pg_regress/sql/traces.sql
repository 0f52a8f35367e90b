-- Traces end to end, as PostgREST calls them: two users, each in a transaction with `set local role authenticated`
-- and their JWT claims. Covers every trace function, re-sends, bad input (SQLSTATE + message) and isolation.
\pset null '·'

-- start from no spans (earlier tests in this database left some)
delete from analytics.llm_traces;

-- ---- Alice ingests a trace whose children arrive before their parent --------------------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.ingest_spans($$[
  {"trace_id":"rag-1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat",
   "start_time":"2026-11-20T09:00:01Z","end_time":"2026-11-20T09:00:04Z","completion_start_time":"2026-11-20T09:00:01.400Z",
   "provider":"openai","model":"gpt-4o","input_tokens":1850,"output_tokens":120,"cache_read_tokens":1024,"cost_usd":0.005825,
   "input":{"messages":[{"role":"user","content":"Where is my order?"}]},"output":{"text":"It ships tomorrow."}},
  {"trace_id":"rag-1","span_id":"embed","parent_span_id":"kb","name":"embed-query","operation_type":"embedding",
   "start_time":"2026-11-20T09:00:00.060Z","end_time":"2026-11-20T09:00:00.140Z","model":"text-embedding-3-small","input_tokens":9},
  {"trace_id":"rag-1","span_id":"kb","parent_span_id":"root","name":"search-kb","operation_type":"retriever",
   "start_time":"2026-11-20T09:00:00.050Z","end_time":"2026-11-20T09:00:00.350Z","tags":["kb"]},
  {"trace_id":"rag-1","span_id":"root","name":"support-agent","operation_type":"agent","conversation_id":"conv-1",
   "session_id":"sess-1","start_time":"2026-11-20T09:00:00Z","status":"ok","tags":["prod"]}
]$$::jsonb);
-- the root's end arrives later: re-sending updates the row (no duplicate, as the listing below shows), other
-- fields are kept
select analytics.ingest_spans('[{"trace_id":"rag-1","span_id":"root","name":"support-agent","start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:04.200Z"}]');
select span_id, operation_type, status, duration_ms, conversation_id, tags from analytics.llm_traces order by start_time, span_id;
-- one span with named arguments, as POST /rest/v1/rpc/record_span would send it
select span_id, name, operation_type, status, status_message, duration_ms, total_tokens
from analytics.record_span(trace_id => 'rag-1', span_id => 'guard', parent_span_id => 'llm', name => 'pii-filter',
                           operation_type => 'guardrail', status => 'error', status_message => 'blocked: credit card number',
                           start_time => '2026-11-20 09:00:03.700+00', end_time => '2026-11-20 09:00:03.900+00');

-- the tree: nested, sorted by start time, with rollups (input/output left out here for brevity)
select r->>'span_id' as root, r->'subtree' as rollup, jsonb_array_length(r->'children') as children
from jsonb_array_elements(analytics.get_trace_tree('rag-1')->'roots') r;
select t->>'span_count' as spans, t->>'duration_ms' as ms, t->>'total_tokens' as tokens, t->>'error_count' as errors,
       t->'roots'->0->'children'->1->'input'->'messages'->0->>'content' as first_question
from analytics.get_trace_tree('rag-1') t;
select ordinal, depth, path, name, offset_ms, duration_ms, self_ms, subtree_span_count from analytics.trace_spans('rag-1');
select depth, name from analytics.span_subtree('rag-1', 'llm');
select distance, span_id, name from analytics.span_ancestors('rag-1', 'guard');
select depth, name, offset_ms, duration_ms, self_ms, on_critical_path from analytics.trace_waterfall('rag-1');
select length(analytics.trace_waterfall_svg('rag-1')) > 1000 as svg_rendered,
       (xpath('count(//*[local-name()="title"])', analytics.trace_waterfall_svg('rag-1')::xml))[1]::text as bars;
select trace_id, root_name, span_count, error_count, duration_ms, total_tokens, models, cursor
from analytics.search_traces(conversation_id => 'conv-1');
select span_id, status from analytics.search_spans(trace_id => 'rag-1', "limit" => 2);
select span_id from analytics.search_spans(trace_id => 'rag-1', after => (
    select to_char(start_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',' || id
    from analytics.search_spans(trace_id => 'rag-1', "limit" => 2) offset 1));
select span_id from analytics.search_spans(trace_id => 'rag-1', "limit" => 2, "offset" => 2);
select span_id from analytics.search_spans(tag => 'kb');
select span_id from analytics.search_spans(min_duration_ms => 3000);
select bucket_start, dimension, request_count, error_count, latency_p50_ms, latency_p95_ms, ttft_p50_ms, total_tokens
from analytics.trace_metrics('1 hour', '2026-11-20 00:00+00', '2026-11-21 00:00+00', group_by => '{operation_type}');
commit;

-- ---- Bad input: each gets a SQLSTATE and a message naming the field; nothing is stored -----------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select regress.attempt(stmt) as outcome from (values
  ($$select analytics.ingest_spans('[{"span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T08:00:00Z"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","input_tokens":-1}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","cost_usd":"NaN"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","cost_usd":"Infinity"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","operation_type":"teleport"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","status":"maybe"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","parent_span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"}]')$$),
  ($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"noon"}]')$$),
  ($$select analytics.ingest_spans(('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z","input":"' || repeat('x', 1048577) || '"}]')::jsonb)$$),
  ($$select analytics.ingest_spans('[{"trace_id":"ok","span_id":"a","name":"n","start_time":"2026-11-20T09:00:00Z"},{"trace_id":"ok","span_id":"b","name":"n","start_time":"2026-11-20T09:00:00Z","model":42}]')$$),
  ($$select analytics.ingest_spans('{"trace_id":"t"}')$$),
  ($$select analytics.ingest_spans(null)$$),
  ($$select analytics.record_span(trace_id => 't', span_id => 's', name => 'n', start_time => now(), cost_usd => 'NaN')$$),
  ($$select analytics.record_span(trace_id => 't', span_id => 's', name => 'n', start_time => now(), input_tokens => -3)$$),
  ($$select analytics.ingest_otlp('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"0123456789abcdef","name":"n","startTimeUnixNano":"1"}]}]}]}')$$),
  ($$select analytics.get_trace_tree('rag-1', max_depth => -1)$$),
  ($$select analytics.get_trace_tree('rag-1', max_spans => 0)$$),
  ($$select analytics.get_trace_tree(null)$$),
  ($$select * from analytics.search_spans("limit" => 5000)$$),
  ($$select * from analytics.search_spans("offset" => -1)$$),
  ($$select * from analytics.search_spans(status => 'bogus')$$),
  ($$select * from analytics.search_spans(after => 'yesterday')$$),
  ($$select * from analytics.search_spans(after => '2026-11-20T09:00:00Z,not-a-uuid')$$),
  ($$select * from analytics.trace_metrics('1 month', now() - interval '1 year', now())$$),
  ($$select * from analytics.trace_metrics('1 hour', now(), now() - interval '1 day')$$),
  ($$select * from analytics.trace_metrics('1 hour', now() - interval '1 day', now(), group_by => '{colour}')$$)
) v(stmt);
select count(*) as spans_of_failed_batches from analytics.llm_traces where trace_id in ('t', 'ok');
commit;

-- ---- Bob: sees nothing of Alice, cannot overwrite her span by re-sending its ids --------------------------------
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"authenticated"}', true) is not null as bob;
select analytics.get_trace_tree('rag-1') is null as alice_tree_hidden,
       (select count(*) from analytics.trace_spans('rag-1')) as spans,
       (select count(*) from analytics.trace_waterfall('rag-1')) as waterfall_rows,
       analytics.trace_waterfall_svg('rag-1') is null as svg_hidden,
       (select count(*) from analytics.search_traces()) as traces,
       (select count(*) from analytics.search_spans(trace_id => 'rag-1')) as search_hits,
       (select count(*) from analytics.trace_metrics('1 day', '2026-11-01', '2026-12-01')) as metric_rows;
-- naming Alice as user_id does not help: row-level security still hides her rows
select analytics.get_trace_tree('rag-1', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa') is null as still_hidden,
       (select count(*) from analytics.search_spans(user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')) as still_none;
-- Bob's span with Alice's trace and span ids is Bob's own row; writing as Alice is refused (42501)
select (analytics.ingest_spans('[{"trace_id":"rag-1","span_id":"root","name":"bob root","start_time":"2026-11-20T10:00:00Z"}]'))->>'stored' as bob_stored;
select regress.attempt($$select analytics.ingest_spans('[{"user_id":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","trace_id":"rag-1","span_id":"root","name":"hijack","start_time":"2026-11-20T10:00:00Z"}]')$$) as write_as_alice;
select t->>'span_count' as bobs_rag_1_spans, t->'roots'->0->>'name' as name from analytics.get_trace_tree('rag-1') t;
commit;

-- ---- anonymous callers cannot ingest or read ------------------------------------------------------------------------
begin;
set local role anon;
select regress.attempt($$select analytics.ingest_spans('[]')$$) as anon_ingest,
       regress.attempt($$select analytics.get_trace_tree('rag-1')$$) as anon_tree;
commit;
begin;
set local role authenticated;
select regress.attempt($$select analytics.ingest_spans('[{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"}]')$$) as no_sub_ingest,
       regress.attempt($$select analytics.get_trace_tree('rag-1')$$) as no_sub_tree;
commit;

-- Alice's rows are untouched by all of the above
select user_id, count(*), string_agg(name, ', ' order by start_time) from analytics.llm_traces group by 1 order by 1;
