//! Retention: of the end users who did a start event, how many came back (did a return event) k periods later.
//!
//! Cohorts: by the period of the first start event ever (first seen; `cohorts` empty), or one row group per named
//! cohort (its current members, anchored at their first start event in [from, to)). The anchor of an end user is
//! that start event's time; period 0 holds it, so period 0 is the whole cohort.
//!
//! Period k of an end user:
//! - calendar: the k-th day / week (Monday to Sunday) / month after the one of the anchor, in a named time zone (a
//!   day of a daylight-saving change has 23 or 25 hours);
//! - rolling: [anchor + k·L, anchor + (k+1)·L) with L = 24 hours, 7 days or 30 days.
//!
//! Modes (for k >= 1): `n_day` counts end users who returned in period k; `unbounded` those who returned in period k
//! or later; `brackets` [[lo, hi], ...] those who returned in any period of [lo, hi]. An end user is eligible for
//! period k (bracket [lo, hi]) once its period k (lo) has begun at `as_of`; rate = returned / eligible.
//!
//! This module validates the arguments and writes the one SQL query; the query takes $1 the owner, $2 as_of and $3 a
//! jsonb array of literal values (see `rule::Params`).

use serde_json::Value;

use super::rule::{EventFilter, Params};
use crate::errors::AnalyticsError;

/// At most this many periods after period 0.
pub const MAX_PERIODS: i32 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: Option<&str>) -> Result<Period, AnalyticsError> {
        match s.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("day") => Ok(Period::Day),
            Some("week") => Ok(Period::Week),
            Some("month") => Ok(Period::Month),
            other => Err(AnalyticsError::invalid(format!("period: must be day, week or month, got {}", other.map(|o| format!("{o:?}")).unwrap_or_else(|| "null".into())))),
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
    /// the length of a rolling period in seconds
    fn rolling_seconds(self) -> i64 {
        match self {
            Period::Day => 86_400,
            Period::Week => 7 * 86_400,
            Period::Month => 30 * 86_400,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    NDay,
    Unbounded,
    Brackets(Vec<(i32, i32)>),
}

/// Parses the mode and its brackets (`[[1, 1], [2, 3], [4, 7]]`: ascending, not overlapping, within 1..=MAX_PERIODS).
pub fn parse_mode(mode: Option<&str>, brackets: Option<&Value>) -> Result<Mode, AnalyticsError> {
    let m = match mode.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("n_day") | Some("n-day") => Mode::NDay,
        Some("unbounded") => Mode::Unbounded,
        Some("brackets") => {
            let b = brackets.filter(|b| !b.is_null()).ok_or_else(|| {
                AnalyticsError::invalid("brackets: mode brackets needs brackets, e.g. '[[1, 1], [2, 3], [4, 7]]'")
            })?;
            let items = b.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                AnalyticsError::invalid("brackets: must be a non-empty array of [first, last] period pairs, e.g. [[1, 1], [2, 3], [4, 7]]")
            })?;
            let mut out: Vec<(i32, i32)> = Vec::new();
            for (i, pair) in items.iter().enumerate() {
                let p = pair.as_array().filter(|p| p.len() == 2).and_then(|p| {
                    let lo = p[0].as_i64()?;
                    let hi = p[1].as_i64()?;
                    Some((lo, hi))
                });
                let (lo, hi) = p.ok_or_else(|| AnalyticsError::invalid(format!("brackets[{i}]: must be a pair of integers [first, last]")))?;
                if lo < 1 || hi < lo || hi > MAX_PERIODS as i64 {
                    return Err(AnalyticsError::invalid(format!("brackets[{i}]: must satisfy 1 <= first <= last <= {MAX_PERIODS}, got [{lo}, {hi}]")));
                }
                if let Some(&(_, prev_hi)) = out.last() {
                    if lo as i32 <= prev_hi {
                        return Err(AnalyticsError::invalid(format!("brackets[{i}]: must start after the previous bracket ends ({prev_hi}), got [{lo}, {hi}]")));
                    }
                }
                out.push((lo as i32, hi as i32));
            }
            return Ok(Mode::Brackets(out));
        }
        other => {
            return Err(AnalyticsError::invalid(format!(
                "mode: must be n_day, unbounded or brackets, got {}",
                other.map(|o| format!("{o:?}")).unwrap_or_else(|| "null".into())
            )))
        }
    };
    if brackets.is_some_and(|b| !b.is_null()) {
        return Err(AnalyticsError::invalid("brackets: only with mode brackets"));
    }
    Ok(m)
}

/// The validated arguments of `analytics.retention`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// cohort entry window, microseconds since the Unix epoch
    pub from: i64,
    pub to: i64,
    pub period: Period,
    pub periods: i32,
    pub start: EventFilter,
    pub ret: EventFilter,
    pub mode: Mode,
    pub calendar: bool,
    /// an IANA name, checked by the database
    pub time_zone: String,
    pub cohorts: Vec<String>,
}

