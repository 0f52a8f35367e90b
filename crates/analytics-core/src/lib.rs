//! The algorithms of analytics_ext, with no Postgres dependency: everything here is plain Rust that unit-tests
//! with `cargo test -p analytics-core` in seconds, no database needed. The extension crate (the repository's top
//! level) binds these functions to SQL and owns everything that touches Postgres (SPI, jsonb, raising errors).
//!
//! - `errors`: the error type and the SQLSTATEs analytics_ext raises
//! - `textfmt`: allocation-light RFC 3339 timestamps
//! - `traces`: span validation and batches, OTLP mapping, trees, SVG waterfalls, pricing, search arguments
//! - `experiments`: GrowthBook assignment, statistics, analyses, power
//! - `anomaly`: the detectors
//! - `cache`: the per-connection tally of cache hits and misses and when to write it
//! - `rate_window`: the rate limiter's exact sliding window
//! - `usage`: least-squares trends of daily usage and their prediction intervals
//! - `views`: the HTML views (trace, experiment, dashboard)
//! - `cohorts`: cohort rules and retention

pub mod errors;
pub mod textfmt;
pub mod usage;

pub mod views {
    //! HTML views served by SQL: self-contained documents with their data, style and script inline.
    //!
    //! - `page`: the document shell, the Content-Security-Policy (hashes of the inline script and style) and the
    //!   escaping rules
    //! - `trace`: one trace: span tree, waterfall, details
    //! - `experiment`: an experiment's results: variants, interval bars, guardrails, the cumulative effect
    //! - `dashboard`: a time range: charts with anomaly markers, top models and operations, experiments, traces
    pub mod dashboard;
    pub mod experiment;
    pub mod page;
    pub mod trace;
}

pub mod traces {
    //! Traces: hierarchical LLM spans.
    //!
    //! - `ingest`: parsing, validation and normalisation of spans; the enumerations (operation types, statuses,
    //!   levels) that the table's CHECKs must match
    //! - `otlp`: OpenTelemetry OTLP/JSON to spans
    //! - `pricing`: computed cost from per-owner model prices
    //! - `tree`: the span tree of one trace: orphans, cycles, rollups, self time, critical path
    //! - `svg`: the waterfall as a self-contained SVG document
    //! - `search`: the page, filter and cursor rules of the search functions
    pub mod ingest;
    pub mod otlp;
    pub mod pricing;
    pub mod search;
    pub mod svg;
    pub mod tree;
}

pub mod experiments {
    //! Experiments: A/B tests with deterministic assignment.
    //!
    //! - `growthbook`: GrowthBook's hashing, bucketing and assignment decision, bit-for-bit
    //! - `stats`: Welch and two-proportion tests, SRM, p-value corrections (statrs distributions)
    //! - `analysis`: a treatment against its control from per-unit moments: binomial, mean and ratio metrics,
    //!   CUPED, Bayesian and sequential views
    //! - `power`: sample size and minimum detectable effect of a planned test
    pub mod analysis;
    pub mod growthbook;
    pub mod power;
    pub mod stats;
}

pub mod anomaly {
    //! Anomaly detection over metric series: rolling z-score, MAD, IQR, EWMA, seasonal, CUSUM and likelihood.
    pub mod detectors;
    pub mod nab;
}

pub mod cache;
pub mod rate_window;

pub mod cohorts {
    //! End users, cohorts and retention.
    //!
    //! - `rule`: the rule language of dynamic cohorts: validation with paths, compilation to one SQL query
    //! - `retention`: the retention triangle's arguments and its query (calendar or rolling periods, three modes)
    pub mod retention;
    pub mod rule;
}
