#!/usr/bin/env bash
# Scores every detector on the Numenta Anomaly Benchmark's realAWSCloudwatch series (tests/data/nab, MIT; 17 files,
# 5-minute data), each with its defaults for every file (seasonal: a daily period of 288 five-minute points; no
# per-file tuning). NAB's conventions: the first 15% of each file (at most 750 rows) is probation and not scored.
# Window level: a labelled window is found (TP) when at least one detection falls in it, missed (FN) otherwise;
# every detection outside all windows is a false alarm (FP). precision = TP / (TP + FP), recall = TP / (TP + FN).
# Run by scripts/bench.sh with the database as $1.
set -euo pipefail
db=$1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "create table nab_points (file text, ts timestamp, value float8)"
for f in tests/data/nab/data/realAWSCloudwatch/*.csv; do
    name="realAWSCloudwatch/$(basename "$f")"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "create temp table p (ts timestamp, value float8)" \
        -c "\\copy p from '$f' with (format csv, header true)" \
        -c "insert into nab_points select '$name', ts, value from p"
done
psql -X -q -v ON_ERROR_STOP=1 -v windows="$(cat tests/data/nab/combined_windows.json)" -d "$db" <<'SQL'
\pset footer off
create table nab_windows as
select w.key as file, (x->>0)::timestamp as w_start, (x->>1)::timestamp as w_end
from jsonb_each(:'windows'::jsonb) w, jsonb_array_elements(w.value) x
where w.key in (select distinct file from nab_points);
create table nab_series as
select file, array_agg(ts order by ts) as ts, array_agg(value order by ts) as v,
       least(750, floor(count(*) * 0.15))::int as probation
from nab_points group by file;
select count(*) as files, sum(cardinality(v)) as points, (select count(*) from nab_windows) as windows from nab_series;
create table nab_detections as
select m.method, s.file, s.ts[d.idx] as ts
from nab_series s
cross join (values ('zscore', '{}'::jsonb), ('mad', '{}'), ('iqr', '{}'), ('ewma', '{}'),
                   ('seasonal', '{"period": 288}'), ('cusum', '{}')) m(method, params)
cross join lateral analytics.detect_anomalies(s.v, m.method, m.params) d
where d.is_anomaly and d.idx > s.probation;
with methods as (select distinct method from nab_detections union select 'zscore'),
hits as (
    select m.method, count(*) filter (where exists (select 1 from nab_detections d where d.method = m.method and d.file = w.file
                                                     and d.ts between w.w_start and w.w_end)) as tp,
           count(*) as windows
    from methods m cross join nab_windows w group by m.method
), alarms as (
    select m.method, count(d.*) filter (where not exists (select 1 from nab_windows w where w.file = d.file
                                                        and d.ts between w.w_start and w.w_end)) as fp,
           count(d.*) as detections
    from methods m left join nab_detections d on d.method = m.method group by m.method
)
select h.method, h.tp as windows_found, h.windows, a.fp as false_alarms, a.detections,
       round(h.tp::numeric / nullif(h.tp + a.fp, 0), 3) as precision,
       round(h.tp::numeric / h.windows, 3) as recall,
       round(2 * (h.tp::numeric / nullif(h.tp + a.fp, 0)) * (h.tp::numeric / h.windows)
             / nullif(h.tp::numeric / nullif(h.tp + a.fp, 0) + h.tp::numeric / h.windows, 0), 3) as f1
from hits h join alarms a using (method)
order by f1 desc nulls last;
SQL
