#!/usr/bin/env bash
# Upgrades and downgrades between every released version (sql/released/analytics_ext--<v>.sql) and the current one
# (Cargo.toml), with the one shared library that is installed now:
#   1. the update paths Postgres picks are the direct scripts, both ways (pg_extension_update_paths);
#   2. every released version can be created with the current library (its C functions bind by symbol name);
#   3. released -> current gives exactly the schema of a fresh install of current, and current -> released exactly
#      that of a fresh install of the released version (pg_dump --binary-upgrade --schema-only, OIDs masked);
#   4. over a database with rows in every table: released -> current -> released -> current, every table's rows
#      unchanged after each step (tables the released version lacks start empty); a downgrade that would lose rows
#      of such a table (or findings of a detector it lacks) refuses with 55000 and changes nothing;
#   5. the pg_regress suite passes on a database created at the released version and updated to current.
# Needs the cluster of tests/integration/run.sh (PGHOST, PGPORT, CLUSTER_DIR) with the extension installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

current=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
released=$(ls sql/released/ | sed -n 's/^analytics_ext--\([^-]*\)\.sql$/\1/p' | sort -V)
[ -n "$released" ] || { echo "no released install script under sql/released"; exit 1; }
work="$CLUSTER_DIR/upgrade"
mkdir -p "$work"

sql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fresh_db() { sql -d postgres -c "drop database if exists $1" -c "create database $1"; }

# the schema of the extension's objects, comparable across databases: binary-upgrade dumps list extension members;
# OIDs, xids and the dump's random restrict key are masked, and so are dropped columns (a downgrade that drops a
# column 0.2.0 added leaves an invisible placeholder in pg_attribute that only binary-upgrade dumps show: no query,
# plain dump or restore sees it), and so is the value a column added with a default keeps for the rows that existed
# then (ADD COLUMN ... DEFAULT is metadata-only: pg_attribute.atthasmissing, "set missing value"; a fresh table has
# no such rows)
schema_of() {
    pg_dump --binary-upgrade --schema-only -d "$1" \
        | grep -v -e 'binary_upgrade_set_next' -e '^\\restrict' -e '^\\unrestrict' -e 'relfrozenxid' -e '^-- Dumped' \
        | awk '/^-- set missing value\.$/ { missing = 3; next }
               missing > 0 { missing--; next }
               /^-- For binary upgrade, recreate dropped column\.$/ { skip = 1; next }
               skip && /DROP COLUMN "\.+pg\.dropped\.[0-9]+\.+";$/ { skip = 0; blank = 1; next }
               skip { next }
               blank && /^$/ { blank = 0; next }
               { blank = 0 }
               /^ +"\.+pg\.dropped\.[0-9]+\.+" [A-Z]+ \/\* dummy \*\/,$/ { next }
               { print }' \
        | sed -E -e "s/'\{[0-9,]+\}'/'{oids}'/" -e "s/WHERE oid = '[0-9]+'/WHERE oid = 'N'/"
}

# the columns of every table, one line per table: "table col,col,..." (the released version's columns are the ones
# whose values must survive; columns a newer version adds are not compared)
columns_of() {
    sql -d "$1" -c "select c.relname || ' ' || string_agg(quote_ident(a.attname), ',' order by a.attnum)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'analytics' and c.relkind in ('r', 'p') group by c.relname order by 1"
}

