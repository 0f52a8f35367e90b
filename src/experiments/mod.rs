//! Experiments: A/B tests with deterministic assignment.
//!
//! - `growthbook`: GrowthBook's hashing and bucketing, bit-for-bit (pure)
//! - `sql`: the SQL functions binding them (`#[pg_extern]`, `#[pg_test]`)

pub mod growthbook;

pub mod sql;
