-- Retention of end users: the classic triangle (cohorts by first-seen period, or named cohorts; periods of a day,
-- week or month, calendar in a time zone or rolling from each end user's start; N-day, unbounded or bracket
-- counts). The core (analytics_core::cohorts::retention) checks the arguments and writes the query; docs/cohorts.md.

CREATE FUNCTION analytics.retention(
    from_time    timestamptz,
    to_time      timestamptz,
    period       text        DEFAULT 'week',
    periods      integer     DEFAULT 8,
    start_event  jsonb       DEFAULT '{}'::jsonb,
    return_event jsonb       DEFAULT '{}'::jsonb,
    mode         text        DEFAULT 'n_day',
    brackets     jsonb       DEFAULT NULL,
    calendar     boolean     DEFAULT true,
    time_zone    text        DEFAULT 'UTC',
    cohorts      text[]      DEFAULT NULL,
    as_of        timestamptz DEFAULT now(),
    user_id      uuid        DEFAULT NULL
) RETURNS TABLE (
    cohort       text,
    cohort_start timestamptz,
    users        bigint,
    period_number integer,
    period_label text,
    eligible     bigint,
    returned     bigint,
    rate         double precision
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = ''
-- First-seen cohorts over calendar periods group the owner's spans by end user, partition by partition in parallel
-- workers, then the end users by anchor period and return periods (analytics_core::cohorts::retention::calendar_sql).
-- The planner takes that plan with these settings (measured over 10M spans / 1M end users, bench/cohorts.sh): without
-- partitionwise aggregation and a cheaper tuple transfer it runs serially; it would sort 1M end users where hashing
-- them into ~100 groups does; the hash of 1M end users needs ~150 MB (a DBA may lower it: ALTER FUNCTION ... SET
-- work_mem); JIT compiling the query took 0.7 s of a 3 s run. With the default random_page_cost (4, disks that seek)
-- the planner reads the big partitions' wide rows sequentially (1.3 GB for a 6M-span month) rather than their
-- (user_id, end_user_id, start_time) index (300 MB, whose leaves inserts leave out of order): 5.4-6.4 s against
-- 2.6-3.0 s for the index; 1.1 is the usual figure for SSD and cloud storage.
SET enable_partitionwise_aggregate = on
SET parallel_tuple_cost = 0.01
SET enable_sort = off
SET work_mem = '256MB'
SET jit = off
SET random_page_cost = 1.1
AS $$
declare
    owner uuid := coalesce(retention.user_id, analytics.current_user_id());
    q jsonb;
    missing text;
begin
    if retention.as_of is null or not isfinite(retention.as_of) or retention.as_of >= timestamptz '294276-01-01 00:00+00' then
        raise exception 'as_of: must be a finite time before the year 294276' using errcode = '22023';
    end if;
    -- any zone Postgres converts with (reading pg_timezone_names instead costs ~30 ms a call)
    begin
        if retention.time_zone is null or pg_catalog.timezone(retention.time_zone, retention.as_of) is null then
            raise invalid_parameter_value;
        end if;
    exception when invalid_parameter_value then
        raise exception 'time_zone: unknown time zone %; use an IANA name such as ''Europe/Berlin'' (see pg_timezone_names)',
            coalesce(quote_literal(retention.time_zone), 'null') using errcode = '22023';
    end;
    q := analytics._retention_query(retention.from_time, retention.to_time, retention.period, retention.periods,
                                    retention.start_event, retention.return_event, retention.mode, retention.brackets,
                                    retention.calendar, retention.time_zone, retention.as_of, retention.cohorts);
    select k into missing from unnest(retention.cohorts) k
    where not exists (select 1 from analytics.user_cohorts c where c.user_id = owner and c.key = k) limit 1;
    if missing is not null then
        raise exception 'cohorts: no cohort "%"', missing using errcode = 'P0002';
    end if;
    return query execute q->>'sql' using owner, retention.as_of, q->'params';
end
$$;

COMMENT ON FUNCTION analytics.retention(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, text[], timestamptz, uuid) IS
$$Retention of the caller's end users. Each end user's anchor is their first start_event (span filters {"operation_type", "name", "model", "provider", "status"}, {} any span, or {"event": metric} an experiment event): ever, grouped by the anchor's period (cohort = its start date) when it falls in [from_time, to_time); or, with cohorts => array[keys], their first start_event in [from_time, to_time), one group per named cohort (current members). Period k: calendar days/weeks (Monday)/months in time_zone after the anchor's (calendar => true), or [anchor + k·L, anchor + (k+1)·L) with L = 24 h, 7 d, 30 d (calendar => false). Modes: n_day (returned in period k), unbounded (in period k or later), brackets ('[[1,1],[2,3],[4,7]]': in any period of the bracket). One row per cohort and period_number 0..periods (brackets: 0 and one per bracket, labelled): users (cohort size), eligible (period begun by as_of), returned (did return_event in it), rate = returned / eligible.
Example: select cohort, period_number, returned, rate from analytics.retention('2026-11-02', '2026-11-16', period => 'week', periods => 2) order by cohort_start, period_number;$$;
COMMENT ON FUNCTION analytics._retention_query(timestamptz, timestamptz, text, integer, jsonb, jsonb, text, jsonb, boolean, text, timestamptz, text[]) IS
'Internal: checks the arguments of analytics.retention (22023 naming the argument) and writes its query, {"sql", "params"} (analytics_core::cohorts::retention).';
