//! analytics_ext: LLM-application analytics inside PostgreSQL. This crate is the extension: SQL bindings only.
//!
//! Layers (docs/architecture.md): the algorithms live in the pure core crate `crates/analytics-core` (no pgrx,
//! plain `#[test]`s); each capability folder here (`traces`, `experiments`, `anomaly`, `usage`) binds them to SQL with
//! `#[pg_extern]`s and tests them with `#[pg_test]`s; `bind` (errors raised with their SQLSTATE, required
//! arguments), `identity` (the caller) and `jsonb` (binary jsonb in and out) serve every capability. Tables,
//! policies and PL/pgSQL are SQL files under `sql/`, included here in a declared order, security last.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

/// Runs when a backend loads the library. Keeps Rust backtraces out of error reports: pgrx adds one to the DETAIL of
/// an error raised through Rust when the server's environment has RUST_BACKTRACE set (a DBA's shell, a container
/// image), and PostgREST hands DETAIL to API clients. Only an unset RUST_LIB_BACKTRACE is filled in, so a developer
/// who wants backtraces sets RUST_LIB_BACKTRACE=1 (tests/integration/backtrace_test.sh).
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // a backend is single-threaded: nothing else reads or writes the environment while the library loads
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

pub mod anomaly;
pub mod bind;
pub mod cache;
pub mod cohorts;
pub mod experiments;
pub mod identity;
pub mod jsonb;
pub mod rate_limits;
pub mod traces;
pub mod usage;
pub mod views;

