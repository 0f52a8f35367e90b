#!/usr/bin/env bash
# Errors carry no Rust backtrace, even when the server runs with RUST_BACKTRACE=1 in its environment (a DBA's shell,
# a container image): pgrx would add one to the DETAIL of every error raised through Rust, and PostgREST hands
# DETAIL to API clients. The library's _PG_init sets RUST_LIB_BACKTRACE=0 when it is unset. This test starts its own
# cluster with RUST_BACKTRACE=1, checks the server has it, and reads an error as a client would.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../../scripts/cluster.sh
source scripts/cluster.sh
cluster_start
# restart the same cluster with the variable in the postmaster's environment (sudo would drop it from ours)
_cluster_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null
_cluster_as_owner env RUST_BACKTRACE=1 "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
    -o "-p $PGPORT -k $CLUSTER_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
postmaster=$(head -1 "$CLUSTER_DIR/data/postmaster.pid")
if ! tr '\0' '\n' < "/proc/$postmaster/environ" | grep -qx 'RUST_BACKTRACE=1'; then
    echo "the server was not started with RUST_BACKTRACE=1"; exit 1
fi
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create extension analytics_ext'

# a JWT whose sub is not a uuid: the identity function raises 22P02 through Rust; and a bad argument of a Rust function
out=$(psql -X -q -d postgres -v VERBOSITY=verbose 2>&1 <<'SQL' || true
select set_config('request.jwt.claims', '{"sub":"not-a-uuid","role":"authenticated"}', false) is null;
select analytics.current_user_id();
select analytics.search_spans("limit" => 0);
SQL
)
echo "$out"
grep -q '22P02' <<< "$out" || { echo "the identity error is missing"; exit 1; }
grep -q '22023' <<< "$out" || { echo "the limit error is missing"; exit 1; }
# (LOCATION lines, which verbose output adds, name the Rust function that raised: not a backtrace)
if grep -v '^LOCATION:' <<< "$out" | grep -qiE '^DETAIL: *$|backtrace|pgrx|panicking|^ *[0-9]+: '; then
    echo "an error carried a Rust backtrace"; exit 1
fi
echo "ok: errors carry no Rust backtrace with RUST_BACKTRACE=1 in the server's environment"
