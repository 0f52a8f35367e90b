#!/usr/bin/env python3
"""analytics.retention against an independent calculation (Python's datetime and zoneinfo, no SQL), over the same
synthetic spans: every mode (n_day, unbounded, brackets), calendar and rolling days, weeks and months, first-seen
cohorts and a named cohort, in Europe/Berlin (daylight saving ends 2026-10-25) and America/New_York (2026-11-01),
with spans placed on either side of local midnight and of the change itself.

Usage: retention_oracle.py DB   (PGHOST/PGPORT/PGUSER of a cluster with the extension; the database is written to)
Prints one line per comparison and exits 1 on the first difference (with both tables).
"""

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DB = sys.argv[1]
OWNER = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
UTC = timezone.utc
AS_OF = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
FROM, TO = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)


def psql(sql, *, rows=False):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", DB, "-c",
         f"set role authenticated; select set_config('request.jwt.claims', '{{\"sub\":\"{OWNER}\",\"role\":\"authenticated\"}}', false) is null;" + sql],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed: {out.stderr}")
    lines = out.stdout.splitlines()[1:]  # the set_config line
    return [line.split("\t") for line in lines if line] if rows else lines


# ---- synthetic data: 80 end users, each with a few visits between September 25 and December 15 ------------------
rng = random.Random(20261025)
berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
spans = []
for u in range(80):
    # a first visit, often near a local midnight or on a daylight-saving day, then returns at varied gaps
    zone = berlin if u % 2 == 0 else new_york
    day = datetime(2026, 9, 25) + timedelta(days=rng.randrange(0, 60))
    if u % 7 == 0:
        day = datetime(2026, 10, 25) if zone is berlin else datetime(2026, 11, 1)
    minute = rng.choice([5, 30, 23 * 60 + 30, 23 * 60 + 55, 12 * 60, 2 * 60 + 30, 1 * 60 + 30])
    t = (day + timedelta(minutes=minute)).replace(tzinfo=zone).astimezone(UTC)
    visits = [t]
    for _ in range(rng.randrange(0, 8)):
        t = t + timedelta(hours=rng.choice([1, 20, 23, 24, 25, 47, 49, 24 * 6 + 23, 24 * 7 + 1, 24 * 13, 24 * 29, 24 * 31]))
        visits.append(t)
    for i, v in enumerate(visits):
        op = "retrieval" if (i == 0 and u % 3 == 0) else "chat"
        spans.append({"trace_id": f"o-{u}-{i}", "span_id": "a", "name": op, "operation_type": op,
                      "start_time": v.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "end_user_id": f"user-{u:02d}"})
members = [f"user-{u:02d}" for u in range(80) if u % 5 in (0, 1)]

psql("delete from analytics.llm_traces; delete from analytics.user_cohorts;")
psql(f"select analytics.ingest_spans($json${json.dumps(spans)}$json$::jsonb) is null;")
psql(f"select analytics.create_cohort('oracle-members') is null; "
     f"select analytics.add_cohort_members('oracle-members', $json${json.dumps(members)}$json$) is null;")


