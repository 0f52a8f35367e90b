# shellcheck shell=bash
# Source this file: `cluster_start` starts a throwaway PostgreSQL 15 cluster on a free local port with its socket in a
# temp dir, exports PGHOST/PGPORT/PGUSER for psql, pg_dump and pgbench, and stops and removes it when the calling
# script exits. Postgres refuses to run as root, so as root the server runs as the `postgres` user.

PG_BIN=/usr/lib/postgresql/15/bin

_cluster_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi
}

cluster_stop() {
    if [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR" ]; then
        _cluster_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$CLUSTER_DIR"
        CLUSTER_DIR=
    fi
}

cluster_start() {
    CLUSTER_DIR=$(mktemp -d /tmp/analytics_ext_cluster.XXXXXX)
    chmod 755 "$CLUSTER_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$CLUSTER_DIR"
    trap cluster_stop EXIT
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    _cluster_as_owner "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$CLUSTER_DIR/initdb.log" 2>&1 || { cat "$CLUSTER_DIR/initdb.log" >&2; return 1; }
    _cluster_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
        -o "-p $port -k $CLUSTER_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=512MB ${CLUSTER_OPTIONS:-}" \
        start >/dev/null || { cat "$CLUSTER_DIR/server.log" >&2; return 1; }
    export CLUSTER_DIR PGHOST="$CLUSTER_DIR" PGPORT="$port" PGUSER=postgres
    unset PGDATABASE PGPASSWORD
}

# The three roles Supabase defines, so the extension's grants and policies are exercised as on Supabase.
# Create them before CREATE EXTENSION (as on Supabase, where they always exist).
cluster_create_supabase_roles() {
    psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
end
$$;
SQL
}
