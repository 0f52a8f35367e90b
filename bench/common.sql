-- Benchmark helpers (session-local). bench(sql, runs) runs a statement `runs` times and returns the median wall
-- time in milliseconds; the statement's result is computed in full and discarded.
create function pg_temp.bench(q text, runs int) returns double precision
language plpgsql as $$
declare
    t0 timestamptz;
    times double precision[] := '{}';
begin
    for i in 1..runs loop
        t0 := clock_timestamp();
        execute q;
        times := times || extract(epoch from clock_timestamp() - t0)::double precision * 1000;
    end loop;
    return (select percentile_cont(0.5) within group (order by x) from unnest(times) x);
end
$$;

-- bench_requests(sql, runs): the same, each run in a transaction of its own (as PostgREST runs a request); CALL it
-- outside a transaction block.
create procedure pg_temp.bench_requests(q text, runs int, inout median_ms double precision default null)
language plpgsql as $$
declare
    t0 timestamptz;
    times double precision[] := '{}';
begin
    for i in 1..runs loop
        t0 := clock_timestamp();
        execute q;
        commit;
        times := times || extract(epoch from clock_timestamp() - t0)::double precision * 1000;
    end loop;
    median_ms := (select percentile_cont(0.5) within group (order by x) from unnest(times) x);
end
$$;

-- A trace of n spans shaped like an agent run: a complete 10-ary tree (root, 10 steps, 100 sub-steps, ...),
-- each span with about 500 bytes of input and output, owned by user u.
create function pg_temp.make_trace(u uuid, trace text, n int) returns void
language sql as $$
    insert into analytics.llm_traces (user_id, trace_id, span_id, parent_span_id, name, operation_type, status,
        start_time, end_time, model, input_tokens, output_tokens, cost_usd, input, output, metadata, tags)
    select u, trace, 's' || i, case when i > 0 then 's' || ((i - 1) / 10) end, 'step ' || i,
           case when i % 10 = 3 then 'execute_tool' else 'chat' end, case when i % 97 = 0 then 'error' else 'ok' end,
           timestamptz '2026-11-20 09:00+00' + make_interval(secs => i * 0.001),
           timestamptz '2026-11-20 09:00+00' + make_interval(secs => i * 0.001 + 0.5),
           'gpt-4o', 120, 40, 0.0007,
           jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user',
               'content', 'Question ' || i || ': ' || repeat('what is the shipping status of my order? ', 5)))),
           jsonb_build_object('text', 'Answer ' || i || ': ' || repeat('it ships tomorrow by courier. ', 7)),
           '{"env": "bench"}', '{bench}'
    from generate_series(0, n - 1) i
$$;

-- The usual hand-written alternative: a recursive PL/pgSQL function that queries each span's children and
-- nests them with jsonb operators.
create function pg_temp.tree_plpgsql(u uuid, trace text, parent text) returns jsonb
language plpgsql as $$
declare
    r analytics.llm_traces;
    result jsonb := '[]';
begin
    for r in select * from analytics.llm_traces t
             where t.user_id = u and t.trace_id = trace and t.parent_span_id is not distinct from parent
             order by t.start_time, t.span_id loop
        result := result || jsonb_build_array(to_jsonb(r) || jsonb_build_object('children', pg_temp.tree_plpgsql(u, trace, r.span_id)));
    end loop;
    return result;
end
$$;