# ---- the calculation ------------------------------------------------------------------------------------------------
def parse(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


events = [(s["end_user_id"], parse(s["start_time"]), s["operation_type"]) for s in spans]


def period_start_local(t, period, zone):
    """The local start (naive) of the calendar period holding t."""
    local = t.astimezone(zone).replace(tzinfo=None)
    if period == "day":
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        d = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return d - timedelta(days=d.weekday())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_periods(local_start, k, period):
    if period == "day":
        return local_start + timedelta(days=k)
    if period == "week":
        return local_start + timedelta(days=7 * k)
    m = local_start.month - 1 + k
    return local_start.replace(year=local_start.year + m // 12, month=m % 12 + 1)


def offset(anchor, t, period, calendar, zone):
    if not calendar:
        length = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}[period]
        return int((t - anchor).total_seconds() // length)
    a, b = period_start_local(anchor, period, zone), period_start_local(t, period, zone)
    if period == "month":
        return (b.year * 12 + b.month) - (a.year * 12 + a.month)
    return (b - a).days // (7 if period == "week" else 1)


def expected(period, periods, mode, brackets, calendar, zone, start_op, return_op, cohorts):
    start = lambda op: start_op is None or op == start_op
    ret = lambda op: return_op is None or op == return_op
    users = sorted({u for u, _, _ in events})
    groups = []  # (cohort label, cohort_start, user, anchor)
    for u in users:
        times = sorted(t for uu, t, op in events if uu == u and start(op) and t < AS_OF)
        if cohorts:
            times = [t for t in times if FROM <= t < TO]
            if times and u in members:
                groups.append(("oracle-members", FROM, u, times[0]))
        elif times and FROM <= times[0] < TO:
            ls = period_start_local(times[0], period, zone)
            label = ls.strftime("%Y-%m") if period == "month" else ls.strftime("%Y-%m-%d")
            groups.append((label, ls.replace(tzinfo=zone).astimezone(UTC), u, times[0]))
    columns = ([(k, str(k), k, k) for k in range(1, periods + 1)] if mode == "n_day" else
               [(k, f"{k}+", k, periods) for k in range(1, periods + 1)] if mode == "unbounded" else
               [(i + 1, str(lo) if lo == hi else f"{lo}-{hi}", lo, hi) for i, (lo, hi) in enumerate(brackets)])
    top = max(hi for _, _, _, hi in columns)
    rows = []
    for label, cstart in sorted({(g[0], g[1]) for g in groups}, key=lambda x: (x[1], x[0])):
        members_ = [g for g in groups if g[0] == label]
        n = len(members_)
        rows.append((label, n, 0, "0", n, n))
        for period_no, plabel, lo, hi in columns:
            eligible = returned = 0
            for _, _, u, anchor in members_:
                reached = min(offset(anchor, AS_OF, period, calendar, zone), top)
                if reached >= lo:
                    eligible += 1
                ks = {offset(anchor, t, period, calendar, zone) for uu, t, op in events
                      if uu == u and ret(op) and anchor <= t < AS_OF}
                ks = {k for k in ks if 1 <= k <= top}
                if (mode == "unbounded" and ks and max(ks) >= lo) or (mode != "unbounded" and any(lo <= k <= hi for k in ks)):
                    returned += 1
            rows.append((label, n, period_no, plabel, eligible, returned))
    return rows


def actual(period, periods, mode, brackets, calendar, zone, start_op, return_op, cohorts):
    ev = lambda op: "{}" if op is None else json.dumps({"operation_type": op})
    sql = (f"select cohort, users, period_number, period_label, eligible, returned from analytics.retention("
           f"'{FROM.isoformat()}', '{TO.isoformat()}', period => '{period}', periods => {periods}, "
           f"start_event => '{ev(start_op)}', return_event => '{ev(return_op)}', mode => '{mode}', "
           f"brackets => {('$$' + json.dumps(brackets) + '$$') if brackets else 'null'}, calendar => {str(calendar).lower()}, "
           f"time_zone => '{zone.key}', cohorts => {'array[$$oracle-members$$]' if cohorts else 'null'}, as_of => '{AS_OF.isoformat()}') "
           f"order by cohort_start, cohort, period_number;")
    return [(r[0], int(r[1]), int(r[2]), r[3], int(r[4]), int(r[5])) for r in psql(sql, rows=True)]


cases = []
for zone in (berlin, new_york):
    for period, periods in (("day", 9), ("week", 5), ("month", 2)):
        for calendar in (True, False):
            for mode, brackets in (("n_day", None), ("unbounded", None),
                                  ("brackets", [[1, 1], [2, 3], [4, periods]] if periods >= 4 else [[1, 1], [2, periods]])):
                cases.append((period, periods, mode, brackets, calendar, zone, None, None, False))
    cases.append(("day", 7, "n_day", None, True, zone, "retrieval", "chat", False))
    cases.append(("week", 4, "unbounded", None, False, zone, None, "chat", True))
    cases.append(("day", 30, "brackets", [[1, 1], [2, 7], [8, 30]], True, zone, "chat", "chat", True))

rows_compared = 0
for c in cases:
    want, got = expected(*c), actual(*c)
    name = (f"{c[0]} x{c[1]} {c[2]}{' ' + json.dumps(c[3]) if c[3] else ''} {'calendar' if c[4] else 'rolling'} "
            f"{c[5].key} start={c[6] or 'any'} return={c[7] or 'any'}{' cohort' if c[8] else ''}")
    if want != got:
        print(f"FAIL: {name}")
        for a, b in zip(want + [None] * len(got), got + [None] * len(want)):
            if a is None and b is None:
                break
            print(f"  {'  ' if a == b else '≠ '}expected {a}   got {b}")
        sys.exit(1)
    rows_compared += len(want)
    print(f"ok: {name}: {len(want)} rows, {len({r[0] for r in want})} cohorts")
print(f"retention oracle: {len(cases)} cases, {rows_compared} rows equal")
