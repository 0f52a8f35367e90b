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
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "insert into analytics.ingest_failures (user_id, failed_at, function, sqlstate,
        message, location, span_index, trace_id, span_id, batch_size, payload_bytes)
    values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-01-01 10:00+00', 'ingest_spans', '22023',
            'spans[1].end_time: is before start_time', 'spans[1].end_time', 1, 't1', 's2', 2, 310)" \
    -c "insert into analytics.alert_rules (user_id, key, metric, operator, threshold)
        values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest-failing', 'ingest_failures', '>=', 1)" \
    -c "select count(*) from analytics.evaluate_alert_rules('2026-01-01 10:05+00', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')"
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "insert into analytics.budgets (user_id, key, amount_usd, period)
        values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'daily', 0.000001, 'day')" \
    -c "select count(*) from analytics.evaluate_budgets('2026-01-01 23:00+00', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')"
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "select analytics.snapshot_usage('2026-01-01')"
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "insert into analytics.ingest_stats (user_id, bucket_start, function, backend_pid, calls, spans, bytes)
    values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-01-01 10:00+00', 'ingest_spans', 4242, 3, 30, 9000)"
# end users, their profiles and cohorts whose rules name each other (restored in any order: a rule's references are
# checked by the API functions and at refresh, not by the row trigger), with a stay that ended
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"}', false)" \
    -c "update analytics.llm_traces set end_user_id = 'customer-' || span_id where user_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'" \
    -c "select analytics.identify_end_user('customer-1', '{\"plan\": \"pro\"}')" \
    -c "select analytics.create_cohort('a-zz-named-first', rule => '{\"performed\": {}}', at => '2026-01-01')" \
    -c "select analytics.create_cohort('a-aa-names-it', rule => '{\"in_cohort\": \"a-zz-named-first\"}', at => '2026-01-01')" \
    -c "select analytics.refresh_cohort('a-zz-named-first', '2026-01-02')" > /dev/null

# spans in partitions made by maintenance (not extension members: dumped as tables of their own, with their
# row-level security), the backfilled one in the before partition; the default partition, a member whose rows are
# registered for the dump, is left detached and empty by maintenance
psql -X -q -v ON_ERROR_STOP=1 -d dump_src -c "select count(*) from analytics.maintain_span_partitions(as_of => '2026-11-20')" \
    -c "insert into analytics.llm_traces (user_id, trace_id, span_id, name, start_time)
        values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'backfill', 's', 'old', '2001-01-01')"
psql -X -At -d dump_src -c "select partition || ' ' || count(t.*) from analytics.span_partitions() p
    left join analytics.llm_traces t on t.tableoid = p.partition::regclass group by partition order by 1"
[ "$(psql -X -At -d dump_src -c "select count(distinct tableoid) from analytics.llm_traces")" -ge 2 ] \
    || { echo "the seed's spans are not spread over partitions"; exit 1; }

pg_dump -Fc -d dump_src -f "$CLUSTER_DIR/dump_src.pgdump"
pg_restore --exit-on-error -d dump_dst "$CLUSTER_DIR/dump_src.pgdump"
# the restore recreates the default partition attached (CREATE EXTENSION), beside the restored range partitions that
# leave it nothing to hold (checked below); the next maintenance detaches it again (at the end)

tables=$(psql -X -At -d dump_src -c "select string_agg(c.relname, ' ' order by c.relname) from pg_class c
    join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'analytics' and c.relkind in ('r', 'p')")
checksum() {
    local from="analytics.$2"
    # the unit counts are derived, rebuilt on restore by the assignments' triggers into the restoring connection's
    # shard: compared as sums over the shards
    [ "$2" = ab_experiment_unit_counts ] && from="(select experiment_id, phase, variant_id, assigned_on, attributes_key,
        user_id, attributes, sum(units) from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5, 6, 7)"
    psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '')
        from $from t"
}
for t in $tables; do
    if [ "$t" = rate_limit_state ] || [ "${t#cache_}" != "$t" ] || [ "${t#usage_cache_}" != "$t" ]; then
        # the limiter's window and the result cache are not dumped (UNLOGGED), nor is the usage snapshot's cache
        # (node-local: partition OIDs; the restore logs its old spans' days afresh); checked below in the dump itself
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
grep -q 'COPY analytics_partitions.llm_traces_default' "$CLUSTER_DIR/dump_src.data.sql"
grep -q 'COPY analytics_partitions.llm_traces_p2026' "$CLUSTER_DIR/dump_src.data.sql"
# and the partitions keep their place and their security (the default partition aside: detached and empty in the
# source, attached and empty after the restore)
for q in "select count(*) from analytics.span_partitions() where partition <> 'analytics_partitions.llm_traces_default'" \
         "select string_agg(partition || ':' || coalesce(from_time::text, 'min') || ':' || coalesce(to_time::text, 'max'), ',' order by partition) from analytics.span_partitions() where partition <> 'analytics_partitions.llm_traces_default'" \
         "select count(*) from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'analytics.llm_traces'::regclass and c.relname <> 'llm_traces_default' and c.relrowsecurity and c.relforcerowsecurity and (select count(*) from pg_policy p where p.polrelid = c.oid) = 4" \
         "select string_agg(c.relname || ':' || (select count(*) from pg_index x where x.indrelid = c.oid), ',' order by c.relname) from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'analytics.llm_traces'::regclass and c.relname <> 'llm_traces_default'"; do
    [ "$(psql -X -At -d dump_src -c "$q")" = "$(psql -X -At -d dump_dst -c "$q")" ] || { echo "partitions differ after restore: $q"; exit 1; }
done
[ "$(psql -X -At -d dump_src -c "select relispartition from pg_class where oid = 'analytics_partitions.llm_traces_default'::regclass")" = f ] \
    || { echo "maintenance left the default partition attached"; exit 1; }
[ "$(psql -X -At -d dump_dst -c "select count(*) from analytics_partitions.llm_traces_default")" = 0 ] \
    || { echo "the restored default partition holds spans"; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 -d dump_dst -c "select count(*) from analytics.maintain_span_partitions(as_of => '2026-11-20')" > /dev/null
[ "$(psql -X -At -d dump_dst -c "select relispartition from pg_class where oid = 'analytics_partitions.llm_traces_default'::regclass")" = f ] \
    || { echo "maintenance after the restore left the default partition attached"; exit 1; }
for t in rate_limit_state cache_entries cache_writes cache_events cache_counters usage_cache_partitions usage_cache_days usage_cache_changes \
         ab_experiment_unit_totals ab_experiment_unit_counts; do
    if grep -q "COPY analytics.$t " "$CLUSTER_DIR/dump_src.data.sql"; then echo "$t was dumped"; exit 1; fi
done
echo "all $(echo "$tables" | wc -w) tables survive pg_dump/pg_restore"
