#!/usr/bin/env bash
# Runs every test: the core crate's unit tests (no Postgres), the extension's #[pg_test]s (cargo pgrx test), then
# the integration suite against the installed extension in a throwaway cluster: pg_regress SQL tests,
# tests/integration/*_test.sh, and the doc-tester (every SQL example of README.md and docs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

args=(pg15)
if [ "$(id -u)" -eq 0 ]; then
    # Postgres refuses to run as root: the test cluster runs as the postgres user, in a data dir it owns.
    install -d -o postgres -g postgres /tmp/analytics_ext_pgtest
    args+=(--runas postgres --pgdata /tmp/analytics_ext_pgtest/pgdata)
fi
echo "== core unit tests (crates/analytics-core: no Postgres)"
cargo test -p analytics-core

echo "== #[pg_test]s of the extension"
cargo pgrx test "${args[@]}"

echo "== integration tests"
bash scripts/install_extension.sh >/tmp/analytics_ext_install.log 2>&1 || { cat /tmp/analytics_ext_install.log; exit 1; }
bash tests/integration/run.sh
