//! `#[pg_test]`s of the traces bindings: each runs inside a Postgres backend with the extension installed.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    fn as_user(uid: &str) {
        Spi::run(&format!(
            "select set_config('request.jwt.claims', '{{\"sub\":\"{uid}\",\"role\":\"authenticated\"}}', true)"
        ))
        .unwrap();
    }

    fn ingest(spans: &str) -> Value {
        Spi::get_one::<pgrx::JsonB>(&format!("select analytics.ingest_spans($${spans}$$::jsonb)")).unwrap().unwrap().0
    }

    fn tree(trace: &str) -> Value {
        Spi::get_one::<pgrx::JsonB>(&format!("select analytics.get_trace_tree('{trace}')")).unwrap().unwrap().0
    }

    const RAG: &str = r#"[
        {"trace_id":"t1","span_id":"llm","parent_span_id":"root","name":"answer","operation_type":"chat",
         "start_time":"2026-11-20T09:00:01Z","end_time":"2026-11-20T09:00:04Z","model":"gpt-4o",
         "input_tokens":100,"output_tokens":20,"cost_usd":0.01,"input":{"q":"hi"}},
        {"trace_id":"t1","span_id":"root","name":"agent","operation_type":"agent",
         "start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:05Z"},
        {"trace_id":"t1","span_id":"kb","parent_span_id":"root","name":"search","operation_type":"retriever",
         "status":"error","start_time":"2026-11-20T09:00:00.100Z","end_time":"2026-11-20T09:00:00.900Z"}
    ]"#;

    #[pg_test]
    fn ingest_then_tree_nests_children_and_rolls_up() {
        as_user(A);
        let r = ingest(RAG);
        assert_eq!(r["stored"], 3);
        assert_eq!(r["traces"], 1);
        let t = tree("t1");
        assert_eq!(t["span_count"], 3);
        assert_eq!(t["truncated"], false);
        let root = &t["roots"][0];
        assert_eq!(root["span_id"], "root");
        assert_eq!(root["operation_type"], "invoke_agent");
        assert_eq!(root["subtree"]["span_count"], 3);
        assert_eq!(root["subtree"]["error_count"], 1);
        assert_eq!(root["subtree"]["total_tokens"], 120);
        assert_eq!(root["subtree"]["duration_ms"].as_f64(), Some(5000.0));
        let kids: Vec<&str> = root["children"].as_array().unwrap().iter().map(|c| c["span_id"].as_str().unwrap()).collect();
        assert_eq!(kids, ["kb", "llm"]);
        assert_eq!(root["children"][1]["input"]["q"], "hi");
        // 5 s minus the children's 0.8 s and 3 s
        assert_eq!(root["self_ms"].as_f64(), Some(1200.0));
    }

    #[pg_test]
    fn resending_a_span_updates_it() {
        as_user(A);
        ingest(r#"[{"trace_id":"t2","span_id":"s","name":"call","start_time":"2026-11-20T09:00:00Z","status":"error","metadata":{"a":1}}]"#);
        let r = ingest(r#"[{"trace_id":"t2","span_id":"s","name":"call","start_time":"2026-11-20T09:00:00Z","end_time":"2026-11-20T09:00:02Z","metadata":{"b":2}}]"#);
        assert_eq!(r["stored"].as_i64(), Some(1));
        let (n, dur, status) = Spi::get_three::<i64, f64, String>(
            "select count(*) over (), duration_ms, status from analytics.llm_traces where trace_id = 't2'",
        )
        .unwrap();
        assert_eq!((n, dur, status.as_deref()), (Some(1), Some(2000.0), Some("error")));
        let meta = Spi::get_one::<pgrx::JsonB>("select metadata from analytics.llm_traces where trace_id = 't2'").unwrap();
        assert_eq!(meta.unwrap().0, serde_json::json!({"a": 1, "b": 2}));
    }

    #[pg_test]
    fn a_bad_element_stores_nothing_and_is_named() {
        as_user(A);
        let bad = r#"[{"trace_id":"t3","span_id":"a","name":"x","start_time":"2026-11-20T09:00:00Z"},
                      {"trace_id":"t3","span_id":"b","name":"x","start_time":"2026-11-20T09:00:00Z","input_tokens":-5}]"#;
        let err = PgTryBuilder::new(|| {
            ingest(bad);
            None
        })
        .catch_others(|e| match e {
            pgrx::pg_sys::panic::CaughtError::PostgresError(r) => Some((r.sql_error_code(), r.message().to_string())),
            _ => None,
        })
        .execute();
        let (code, msg) = err.expect("the batch must be refused");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(msg, "spans[1].input_tokens: must not be negative, got -5");
        assert_eq!(Spi::get_one::<i64>("select count(*) from analytics.llm_traces where trace_id = 't3'").unwrap(), Some(0));
    }

    #[pg_test]
    fn cost_is_computed_from_the_owners_prices_when_not_sent() {
        as_user(A);
        Spi::run("insert into analytics.model_prices (model, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok)
                  values ('gpt-4o*', 2.5, 10.0, 1.25)").unwrap();
        // another owner's price for the same model must not be used
        Spi::run("insert into analytics.model_prices (user_id, model, input_usd_per_mtok, output_usd_per_mtok)
                  values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'gpt-4o', 1000, 1000)").unwrap();
        ingest(r#"[{"trace_id":"cost","span_id":"a","name":"n","start_time":"2026-11-20T09:00:00Z","model":"gpt-4o-2024-08-06",
                    "input_tokens":1000,"cache_read_tokens":400,"output_tokens":100},
                   {"trace_id":"cost","span_id":"b","name":"n","start_time":"2026-11-20T09:00:00Z","model":"gpt-4o","input_tokens":10,"cost_usd":0.5},
                   {"trace_id":"cost","span_id":"c","name":"n","start_time":"2026-11-20T09:00:00Z","model":"llama-3","input_tokens":10}]"#);
        let costs = Spi::get_one::<String>(
            "select string_agg(span_id || '=' || coalesce(cost_usd::text, 'null'), ' ' order by span_id) from analytics.llm_traces where trace_id = 'cost'",
        )
        .unwrap();
        // a: (600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6 = 0.003
        assert_eq!(costs.as_deref(), Some("a=0.003 b=0.5 c=null"));
    }

    #[pg_test]
    fn cycles_and_orphans_are_flagged_not_fatal() {
        as_user(A);
        // A and B are each other's parent; C's parent never arrived
        ingest(r#"[{"trace_id":"t4","span_id":"A","parent_span_id":"B","name":"a","start_time":"2026-11-20T09:00:00Z"},
                   {"trace_id":"t4","span_id":"B","parent_span_id":"A","name":"b","start_time":"2026-11-20T09:00:01Z"},
                   {"trace_id":"t4","span_id":"C","parent_span_id":"gone","name":"c","start_time":"2026-11-20T09:00:02Z"}]"#);
        let t = tree("t4");
        assert_eq!(t["cycle_count"], 1);
        assert_eq!(t["orphan_count"], 1);
        assert_eq!(t["roots"][0]["span_id"], "A");
        assert_eq!(t["roots"][0]["cycle"], true);
        assert_eq!(t["roots"][0]["children"][0]["span_id"], "B");
        assert_eq!(t["roots"][1]["orphan"], true);
        let n = Spi::get_one::<i64>("select count(*) from analytics.trace_spans('t4')").unwrap();
        assert_eq!(n, Some(3));
    }

    #[pg_test]
    fn tree_caps_depth_and_spans_with_flags() {
        as_user(A);
        let chain: Vec<String> = (0..50)
            .map(|i| {
                let parent = if i == 0 { String::new() } else { format!(r#","parent_span_id":"s{}""#, i - 1) };
                format!(r#"{{"trace_id":"deep","span_id":"s{i}"{parent},"name":"n","start_time":"2026-11-20T09:00:00Z"}}"#)
            })
            .collect();
        ingest(&format!("[{}]", chain.join(",")));
        let t = Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('deep', max_depth => 3)").unwrap().unwrap().0;
        assert_eq!(t["returned_spans"], 4);
        assert_eq!(t["truncated"], true);
        let level3 = &t["roots"][0]["children"][0]["children"][0]["children"][0];
        assert_eq!(level3["span_id"], "s3");
        assert_eq!(level3["children_truncated"], 1);
        assert_eq!(level3["subtree"]["span_count"], 47);
        let t = Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('deep', max_spans => 2, include_io => false)").unwrap().unwrap().0;
        assert_eq!(t["returned_spans"], 2);
    }

    #[pg_test]
    fn another_users_trace_is_simply_absent() {
        as_user(A);
        ingest(RAG);
        as_user("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb");
        // the test runs as superuser, which bypasses RLS: the functions still look only at the caller's own rows
        assert_eq!(Spi::get_one::<pgrx::JsonB>("select analytics.get_trace_tree('t1')").unwrap().map(|j| j.0), None);
        assert_eq!(Spi::get_one::<i64>("select count(*) from analytics.trace_spans('t1')").unwrap(), Some(0));
    }

    #[pg_test]
    fn waterfall_svg_has_a_bar_per_span() {
        as_user(A);
        ingest(RAG);
        let svg = Spi::get_one::<String>("select analytics.trace_waterfall_svg('t1')").unwrap().unwrap();
        assert!(svg.starts_with("<?xml"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert_eq!(Spi::get_one::<String>("select analytics.trace_waterfall_svg('nope')").unwrap(), None);
    }

    #[pg_test]
    fn otlp_request_is_stored_as_a_tree() {
        as_user(A);
        let payload = include_str!("../../tests/fixtures/otlp_agent_run.json");
        let r = Spi::get_one_with_args::<pgrx::JsonB>("select analytics.ingest_otlp($1::jsonb)", &[payload.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!((r["stored"].as_i64(), r["traces"].as_i64()), (Some(3), Some(1)));
        let t = tree("5b8efff798038103d269b633813fc60c");
        let root = &t["roots"][0];
        assert_eq!(root["name"], "invoke_agent support");
        assert_eq!(root["subtree"]["total_tokens"], 1970);
        assert_eq!(root["subtree"]["error_count"], 1);
        let chat = &root["children"][1];
        assert_eq!((chat["model"].as_str(), chat["provider"].as_str()), (Some("gpt-4o-2024-08-06"), Some("openai")));
        assert_eq!(chat["metadata"]["otel"]["resource"]["service.name"], "support-bot");
        // re-sending the same export updates instead of duplicating
        let r = Spi::get_one_with_args::<pgrx::JsonB>("select analytics.ingest_otlp($1::jsonb)", &[payload.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(r["stored"].as_i64(), Some(3));
        let n = Spi::get_one::<i64>("select count(*) from analytics.llm_traces where trace_id = '5b8efff798038103d269b633813fc60c'");
        assert_eq!(n.unwrap(), Some(3));
    }

    #[pg_test]
    fn record_span_returns_the_stored_row() {
        as_user(A);
        let (span, total, owner) = Spi::get_three::<String, i64, String>(
            "select span_id, total_tokens, user_id::text from analytics.record_span(trace_id => 'r', span_id => 's', name => 'n',
                start_time => '2026-11-20 09:00+00', input_tokens => 7, output_tokens => 3)",
        )
        .unwrap();
        assert_eq!((span.as_deref(), total, owner.as_deref()), (Some("s"), Some(10), Some(A)));
    }

    #[pg_test]
    fn search_spans_filters_and_pages_with_a_cursor() {
        as_user(A);
        ingest(RAG);
        let ids = |q: &str| -> Vec<String> {
            Spi::connect(|c| c.select(q, None, &[]).unwrap().map(|r| r.get::<String>(1).unwrap().unwrap()).collect())
        };
        assert_eq!(ids("select span_id from analytics.search_spans(trace_id => 't1')"), ["llm", "kb", "root"]);
        assert_eq!(ids("select span_id from analytics.search_spans(status => 'error')"), ["kb"]);
        assert_eq!(ids("select span_id from analytics.search_spans(model => 'gpt-4o', min_duration_ms => 1000)"), ["llm"]);
        let cursor = Spi::get_one::<String>(
            "select to_char(start_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ',' || id
             from analytics.search_spans(trace_id => 't1', \"limit\" => 1)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ids(&format!("select span_id from analytics.search_spans(trace_id => 't1', after => '{cursor}')")), ["kb", "root"]);
        // the same filters twice use the kept plan; the results do not change
        assert_eq!(ids("select span_id from analytics.search_spans(status => 'error')"), ["kb"]);
    }

    #[pg_test(error = "limit: must be between 1 and 1000, got 0")]
    fn search_spans_rejects_a_bad_limit() {
        as_user(A);
        Spi::run("select * from analytics.search_spans(\"limit\" => 0)").unwrap();
    }

    #[pg_test]
    fn search_traces_lists_traces_with_rollups() {
        as_user(A);
        ingest(RAG);
        let (trace, spans, errors) = Spi::get_three::<String, i64, i64>(
            "select trace_id, span_count, error_count from analytics.search_traces(operation_type => 'chat')",
        )
        .unwrap();
        assert_eq!((trace.as_deref(), spans, errors), (Some("t1"), Some(3), Some(1)));
    }

    #[pg_test]
    fn trace_metrics_counts_and_exact_percentiles() {
        as_user(A);
        ingest(RAG);
        let (n, p50, errors) = Spi::get_three::<i64, f64, i64>(
            "select request_count, latency_p50_ms, error_count from analytics.trace_metrics('1 day', '2026-11-20', '2026-11-21')",
        )
        .unwrap();
        // durations 5000, 800, 3000 ms: the exact median is 3000
        assert_eq!((n, p50, errors), (Some(3), Some(3000.0), Some(1)));
    }

    #[pg_test]
    fn subtree_ancestors_and_waterfall() {
        as_user(A);
        ingest(RAG);
        let names: Vec<String> = Spi::connect(|c| {
            c.select("select span_id from analytics.span_subtree('t1', 'root') order by ordinal", None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        });
        assert_eq!(names, ["root", "kb", "llm"]);
        let (d, id) = Spi::get_two::<i32, String>("select distance, span_id from analytics.span_ancestors('t1', 'llm')").unwrap();
        assert_eq!((d, id.as_deref()), (Some(1), Some("root")));
        let crit = Spi::get_one::<String>(
            "select string_agg(span_id, ',' order by ordinal) from analytics.trace_waterfall('t1') where on_critical_path",
        )
        .unwrap();
        // kb (0.1-0.9 s) finishes before llm (1-4 s) starts: both are on the path to the root's end
        assert_eq!(crit.as_deref(), Some("root,kb,llm"));
    }
}
