#!/usr/bin/env bash
# Sticky assignment under concurrency: 4 sessions assign the same 500 units at the same time. Every unit must end
# up with exactly one stored assignment, and every session must have been told that same variant.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database concurrent_assignment'
psql -X -q -v ON_ERROR_STOP=1 -d concurrent_assignment >/dev/null <<SQL
create extension analytics_ext;
create table seen (session int, unit_id text, variant_key text);
grant all on seen to authenticated;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"$A"}', true);
select analytics.create_experiment('race', 'Race', '[{"key":"a","weight":0.34},{"key":"b","weight":0.33},{"key":"c","weight":0.33}]');
select analytics.start_experiment('race');
commit;
SQL
pids=()
for s in 1 2 3 4; do
    psql -X -q -v ON_ERROR_STOP=1 -d concurrent_assignment >/dev/null <<SQL &
set role authenticated;
select set_config('request.jwt.claims', '{"sub":"$A"}', false);
-- one transaction per unit, as an API would do it
do \$\$ begin
    for i in 1..500 loop
        insert into seen select $s, 'unit-' || i, (analytics.assign_variant('race', 'unit-' || i)).variant_key;
        commit;
    end loop;
end \$\$;
SQL
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
result=$(psql -X -At -d concurrent_assignment -c "
    select (select count(*) from analytics.ab_experiment_assignments) || ' ' ||
           (select count(distinct unit_id) from analytics.ab_experiment_assignments) || ' ' ||
           (select count(*) from (select unit_id from seen group by unit_id having count(distinct variant_key) > 1) x) || ' ' ||
           (select count(*) from seen s join analytics.ab_experiment_assignments a on a.unit_id = s.unit_id
                                   join analytics.ab_experiment_variants v on v.id = a.variant_id
            where v.key <> s.variant_key)")
echo "assignments, distinct units, units told different variants, answers differing from the stored one: $result"
[ "$result" = "500 500 0 0" ]
