#!/usr/bin/env bash
# What the rate limiter adds to the calls it guards. One client (pgbench), one call per transaction as PostgREST
# runs it (role authenticated, JWT claims), the test clock advancing 0.6 s per transaction id so that every call
# finds the window of the built-in limit (100 per minute) full of earlier calls, as a client at the limit does, and
# is admitted. The calls compared run interleaved in the same pgbench run (each transaction picks one of the
# scripts at random), so whatever drifts under the run (the table growing, autovacuum, the machine) falls on all of
# them alike; 6 rounds, each reporting pgbench's mean latency per script:
#   record_span            analytics.record_span(...): a new span per call, limiter included
#   without the limiter    bench_bare.record_span: the same functions (copied from the installed ones by
#                          pg_get_functiondef) with ingest_spans' check_rate_limit call replaced by setting the
#                          admission by hand (what an API caller cannot do, a benchmark can)
#   with the efe19d1 one   bench_before.record_span: the same copy calling the limiter as it was at efe19d1 (a
#                          lookup of the limit joined to a locked read of the window, then an UPDATE), the baseline
# likewise ingest_spans of 1,000 spans with and without the limiter; and the limiter alone, in the shape record_span
# runs it (a PERFORM in a PL/pgSQL function, its plan cached) against the same function without it.
# (ROUNDS=1 RS_SECS=5 make a quick check of the script.)
set -euo pipefail
db=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create table payload as
select jsonb_agg(jsonb_build_object('trace_id', 'bulk-' || (i / 100), 'span_id', 's' || i, 'name', 'step ' || i,
    'operation_type', 'chat', 'start_time', '2026-11-20T09:00:00Z', 'end_time', '2026-11-20T09:00:01Z',
    'model', 'gpt-4o', 'input_tokens', 120, 'output_tokens', 40,
    'input', jsonb_build_object('text', repeat('what is the shipping status of my order? ', 5)))) as j
