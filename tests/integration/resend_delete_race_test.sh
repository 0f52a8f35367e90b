#!/usr/bin/env bash
# A re-sent span deleted by another transaction while ingest writes it (retention, a DBA's DELETE: span locks do not
# hold deletes off) must not be lost silently: ingest finds the stored span, its UPDATE waits for the deleting
# transaction and then finds nothing. The call must fail with 40001 (retry), and the retry stores the span again.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=resend_delete_race
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
claims='{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}'
span='[{"trace_id": "t1", "span_id": "s1", "name": "chat", "start_time": "2026-11-20T09:00:00Z", "end_time": "2026-11-20T09:00:01Z"}]'

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "drop database if exists $db" -c "create database $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
create extension analytics_ext;
begin;
set local role authenticated;
select set_config('request.jwt.claims', '$claims', true);
select analytics.ingest_spans('$span');
commit;
SQL

# session 1: deletes the span and holds its row lock for 2 s before committing
psql -X -q -v ON_ERROR_STOP=1 -d "$db" > "$dir/delete.txt" 2>&1 <<SQL &
begin;
set local role authenticated;
select set_config('request.jwt.claims', '$claims', true);
delete from analytics.llm_traces where span_id = 's1';
select pg_sleep(2);
commit;
SQL
deleter=$!
sleep 0.7
# session 2: re-sends the span meanwhile (as PostgREST would)
psql -X -q -d "$db" > "$dir/resend.txt" 2>&1 <<SQL || true
\set VERBOSITY verbose
begin;
set local role authenticated;
select set_config('request.jwt.claims', '$claims', true);
select analytics.ingest_spans('$span');
commit;
SQL
wait "$deleter"
cat "$dir/resend.txt" | grep -E "ERROR|stored" || true
grep -q "ERROR:  40001: spans: 1 of the batch's 1 spans were deleted by another transaction" "$dir/resend.txt" || {
    echo "FAIL: the re-send racing the delete did not fail with 40001"; cat "$dir/resend.txt"; exit 1; }

# the retry stores it again
stored=$(psql -X -At -v ON_ERROR_STOP=1 -d "$db" <<SQL
begin;
set local role authenticated;
select set_config('request.jwt.claims', '$claims', true) is null;
select analytics.ingest_spans('$span')->>'stored';
commit;
select count(*) from analytics.llm_traces;
SQL
)
echo "retry: $(echo $stored | tr '\n' ' ')"
[ "$(echo "$stored" | tail -1)" = 1 ] || { echo "FAIL: the retry did not store the span"; exit 1; }
echo "ok: a re-send racing a delete fails with 40001 instead of losing the span; the retry stores it"
