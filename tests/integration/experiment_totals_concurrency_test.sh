#!/usr/bin/env bash
# The per-unit event totals (sql/023_experiment_totals.sql) under concurrency: an assignment and the unit's events
# written by two transactions at the same time must not miss each other. Session 1 stores assignments and holds its
# transaction open; session 2 meanwhile writes events of those units (after the assignment time) and commits. Each
# trigger alone would not see the other's uncommitted rows; the advisory-lock protocol makes the later one wait and
# then see them. Checked both ways round, then against a full rebuild; then four sessions writing events and
# assignments of the same units at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
db=experiment_totals_concurrency
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<SQL
create extension analytics_ext;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"$A"}', true);
select analytics.create_experiment('race', 'Race', '[{"key":"a"},{"key":"b"}]');
select analytics.start_experiment('race');
commit;
SQL
session() {
    psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<SQL
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"$A"}', false);
$1
SQL
}
assign='insert into analytics.ab_experiment_assignments (experiment_id, variant_id, unit_id, assigned_at)
        select e.id, v.id, '"'"'%s-'"'"' || i, timestamptz '"'"'2026-11-20 00:00+00'"'"'
        from analytics.ab_experiments e join analytics.ab_experiment_variants v on v.experiment_id = e.id and v.key = '"'"'a'"'"'
        cross join generate_series(1, 50) i;'
events='insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
        select '"'"'%s-'"'"' || i, '"'"'purchase'"'"', 2, timestamptz '"'"'2026-11-21 00:00+00'"'"' from generate_series(1, 50) i;'

# assignment first (held open for 2 s), events meanwhile
session "begin; $(printf "$assign" first) select pg_sleep(2); commit;" &
p1=$!
sleep 0.7
session "$(printf "$events" first)" &
p2=$!
wait $p1; wait $p2
# events first (held open), assignment meanwhile
session "begin; $(printf "$events" second) select pg_sleep(2); commit;" &
p1=$!
sleep 0.7
session "$(printf "$assign" second)" &
p2=$!
wait $p1; wait $p2

# four sessions at once, each writing events and assignments of the same 200 units in 20 small transactions
pids=()
for s in 1 2 3 4; do
    session "do \$\$ begin
        for k in 1..20 loop
            if ($s + k) % 2 = 0 then
                insert into analytics.ab_experiment_events (unit_id, metric, value, occurred_at)
                select 'mix-' || i, 'purchase', $s, timestamptz '2026-11-21 00:00+00' from generate_series(k * 10 - 9, k * 10) i;
            else
                insert into analytics.ab_experiment_assignments (experiment_id, variant_id, unit_id, assigned_at)
                select e.id, v.id, 'mix-' || i, timestamptz '2026-11-20 00:00+00'
                from analytics.ab_experiments e join analytics.ab_experiment_variants v on v.experiment_id = e.id and v.key = 'b'
                cross join generate_series(k * 10 - 9, k * 10) i
                on conflict do nothing;
            end if;
            commit;
        end loop;
    end \$\$;" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

result=$(psql -X -At -d $db -c "
    select (select count(*) from analytics.ab_experiment_unit_totals t join analytics.ab_experiment_assignments a on a.id = t.assignment_id where a.unit_id like 'first-%') || ' ' ||
           (select count(*) from analytics.ab_experiment_unit_totals t join analytics.ab_experiment_assignments a on a.id = t.assignment_id where a.unit_id like 'second-%')")
echo "totals rows: assignment-then-events $(echo "$result" | cut -d' ' -f1)/50, events-then-assignment $(echo "$result" | cut -d' ' -f2)/50"
[ "$result" = "50 50" ] || { echo "an assignment and its unit's concurrent events missed each other"; exit 1; }
kept=$(psql -X -At -d $db -c "select count(*) || ':' || md5(string_agg(assignment_id || metric || events || total, ',' order by assignment_id, metric)) from analytics.ab_experiment_unit_totals")
psql -X -q -At -d $db -c "select analytics.rebuild_experiment_totals()" >/dev/null
rebuilt=$(psql -X -At -d $db -c "select count(*) || ':' || md5(string_agg(assignment_id || metric || events || total, ',' order by assignment_id, metric)) from analytics.ab_experiment_unit_totals")
echo "maintained $kept, rebuilt $rebuilt"
[ "$kept" = "$rebuilt" ] || { echo "the totals kept under concurrency differ from a rebuild"; exit 1; }
echo "concurrent events and assignments are all counted; the kept totals equal a rebuild"
