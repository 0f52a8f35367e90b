#!/usr/bin/env bash
# Runs every test: Rust unit tests and #[pg_test]s (cargo pgrx test), then the integration suite
# (pg_regress SQL tests and tests/integration/*_test.sh) against the installed extension in a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

args=(pg15)
if [ "$(id -u)" -eq 0 ]; then
    # Postgres refuses to run as root: the test cluster runs as the postgres user, in a data dir it owns.
    install -d -o postgres -g postgres /tmp/analytics_ext_pgtest
    args+=(--runas postgres --pgdata /tmp/analytics_ext_pgtest/pgdata)
fi
echo "== unit tests and #[pg_test]s"
cargo pgrx test "${args[@]}"

echo "== integration tests"
bash scripts/install_extension.sh >/tmp/analytics_ext_install.log 2>&1 || { cat /tmp/analytics_ext_install.log; exit 1; }
bash tests/integration/run.sh
