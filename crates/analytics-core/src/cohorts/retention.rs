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
    /// the moment the table is drawn at, microseconds since the Unix epoch (the query reads it from $2)
    pub as_of: i64,
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

impl Spec {
    /// (period, first k, last k) of each column after period 0.
    fn columns(&self) -> Vec<(i32, i32, i32)> {
        columns(self).into_iter().map(|(p, _, lo, hi)| (p, lo, hi)).collect()
    }
}

fn columns(spec: &Spec) -> Vec<(i32, String, i32, i32)> {
    let max_k = spec.max_k();
    match &spec.mode {
        Mode::NDay => (1..=max_k).map(|k| (k, k.to_string(), k, k)).collect(),
        Mode::Unbounded => (1..=max_k).map(|k| (k, format!("{k}+"), k, max_k)).collect(),
        Mode::Brackets(b) => b
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| (i as i32 + 1, if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }, lo, hi))
            .collect(),
    }
}

/// (period, label, first k, last k) of each column after period 0, as a VALUES list.
fn columns_sql(spec: &Spec) -> String {
    let cols = columns(spec);
    format!(
        "select * from (values {}) as b(period, label, lo, hi)",
        cols.iter().map(|(p, l, lo, hi)| format!("({p}, '{l}', {lo}, {hi})")).collect::<Vec<_>>().join(", ")
    )
}

/// The query: rows (cohort, cohort_start, users, period, period_label, eligible, returned, rate).
///
/// First-seen cohorts over spans with calendar periods take one pass over the owner's spans (`calendar_sql`); the
/// rest the general query below, which joins each cohort member's anchor with their return events.
pub fn sql(spec: &Spec) -> (String, Vec<Value>) {
    if spec.calendar && spec.cohorts.is_empty() {
        if let (EventFilter::Spans(_), EventFilter::Spans(_)) = (&spec.start, &spec.ret) {
            return calendar_sql(spec);
        }
    }
    general_sql(spec)
}