from generate_series(0, 999) i;
grant select on payload to authenticated;
create schema bench_before;
grant usage on schema bench_before to authenticated;
SQL
# the limiter at efe19d1, verbatim but for its schema (it reads and writes the same window row)
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE FUNCTION bench_before.check_rate_limit(action text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    owner uuid := analytics.current_user_id();
    lim_max integer;
    lim_per interval;
    lim_exempt boolean := false;
    defined boolean;
    locked boolean := false;
    read_only boolean := pg_catalog.current_setting('transaction_read_only')::boolean;
    adm timestamptz[];
    n integer;
    i integer := 1;
    used integer;
    t timestamptz;
    retry integer;
    window_s double precision;
    info text;
    win text;
    msg text;
    hnt text;
begin
    if check_rate_limit.action is null then
        raise exception 'action: is required' using errcode = '22004';
    end if;
    if owner is not null and not read_only and not analytics._caller_is_privileged() then
        -- the common case, an API caller who has called before (a role that is neither superuser nor BYPASSRLS is
        -- never exempt): one statement finds the limit and locks the owner's window. The row lock is held until the
        -- caller's transaction ends, so a concurrent call counts this one once it commits (or not at all if it
        -- rolls back); the time of the call is read after it (below).
        select s.admitted, r.max_calls, r.per into adm, lim_max, lim_per
        from analytics.rate_limit_state s
        cross join analytics._rate_limit_rule(check_rate_limit.action, owner) r
        where s.user_id = owner and s.action = check_rate_limit.action
        for update of s;
        locked := found;
    end if;
    if not locked then
        select r.max_calls, r.per, r.exempt, r.defined into lim_max, lim_per, lim_exempt, defined
        from analytics._rate_limit_for(check_rate_limit.action, owner) r;
        if not defined then
            raise exception 'action: no rate limit is defined for "%"; insert one into analytics.rate_limits (built-in: ingest, create_experiment, run_anomaly_detection)',
                check_rate_limit.action using errcode = 'P0002';
        end if;
    end if;
    -- the writing function that called us may now proceed (see analytics._ingest_spans)
    info := pg_catalog.set_config('analytics.rate_limit_admitted', check_rate_limit.action, true);
    -- not limited: no owner to count against (a DBA's session, a back end without a user), an exempt role, no limit
    if owner is null or lim_exempt or lim_max is null then
        return jsonb_build_object('action', check_rate_limit.action, 'limited', false);
    end if;

    if locked then
        null;   -- the window is read and locked above
    elsif read_only then
        -- a READ ONLY transaction (PostgREST GET, a read replica) can check but not record: nothing is consumed
        select s.admitted into adm from analytics.rate_limit_state s
        where s.user_id = owner and s.action = check_rate_limit.action;
    else
        -- one admission at a time per owner and action: the row lock is held until the caller's transaction ends,
        -- so a concurrent call counts this one once it commits (or not at all if it rolls back)
        select s.admitted into adm from analytics.rate_limit_state s
        where s.user_id = owner and s.action = check_rate_limit.action for update;
        if not found then
            insert into analytics.rate_limit_state (user_id, action, admitted)
            values (owner, check_rate_limit.action, '{}') on conflict do nothing;
            select s.admitted into adm from analytics.rate_limit_state s
            where s.user_id = owner and s.action = check_rate_limit.action for update;
        end if;
    end if;
    adm := coalesce(adm, '{}');
    n := coalesce(array_length(adm, 1), 0);
    -- now, after the lock, never before the last admission: the times stay in order
    t := greatest(analytics._clock('analytics.rate_limit_clock'), adm[n]);
    while i <= n and adm[i] <= t - lim_per loop
        i := i + 1;
    end loop;
    used := n - i + 1;
    window_s := extract(epoch from lim_per);

    if used >= lim_max then
        -- a slot frees when the admission at position used - max_calls + 1 of the window leaves it
        win := analytics._window_text(lim_per);
        retry := greatest(1, ceil(extract(epoch from adm[i + used - lim_max] + lim_per - t))::integer);
        info := jsonb_build_object('action', check_rate_limit.action, 'limit', lim_max,
            'window', win, 'window_seconds', window_s, 'remaining', 0,
            'retry_after_seconds', retry)::text;
        msg := format('rate limit exceeded: %s allows %s calls per %s; retry after %s s',
                      check_rate_limit.action, lim_max, win, retry);
        hnt := format('Retry after %s seconds.', retry);
        if pg_catalog.current_setting('analytics.rate_limit_sqlstate', true) = 'PT429' then
            -- PostgREST < 12: the status without headers
            raise sqlstate 'PT429' using message = msg, detail = info, hint = hnt;
        end if;
        raise sqlstate 'PGRST' using
            message = jsonb_build_object('code', 'rate_limited', 'message', msg, 'details', info, 'hint', hnt)::text,
            detail = jsonb_build_object('status', 429, 'headers', jsonb_build_object(
                'Retry-After', retry::text, 'RateLimit-Limit', lim_max::text, 'RateLimit-Remaining', '0',
                'RateLimit-Reset', retry::text,
                'RateLimit-Policy', format('%s;w=%s', lim_max, ceil(window_s)::bigint)))::text;
    end if;

    if not read_only then
        update analytics.rate_limit_state s set admitted = adm[i:n] || t
        where s.user_id = owner and s.action = check_rate_limit.action;
        used := used + 1;
    end if;
    return jsonb_build_object('action', check_rate_limit.action, 'limited', true, 'limit', lim_max,
        'window_seconds', window_s, 'remaining', lim_max - used,
        'reset_seconds', ceil(extract(epoch from coalesce(adm[i], t) + lim_per - t))::integer);
end
$$;
grant execute on function bench_before.check_rate_limit(text) to authenticated;
SQL
# copies of ingest_spans and record_span without the limiter (bench_bare) and with the efe19d1 limiter
# (bench_before), from the installed definitions: what differs is the one line that calls the limiter
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
create schema bench_bare;
grant usage on schema bench_bare to authenticated;
do $copy$
declare
    ingest text := pg_get_functiondef('analytics.ingest_spans(jsonb)'::regprocedure);
    record text := pg_get_functiondef('analytics.record_span'::regproc);
    limiter constant text := $l$perform analytics.check_rate_limit('ingest', answer => false);$l$;
    s text;
begin
    if position(limiter in ingest) = 0 or position('analytics.ingest_spans(' in record) = 0 then
        raise exception 'bench/rate_limits.sh: ingest_spans or record_span no longer has the line this benchmark replaces';
    end if;
    foreach s in array array['bench_bare', 'bench_before'] loop
        execute replace(replace(ingest, 'FUNCTION analytics.ingest_spans(', format('FUNCTION %s.ingest_spans(', s)),
                        limiter, case s when 'bench_bare'
                                   then $l$perform pg_catalog.set_config('analytics.rate_limit_admitted', 'ingest', true);$l$
                                   else $l$perform bench_before.check_rate_limit('ingest');$l$ end);
        execute replace(replace(record, 'FUNCTION analytics.record_span(', format('FUNCTION %s.record_span(', s)),
                        'analytics.ingest_spans(', format('%s.ingest_spans(', s));
    end loop;
end
$copy$;
-- the limiter alone, as record_span's ingest_spans runs it: a PERFORM in PL/pgSQL (its plan cached)
create function bench_bare.limiter() returns integer language plpgsql as
$f$ begin perform analytics.check_rate_limit('ingest', answer => false); return 1; end $f$;
create function bench_before.limiter() returns integer language plpgsql as
$f$ begin perform bench_before.check_rate_limit('ingest'); return 1; end $f$;
create function bench_bare.no_limiter() returns integer language plpgsql as
$f$ begin return 1; end $f$;
grant execute on all functions in schema bench_bare, bench_before to authenticated;
SQL
cat > "$dir/prelude" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-000000000000","role":"authenticated"}', true);
select set_config('analytics.rate_limit_clock', (timestamptz '2026-11-20 00:00+00' + txid_current() * interval '0.6 s')::text, true);
SQL
script() { { cat "$dir/prelude"; echo "$2"; echo "commit;"; } > "$dir/$1.sql"; }
span="'t' || txid_current(), 's', 'step', '2026-11-20 09:00+00'"
script rs_limited "select analytics.record_span($span);"
script rs_bare "select bench_bare.record_span($span);"
script rs_before "select bench_before.record_span($span);"
script bulk_limited "select analytics.ingest_spans(j) from payload;"
script bulk_bare "select bench_bare.ingest_spans(j) from payload;"
script alone_limited "select bench_bare.limiter();"
script alone_bare "select bench_bare.no_limiter();"
script alone_before "select bench_before.limiter();"
# interleaved: one pgbench run, the scripts picked at random per transaction; mean latency per script
run() {
    local secs=$1; shift
    local args=()
    for s in "$@"; do args+=(-f "$dir/$s.sql@1"); done
    pgbench -n -c 1 -T "$secs" "${args[@]}" "$db" 2>&1 | awk -v names="$*" '
        BEGIN { n = split(names, name, " ") }
        /^SQL script [0-9]+:/ { k = $3 + 0 }
        /^ - latency average/ { print name[k], $5 }'
}
# the window row made by the current limiter first (the efe19d1 one predates its limit columns and cannot create it),
# and the 1,000 spans stored and the table analysed, so that every bulk call of the rounds is a re-send (the first
# call of an unanalysed table is planned for an empty one: one such call skewed a whole round)
pgbench -n -c 1 -t 1 -f "$dir/rs_limited.sql" "$db" > /dev/null
pgbench -n -c 1 -t 1 -f "$dir/bulk_limited.sql" "$db" > /dev/null
psql -X -q -d "$db" -c 'analyze analytics.llm_traces'
for round in $(seq 1 "${ROUNDS:-6}"); do
    run ${RS_SECS:-30} rs_limited rs_bare rs_before >> "$dir/runs"
    run 8 bulk_limited bulk_bare >> "$dir/runs"
    run 10 alone_limited alone_bare alone_before >> "$dir/runs"
done
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
def diffs(a, b):
    return [1000 * (x - y) for x, y in zip(runs[a], runs[b])]
def row(label, a, b):
    d = diffs(a, b)
    pct = [100 * x / 1000 / y for x, y in zip(d, runs[b])]
    print(f" {label:<38} | {m[b]:10.3f} | {statistics.median(d):6.0f} us = {statistics.median(pct):4.1f}%"
          f" | {', '.join(f'{x:.0f}' for x in d)} us ({', '.join(f'{x:.1f}' for x in pct)}%)")
print(" call (one per transaction, interleaved) | without ms | limiter adds (median of the rounds) | round by round")
print("-----------------------------------------+------------+-----------------------------------+---------------")
row("record_span, 1 span", "rs_limited", "rs_bare")
row("record_span, efe19d1 limiter", "rs_before", "rs_bare")
row("ingest_spans, 1,000 spans", "bulk_limited", "bulk_bare")
alone = statistics.median(diffs("alone_limited", "alone_bare"))
before = statistics.median(diffs("alone_before", "alone_bare"))
print()
print(f" the limiter alone (a PERFORM in PL/pgSQL, as in ingest_spans): {alone:.0f} us"
      f" (rounds: {', '.join(f'{x:.0f}' for x in diffs('alone_limited', 'alone_bare'))});"
      f" the efe19d1 limiter: {before:.0f} us")
print(f"   = {100 * alone / 1000 / m['rs_bare']:.1f}% of record_span without it ({m['rs_bare']:.3f} ms),"
      f" {100 * alone / 1000 / m['bulk_bare']:.2f}% of a 1,000-span ingest_spans ({m['bulk_bare']:.1f} ms)")
PY
