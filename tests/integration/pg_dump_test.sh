#!/usr/bin/env bash
# pg_dump keeps the rows of every analytics_ext table (they are registered with pg_extension_config_dump):
# populate a database, dump it, restore into a new database, and compare every table row for row.
set -euo pipefail
cd "$(dirname "$0")/../.."

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database dump_src' -c 'create database dump_dst'
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c 'create extension analytics_ext' -f tests/integration/seed_every_table.sql
# tables that 0.1.0 did not have (the seed also serves upgrade_test at 0.1.0)
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "insert into analytics.retention_policies (user_id, keep_days)
    values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 30), ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 365)"
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "insert into analytics.rate_limits (user_id, action, max_calls, per)
    values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest', 1000, '1 minute'), (null, 'export_csv', 5, '1 hour')" \
    -c "select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"}', false)" \
    -c "set role authenticated" -c "select analytics.check_rate_limit('export_csv')" \
    -c "select count(*) from analytics.trace_metrics('1 hour', '2026-01-01', '2027-01-01')"

pg_dump -Fc -d dump_src -f "$CLUSTER_DIR/dump_src.pgdump"
pg_restore --exit-on-error -d dump_dst "$CLUSTER_DIR/dump_src.pgdump"

tables=$(psql -X -At -d dump_src -c "select string_agg(c.relname, ' ' order by c.relname) from pg_class c
    join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'analytics' and c.relkind = 'r'")
checksum() {
    psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '')
        from analytics.$2 t"
}
for t in $tables; do
    if [ "$t" = rate_limit_state ] || [ "${t#cache_}" != "$t" ]; then
        # the limiter's window and the result cache are not dumped (UNLOGGED; checked below in the dump itself)
        echo "$t: source $(checksum dump_src "$t") (not dumped)"
        continue
    fi
    src=$(checksum dump_src "$t")
    dst=$(checksum dump_dst "$t")
    echo "$t: source $src, restored $dst"
    [ "${src%%:*}" -gt 0 ] || { echo "seed left $t empty"; exit 1; }
    [ "$src" = "$dst" ] || { echo "pg_dump lost rows of $t"; exit 1; }
done
# the dump itself carries the rows (not only the restore); written to a file first: `pg_restore | grep -q` would
# fail under pipefail whenever grep stops reading early
pg_restore -f "$CLUSTER_DIR/dump_src.data.sql" --data-only "$CLUSTER_DIR/dump_src.pgdump"
grep -q 'COPY analytics.llm_traces' "$CLUSTER_DIR/dump_src.data.sql"
for t in rate_limit_state cache_entries cache_writes cache_events cache_counters; do
    if grep -q "COPY analytics.$t " "$CLUSTER_DIR/dump_src.data.sql"; then echo "$t was dumped"; exit 1; fi
done
echo "all $(echo "$tables" | wc -w) tables survive pg_dump/pg_restore"
