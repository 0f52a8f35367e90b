//! Experiments: A/B tests with deterministic assignment.
//!
//! - `growthbook`: GrowthBook's hashing and bucketing, bit-for-bit (pure)
//! - `stats`: Welch and two-proportion tests, SRM, p-value corrections (pure, statrs distributions)
//! - `sql`: the SQL functions binding them (`#[pg_extern]`, `#[pg_test]`)

pub mod growthbook;
pub mod stats;

pub mod sql;
