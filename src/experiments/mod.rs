//! Experiments: the SQL bindings of A/B tests. The algorithms (GrowthBook assignment, statistics, analyses,
//! power) are the core's (`analytics_core::experiments`); lifecycle, sticky assignment and results are PL/pgSQL
//! in `sql/02*.sql` calling these bindings.

pub use analytics_core::experiments::{analysis, growthbook, power, stats};

pub mod sql;