/// One pass over the owner's spans, grouped by end user: the first start event (the anchor) and, as a bit set, the
/// calendar periods (from the one holding from_time to the one after as_of's; their starts are `bounds`) in which
/// they did the return event. An end user's return periods relative to their anchor's are those bits shifted by the
/// anchor's period; eligibility depends on the anchor's period only (has period k begun by as_of?).
///
/// The end users are then grouped by (anchor period, return periods): a few thousand groups, and each column sums the
/// groups with a return in its periods. Up to 62 periods the bit set is a bigint; beyond, a bit string (of which only
/// the periods after the anchor's are kept).
///
/// The grouping by end user runs per partition, in the order of the partition's (user_id, end_user_id, start_time)
/// index, and in parallel workers (analytics.retention sets enable_partitionwise_aggregate): the partial groups are
/// merged by a hash aggregate, since an end user's spans may lie in several partitions.
fn calendar_sql(spec: &Spec) -> (String, Vec<Value>) {
    let mut params = Params::default();
    let tz = params.text(Value::String(spec.time_zone.clone()));
    let from = params.time(spec.from);
    let to = params.time(spec.to);
    let unit = spec.period.unit();
    let label = if spec.period == Period::Month { "YYYY-MM" } else { "YYYY-MM-DD" };
    let start_where = spec.start.filter_sql(&mut params);
    let return_where = spec.ret.filter_sql(&mut params);
    let bounds = format!(
        "bounds as ( \
             select array_agg(d at time zone {tz} order by d) as b, count(*)::integer as n \
             from generate_series(date_trunc('{unit}', {from} at time zone {tz}), \
                                  date_trunc('{unit}', $2 at time zone {tz}) + interval '1 {unit}', interval '1 {unit}') d)"
    );
    let per_user = |seen: &str| {
        format!(
            "per_user as ( \
                 select min(s.start_time){start} as anchor, {seen} as seen \
                 from analytics.llm_traces s \
                 where s.user_id = $1 and s.end_user_id is not null and s.start_time < $2 \
                 group by s.end_user_id)",
            start = if start_where.is_empty() { String::new() } else { format!(" filter (where {start_where})") },
        )
    };
    let bucket = "(width_bucket(s.start_time, (select b from bounds)) - 1)";
    let returns = format!("s.start_time >= {from}{}", if return_where.is_empty() { String::new() } else { format!(" and {return_where}") });
    let columns = columns_sql(spec);
    let tail = format!(
        "select s.cohort, s.cohort_start, s.users, 0 as period, '0'::text as period_label, s.users as eligible, s.users as returned, \
                1.0::double precision as rate \
         from sizes s \
         union all \
         select s.cohort, s.cohort_start, s.users, c.period, c.label, e.eligible, r.returned, \
                case when e.eligible > 0 then r.returned::double precision / e.eligible end \
         from sizes s cross join columns c \
         cross join lateral (select case when s.reached >= c.lo then s.users else 0 end as eligible) e \
         cross join lateral (select {returned} as returned) r \
         order by 2, 1, 4",
        returned = "coalesce(s.returned[c.period], 0)::bigint"
    );
    let cohorts = |pa: &str| {
        format!(
            "to_char((select b from bounds)[{pa} + 1] at time zone {tz}, '{label}') as cohort, (select b from bounds)[{pa} + 1] as cohort_start, \
             width_bucket($2, (select b from bounds)) - 1 - {pa} as reached"
        )
    };
    // the periods an end user's anchor could be followed by: at most as many as there are between from_time and
    // as_of (a day may have 23 hours, a month 28 days)
    let shortest = match spec.period {
        Period::Day => 23 * 3600,
        Period::Week => 7 * 24 * 3600 - 3600,
        Period::Month => 28 * 24 * 3600 - 3600,
    } as i64;
    let most_periods = (spec.as_of.saturating_sub(spec.from)).max(0) / 1_000_000 / shortest + 3;
    let sql = if most_periods <= 62 {
        // bit i of `seen`: a return event in period i (bounds[i + 1] <= t < bounds[i + 2])
        let filtered = spec
            .columns()
            .iter()
            .map(|&(_, lo, hi)| {
                let mask = (1i64 << (hi - lo + 1)) - 1;
                format!("coalesce(sum(p.n) filter (where p.pa + {lo} <= 62 and (p.seen >> (p.pa + {lo})) & {mask} <> 0), 0)")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "with {bounds}, {per_user}, \
             patterns as (select width_bucket(u.anchor, (select b from bounds)) - 1 as pa, u.seen, count(*) as n \
                          from per_user u where u.anchor >= {from} and u.anchor < {to} group by 1, 2), \
             sizes as (select {cohorts}, sum(p.n)::bigint as users, array[{filtered}] as returned from patterns p group by p.pa), \
             columns as ({columns}) {tail}",
            per_user = per_user(&format!("coalesce(bit_or(1::bigint << {bucket}) filter (where {returns}), 0)")),
            cohorts = cohorts("p.pa"),
        )
    } else {
        let max_k = spec.max_k();
        let filtered = spec
            .columns()
            .iter()
            .map(|&(_, lo, hi)| format!("coalesce(sum(p.n) filter (where strpos(substring(p.pattern from {lo} for {}), '1') > 0), 0)", hi - lo + 1))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "with {bounds}, {per_user}, \
             patterns as (select width_bucket(u.anchor, (select b from bounds)) - 1 as pa, \
                                 coalesce(substring(u.seen::text from width_bucket(u.anchor, (select b from bounds)) + 1 for {max_k}), '') as pattern, \
                                 count(*) as n \
                          from per_user u where u.anchor >= {from} and u.anchor < {to} group by 1, 2), \
             sizes as (select {cohorts}, sum(p.n)::bigint as users, array[{filtered}] as returned from patterns p group by p.pa), \
             columns as ({columns}) {tail}",
            per_user = per_user(&format!(
                "bit_or(set_bit(repeat('0', (select n from bounds))::bit varying, {bucket}, 1)) filter (where {returns})"
            )),
            cohorts = cohorts("p.pa"),
        )
    };
    (sql, params.0)
}

/// Any cohorts, periods and events: each member's anchor joined with their return events.
fn general_sql(spec: &Spec) -> (String, Vec<Value>) {
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
    let columns = columns_sql(spec);
    let per_user = match &spec.mode {
        Mode::NDay => "select c.period, r.cohort, r.end_user_id from returns r join columns c on r.k = c.lo".to_string(),
        Mode::Unbounded => "select c.period, u.cohort, u.end_user_id from (select cohort, end_user_id, max(k) as last_k from returns group by 1, 2) u \
             join columns c on u.last_k >= c.lo"
            .to_string(),
        Mode::Brackets(_) => {
            "select distinct c.period, r.cohort, r.end_user_id from returns r join columns c on r.k between c.lo and c.hi".to_string()
        }
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
            as_of: 86_400_000_000 * 30,
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
    fn a_long_horizon_takes_a_bit_string_a_short_one_a_bigint() {
        let mut s = spec(Mode::NDay, true);
        s.period = Period::Day;
        let (short, _) = sql(&s);
        assert!(short.contains("bit_or(1::bigint <<") && !short.contains("bit varying"), "{short}");
        s.as_of = 86_400_000_000 * 70;
        let (long, _) = sql(&s);
        assert!(long.contains("bit varying") && long.contains("strpos(substring(p.pattern"), "{long}");
    }

    #[test]
    fn brackets_are_labelled() {
        let (sql, _) = sql(&spec(Mode::Brackets(vec![(1, 1), (2, 3)]), true));
        assert!(sql.contains("(1, '1', 1, 1), (2, '2-3', 2, 3)"), "{sql}");
    }
}
