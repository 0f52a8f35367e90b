-- Traces benchmarks. Every figure is a ratio against a baseline measured in the same run.
\set ON_ERROR_STOP 1
\pset footer off
\i bench/common.sql
\set u '''aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'''

select pg_temp.make_trace(:u, 'trace-1k', 1000), pg_temp.make_trace(:u, 'trace-10k', 10000),
       pg_temp.make_trace(:u, 'trace-100k', 100000);
vacuum analyze analytics.llm_traces;
create temp table results (benchmark text, measure text, ms double precision, baseline text, baseline_ms double precision);

\echo '== 1. nested tree of a 10,000-span trace (about 500 bytes of input/output per span) vs a flat jsonb_agg of the same rows'
insert into results
select 'tree 10k', 'get_trace_tree', pg_temp.bench($$select analytics.get_trace_tree('trace-10k', max_depth => 1000, max_spans => 1000000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$, 15),
       'flat jsonb_agg', pg_temp.bench($$select jsonb_agg(t) from analytics.llm_traces t where t.user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' and t.trace_id = 'trace-10k'$$, 15);
insert into results
select 'tree 10k', 'get_trace_tree', (select ms from results where benchmark = 'tree 10k'),
       'recursive PL/pgSQL', pg_temp.bench($$select pg_temp.tree_plpgsql('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'trace-10k', null)$$, 1);
-- both produce the same spans
select jsonb_array_length(jsonb_path_query_array(analytics.get_trace_tree('trace-10k', max_depth => 1000, max_spans => 1000000, user_id => :u), 'strict $.**.span_id')) as spans_in_tree;

\echo '== 2. tree cost by trace size'
insert into results
select 'tree ' || n, 'get_trace_tree', pg_temp.bench(format($$select analytics.get_trace_tree(%L, max_depth => 1000, max_spans => 1000000, user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$, 'trace-' || n), runs),
       'flat jsonb_agg', pg_temp.bench(format($$select jsonb_agg(t) from analytics.llm_traces t where t.user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa' and t.trace_id = %L$$, 'trace-' || n), runs)
from (values ('1k', 31), ('100k', 5)) v(n, runs);

select benchmark, measure, round(ms::numeric, 1) as ms, baseline, round(baseline_ms::numeric, 1) as baseline_ms,
       round((ms / baseline_ms)::numeric, 3) as ratio, round((baseline_ms / ms)::numeric, 1) as speedup
from results order by benchmark, baseline;
select benchmark, round((ms / (replace(replace(benchmark, 'tree ', ''), 'k', '')::int * 1000))::numeric * 1000, 2) as us_per_span
from results where baseline = 'flat jsonb_agg' order by ms;
