#!/usr/bin/env bash
# Integration tests against the installed extension in a throwaway cluster:
#   1. tests/pg_regress: SQL files with expected output, run by PostgreSQL's pg_regress (installcheck mode)
#   2. tests/integration/*_test.sh: tests that need more than one session or a client program (pg_dump, ...)
# Prints "integration: N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# shellcheck source=../../scripts/cluster.sh
source scripts/cluster.sh

cluster_start || exit 2
cluster_create_supabase_roles || exit 2

passed=0
failed=0

OUT=$(mktemp -d /tmp/analytics_ext_regress.XXXXXX)
PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
"$PG_REGRESS" --inputdir="$ROOT/tests/pg_regress" --outputdir="$OUT" --bindir="$PG_BIN" \
    --host="$PGHOST" --port="$PGPORT" --user=postgres --dbname=analytics_regress \
    --load-extension=analytics_ext --schedule="$ROOT/tests/pg_regress/schedule" | tee "$OUT/summary.txt"
n_tests=$(grep -c '^test: ' tests/pg_regress/schedule)
n_failed=$(grep -cE 'FAILED|failed \(ignored\)' "$OUT/summary.txt" || true)
passed=$((passed + n_tests - n_failed))
failed=$((failed + n_failed))
if [ "$n_failed" -gt 0 ] && [ -f "$OUT/regression.diffs" ]; then
    echo "---- regression.diffs ----"
    cat "$OUT/regression.diffs"
    mkdir -p tests/pg_regress/results && cp -r "$OUT"/results/* tests/pg_regress/results/ 2>/dev/null
    echo "(actual outputs copied to tests/pg_regress/results/)"
fi
rm -rf "$OUT"

for t in tests/integration/*_test.sh; do
    name=$(basename "$t" .sh)
    if bash "$t" > "/tmp/$name.log" 2>&1; then
        echo "integration $name ... ok"
        passed=$((passed + 1))
    else
        echo "integration $name ... FAILED"
        sed 's/^/    /' "/tmp/$name.log"
        failed=$((failed + 1))
    fi
done

echo
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