impl Spec {
    /// The largest k that matters.
    fn max_k(&self) -> i32 {
        match &self.mode {
            Mode::Brackets(b) => b.last().map(|p| p.1).unwrap_or(1),
            _ => self.periods,
        }
    }
}

pub fn check_periods(periods: Option<i32>) -> Result<i32, AnalyticsError> {
    periods
        .filter(|p| (1..=MAX_PERIODS).contains(p))
        .ok_or_else(|| AnalyticsError::invalid(format!("periods: must be between 1 and {MAX_PERIODS}, got {}", periods.map(|p| p.to_string()).unwrap_or_else(|| "null".into()))))
}

/// The period index (integer) of the time expression `t` relative to the member's anchor, as SQL over the member
/// row `m` (columns anchor, local_start) and the time zone `tz` (an SQL expression).
fn offset_sql(spec: &Spec, t: &str, tz: &str) -> String {
    if !spec.calendar {
        return format!("floor(extract(epoch from ({t}) - m.anchor) / {})::integer", spec.period.rolling_seconds());
    }
    let local = format!("(({t}) at time zone {tz})");
    match spec.period {
        Period::Day => format!("({local}::date - m.local_start::date)"),
        Period::Week => format!("((date_trunc('week', {local})::date - m.local_start::date) / 7)"),
        Period::Month => format!(
            "((extract(year from {local})::integer * 12 + extract(month from {local})::integer) - (extract(year from m.local_start)::integer * 12 + extract(month from m.local_start)::integer))"
        ),
    }
}

