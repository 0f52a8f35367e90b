#!/usr/bin/env bash
# Scores every detector on the Numenta Anomaly Benchmark's realAWSCloudwatch series (tests/data/nab, MIT; 17 files,
# 5-minute data). No per-file tuning: one configuration runs over every file (seasonal: a daily period of 288
# five-minute points). NAB's conventions: the first 15% of each file (at most 750 rows) is probation, not scored.
#
# Window level: a labelled window is found (TP) when at least one detection falls in it, missed (FN) otherwise;
# every detection outside all windows is a false alarm (FP). precision = TP / (TP + FP), recall = TP / (TP + FN).
# A detection is either every anomalous point (cooldown 0) or an alert (the first anomaly of an episode: cooldown
# 12 points = one hour), as a monitor would page.
# NAB score (standard profile, Lavin & Ahmad 2015): the first detection in a window earns 2·sigmoid(5·(points left
# in the window / window length)) - 1, a missed window -1, a false alarm -0.11 (less right after a window);
# normalised so that detecting nothing scores 0 and detecting every window at its start scores 100.
# Table 1: every method with its defaults. Table 2: NAB's own protocol, each method with its best threshold over
# the whole corpus (one threshold for all files) from a fixed grid, so the z-score gets the same chance.
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
create table nab_series as
select file, array_agg(ts order by ts) as ts, array_agg(value order by ts) as v,
       least(750, floor(count(*) * 0.15))::int as probation
from nab_points group by file;
-- windows as 1-based positions in their series
create table nab_windows as
select w.key as file, min(i) as s, max(i) as e, max(i) - min(i) + 1 as len
from jsonb_each(:'windows'::jsonb) w
cross join lateral jsonb_array_elements(w.value) x
join nab_series n on n.file = w.key
cross join lateral generate_subscripts(n.ts, 1) i
where n.ts[i] between (x->>0)::timestamp and (x->>1)::timestamp
group by w.key, x;
select count(*) as files, sum(cardinality(v)) as points, (select count(*) from nab_windows) as windows from nab_series;

create function pg_temp.nab_scores(configs jsonb)
returns table (config text, method text, threshold float8, cooldown int, windows_found bigint, windows bigint,
               false_alarms bigint, "precision" numeric, recall numeric, f1 numeric, nab_score numeric)
language sql as $f$
    with c as (
        select x->>'config' as config, x->>'method' as method, x->'params' as params
        from jsonb_array_elements(configs) x
    ), det as materialized (
        select c.config, s.file, d.idx
        from c cross join nab_series s
        cross join lateral analytics.detect_anomalies(s.v, c.method, c.params) d
        where d.alert and d.idx > s.probation
    ), tp as (
        select c.config, w.file, w.s, w.e, w.len, (select min(d.idx) from det d where d.config = c.config and d.file = w.file
                                                  and d.idx between w.s and w.e) as first_hit
        from c cross join nab_windows w
    ), fp as (
        select d.config, d.idx,
               (select w.e from nab_windows w where w.file = d.file and w.e < d.idx order by w.e desc limit 1) as prev_e,
               (select w.len from nab_windows w where w.file = d.file and w.e < d.idx order by w.e desc limit 1) as prev_len
        from det d
        where not exists (select 1 from nab_windows w where w.file = d.file and d.idx between w.s and w.e)
    ), raw as (
        select c.config,
               (select count(first_hit) from tp where tp.config = c.config) as found,
               (select count(*) from tp where tp.config = c.config) as windows,
               (select count(*) from fp where fp.config = c.config) as false_alarms,
               (select sum(case when first_hit is null then -1
                                else 2 / (1 + exp(-5.0 * (e - first_hit + 1) / len)) - 1 end)
                from tp where tp.config = c.config)
             + coalesce((select sum(0.11 * case when prev_e is null or (idx - prev_e)::float8 / prev_len > 3 then -1
                                                 else 2 / (1 + exp(5.0 * (idx - prev_e) / prev_len)) - 1 end)
                         from fp where fp.config = c.config), 0) as score
        from c
    )
    select c.config, c.method, (analytics.anomaly_params(c.method, c.params)->>'threshold')::float8,
           (analytics.anomaly_params(c.method, c.params)->>'cooldown')::int,
           r.found, r.windows, r.false_alarms,
           round(r.found::numeric / nullif(r.found + r.false_alarms, 0), 3),
           round(r.found::numeric / r.windows, 3),
           round((2.0 * r.found / nullif(2 * r.found + r.false_alarms + (r.windows - r.found), 0))::numeric, 3),
           round((100 * (r.score + r.windows) / (r.windows * (2 / (1 + exp(-5.0)) - 1) + r.windows))::numeric, 1)
    from c join raw r using (config)
$f$;

\echo
\echo Table 1: defaults (seasonal: period 288), every anomalous point (cooldown 0) and alerts (cooldown 12)
select method, cooldown, windows_found, windows, false_alarms, "precision", recall, f1, nab_score
from pg_temp.nab_scores((
    select jsonb_agg(jsonb_build_object('config', m || '/' || cd, 'method', m,
                                        'params', case when m = 'seasonal' then '{"period": 288}' else '{}' end::jsonb
                                                  || jsonb_build_object('cooldown', cd)))
    from unnest(array['zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood']) m, unnest(array[0, 12]) cd))
order by cooldown, f1 desc, method;

\echo
\echo Table 2: alerts (cooldown 12), each method at its best threshold over the corpus (grid: 0.5 to 4 times its default)
select * from (
select distinct on (method) method, threshold, windows_found, windows, false_alarms, "precision", recall, f1, nab_score
from pg_temp.nab_scores((
    select jsonb_agg(jsonb_build_object('config', m || '/' || f, 'method', m,
                                        'params', case when m = 'seasonal' then '{"period": 288}' else '{}' end::jsonb
                                                  || jsonb_build_object('cooldown', 12, 'threshold',
                                                         f * (analytics.anomaly_params(m)->>'threshold')::float8)))
    from unnest(array['zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood']) m,
         unnest(array[0.5, 0.75, 1, 1.5, 2, 3, 4]) f))
order by method, f1 desc, nab_score desc) best
order by f1 desc, method;
SQL
