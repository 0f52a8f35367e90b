//! Traces: the SQL bindings of hierarchical LLM spans. The algorithms are the core's
//! (`analytics_core::traces`), re-exported here so the bindings read `super::ingest`, `super::tree`, ...
//!
//! - `jsonb_spans`: reads an `ingest_spans` argument in its binary jsonb form
//! - `store`: `ingest_spans`, `ingest_otlp` (one INSERT, or one merge of stored and new spans, per batch)
//! - `rows`: the rows of one trace, read once through SPI (shared by `read` and `tree_jsonb`)
//! - `read`: the functions that read one trace (`get_trace_tree`, `trace_spans`, `span_subtree`,
//!   `span_ancestors`, `trace_waterfall`, `trace_waterfall_svg`)
//! - `tree_jsonb`: the nested jsonb document of `get_trace_tree`
//! - `search`: `search_spans` and the argument checks `search_traces` (PL/pgSQL) shares with it
//! - `costs`: `builtin_model_prices`, `model_price`, `recompute_costs` (prices and costs of stored spans)
//! - `plans`: kept plans run as generic plans (partition pruning when they start)
//!
//! The PL/pgSQL functions (`record_span`, `search_traces`, `trace_metrics`) are in `sql/011_traces_functions.sql`.

pub use analytics_core::traces::{ingest, otlp, pricing, svg, tree};

pub mod costs;
pub mod jsonb_spans;
pub(crate) mod plans;
pub mod read;
pub mod rows;
pub mod search;
pub mod store;
pub mod tree_jsonb;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