// ---- DDL, in dependency order -------------------------------------------------------------------------------
// identity functions first: every table's default and every policy calls analytics.current_user_id()
extension_sql_file!("../sql/001_identity.sql", name = "identity", bootstrap);
extension_sql_file!("../sql/010_traces.sql", name = "traces_tables", requires = ["identity"]);
extension_sql_file!(
    "../sql/011_traces_functions.sql",
    name = "traces_functions",
    requires = [
        "traces_tables",
        traces::store::ingest_spans_admitted,
        traces::read::get_trace_tree,
        traces::read::trace_spans,
        traces::read::span_subtree,
        traces::read::span_ancestors,
        traces::read::trace_waterfall,
        traces::read::trace_waterfall_svg,
        traces::store::ingest_otlp_admitted,
        traces::search::search_spans,
        traces::search::check_page,
        traces::search::check_span_filters,
        traces::search::cursor_time,
        traces::search::cursor_key
    ]
);
extension_sql_file!("../sql/012_retention.sql", name = "retention", requires = ["traces_tables"]);
extension_sql_file!("../sql/013_partitions.sql", name = "partitions", requires = ["traces_tables", "retention"]);
extension_sql_file!("../sql/020_experiments.sql", name = "experiments_tables", requires = ["identity"]);
extension_sql_file!(
    "../sql/021_experiments_functions.sql",
    name = "experiments_functions",
    requires = [
        experiments::sql::gb_hash,
        experiments::sql::equal_weights,
        experiments::sql::bucket_ranges,
        experiments::sql::choose_variation,
        experiments::sql::in_namespace,
        experiments::sql::gb_decide,
        experiments::sql::welch_t_test,
        experiments::sql::two_proportion_z_test,
        experiments::sql::srm_check,
        experiments::sql::adjust_p_values,
        experiments::sql::adjusted_interval,
        experiments::sql::compare_two_groups,
        experiments::sql::plan_sample_size,
        experiments::sql::plan_minimum_detectable_effect,
        experiments::sql::power_analysis
    ]
);
extension_sql_file!(
    "../sql/022_experiments_lifecycle.sql",
    name = "experiments_lifecycle",
    requires = ["experiments_tables", "experiments_functions"]
);
extension_sql_file!(
    "../sql/023_experiment_totals.sql",
    name = "experiment_totals",
    requires = ["experiments_tables", "experiments_lifecycle"]
);
extension_sql_file!("../sql/030_anomalies_cohorts.sql", name = "anomaly_cohort_tables", requires = ["identity"]);
extension_sql_file!(
    "../sql/031_anomaly_functions.sql",
    name = "anomaly_functions",
    requires = ["anomaly_cohort_tables", "traces_functions", anomaly::sql::detect_anomalies_scored, anomaly::sql::anomaly_params]
);
extension_sql_file!(
    "../sql/040_rate_limits.sql",
    name = "rate_limits",
    requires = ["identity", "traces_functions", "experiments_lifecycle", "anomaly_functions"]
);
extension_sql_file!(
    "../sql/041_cache.sql",
    name = "cache",
    requires = [
        "rate_limits",
        "traces_functions",
        "experiments_lifecycle",
        "anomaly_functions",
        "retention",
        "experiment_totals",
        cache::cache_count,
        cache::cache_drain,
        cache::cache_pending
    ]
);
extension_sql_file!("../sql/042_ingest_failures.sql", name = "ingest_failures", requires = ["identity", "cache"]);
extension_sql_file!(
    "../sql/043_alert_rules.sql",
    name = "alert_rules",
    requires = ["identity", "traces_functions", "ingest_failures", "cache"]
);
extension_sql_file!(
    "../sql/044_costs.sql",
    name = "costs",
    requires = ["traces_tables", traces::costs::builtin_model_prices, traces::costs::model_price, traces::costs::recompute_costs]
);
extension_sql_file!("../sql/045_budgets.sql", name = "budgets", requires = ["identity", "traces_tables", "costs", "cache"]);
extension_sql_file!(
    "../sql/046_usage.sql",
    name = "usage",
    requires = ["identity", "traces_tables", "partitions", "budgets", usage::project_trend]
);
extension_sql_file!(
    "../sql/050_views.sql",
    name = "views",
    requires = [
        "traces_functions",
        "experiments_lifecycle",
        "experiment_totals",
        "anomaly_cohort_tables",
        "cache",
        traces::read::trace_view,
        views::render_experiment_view,
        views::render_dashboard_view
    ]
);
extension_sql_file!("../sql/060_end_users.sql", name = "end_users", requires = ["identity", "traces_functions", "partitions", "cache"]);
extension_sql_file!(
    "../sql/061_cohorts.sql",
    name = "cohorts",
    requires = ["end_users", "anomaly_cohort_tables", "experiments_lifecycle", cohorts::compile_cohort_rule]
);
extension_sql_file!("../sql/062_retention.sql", name = "retention_of_end_users", requires = ["cohorts", cohorts::retention_query]);
// last: RLS, policies, pg_dump registration and grants for every table and function defined above
extension_sql_file!("../sql/900_security.sql", name = "security", finalize);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    const USER_A: &str = "00000000-0000-4000-8000-00000000000a";

    fn uid() -> Option<pgrx::Uuid> {
        Spi::get_one::<pgrx::Uuid>("select analytics.current_user_id()").expect("spi")
    }

    #[pg_test]
    fn current_user_id_is_null_without_claims() {
        assert_eq!(uid(), None);
    }

    #[pg_test]
    fn current_user_id_reads_request_jwt_claims() {
        Spi::run(&format!(
            "select set_config('request.jwt.claims', '{{\"sub\":\"{USER_A}\",\"role\":\"authenticated\"}}', true)"
        ))
        .unwrap();
        assert_eq!(uid().map(|u| u.to_string()), Some(USER_A.to_string()));
        assert_eq!(
            Spi::get_one::<String>("select analytics.current_role_claim()").unwrap(),
            Some("authenticated".to_string())
        );
    }

    #[pg_test]
    fn current_user_id_prefers_legacy_claim_sub() {
        Spi::run(&format!("select set_config('request.jwt.claim.sub', '{USER_A}', true)")).unwrap();
        Spi::run(
            "select set_config('request.jwt.claims', '{\"sub\":\"00000000-0000-4000-8000-00000000000b\"}', true)",
        )
        .unwrap();
        assert_eq!(uid().map(|u| u.to_string()), Some(USER_A.to_string()));
    }

    #[pg_test]
    fn current_user_id_treats_empty_settings_as_anonymous() {
        Spi::run("select set_config('request.jwt.claim.sub', '', true)").unwrap();
        Spi::run("select set_config('request.jwt.claims', '', true)").unwrap();
        assert_eq!(uid(), None);
        Spi::run("select set_config('request.jwt.claims', '{\"role\":\"anon\"}', true)").unwrap();
        assert_eq!(uid(), None);
    }

    #[pg_test(error = "invalid input syntax for type uuid: \"not-a-uuid\"")]
    fn current_user_id_rejects_non_uuid_sub() {
        Spi::run("select set_config('request.jwt.claims', '{\"sub\":\"not-a-uuid\"}', true)").unwrap();
        uid();
    }

    #[pg_test(error = "invalid input syntax for type json")]
    fn current_user_id_rejects_malformed_claims() {
        Spi::run("select set_config('request.jwt.claims', '{not json', true)").unwrap();
        uid();
    }

    /// The quoted values of a CHECK constraint `col IN ('a', 'b', ...)`, in order.
    fn check_values(constraint: &str) -> Vec<String> {
        let def = Spi::get_one_with_args::<String>(
            "select pg_get_constraintdef(c.oid) from pg_constraint c
             join pg_namespace n on n.oid = c.connamespace where n.nspname = 'analytics' and c.conname = $1",
            &[constraint.into()],
        )
        .unwrap()
        .unwrap_or_else(|| panic!("constraint {constraint} not found"));
        def.split('\'').skip(1).step_by(2).map(str::to_string).collect()
    }

    /// Each enumeration is defined once, in the core crate; the tables' CHECKs must list exactly its values.
    #[pg_test]
    fn check_constraints_list_the_core_enumerations() {
        use analytics_core::anomaly::detectors::Method;
        use analytics_core::traces::ingest::{LEVELS, OPERATION_TYPES, STATUSES};
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_values("llm_traces_operation_type_check"), strings(&OPERATION_TYPES));
        assert_eq!(check_values("llm_traces_status_check"), strings(&STATUSES));
        assert_eq!(check_values("llm_traces_level_check"), strings(&LEVELS));
        let methods: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(check_values("anomaly_detections_method_check"), strings(&methods));
    }

    /// Every table has RLS enabled and forced, except the result cache's tables, the usage snapshot's cache and
    /// the version of the rate limits: enabled, not forced (no API role has any privilege on them, which
    /// tests/pg_regress/sql/security_catalog.sql checks where those roles exist; only SECURITY DEFINER functions
    /// that filter by the JWT's owner, or a job that reads every owner, reach them).
    #[pg_test]
    fn every_table_forces_row_level_security() {
        let unprotected = Spi::get_one::<i64>(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'analytics' and c.relkind = 'r'
               and not (c.relrowsecurity and (c.relforcerowsecurity or c.relname like 'cache\\_%'
                                              or c.relname like 'usage\\_cache\\_%'
                                              or c.relname = 'rate_limit_rules_version'))",
        )
        .unwrap();
        assert_eq!(unprotected, Some(0));
    }
}

/// Required by `cargo pgrx test`; it must be visible at the root of the extension crate.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
