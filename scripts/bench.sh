#!/usr/bin/env bash
# Benchmarks: builds analytics_ext in release mode, starts a throwaway cluster and runs bench/*.sql, each in a
# fresh database. Every figure is printed with the baseline it is compared against, measured in the same run.
#   bash scripts/bench.sh            all benchmarks
#   bash scripts/bench.sh traces     only bench/traces.sql (also: ingest, rls, experiments, experiment_results,
#                                    assign_variant; a suite is bench/<name>.sql, or bench/<name>.sh given the database)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
echo "[bench] building and installing analytics_ext (release)"
bash scripts/install_extension.sh --release >/tmp/analytics_ext_install.log 2>&1 || { cat /tmp/analytics_ext_install.log; exit 1; }
source scripts/cluster.sh
CLUSTER_OPTIONS="-c max_wal_size=8GB -c work_mem=64MB -c maintenance_work_mem=1GB" cluster_start
cluster_create_supabase_roles
echo "[bench] PostgreSQL 15 on port $PGPORT; $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=($(ls bench/*.sql bench/*.sh | xargs -n1 basename | sed 's/\.\(sql\|sh\)$//' | grep -v '^common$'))
for s in "${suites[@]}"; do
    db="bench_$s"
    psql -X -q -d postgres -c "create database $db"
    psql -X -q -d "$db" -c 'create extension analytics_ext'
    echo
    echo "######## $s"
    if [ -f "bench/$s.sh" ]; then bash "bench/$s.sh" "$db"; else psql -X -q -d "$db" -f "bench/$s.sql"; fi
done
