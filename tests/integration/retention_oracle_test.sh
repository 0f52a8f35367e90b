#!/usr/bin/env bash
# analytics.retention against an independent Python calculation (tests/integration/retention_oracle.py): every mode,
# calendar and rolling days, weeks and months, first-seen and named cohorts, across daylight-saving changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'drop database if exists retention_oracle' -c 'create database retention_oracle'
psql -X -q -v ON_ERROR_STOP=1 -d retention_oracle -c 'create extension analytics_ext' \
    -c "insert into analytics.rate_limits (action, max_calls, per) values ('ingest', null, '1 minute')"
python3 tests/integration/retention_oracle.py retention_oracle
psql -X -q -d postgres -c 'drop database retention_oracle'