/// The query: rows (cohort, cohort_start, users, period, period_label, eligible, returned, rate).
pub fn sql(spec: &Spec) -> (String, Vec<Value>) {
    let mut params = Params::default();
    let tz = params.text(Value::String(spec.time_zone.clone()));
    let from = params.time(spec.from);
    let to = params.time(spec.to);
    let unit = spec.period.unit();
    let max_k = spec.max_k();

    // anchors: each end user's first start event (ever, for first-seen cohorts; in [from, to) for named cohorts)
    let (s_from, s_user, s_time, s_where) = spec.start.source(&mut params);
    let anchors = if spec.cohorts.is_empty() {
        format!(
            "select {s_user} as end_user_id, min({s_time}) as anchor from {s_from} where {s_where} and {s_time} < $2 and {s_time} < {to} \
             group by {s_user} having min({s_time}) >= {from}"
        )
    } else {
        format!(
            "select {s_user} as end_user_id, min({s_time}) as anchor from {s_from} where {s_where} and {s_time} < $2 and {s_time} >= {from} and {s_time} < {to} \
             group by {s_user}"
        )
    };
    // members: (cohort, cohort_start, end user, anchor, the local start of the anchor's calendar period)
    let members = if spec.cohorts.is_empty() {
        let label = if spec.period == Period::Month { "YYYY-MM" } else { "YYYY-MM-DD" };
        format!(
            "select to_char(x.local_start, '{label}') as cohort, x.local_start at time zone {tz} as cohort_start, x.end_user_id, x.anchor, x.local_start \
             from (select a.end_user_id, a.anchor, date_trunc('{unit}', a.anchor at time zone {tz}) as local_start from anchors a) x"
        )
    } else {
        let keys = params.json(Value::from(spec.cohorts.clone()));
        format!(
            "select c.key as cohort, {from} as cohort_start, a.end_user_id, a.anchor, date_trunc('{unit}', a.anchor at time zone {tz}) as local_start \
             from anchors a \
             join analytics.user_cohort_members cm on cm.user_id = $1 and cm.member_id = a.end_user_id and cm.exited_at is null \
             join analytics.user_cohorts c on c.id = cm.cohort_id and c.user_id = cm.user_id \
             where c.key in (select jsonb_array_elements_text({keys}))"
        )
    };
    let (r_from, r_user, r_time, r_where) = spec.ret.source(&mut params);
    let k_return = offset_sql(spec, r_time, &tz);
    let k_now = offset_sql(spec, "$2", &tz);
    // every return period of every member (k >= 1), and how far each member has got by as_of
    let returns = format!(
        "select distinct m.cohort, m.end_user_id, {k_return} as k from members m \
         join {r_from} on {r_user} = m.end_user_id \
         where {r_where} and {r_time} >= m.anchor and {r_time} < $2 and {k_return} between 1 and {max_k}"
    );
    let reached = format!("select m.cohort, m.cohort_start, m.end_user_id, least({k_now}, {max_k}) as reached from members m");
    let sizes = "select cohort, cohort_start, count(*) as users from reached group by 1, 2";
    // (period, label, first k, last k) of each column after period 0
    let (columns, per_user) = match &spec.mode {
        Mode::NDay => (
            format!("select k as period, k::text as label, k as lo, k as hi from generate_series(1, {max_k}) k"),
            "select c.period, r.cohort, r.end_user_id from returns r join columns c on r.k = c.lo".to_string(),
        ),
        Mode::Unbounded => (
            format!("select k as period, k::text || '+' as label, k as lo, {max_k} as hi from generate_series(1, {max_k}) k"),
            "select c.period, u.cohort, u.end_user_id from (select cohort, end_user_id, max(k) as last_k from returns group by 1, 2) u \
             join columns c on u.last_k >= c.lo"
                .to_string(),
        ),
        Mode::Brackets(b) => (
            format!(
                "select * from (values {}) as b(period, label, lo, hi)",
                b.iter()
                    .enumerate()
                    .map(|(i, (lo, hi))| format!("({}, '{}', {lo}, {hi})", i + 1, if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "select distinct c.period, r.cohort, r.end_user_id from returns r join columns c on r.k between c.lo and c.hi".to_string(),
        ),
    };
    let sql = format!(
        "with anchors as ({anchors}), members as materialized ({members}), returns as ({returns}), reached as ({reached}), sizes as ({sizes}), \
         columns as ({columns}), returned as (select period, cohort, count(*) as n from ({per_user}) x group by 1, 2), \
         eligible as (select c.period, r.cohort, count(*) as n from reached r join columns c on r.reached >= c.lo group by 1, 2) \
         select s.cohort, s.cohort_start, s.users, 0 as period, '0'::text as period_label, s.users as eligible, s.users as returned, 1.0::double precision as rate \
         from sizes s \
         union all \
         select s.cohort, s.cohort_start, s.users, c.period, c.label, coalesce(e.n, 0), coalesce(rt.n, 0), \
                case when coalesce(e.n, 0) > 0 then coalesce(rt.n, 0)::double precision / e.n end \
         from sizes s cross join columns c \
         left join eligible e on e.cohort = s.cohort and e.period = c.period \
         left join returned rt on rt.cohort = s.cohort and rt.period = c.period \
         order by 2, 1, 4"
    );
    (sql, params.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(mode: Mode, calendar: bool) -> Spec {
        Spec {
            from: 0,
            to: 86_400_000_000,
            period: Period::Week,
            periods: 4,
            start: EventFilter::Spans(vec![]),
            ret: EventFilter::Spans(vec![("operation_type", "chat".into())]),
            mode,
            calendar,
            time_zone: "Europe/Berlin".into(),
            cohorts: vec![],
        }
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(Period::parse(Some("fortnight")).unwrap_err().message, "period: must be day, week or month, got \"fortnight\"");
        assert_eq!(check_periods(Some(0)).unwrap_err().message, "periods: must be between 1 and 400, got 0");
        assert_eq!(parse_mode(Some("weird"), None).unwrap_err().message, "mode: must be n_day, unbounded or brackets, got \"weird\"");
        assert_eq!(parse_mode(Some("brackets"), Some(&json!([[1, 2], [2, 3]]))).unwrap_err().message,
                   "brackets[1]: must start after the previous bracket ends (2), got [2, 3]");
        assert_eq!(parse_mode(Some("brackets"), Some(&json!([[0, 2]]))).unwrap_err().message,
                   "brackets[0]: must satisfy 1 <= first <= last <= 400, got [0, 2]");
        assert_eq!(parse_mode(Some("brackets"), Some(&json!([[1]]))).unwrap_err().message, "brackets[0]: must be a pair of integers [first, last]");
        assert_eq!(parse_mode(Some("n_day"), Some(&json!([[1, 1]]))).unwrap_err().message, "brackets: only with mode brackets");
        assert_eq!(parse_mode(Some("brackets"), Some(&json!([[1, 1], [2, 3], [4, 7]]))).unwrap(), Mode::Brackets(vec![(1, 1), (2, 3), (4, 7)]));
    }

    #[test]
    fn the_time_zone_and_filters_are_parameters() {
        let (sql, params) = sql(&spec(Mode::NDay, true));
        assert_eq!(params[0], json!("Europe/Berlin"));
        assert!(sql.contains("at time zone ($3->>0)"), "{sql}");
        assert!(params.contains(&json!("chat")));
        assert!(!sql.contains("'chat'"));
    }

    #[test]
    fn rolling_periods_count_from_the_anchor() {
        let (sql, _) = sql(&spec(Mode::Unbounded, false));
        assert!(sql.contains("floor(extract(epoch from (s.start_time) - m.anchor) / 604800)::integer"), "{sql}");
        assert!(sql.contains("max(k) as last_k"));
    }

    #[test]
    fn brackets_are_labelled() {
        let (sql, _) = sql(&spec(Mode::Brackets(vec![(1, 1), (2, 3)]), true));
        assert!(sql.contains("(1, '1', 1, 1), (2, '2-3', 2, 3)"), "{sql}");
    }
}
