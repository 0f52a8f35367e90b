#!/usr/bin/env bash
# What the rate limiter adds to the calls it guards. One client (pgbench), one call per transaction as PostgREST
# runs it (role authenticated, JWT claims), the test clock advancing 0.6 s per call so that every call finds the
# window of the built-in limit (100 per minute) full of earlier calls, as a client at the limit does, and is
# admitted. Each call is measured twice in the same run, alternating, in 20 short rounds (medians, and the spread of
# the round-by-round difference):
#   with the limiter     analytics.ingest_spans(...)  = check_rate_limit('ingest') + analytics._ingest_spans(...)
#   without it           analytics._ingest_spans(...) with the admission set by hand (what the function does after
#                        the limiter; an API caller cannot set it, a benchmark can)
# for one span (what record_span stores) and for 1,000 spans; and record_span itself, for reference. The limiter's
# own cost does not depend on the batch (it never reads the spans), so it is also measured alone, with many more
# calls than a 1,000-span call allows: the same transaction (role, claims, an xid) with and without
# check_rate_limit('ingest'), and set against the 1,000-span call. The limiter before its one-statement admission
# (commit efe19d1: a lookup of the limit joined to a locked read of the window, then an UPDATE) is recreated as
# bench_before.check_rate_limit and measured alike, the baseline of the same run.
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
cat > "$dir/prelude" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-0000-4000-8000-000000000000","role":"authenticated"}', true);
select set_config('analytics.rate_limit_clock', (timestamptz '2026-11-20 00:00+00' + txid_current() * interval '0.6 s')::text, true);
SQL
one='[{"trace_id":"one","span_id":"s","name":"step","start_time":"2026-11-20T09:00:00Z"}]'
admit="select set_config('analytics.rate_limit_admitted', 'ingest', true);"
{ cat "$dir/prelude"; echo "select analytics.ingest_spans('$one');"; echo "commit;"; } > "$dir/one_limited.sql"
{ cat "$dir/prelude"; echo "$admit"; echo "select analytics._ingest_spans('$one');"; echo "commit;"; } > "$dir/one_bare.sql"
{ cat "$dir/prelude"; echo "select analytics.ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk_limited.sql"
{ cat "$dir/prelude"; echo "$admit"; echo "select analytics._ingest_spans(j) from payload;"; echo "commit;"; } > "$dir/bulk_bare.sql"
{ cat "$dir/prelude"; echo "select analytics.record_span('one', 's', 'step', '2026-11-20 09:00+00');"; echo "commit;"; } > "$dir/record_span.sql"
{ cat "$dir/prelude"; echo "select txid_current();"; echo "select analytics.check_rate_limit('ingest');"; echo "commit;"; } > "$dir/check.sql"
{ cat "$dir/prelude"; echo "select txid_current();"; echo "select null::jsonb;"; echo "commit;"; } > "$dir/nocheck.sql"
{ cat "$dir/prelude"; echo "select txid_current();"; echo "select bench_before.check_rate_limit('ingest');"; echo "commit;"; } > "$dir/check_before.sql"
lat() { pgbench -n -c 1 -t "$2" -f "$dir/$1.sql" "$db" 2>&1 | awk '/^latency average/ {print $4}'; }
# many short rounds, alternating which goes first, so that what changes under the runs (the re-sent spans are
# updates; autovacuum comes and goes) falls on both sides alike
for round in $(seq 1 20); do
    if [ $((round % 2)) = 1 ]; then order="limited bare"; checks="check nocheck check_before"; else order="bare limited"; checks="check_before nocheck check"; fi
    for o in $order; do echo "one_$o $(lat one_$o 1000)" >> "$dir/runs"; done
    echo "record_span $(lat record_span 1000)" >> "$dir/runs"
    for o in $order; do echo "bulk_$o $(lat bulk_$o 12)" >> "$dir/runs"; done
    for c in $checks; do echo "$c $(lat $c 3000)" >> "$dir/runs"; done
done
python3 - "$dir/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in runs.items()}
def spread(a, b):
    d = sorted(1000 * (x - y) for x, y in zip(runs[a], runs[b]))
    return d[0], d[len(d) // 4], statistics.median(d), d[(3 * len(d)) // 4], d[-1]
print(" call (one per transaction, 20 rounds)     | with limiter ms | without ms | limiter adds (median of the rounds' differences)")
print("-------------------------------------------+-----------------+------------+--------------------------------------------------")
for k, label in (("one", "ingest_spans, 1 span"), ("bulk", "ingest_spans, 1,000 spans")):
    w, wo = m[k + "_limited"], m[k + "_bare"]
    lo, q1, med, q3, hi = spread(k + "_limited", k + "_bare")
    print(f" {label:<41} | {w:15.3f} | {wo:10.3f} | {med:6.0f} us = {100 * med / 1000 / wo:5.1f}%"
          f" (middle half {q1:.0f}..{q3:.0f} us, all {lo:.0f}..{hi:.0f})")
print(f" {'record_span (1 span, limiter included)':<41} | {m['record_span']:15.3f} |            |")
lo, q1, med, q3, hi = spread("check", "nocheck")
bulk = m["bulk_bare"]
print()
print(f" the limiter alone (check_rate_limit in a transaction against the same transaction without it, 20 x 3,000 calls):"
      f" {med:.0f} us (middle half {q1:.0f}..{q3:.0f} us, all {lo:.0f}..{hi:.0f})")
print(f"   = {100 * med / 1000 / m['one_bare']:.1f}% of a 1-span ingest_spans ({m['one_bare']:.3f} ms),"
      f" {100 * med / 1000 / bulk:.2f}% of a 1,000-span ingest_spans ({bulk:.1f} ms),"
      f" {100 * med / 1000 / (m['record_span'] - med / 1000):.1f}% of a record_span call without it"
      f" ({m['record_span'] - med / 1000:.3f} ms: record_span {m['record_span']:.3f} ms less the limiter)")
lo, q1, bmed, q3, hi = spread("check_before", "nocheck")
print(f" the limiter before (efe19d1), measured alike: {bmed:.0f} us (middle half {q1:.0f}..{q3:.0f} us, all {lo:.0f}..{hi:.0f})")
PY
