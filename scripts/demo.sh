#!/usr/bin/env bash
# The demo: installs what is missing, builds and installs analytics_ext into the system PostgreSQL 15, starts a
# throwaway cluster (free local port, socket in a temp dir), creates the extension, loads sample data and prints
# the headline queries as a user would read them. The cluster is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[demo] building and installing analytics_ext (first build takes a few minutes)"
bash scripts/install_extension.sh >/tmp/analytics_ext_install.log 2>&1 || { cat /tmp/analytics_ext_install.log; exit 1; }

source scripts/cluster.sh
cluster_start
echo "[demo] throwaway PostgreSQL 15 on port $PGPORT, socket in $PGHOST"
cluster_create_supabase_roles
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database analytics_demo'
export PGDATABASE=analytics_demo
psql -X -q -v ON_ERROR_STOP=1 -c 'create extension analytics_ext' -c '\dx analytics_ext'
psql -X -q -v ON_ERROR_STOP=1 -v otlp_request="$(cat tests/fixtures/otlp_agent_run.json)" -f demo/sample_data.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "select count(*) as spans, count(distinct user_id) as users, count(distinct trace_id) as traces from analytics.llm_traces"
psql -X -q -v ON_ERROR_STOP=1 -f demo/queries.sql
echo
[ -s /tmp/analytics_ext_demo_waterfall.svg ] && echo "[demo] open /tmp/analytics_ext_demo_waterfall.svg in a browser to see the waterfall of trace-rag-002"
[ -s /tmp/analytics_ext_demo_dashboard.html ] && echo "[demo] open /tmp/analytics_ext_demo_trace.html, _experiment.html and _dashboard.html in a browser for the HTML views"
echo "[demo] done; stopping the throwaway cluster"
