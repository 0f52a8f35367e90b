-- Batch ingest of 100,000 spans through analytics.ingest_spans (validation, normalisation, upsert) vs a plain
-- INSERT ... SELECT FROM jsonb_to_recordset of the same payload into the same table. Alternating runs, each into
-- an empty table; the median of 3 runs of each.
\set ON_ERROR_STOP 1
\pset footer off
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', false) is not null as signed_in;
create temp table payload as
select jsonb_agg(jsonb_build_object(
    'trace_id', 'bench-' || (i / 100), 'span_id', 's' || i,
    'parent_span_id', case when i % 100 = 0 then null else 's' || (i - i % 100) end,
    'name', 'step ' || i, 'operation_type', 'chat', 'status', 'ok',
    'start_time', timestamptz '2026-11-20 09:00+00' + make_interval(secs => i * 0.001),
    'end_time', timestamptz '2026-11-20 09:00+00' + make_interval(secs => i * 0.001 + 0.5),
    'model', 'gpt-4o', 'input_tokens', 120, 'output_tokens', 40, 'cost_usd', 0.0007,
    'input', jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user',
        'content', 'Question ' || i || ': ' || repeat('what is the shipping status of my order? ', 5)))),
    'output', jsonb_build_object('text', 'Answer ' || i || ': ' || repeat('it ships tomorrow by courier. ', 7)),
    'metadata', jsonb_build_object('env', 'bench'), 'tags', jsonb_build_array('bench'))) as j
from generate_series(0, 99999) i;
select pg_size_pretty(pg_column_size(j)::bigint) as payload_size, jsonb_array_length(j) as spans from payload;

create temp table runs (method text, ms double precision);
do $$
declare
    t0 timestamptz;
begin
    for run in 1..3 loop
        truncate analytics.llm_traces;
        t0 := clock_timestamp();
        perform analytics.ingest_spans(j) from payload;
        insert into runs values ('analytics.ingest_spans', extract(epoch from clock_timestamp() - t0) * 1000);

        truncate analytics.llm_traces;
        t0 := clock_timestamp();
        insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status,
            start_time, end_time, model, input_tokens, output_tokens, cost_usd, input, output, metadata, tags)
        select 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', r.*
        from payload p, jsonb_to_recordset(p.j) as r(trace_id text, span_id text, parent_span_id text, name text,
            operation_type text, status text, start_time timestamptz, end_time timestamptz, model text,
            input_tokens bigint, output_tokens bigint, cost_usd double precision, input jsonb, output jsonb,
            metadata jsonb, tags text[]);
        insert into runs values ('INSERT ... jsonb_to_recordset', extract(epoch from clock_timestamp() - t0) * 1000);
    end loop;
end
$$;
select count(*) as rows_after_last_run from analytics.llm_traces;
with m as (select method, percentile_cont(0.5) within group (order by ms) as ms from runs group by method)
select method, round(ms::numeric) as median_ms, round((100000 / (ms / 1000))::numeric) as spans_per_s
from m order by method desc;
select round(((select percentile_cont(0.5) within group (order by ms) from runs where method like 'INSERT%')
            / (select percentile_cont(0.5) within group (order by ms) from runs where method like 'analytics%'))::numeric, 3)
       as ingest_throughput_ratio_vs_plain_insert;
