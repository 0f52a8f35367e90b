#!/usr/bin/env bash
# Proves the RLS matrix (tests/pg_regress/sql/rls_matrix.sql) can fail: for each command, drop that one policy of one
# table in a scratch database and check that the matrix output no longer matches its expected output.
set -euo pipefail
cd "$(dirname "$0")/../.."
expected=tests/pg_regress/expected/rls_matrix.out

run_matrix() { # like pg_regress: psql -X -a -q, stdout and stderr together
    psql -X -a -q -d "$1" < tests/pg_regress/sql/rls_matrix.sql 2>&1
}

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database mutation_base'
psql -X -q -v ON_ERROR_STOP=1 -d mutation_base -c 'create extension analytics_ext' -f tests/pg_regress/sql/setup.sql
if ! diff -q <(run_matrix mutation_base) "$expected" >/dev/null; then
    echo "the unmutated database does not reproduce $expected"; exit 1
fi

for policy in select insert update delete; do
    for table in llm_traces ab_experiment_assignments; do
        db="mutation_${table}_${policy}"
        psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $db template mutation_base"
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "drop policy ${table}_${policy}_own on analytics.$table"
        if diff -q <(run_matrix "$db") "$expected" >/dev/null; then
            echo "dropping policy ${table}_${policy}_own went unnoticed by the RLS matrix"; exit 1
        fi
        echo "dropping ${table}_${policy}_own: the RLS matrix fails, as it must"
    done
done
