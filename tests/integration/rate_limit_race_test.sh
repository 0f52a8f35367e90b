#!/usr/bin/env bash
# The rate limiter under concurrency: 8 clients (pgbench) race record_span for one owner, each call its own
# transaction as PostgREST runs it (role authenticated, JWT claims); a rejected call (SQLSTATE PGRST) is caught so
# that pgbench goes on.
#   1. A fixed test clock: all 400 calls fall in one window of the built-in 100 per minute; exactly 100 are admitted
#      and exactly 100 spans stored.
#   2. The real clock, a limit of 20 per second, 8 clients for 4 s: every admission is recorded by an audit trigger
#      on the limiter's state (test-only); in no rolling 1 s window were more than 20 admitted, 20 were (the limit
#      is reached, not undershot), and every admitted call stored its span while no rejected one did.
#   3. A limit changed while an owner's first call reads the old one (the change commits after the call): the
#      window keeps a copy of the limit it was admitted under, and that copy must not outlive the change. The next
#      call is judged by the new limit (1 per minute): refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=rate_limit_race
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create extension analytics_ext;
create table admissions (user_id uuid, at timestamptz);
create function record_admission() returns trigger language plpgsql as $$
begin
    insert into public.admissions values (new.user_id, new.admitted[array_length(new.admitted, 1)]);
    return new;
end
$$;
create trigger audit after insert or update on analytics.rate_limit_state for each row execute function record_admission();
insert into analytics.rate_limits (user_id, action, max_calls, per)
values ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'ingest', 20, '1 second');
SQL

call_as() {  # OWNER: one record_span per transaction, a 429 caught
    cat <<SQL
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"$1","role":"authenticated"}', true);
do \$\$ begin
    perform analytics.record_span('race-' || txid_current(), 's', 'step', now());
exception when sqlstate 'PGRST' then null;
end \$\$;
commit;
SQL
}

# 1. fixed clock: 8 clients x 50 calls
call_as aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa > "$dir/alice.sql"
PGOPTIONS="-c analytics.rate_limit_clock=2026-11-20T12:00:00Z" \
    pgbench -n -c 8 -j 4 -t 50 -f "$dir/alice.sql" "$db" > "$dir/pgbench1.txt" 2>&1 || { cat "$dir/pgbench1.txt"; exit 1; }
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$dir/pgbench1.txt")
spans=$(psql -X -At -d "$db" -c "select count(*) from analytics.llm_traces where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'")
window=$(psql -X -At -d "$db" -c "select cardinality(admitted) from analytics.rate_limit_state where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'")
echo "fixed clock: $processed calls, $spans spans stored, $window admissions in the window (limit 100 per minute)"
[ "$processed" = 400 ] && [ "$spans" = 100 ] && [ "$window" = 100 ] || { echo "FAIL: expected 400 calls, 100 admitted"; exit 1; }

# 2. real clock: 8 clients for 4 s against 20 per second
call_as bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb > "$dir/bob.sql"
pgbench -n -c 8 -j 4 -T 4 -f "$dir/bob.sql" "$db" > "$dir/pgbench2.txt" 2>&1 || { cat "$dir/pgbench2.txt"; exit 1; }
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$dir/pgbench2.txt")
read -r admitted spans most <<<"$(psql -X -At -F ' ' -d "$db" -c "
    select (select count(*) from admissions where user_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'),
           (select count(*) from analytics.llm_traces where user_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'),
           (select max(c) from (select count(*) over (order by at range between interval '0.999999 s' preceding and current row) as c
                                from admissions where user_id = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb') w)")"
echo "real clock: $processed calls in 4 s, $admitted admitted, $spans spans stored, at most $most admitted in any rolling 1 s (limit 20)"
[ "$processed" -gt 200 ] || { echo "FAIL: too few calls ($processed) to race the limiter"; exit 1; }
[ "$admitted" = "$spans" ] || { echo "FAIL: admitted calls and stored spans differ"; exit 1; }
[ "$most" = 20 ] || { echo "FAIL: the most admitted in a rolling second is $most, not 20"; exit 1; }

# 3. a first call racing a change of its limit
carol=cccccccc-cccc-4ccc-8ccc-cccccccccccc
psql -X -q -v ON_ERROR_STOP=1 -d "$db" > "$dir/dba.txt" 2>&1 <<SQL &
begin;
insert into analytics.rate_limits (user_id, action, max_calls, per) values ('$carol', 'ingest', 1, '1 minute');
select pg_sleep(2);
commit;
SQL
dba=$!
sleep 1
first=$(psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "set role authenticated" \
    -c "select set_config('request.jwt.claims', '{\"sub\":\"$carol\",\"role\":\"authenticated\"}', false) is null" \
    -c "select analytics.check_rate_limit('ingest')->>'limit'" | tail -1)
wait "$dba" || { cat "$dir/dba.txt"; exit 1; }
second=$(psql -X -At -d "$db" -c "set role authenticated" \
    -c "select set_config('request.jwt.claims', '{\"sub\":\"$carol\",\"role\":\"authenticated\"}', false) is null" \
    -c "do \$\$ begin perform analytics.check_rate_limit('ingest'); raise notice 'admitted';
        exception when sqlstate 'PGRST' then raise notice 'refused'; end \$\$" 2>&1 | sed -n 's/.*NOTICE:  //p')
echo "limit changed during a first call: the first admitted under the limit it read ($first per minute), the next $second under the new one (1 per minute)"
[ "$first" = 100 ] && [ "$second" = refused ] || { echo "FAIL: the window's copy of the limit outlived the change"; exit 1; }
echo "rate limit race: exact under 8 concurrent clients"
