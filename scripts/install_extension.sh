#!/usr/bin/env bash
# Builds analytics_ext and installs it into the system PostgreSQL 15 (pass --release for an optimised build).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--pg-config /usr/lib/postgresql/15/bin/pg_config "$@")
[ "$(id -u)" -eq 0 ] || args+=(--sudo)
cargo pgrx install "${args[@]}"
