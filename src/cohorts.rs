//! Cohorts and retention (`sql/061_cohorts.sql`, `sql/062_retention.sql`): the core validates cohort rules and
//! retention arguments and writes their queries (`analytics_core::cohorts`); the PL/pgSQL functions run them.

use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::bind::{required, AnalyticsError, ErrorKind, OrRaise, Raise};
use crate::jsonb::JsonbText;
use analytics_core::cohorts::{retention, rule};

/// `analytics._compile_cohort_rule(rule jsonb) returns jsonb`: `{"sql", "params", "cohorts": [[path, key]...],
/// "experiments": [[path, experiment, variant]...]}`, or 22023 naming the offending part of the rule.
#[pg_extern(name = "_compile_cohort_rule", immutable, parallel_safe)]
pub fn compile_cohort_rule(rule: Option<JsonbText>) -> pgrx::JsonB {
    let rule = required(rule, "rule").parse("rule");
    let c = rule::compile(&rule).or_raise();
    pgrx::JsonB(json!({
        "sql": c.sql,
        "params": c.params,
        "cohorts": c.cohorts.iter().map(|(p, k)| json!([p, k])).collect::<Vec<_>>(),
        "experiments": c.experiments.iter().map(|(p, e, v)| json!([p, e, v])).collect::<Vec<_>>(),
    }))
}

/// Microseconds since the Unix epoch of a finite timestamptz named `field`.
fn epoch_us(t: Option<TimestampWithTimeZone>, field: &str) -> i64 {
    match t {
        Some(t) if t.is_finite() => crate::traces::store::micros(Some(t)),
        Some(_) => AnalyticsError::invalid(format!("{field}: must be a finite time")).raise(),
        None => AnalyticsError::new(ErrorKind::NullValue, format!("{field}: is required")).raise(),
    }
}

/// `analytics._retention_query(...) returns jsonb`: `{"sql", "params"}` of `analytics.retention`, or 22023 naming
/// the argument. The time zone is checked by the caller (against pg_timezone_names).
#[allow(clippy::too_many_arguments)]
#[pg_extern(name = "_retention_query", immutable, parallel_safe)]
pub fn retention_query(
    from_time: Option<TimestampWithTimeZone>,
    to_time: Option<TimestampWithTimeZone>,
    period: Option<&str>,
    periods: Option<i32>,
    start_event: Option<JsonbText>,
    return_event: Option<JsonbText>,
    mode: Option<&str>,
    brackets: Option<JsonbText>,
    calendar: Option<bool>,
    time_zone: Option<&str>,
    as_of: Option<TimestampWithTimeZone>,
    cohorts: Option<Vec<Option<String>>>,
) -> pgrx::JsonB {
    let from = epoch_us(from_time, "from_time");
    let to = epoch_us(to_time, "to_time");
    if to <= from {
        AnalyticsError::invalid("to_time: must be after from_time").raise();
    }
    let event = |v: Option<JsonbText>, name: &str| -> rule::EventFilter {
        let v = v.map(|j| j.parse(name)).unwrap_or_else(|| json!({}));
        rule::EventFilter::parse(&v, name).or_raise()
    };
    let brackets = brackets.map(|b| b.parse("brackets"));
    let cohorts: Vec<String> = cohorts
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            Some(c) if !c.is_empty() => c,
            _ => AnalyticsError::invalid(format!("cohorts[{}]: must be a cohort key (a non-empty text)", i + 1)).raise(),
        })
        .collect();
    let spec = retention::Spec {
        from,
        to,
        period: retention::Period::parse(period).or_raise(),
        periods: retention::check_periods(periods).or_raise(),
        start: event(start_event, "start_event"),
        ret: event(return_event, "return_event"),
        mode: retention::parse_mode(mode, brackets.as_ref()).or_raise(),
        calendar: calendar.unwrap_or_else(|| AnalyticsError::invalid("calendar: must be true or false, got null").raise()),
        as_of: epoch_us(as_of, "as_of"),
        time_zone: time_zone.filter(|z| !z.is_empty()).unwrap_or_else(|| AnalyticsError::invalid("time_zone: is required").raise()).to_string(),
        cohorts,
    };
    let (sql, params) = retention::sql(&spec);
    pgrx::JsonB(json!({"sql": sql, "params": Value::from(params)}))
}
