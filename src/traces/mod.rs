//! Traces: hierarchical LLM spans.
//!
//! - `ingest`: parsing, validation and normalisation of spans (pure)
//! - `otlp`: OpenTelemetry OTLP/JSON to spans (pure)
//! - `tree`: the span tree of one trace: orphans, cycles, rollups, self time, critical path (pure)
//! - `svg`: the waterfall as a self-contained SVG document (pure)
//! - `sql`: the SQL functions binding them (`#[pg_extern]`, `#[pg_test]`)

pub mod ingest;
pub mod jsonb_spans;
pub mod otlp;
pub mod pricing;
pub mod svg;
pub mod tree;

pub mod sql;
