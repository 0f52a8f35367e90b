#!/usr/bin/env bash
# assign_variant with storage under 2 concurrent clients (pgbench, 20 s each): new units (every call stores a row;
# also without the trigger that keeps the unit counts, to show what that costs) and returning units (every call
# finds its stored row), next to peek_variant (same lookup and hashing, nothing stored) as the baseline, in the same
# run. Each transaction does what PostgREST does: role authenticated, JWT claims, one call. Run by scripts/bench.sh
# with PGHOST/PGPORT of its throwaway cluster and database $1.
set -euo pipefail
db=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000b","role":"authenticated"}', false) is not null as owner \gset
select key from analytics.create_experiment('bench-assign', 'Assignment throughput', '[{"key":"control"},{"key":"treatment"}]') \gset
select status from analytics.start_experiment('bench-assign') \gset
SQL
prelude='begin;
set local role authenticated;
select set_config('"'"'request.jwt.claims'"'"', '"'"'{"sub":"00000000-0000-4000-8000-00000000000b","role":"authenticated"}'"'"', true);'
printf '%s\nselect analytics.assign_variant('"'"'bench-assign'"'"', '"'"'new-'"'"' || :client_id || '"'"'-'"'"' || :i);\ncommit;\n' \
    "\\set i random(1, 1000000000)
$prelude" > "$dir/new.sql"
printf '%s\nselect analytics.assign_variant('"'"'bench-assign'"'"', '"'"'old-'"'"' || :i);\ncommit;\n' \
    "\\set i random(1, 10000)
$prelude" > "$dir/returning.sql"
printf '%s\nselect analytics.peek_variant('"'"'bench-assign'"'"', '"'"'peek-'"'"' || :i);\ncommit;\n' \
    "\\set i random(1, 1000000000)
$prelude" > "$dir/peek.sql"
# the returning units exist before the run
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "select set_config('request.jwt.claims', '{\"sub\":\"00000000-0000-4000-8000-00000000000b\",\"role\":\"authenticated\"}', false) is not null" \
    -c "select count(*) from generate_series(1, 10000) i, analytics.assign_variant('bench-assign', 'old-' || i)" >/dev/null
# statistics as autovacuum keeps them (it analyzes a table within a minute of such a load): without any, the planner
# may look a unit up through the experiment's index and read all its rows (about 800 calls/s instead of thousands)
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "analyze analytics.ab_experiment_assignments, analytics.ab_experiment_variants, analytics.ab_experiments"
tps() { pgbench -n -c 2 -j 2 -T 20 -f "$dir/$1.sql" "$db" 2>&1 | awk '/^tps/ {print int($3)}'; }
counts() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "alter table analytics.ab_experiment_assignments $1 trigger ab_experiment_assignments_counts_insert"; }
# new units twice with the unit counts' trigger (sql/023_experiment_totals.sql) and twice without it, alternating
new1=$(tps new); counts disable; bare1=$(tps new); counts enable; new2=$(tps new); counts disable; bare2=$(tps new); counts enable
new=$(( (new1 + new2) / 2 )); bare=$(( (bare1 + bare2) / 2 ))
returning=$(tps returning); peek=$(tps peek)
stored=$(psql -X -A -t -d "$db" -c "select count(*) from analytics.ab_experiment_assignments")
echo " scenario (2 clients, 20 s)                    | calls per second | vs peek_variant"
echo "-----------------------------------------------+------------------+----------------"
printf ' assign_variant, new units (mean of 2)         | %16s | %14s\n' "$new" "$(python3 -c "print(f'{$new/$peek:.2f}')")"
printf '   the same without the unit counts trigger    | %16s | %14s\n' "$bare" "$(python3 -c "print(f'{$bare/$peek:.2f}')")"
printf ' assign_variant, returning units               | %16s | %14s\n' "$returning" "$(python3 -c "print(f'{$returning/$peek:.2f}')")"
printf ' peek_variant (nothing stored)                 | %16s | %14s\n' "$peek" "1.00"
echo " assignments stored: $stored (runs: with counts $new1, $new2; without $bare1, $bare2)"
