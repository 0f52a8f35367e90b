//! Experiments: A/B tests with deterministic assignment.
//!
//! - `growthbook`: GrowthBook's hashing and bucketing, bit-for-bit (pure)
//! - `stats`: Welch and two-proportion tests, SRM, p-value corrections (pure, statrs distributions)
//! - `analysis`: a treatment against its control from per-unit moments: binomial, mean and ratio metrics, CUPED,
//!   Bayesian and sequential views (pure)
//! - `power`: sample size and minimum detectable effect of a planned test (pure)
//! - `sql`: the SQL functions binding them (`#[pg_extern]`, `#[pg_test]`)

pub mod analysis;
pub mod growthbook;
pub mod power;
pub mod stats;

pub mod sql;