# count and checksum of every table's rows, one line per table, over the columns COLUMNS_FILE names for it (else all)
rows_of() {  # DB [COLUMNS_FILE]
    local tables cols
    tables=$(sql -d "$1" -c "select string_agg(c.relname, ' ' order by c.relname) from pg_class c
        join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'analytics' and c.relkind in ('r', 'p')")
    for t in $tables; do
        cols=$( [ -n "${2:-}" ] && awk -v t="$t" '$1 == t { print $2 }' "$2" )
        echo "$t $(sql -d "$1" -c "select count(*) || ' ' || coalesce(md5(string_agg(r::text, '|' order by r::text)), '')
            from (select ${cols:-t.*} from analytics.$t t) r")"
    done
}

same() {  # same WHAT FILE_A FILE_B
    if ! diff -u "$2" "$3" > "$work/diff.txt"; then
        echo "FAIL: $1"
        head -60 "$work/diff.txt"
        exit 1
    fi
    echo "ok: $1"
}

tested=0
for prev in $released; do
    [ "$prev" != "$current" ] || continue
    tested=$((tested + 1))
    echo "== $prev <-> $current"

    # 1. the update paths
    up=$(sql -d postgres -c "select path from pg_extension_update_paths('analytics_ext') where source = '$prev' and target = '$current'")
    down=$(sql -d postgres -c "select path from pg_extension_update_paths('analytics_ext') where source = '$current' and target = '$prev'")
    [ "$up" = "$prev--$current" ] || { echo "FAIL: update path $prev -> $current is '$up'"; exit 1; }
    [ "$down" = "$current--$prev" ] || { echo "FAIL: downgrade path $current -> $prev is '$down'"; exit 1; }
    echo "ok: pg_extension_update_paths picks $up and $down"

    # 2. the current library has every C symbol the released install script binds to (docs/upgrading.md)
    so="$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/analytics_ext.so"
    nm -D --defined-only "$so" | awk '{print $NF}' | sort -u > "$work/symbols.txt"
    sed -n "s/.*AS 'MODULE_PATHNAME', '\([A-Za-z0-9_]*\)'.*/\1/p" "sql/released/analytics_ext--$prev.sql" | sort -u > "$work/needed.txt"
    [ -s "$work/needed.txt" ] || { echo "FAIL: no C functions found in the $prev install script"; exit 1; }
    missing=$(comm -23 "$work/needed.txt" "$work/symbols.txt")
    [ -z "$missing" ] || { echo "FAIL: the current library lacks symbols of $prev: $missing"; exit 1; }
    echo "ok: the current library exports all $(wc -l < "$work/needed.txt") symbols $prev's SQL binds to"

    # 2 and 3. schemas: fresh installs against updated ones
    fresh_db up_fresh_cur;  sql -d up_fresh_cur  -c "create extension analytics_ext"
    fresh_db up_fresh_prev; sql -d up_fresh_prev -c "create extension analytics_ext version '$prev'"
    # ...and it writes that version's tables (0.1.0: the unpartitioned llm_traces, ON CONFLICT on its unique key)
    sql -d up_fresh_prev -c "select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"}', false)" \
        -c "select analytics.ingest_spans('[{\"trace_id\":\"t\",\"span_id\":\"s\",\"name\":\"first\",\"start_time\":\"2026-11-20T09:00:00Z\"}]')" \
        -c "select analytics.ingest_spans('[{\"trace_id\":\"t\",\"span_id\":\"s\",\"name\":\"again\",\"start_time\":\"2026-11-20T09:00:00Z\"}]')" > /dev/null
    [ "$(sql -d up_fresh_prev -c "select count(*) || ' ' || min(name) from analytics.llm_traces")" = "1 again" ] \
        || { echo "FAIL: ingest through $prev's SQL with the current library"; exit 1; }
    # a field its table has no column for is refused, not dropped (0.1.0 has no end_user_id)
    if [ "$(sql -d up_fresh_prev -c "select count(*) from information_schema.columns where table_schema = 'analytics'
                                     and table_name = 'llm_traces' and column_name = 'end_user_id'")" = 0 ]; then
        out=$(psql -X -q -At -v VERBOSITY=verbose -d up_fresh_prev \
              -c "select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"}', false)" \
              -c "select analytics.ingest_spans('[{\"trace_id\":\"t\",\"span_id\":\"s\",\"name\":\"n\",\"start_time\":\"2026-11-20T09:00:00Z\",\"end_user_id\":\"u1\"}]')" 2>&1 || true)
        echo "$out" | grep -q "55000" && echo "$out" | grep -q "spans\[0\].end_user_id: needs analytics_ext 0.2.0" \
            || { echo "FAIL: $prev's ingest with an end_user_id: $out"; exit 1; }
    fi
    # ...and every reader of spans its SQL binds to reads that version's table (0.1.0's has no end_user_id)
    reads=$(sql -d up_fresh_prev -c "select set_config('request.jwt.claims', '{\"sub\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"}', false)" \
        -c "select concat_ws(' ', analytics.get_trace_tree('t') #>> '{roots,0,name}',
                             (select count(*) from analytics.search_spans(trace_id => 't')),
                             (select count(*) from analytics.trace_spans('t')), (select count(*) from analytics.trace_waterfall('t')),
                             (select count(*) from analytics.span_subtree('t', 's')), (select count(*) from analytics.span_ancestors('t', 's')),
                             analytics.trace_waterfall_svg('t') like '%<svg %')" | tail -1)
    [ "$reads" = "again 1 1 1 1 0 t" ] || { echo "FAIL: reading spans through $prev's SQL with the current library: '$reads'"; exit 1; }
    sql -d up_fresh_prev -c "delete from analytics.llm_traces"
    echo "ok: version $prev created with the current shared library: its ingest stores and re-sends a span (and refuses fields it has no column for), its readers read it"
    fresh_db up_updated;    sql -d up_updated    -c "create extension analytics_ext version '$prev'" \
                                                 -c "alter extension analytics_ext update to '$current'"
    fresh_db up_downgraded; sql -d up_downgraded -c "create extension analytics_ext" \
                                                 -c "alter extension analytics_ext update to '$prev'"
    schema_of up_fresh_cur  > "$work/fresh_cur.sql"
    schema_of up_updated    > "$work/updated.sql"
    schema_of up_fresh_prev > "$work/fresh_prev.sql"
    schema_of up_downgraded > "$work/downgraded.sql"
    [ "$(grep -c 'ALTER EXTENSION analytics_ext ADD' "$work/fresh_cur.sql")" -gt 50 ] || { echo "FAIL: the dump lists no extension members"; exit 1; }
    same "$prev -> $current has the schema of a fresh $current" "$work/fresh_cur.sql" "$work/updated.sql"
    same "$current -> $prev has the schema of a fresh $prev" "$work/fresh_prev.sql" "$work/downgraded.sql"

    # 4. rows survive every step
    fresh_db up_data
    sql -d up_data -c "create extension analytics_ext version '$prev'" -f tests/integration/seed_every_table.sql
    columns_of up_data > "$work/columns_before.txt"
    rows_of up_data "$work/columns_before.txt" > "$work/rows_before.txt"
    awk '$2 == 0 { print "FAIL: the seed left " $1 " empty"; bad = 1 } END { exit bad }' "$work/rows_before.txt"
    # columns the current version renamed (same values, in the same place): user_cohort_members.added_at is entered_at
    sed -E '/^user_cohort_members /s/(^|[ ,])added_at(,|$)/\1entered_at\2/' "$work/columns_before.txt" > "$work/columns_current.txt"
    for step in "$current" "$prev" "$current"; do
        sql -d up_data -c "alter extension analytics_ext update to '$step'"
        [ "$(sql -d up_data -c "select extversion from pg_extension where extname = 'analytics_ext'")" = "$step" ]
        if [ "$step" = "$current" ]; then
            # the spans copied into the default partition move into monthly partitions of their own (the next
            # downgrade then reads them from several partitions)
            sql -d up_data -c "select count(*) from analytics.maintain_span_partitions(as_of => '2026-11-20')" > /dev/null
            parts=$(sql -d up_data -c "select count(*) from analytics.span_partitions() where from_time is not null")
            [ "$parts" -gt 0 ] || { echo "FAIL: maintenance made no partition"; exit 1; }
        fi
        if [ "$step" = "$current" ]; then cols_file="$work/columns_current.txt"; else cols_file="$work/columns_before.txt"; fi
        rows_of up_data "$cols_file" > "$work/rows_all.txt"
        # the tables of the released version keep their rows; tables it lacks start empty, except the usage cache's
        # log of late writes (spans written with old start times log their days),
        # the one-row version of the rate limits, and the unit counts, derived from the assignments (checked below)
        awk 'NR == FNR { old[$1] = 1; next } ($1 in old) { print; next }
             $2 != 0 && $1 != "usage_cache_changes" && $1 != "rate_limit_rules_version" && $1 != "ab_experiment_unit_counts" {
                 print "FAIL: new table " $1 " has rows" }' \
            "$work/rows_before.txt" "$work/rows_all.txt" > "$work/rows_after.txt"
        same "every row survives the update to $step ($(wc -l < "$work/rows_before.txt") tables)" \
            "$work/rows_before.txt" "$work/rows_after.txt"
        if [ "$(sql -d up_data -c "select to_regclass('analytics.ab_experiment_unit_counts') is not null")" = t ]; then
            differing=$(sql -d up_data -c "
                select count(*) from (
                    (select experiment_id, phase, variant_id, assigned_on, attributes, sum(units)
                     from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5
                     except
                     select experiment_id, phase, variant_id, (assigned_at at time zone 'UTC')::date, attributes, count(*)
                     from analytics.ab_experiment_assignments group by 1, 2, 3, 4, 5)
                    union all
                    (select experiment_id, phase, variant_id, (assigned_at at time zone 'UTC')::date, attributes, count(*)
                     from analytics.ab_experiment_assignments group by 1, 2, 3, 4, 5
                     except
                     select experiment_id, phase, variant_id, assigned_on, attributes, sum(units)
                     from analytics.ab_experiment_unit_counts group by 1, 2, 3, 4, 5)) d")
            [ "$differing" = 0 ] || { echo "FAIL: the unit counts filled by the update differ from the assignments ($differing groups)"; exit 1; }
            echo "ok: the update to $step counts the assignments into analytics.ab_experiment_unit_counts"
        fi
    done

    # a downgrade that would lose data refuses, changes nothing, and goes through once the data is gone
    # (0.2.0 added analytics.retention_policies, analytics.rate_limits, analytics.ingest_failures,
    # analytics.alert_rules, analytics.budgets, analytics.usage_snapshots and analytics.ingest_stats, which 0.1.0 has no
    # place for)
    refuses_to_lose() {  # TABLE INSERT_SQL MESSAGE
        local table=$1 insert=$2 message=$3 out
        if [ "$(sql -d up_data -c "select to_regclass('analytics.$table') is not null")" != t ] \
           || [ "$(sql -d up_data -c "select count(*) from pg_depend d join pg_extension e on e.oid = d.refobjid
                  where e.extname = 'analytics_ext' and d.objid = 'analytics.$table'::regclass")" != 1 ]; then
            return 0
        fi
        sql -d up_data -c "$insert"
        if out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d up_data \
                 -c "alter extension analytics_ext update to '$prev'" 2>&1); then
            echo "FAIL: the downgrade to $prev went through with rows in $table"; exit 1
        fi
        echo "$out" | grep -q "55000" && echo "$out" | grep -q "$message" \
            || { echo "FAIL: the downgrade refused with an unexpected error: $out"; exit 1; }
        [ "$(sql -d up_data -c "select extversion from pg_extension where extname = 'analytics_ext'")" = "$current" ]
        [ "$(sql -d up_data -c "select count(*) from analytics.$table")" = 1 ]
        sql -d up_data -c "delete from analytics.$table" -c "alter extension analytics_ext update to '$prev'" \
            -c "alter extension analytics_ext update to '$current'"
        echo "ok: the downgrade to $prev refuses (55000) while rows of $table would be lost, and goes through without"
    }
    refuses_to_lose retention_policies \
        "insert into analytics.retention_policies (user_id, keep_days) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 30)" \
        "would lose 1 retention policy"
    refuses_to_lose rate_limits \
        "insert into analytics.rate_limits (user_id, action, max_calls, per) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest', 1000, '1 minute')" \
        "would lose 1 rate limit"
    refuses_to_lose ingest_failures \
        "insert into analytics.ingest_failures (user_id, function, sqlstate, message, payload_bytes) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ingest_spans', '22023', 'spans[0].name: is required', 40)" \
        "would lose 1 ingest failure"
    refuses_to_lose alert_rules \
        "insert into analytics.alert_rules (user_id, key, metric, threshold) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'slow', 'latency_p95', 2000)" \
        "would lose 1 alert rule"
    refuses_to_lose budgets \
        "insert into analytics.budgets (user_id, key, amount_usd) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'monthly', 100)" \
        "would lose 1 budget"
    refuses_to_lose usage_snapshots \
        "insert into analytics.usage_snapshots (user_id, day, spans_stored, bytes_stored, spans, traces, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-20', 10, 9000, 2, 1, 100, 50, 0, 0, 0, 0.01)" \
        "would lose 1 usage snapshot"
    refuses_to_lose ingest_stats \
        "insert into analytics.ingest_stats (user_id, bucket_start, function, backend_pid, calls, spans, bytes) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-20 12:00+00', 'ingest_spans', 1, 1, 2, 300)" \
        "would lose 1 ingest count"
    refuses_to_lose end_user_profiles \
        "insert into analytics.end_user_profiles (user_id, end_user_id, properties) values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'customer-42', '{\"plan\": \"pro\"}')" \
        "would lose 1 end user profile"
    # values in what 0.2.0 added to tables 0.1.0 has: a span's end user, a cohort stay that ended
    refuses_to_keep() {  # WHAT SET_SQL MESSAGE UNSET_SQL
        local out
        sql -d up_data -c "$2"
        if out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d up_data \
                 -c "alter extension analytics_ext update to '$prev'" 2>&1); then
            echo "FAIL: the downgrade to $prev went through with $1"; exit 1
        fi
        echo "$out" | grep -q "55000" && echo "$out" | grep -q "$3" \
            || { echo "FAIL: the downgrade refused with an unexpected error: $out"; exit 1; }
        [ "$(sql -d up_data -c "select extversion from pg_extension where extname = 'analytics_ext'")" = "$current" ]
        sql -d up_data -c "$4" -c "alter extension analytics_ext update to '$prev'" -c "alter extension analytics_ext update to '$current'"
        echo "ok: the downgrade to $prev refuses (55000) while $1 would be lost, and goes through without"
    }
    if [ "$(sql -d up_data -c "select count(*) from information_schema.columns where table_schema = 'analytics'
                                and table_name = 'llm_traces' and column_name = 'end_user_id'")" = 1 ]; then
        refuses_to_keep "the end users of spans" \
            "update analytics.llm_traces set end_user_id = 'customer-' || span_id where trace_id in (select min(trace_id) from analytics.llm_traces)" \
            "would lose the end user of" \
            "update analytics.llm_traces set end_user_id = null"
        refuses_to_keep "an ended cohort stay" \
            "update analytics.user_cohort_members set exited_at = entered_at + interval '1 day' where member_id = 'visitor-1'" \
            "would lose 2 ended cohort stays" \
            "update analytics.user_cohort_members set exited_at = null"
    fi
    # a reasoning-token price (a column 0.2.0 added to analytics.model_prices)
    if [ "$(sql -d up_data -c "select count(*) from information_schema.columns where table_schema = 'analytics'
                                and table_name = 'model_prices' and column_name = 'reasoning_usd_per_mtok'")" = 1 ]; then
        sql -d up_data -c "insert into analytics.model_prices (user_id, model, input_usd_per_mtok, output_usd_per_mtok, reasoning_usd_per_mtok)
                           values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'o3-upgrade-test', 2, 8, 4)"
        if out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -d up_data \
                 -c "alter extension analytics_ext update to '$prev'" 2>&1); then
            echo "FAIL: the downgrade to $prev went through with a reasoning-token price"; exit 1
        fi
        echo "$out" | grep -q "would lose 1 reasoning-token price" \
            || { echo "FAIL: the downgrade refused with an unexpected error: $out"; exit 1; }
        sql -d up_data -c "delete from analytics.model_prices where model = 'o3-upgrade-test'"
        echo "ok: the downgrade to $prev refuses (55000) while a reasoning-token price would be lost"
    fi
    # attributes stored with an assignment (a column 0.2.0 added for dimension breakdowns): the downgrade refuses,
    # changes nothing, and goes through once they are cleared
    if [ "$(sql -d up_data -c "select count(*) from information_schema.columns where table_schema = 'analytics'
                                and table_name = 'ab_experiment_assignments' and column_name = 'attributes'")" = 1 ]; then
        sql -d up_data -c "update analytics.ab_experiment_assignments set attributes = '{\"country\": \"DE\"}'
                           where id = (select min(id::text)::uuid from analytics.ab_experiment_assignments)"
        if out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d up_data \
                 -c "alter extension analytics_ext update to '$prev'" 2>&1); then
            echo "FAIL: the downgrade to $prev went through with assignment attributes"; exit 1
        fi
        echo "$out" | grep -q "55000" && echo "$out" | grep -q "would lose the attributes of 1 assignment" \
            || { echo "FAIL: the downgrade refused with an unexpected error: $out"; exit 1; }
        [ "$(sql -d up_data -c "select extversion from pg_extension where extname = 'analytics_ext'")" = "$current" ]
        sql -d up_data -c "update analytics.ab_experiment_assignments set attributes = '{}' where attributes <> '{}'" \
            -c "alter extension analytics_ext update to '$prev'" -c "alter extension analytics_ext update to '$current'"
        echo "ok: the downgrade to $prev refuses (55000) while assignment attributes would be lost, and goes through without"
    fi
    # findings of a detector the released version lacks (0.2.0's surprise): the downgrade refuses the same way
    if [ "$(sql -d up_data -c "select count(*) from pg_constraint where conname = 'anomaly_detections_method_check'
                                and pg_get_constraintdef(oid) like '%surprise%'")" = 1 ]; then
        sql -d up_data -c "insert into analytics.anomaly_detections (user_id, metric, dimension, bucket_start, bucket_width,
                               observed, expected, lower_bound, upper_bound, score, severity, method)
                           values ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'cost', '{}', '2026-01-02 10:00+00', '1 hour',
                                   9, 1, 0, 2, 4.2, 'critical', 'surprise')"
        if out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d up_data \
                 -c "alter extension analytics_ext update to '$prev'" 2>&1); then
            echo "FAIL: the downgrade to $prev went through with findings of the surprise detector"; exit 1
        fi
        echo "$out" | grep -q "55000" && echo "$out" | grep -q "would lose 1 finding of the surprise detector" \
            || { echo "FAIL: the downgrade refused with an unexpected error: $out"; exit 1; }
        [ "$(sql -d up_data -c "select extversion from pg_extension where extname = 'analytics_ext'")" = "$current" ]
        [ "$(sql -d up_data -c "select count(*) from analytics.anomaly_detections where method = 'surprise'")" = 1 ]
        sql -d up_data -c "delete from analytics.anomaly_detections where method = 'surprise'" \
            -c "alter extension analytics_ext update to '$prev'" -c "alter extension analytics_ext update to '$current'"
        echo "ok: the downgrade to $prev refuses (55000) while findings of the surprise detector would be lost, and goes through without"
    fi

    # 5. the regression suite on a database that was updated from the released version
    fresh_db up_regress
    sql -d up_regress -c "create extension analytics_ext version '$prev'" -c "alter extension analytics_ext update"
    /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress --inputdir=tests/pg_regress --outputdir="$work/regress" \
        --bindir=/usr/lib/postgresql/15/bin --host="$PGHOST" --port="$PGPORT" --user=postgres --use-existing \
        --dbname=up_regress --schedule=tests/pg_regress/schedule > "$work/regress.txt" 2>&1 \
        || { cat "$work/regress.txt"; cat "$work/regress/regression.diffs" 2>/dev/null | head -80; exit 1; }
    grep -q "All [0-9]* tests passed" "$work/regress.txt" || { cat "$work/regress.txt"; exit 1; }
    echo "ok: the pg_regress suite passes after $prev -> $current: $(grep -o 'All [0-9]* tests passed' "$work/regress.txt")"
done
[ "$tested" -gt 0 ] || { echo "FAIL: no released version other than the current $current to test"; exit 1; }
echo "upgrade: every released version ($(echo $released | tr '\n' ' ')) upgrades to $current and back"
