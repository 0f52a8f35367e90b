//! Anomaly detection: the SQL bindings of the core's detectors (`analytics_core::anomaly::detectors`);
//! recording, deduplication and notification are PL/pgSQL in `sql/031_anomaly_functions.sql`.

pub use analytics_core::anomaly::detectors;

pub mod sql;
