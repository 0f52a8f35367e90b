#!/usr/bin/env bash
# The per-unit event totals (sql/023_experiment_totals.sql) under concurrency: an assignment and the unit's events
# written by two transactions at the same time must not miss each other. Session 1 stores assignments and holds its
# transaction open; session 2 meanwhile writes events of those units (after the assignment time) and commits. Each
# trigger alone would not see the other's uncommitted rows; the advisory-lock protocol makes the later one wait and
# then see them. Checked both ways round, then against a full rebuild; then four sessions writing events and
# assignments of the same units at once; then the unit counts under four connections' inserts, updates and deletes.
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

# The unit counts (same file) written from four connections at once: each connection counts into its own shard;
# every session also updates and deletes assignments another session made (so a shard's count goes below 0). The
# sums over shards must equal the assignments counted by hand, and a rebuild's.
pids=()
for s in 1 2 3 4; do
    next=$(( s % 4 + 1 ))
    session "do \$\$ begin
        for k in 1..15 loop
            insert into analytics.ab_experiment_assignments (experiment_id, variant_id, unit_id, assigned_at, attributes)
            select e.id, v.id, 'cnt-$s-' || k || '-' || i, timestamptz '2026-11-20 00:00+00' + make_interval(days => i % 3),
                   jsonb_build_object('plan', i % 2, 'writer', $s)
            from analytics.ab_experiments e cross join generate_series(1, 10) i
            join analytics.ab_experiment_variants v on v.experiment_id = e.id and v.key = case when i % 2 = 0 then 'a' else 'b' end;
            commit;
            update analytics.ab_experiment_assignments set attributes = '{\"plan\": \"moved\"}', assigned_at = assigned_at + interval '1 day'
            where unit_id like 'cnt-$next-%-3' and attributes <> '{\"plan\": \"moved\"}';
            commit;
            delete from analytics.ab_experiment_assignments where unit_id like 'cnt-$next-%-5' or unit_id like 'cnt-$next-%-8';
            commit;
        end loop;
    end \$\$;" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
counts_check="with c as (select experiment_id, phase, variant_id, assigned_on, attributes, sum(units) as u
                         from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5 having sum(units) <> 0),
                   a as (select experiment_id, phase, variant_id, (assigned_at at time zone 'UTC')::date, attributes, count(*)
                         from analytics.ab_experiment_assignments group by 1, 2, 3, 4, 5)
              select count(*) from ((select * from c except select * from a) union all (select * from a except select * from c)) d"
result=$(psql -X -At -d $db -c "select ($counts_check) || ' ' || (select count(distinct shard) from analytics.ab_experiment_unit_counts) || ' ' ||
    (select count(*) from analytics.ab_experiment_unit_counts where units < 0) || ' ' ||
    (select count(*) from analytics.ab_experiment_assignments where unit_id like 'cnt-%')")
read -r differing shards negative cnt_units <<<"$result"
echo "unit counts: $cnt_units units from 4 connections in $shards shards ($negative shard rows below 0); groups differing from the assignments: $differing"
[ "$differing" = 0 ] || { echo "the unit counts kept under concurrency differ from the assignments"; exit 1; }
[ "$shards" -gt 1 ] || { echo "expected the four connections to count into more than one shard"; exit 1; }
[ "$cnt_units" -gt 0 ] || { echo "no assignment left to count"; exit 1; }
# (each session deletes units of another writer's attributes, counted in the writer's shard: the deleting
# connection's shard goes below 0 for them unless the two connections share a shard)
[ "$negative" -gt 0 ] || { echo "expected shard rows below 0 (deletes from another connection)"; exit 1; }
psql -X -q -At -d $db -c "select analytics.rebuild_experiment_totals()" >/dev/null
differing=$(psql -X -At -d $db -c "$counts_check")
[ "$differing" = 0 ] || { echo "the rebuilt unit counts differ from the assignments"; exit 1; }
session "delete from analytics.ab_experiments where key = 'race';"
left=$(psql -X -At -d $db -c "select count(*) from analytics.ab_experiment_unit_counts")
[ "$left" = 0 ] || { echo "$left unit count rows left after the experiment was deleted"; exit 1; }
echo "concurrent assignments are counted exactly over shards; deleting the experiment removes its counts"
