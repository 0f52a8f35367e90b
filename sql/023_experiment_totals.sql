-- Per-unit totals of experiment events, maintained as events and assignments are written, so that
-- experiment_results reads one small row per converting unit instead of joining every assignment with every event.
--
-- ab_experiment_unit_totals holds, for each assignment (experiment, unit, phase) and event metric, the number and
-- the sum of the unit's events that count for that assignment: same owner, same unit, tied to the experiment or
-- to no experiment, at or after the assignment — exactly the events experiment_results' plain query counts.
--
-- Kept by statement-level triggers (one query per statement, whatever its size):
--   events      INSERT: add; DELETE: subtract; UPDATE: subtract the old rows, add the new; TRUNCATE: empty.
--   assignments INSERT: add the unit's existing events (events may arrive before their assignment is stored);
--               UPDATE: recompute the changed assignments; DELETE: the foreign key cascades.
-- An event and an assignment of the same unit written by two concurrent transactions must not miss each other
-- (each trigger's query would not see the other's uncommitted row). The triggers therefore take a transaction
-- advisory lock per (owner, unit) bucket before reading: shared by event writes (they do not conflict with one
-- another), exclusive by assignment writes. Whichever transaction locks second waits for the first to commit and
-- then, with a fresh snapshot, sees its rows. 64 buckets keep the number of locks per statement small.
--
-- The trigger functions are SECURITY DEFINER (users may read their totals but not write them): they act only on
-- the rows of the triggering statement, which row level security has already checked, and only combine rows of
-- the same owner. The table is derived data: it is not dumped by pg_dump; restoring the events and assignments
-- rebuilds it through the triggers, and analytics.rebuild_experiment_totals() rebuilds it on demand.

CREATE TABLE analytics.ab_experiment_unit_totals (
    assignment_id uuid NOT NULL,
    metric        text NOT NULL,
    user_id       uuid NOT NULL,
    experiment_id uuid NOT NULL,
    phase         integer NOT NULL,
    variant_id    uuid NOT NULL,
    events        bigint NOT NULL,
    total         double precision NOT NULL,
    -- copied from the assignment, so that a breakdown by the day of assignment or by an attribute reads this table
    -- alone (experiment_results' dimensions); an UPDATE of the assignment rewrites its rows
    assigned_at   timestamptz NOT NULL,
    attributes    jsonb NOT NULL,
    CONSTRAINT ab_experiment_unit_totals_pkey PRIMARY KEY (assignment_id, metric, user_id),
    CONSTRAINT ab_experiment_unit_totals_assignment_id_fkey FOREIGN KEY (assignment_id, user_id)
        REFERENCES analytics.ab_experiment_assignments (id, user_id) ON DELETE CASCADE,
    CONSTRAINT ab_experiment_unit_totals_events_positive CHECK (events > 0)
);

COMMENT ON TABLE analytics.ab_experiment_unit_totals IS
'Derived, kept by triggers: per assignment and event metric, the count and sum of the unit''s events that count for it (at or after assignment, this experiment or none). Read by experiment_results; rebuild with analytics.rebuild_experiment_totals().';

CREATE INDEX ab_experiment_unit_totals_user_idx
    ON analytics.ab_experiment_unit_totals (user_id, experiment_id, metric, phase) INCLUDE (variant_id, events, total);

-- ---- the lock protocol ------------------------------------------------------------------------------------------
-- classid 0x616e7874 ('anxt'), objid = bucket of (owner, unit), taken in bucket order so that writers cannot
-- deadlock on them. Called with the buckets of the statement's rows (see the triggers).
CREATE FUNCTION analytics._unit_bucket(owner uuid, unit text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = ''
AS $$ select pg_catalog.hashtext(_unit_bucket.owner::text || '/' || _unit_bucket.unit) & 63 $$;
COMMENT ON FUNCTION analytics._unit_bucket(uuid, text) IS 'Internal: the lock bucket (0-63) of a unit of an owner, for ab_experiment_unit_totals'' lock protocol.';

CREATE FUNCTION analytics._lock_unit_bucket(bucket integer, exclusive boolean) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = ''
AS $$
begin
    if exclusive then
        perform pg_catalog.pg_advisory_xact_lock(1634629748, bucket);
    else
        perform pg_catalog.pg_advisory_xact_lock_shared(1634629748, bucket);
    end if;
end
$$;
COMMENT ON FUNCTION analytics._lock_unit_bucket(integer, boolean) IS 'Internal: one advisory lock of the protocol that keeps ab_experiment_unit_totals consistent under concurrent writes.';

-- ---- events -----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics._event_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'TRUNCATE' then
        truncate analytics.ab_experiment_unit_totals;
        return null;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        with d as (
            select a.id, a.user_id, o.metric, count(*) as events, sum(o.value) as total
            from old_rows o
            join analytics.ab_experiment_assignments a
              on a.user_id = o.user_id and a.unit_id = o.unit_id
             and (o.experiment_id is null or a.experiment_id = o.experiment_id) and o.occurred_at >= a.assigned_at
            group by a.id, a.user_id, o.metric
        ), changed as (
            update analytics.ab_experiment_unit_totals t
               set events = t.events - d.events, total = t.total - d.total
              from d
             where t.assignment_id = d.id and t.user_id = d.user_id and t.metric = d.metric and t.events > d.events
        )
        delete from analytics.ab_experiment_unit_totals t
        using d
        where t.assignment_id = d.id and t.user_id = d.user_id and t.metric = d.metric and t.events <= d.events;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
            perform analytics._lock_unit_bucket(b, false);
        end loop;
        insert into analytics.ab_experiment_unit_totals as t
            (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total, assigned_at, attributes)
        select a.id, n.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(n.value), a.assigned_at,
               a.attributes
        from new_rows n
        join analytics.ab_experiment_assignments a
          on a.user_id = n.user_id and a.unit_id = n.unit_id
         and (n.experiment_id is null or a.experiment_id = n.experiment_id) and n.occurred_at >= a.assigned_at
        group by a.id, a.user_id, n.metric
        on conflict (assignment_id, metric, user_id) do update
           set events = t.events + excluded.events, total = t.total + excluded.total;
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._event_totals_trigger() IS 'Internal: keeps ab_experiment_unit_totals in step with ab_experiment_events.';

CREATE TRIGGER ab_experiment_events_totals_insert AFTER INSERT ON analytics.ab_experiment_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._event_totals_trigger();
CREATE TRIGGER ab_experiment_events_totals_update AFTER UPDATE ON analytics.ab_experiment_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._event_totals_trigger();
CREATE TRIGGER ab_experiment_events_totals_delete AFTER DELETE ON analytics.ab_experiment_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._event_totals_trigger();
CREATE TRIGGER ab_experiment_events_totals_truncate AFTER TRUNCATE ON analytics.ab_experiment_events
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._event_totals_trigger();

-- ---- assignments ------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics._assignment_totals_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    b integer;
begin
    if tg_op = 'UPDATE' then
        for b in select distinct analytics._unit_bucket(o.user_id, o.unit_id) from old_rows o order by 1 loop
            perform analytics._lock_unit_bucket(b, true);
        end loop;
        delete from analytics.ab_experiment_unit_totals t using old_rows o where t.assignment_id = o.id and t.user_id = o.user_id;
    end if;
    for b in select distinct analytics._unit_bucket(n.user_id, n.unit_id) from new_rows n order by 1 loop
        perform analytics._lock_unit_bucket(b, true);
    end loop;
    insert into analytics.ab_experiment_unit_totals as t
        (assignment_id, metric, user_id, experiment_id, phase, variant_id, events, total, assigned_at, attributes)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value), a.assigned_at,
           a.attributes
    from new_rows a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, a.experiment_id, a.phase, a.variant_id, a.assigned_at, a.attributes, ev.metric
    on conflict (assignment_id, metric, user_id) do update
       set events = excluded.events, total = excluded.total, assigned_at = excluded.assigned_at,
           attributes = excluded.attributes;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._assignment_totals_trigger() IS 'Internal: adds a new assignment''s existing events to ab_experiment_unit_totals.';

CREATE TRIGGER ab_experiment_assignments_totals_insert AFTER INSERT ON analytics.ab_experiment_assignments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_totals_trigger();
CREATE TRIGGER ab_experiment_assignments_totals_update AFTER UPDATE ON analytics.ab_experiment_assignments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_totals_trigger();

-- ---- units per variant and value, kept at write time ------------------------------------------------------------
-- experiment_results needs, per variant, the number of assigned units (and, for a breakdown, per day of assignment
-- or attribute value). Counting them reads every assignment of the experiment: index-only for the overall count,
-- but a breakdown must read each row's attributes (10M rows: two thirds of a breakdown's time, once per metric of a
-- report). ab_experiment_unit_counts holds the counts instead: one row per experiment, phase, variant, UTC day of
-- assignment, set of attributes (keyed by their md5) and shard, kept by statement triggers on the assignments
-- (+1 per inserted row, -1 per deleted row, both for an UPDATE; one upsert per trigger, in key order).
--
-- The shard (the writing backend's pid modulo 16) spreads concurrent assignments of one variant over up to 16 rows,
-- so that they do not queue on one counter row until commit; a shard's count may go negative (a unit assigned by
-- one connection and deleted by another), the sum over the shards is exact. A row whose count reaches 0 is deleted.
-- The rows of a deleted experiment (or of its old key, if its id or owner is updated) are deleted by a trigger of
-- ab_experiments; the assignments' trigger leaves experiments that no longer exist alone, so the order in which
-- the two fire does not matter.
-- Units with many distinct attribute sets make many rows: at worst one per unit, as the assignments themselves.
CREATE TABLE analytics.ab_experiment_unit_counts (
    experiment_id  uuid     NOT NULL,
    phase          integer  NOT NULL,
    variant_id     uuid     NOT NULL,
    assigned_on    date     NOT NULL,
    attributes_key uuid     NOT NULL,
    shard          smallint NOT NULL,
    user_id        uuid     NOT NULL,
    attributes     jsonb    NOT NULL,
    units          bigint   NOT NULL,
    CONSTRAINT ab_experiment_unit_counts_pkey
        PRIMARY KEY (user_id, experiment_id, phase, variant_id, assigned_on, attributes_key, shard)
);

COMMENT ON TABLE analytics.ab_experiment_unit_counts IS
'Derived, kept by triggers: assigned units per experiment, phase, variant, UTC day of assignment and attribute set (summed over shards). Read by experiment_results; rebuild with analytics.rebuild_experiment_totals().';

CREATE FUNCTION analytics._assignment_counts_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
declare
    -- +1 or -1 per row of the statement's transition table, named changed_rows in every trigger below
    delta bigint := tg_argv[0]::bigint;
    zero analytics.ab_experiment_unit_counts[];
begin
    if tg_op = 'TRUNCATE' then
        truncate analytics.ab_experiment_unit_counts;
        return null;
    end if;
    with d as (
        select r.experiment_id, r.phase, r.variant_id, (r.assigned_at at time zone 'UTC')::date as assigned_on,
               r.attributes, r.user_id, count(*) * delta as units
        from changed_rows r
        -- not for an experiment that is gone (deleted, or its key changed: the assignments' cascade), whose rows the
        -- trigger of ab_experiments deletes
        where exists (select 1 from analytics.ab_experiments e where e.id = r.experiment_id and e.user_id = r.user_id)
        group by r.experiment_id, r.phase, r.variant_id, (r.assigned_at at time zone 'UTC')::date, r.attributes, r.user_id
    ), up as (
        insert into analytics.ab_experiment_unit_counts as c
            (experiment_id, phase, variant_id, assigned_on, attributes_key, shard, user_id, attributes, units)
        select d.experiment_id, d.phase, d.variant_id, d.assigned_on, pg_catalog.md5(d.attributes::text)::uuid,
               pg_catalog.pg_backend_pid() % 16, d.user_id, d.attributes, d.units
        from d
        order by 7, 1, 2, 3, 4, 5, 6
        on conflict (user_id, experiment_id, phase, variant_id, assigned_on, attributes_key, shard) do update
           set units = c.units + excluded.units
        returning c as row_after
    )
    select array_agg(up.row_after) into zero from up where (up.row_after).units = 0;
    if zero is not null then
        -- counts that reached 0 (rechecked on the row: one a concurrent writer changed since is kept)
        delete from analytics.ab_experiment_unit_counts c
        using unnest(zero) z
        where c.user_id = z.user_id and c.experiment_id = z.experiment_id and c.phase = z.phase
          and c.variant_id = z.variant_id and c.assigned_on = z.assigned_on and c.attributes_key = z.attributes_key
          and c.shard = z.shard and c.units = 0;
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._assignment_counts_trigger() IS 'Internal: keeps ab_experiment_unit_counts in step with ab_experiment_assignments (argument: +1 or -1 per row of changed_rows).';

-- An UPDATE counts its new rows (+1) and then its old ones (-1): triggers fire in name order, so a row that an
-- update leaves where it was goes up and back, never through 0. One static statement for every trigger (planned
-- once per session: the hot path is assign_variant storing one row).
CREATE TRIGGER ab_experiment_assignments_counts_insert AFTER INSERT ON analytics.ab_experiment_assignments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('1');
CREATE TRIGGER ab_experiment_assignments_counts_update_1_new AFTER UPDATE ON analytics.ab_experiment_assignments
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('1');
CREATE TRIGGER ab_experiment_assignments_counts_update_2_old AFTER UPDATE ON analytics.ab_experiment_assignments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('-1');
CREATE TRIGGER ab_experiment_assignments_counts_delete AFTER DELETE ON analytics.ab_experiment_assignments
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('-1');
CREATE TRIGGER ab_experiment_assignments_counts_truncate AFTER TRUNCATE ON analytics.ab_experiment_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._assignment_counts_trigger('0');

-- A deleted experiment's counts (its assignments go by the foreign key's cascade), or those left under the old key
-- of an experiment whose id or owner changed (the cascade's UPDATE of its assignments counts them under the new key).
-- Decided from the statement's own rows (an old key that no new row has), not by looking the experiment up.
CREATE FUNCTION analytics._experiment_counts_gone_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
begin
    if tg_op = 'DELETE' then
        delete from analytics.ab_experiment_unit_counts c
        using old_rows o
        where c.user_id = o.user_id and c.experiment_id = o.id;
    else
        delete from analytics.ab_experiment_unit_counts c
        using old_rows o
        where c.user_id = o.user_id and c.experiment_id = o.id
          and not exists (select 1 from new_rows n where n.id = o.id and n.user_id = o.user_id);
    end if;
    return null;
end
$$;
COMMENT ON FUNCTION analytics._experiment_counts_gone_trigger() IS 'Internal: deletes the unit counts of experiments that no longer exist under their key (ab_experiment_unit_counts).';

CREATE TRIGGER ab_experiments_counts_delete AFTER DELETE ON analytics.ab_experiments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._experiment_counts_gone_trigger();
CREATE TRIGGER ab_experiments_counts_update AFTER UPDATE ON analytics.ab_experiments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics._experiment_counts_gone_trigger();

-- ---- rebuild ----------------------------------------------------------------------------------------------------
CREATE FUNCTION analytics.rebuild_experiment_totals() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    n bigint;
begin
    lock table analytics.ab_experiment_assignments, analytics.ab_experiment_events in share mode;
    truncate analytics.ab_experiment_unit_totals;
    insert into analytics.ab_experiment_unit_totals (assignment_id, metric, user_id, experiment_id, phase, variant_id, events,
                                                     total, assigned_at, attributes)
    select a.id, ev.metric, a.user_id, a.experiment_id, a.phase, a.variant_id, count(*), sum(ev.value), a.assigned_at,
           a.attributes
    from analytics.ab_experiment_assignments a
    join analytics.ab_experiment_events ev
      on ev.user_id = a.user_id and ev.unit_id = a.unit_id
     and (ev.experiment_id is null or ev.experiment_id = a.experiment_id) and ev.occurred_at >= a.assigned_at
    group by a.id, a.user_id, ev.metric;
    get diagnostics n = row_count;
    truncate analytics.ab_experiment_unit_counts;
    insert into analytics.ab_experiment_unit_counts (experiment_id, phase, variant_id, assigned_on, attributes_key, shard,
                                                     user_id, attributes, units)
    select a.experiment_id, a.phase, a.variant_id, (a.assigned_at at time zone 'UTC')::date,
           pg_catalog.md5(a.attributes::text)::uuid, 0, a.user_id, a.attributes, count(*)
    from analytics.ab_experiment_assignments a
    group by a.experiment_id, a.phase, a.variant_id, (a.assigned_at at time zone 'UTC')::date, a.attributes, a.user_id;
    return n;
end
$$;
COMMENT ON FUNCTION analytics.rebuild_experiment_totals() IS
$$Rebuilds analytics.ab_experiment_unit_totals and analytics.ab_experiment_unit_counts from every assignment and event (for a DBA: after restoring with pg_restore --disable-triggers, or to check the triggers). Needs the privileges to lock both tables and truncate the derived ones (the extension owner or a superuser); returns the number of totals rows written. Example: select analytics.rebuild_experiment_totals();$$;

-- ---- the per-variant moments experiment_results reads --------------------------------------------------------------
-- Same shape as _experiment_moments (events, without CUPED): n is every assigned unit (from the unit counts), the
-- sums come from the totals (binomial: units with an event; mean: the sum of their values). Per value of a dimension
-- of the assignment (its day or an attribute, both kept in the counts and copied into the totals): the same two
-- scans, grouped by the value, without a join. The query is planned at each call with the arguments' values
-- (EXECUTE ... USING: the dimension's expression is folded; a generic plan sorted 1M rows where hashing 16 groups
-- does: 0.55 against 0.2 s), and JIT is off (planned for both shapes at once, the estimate made Postgres
-- JIT-compile a 1M-unit call for 1.4 s that runs in 0.14 s).
CREATE FUNCTION analytics._experiment_event_moments(experiment_id uuid, phase integer, metric text, kind text,
                                                    cap double precision, dimension text)
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 1
SET search_path = '' SET jit = off
AS $fn$
declare
    -- per variant (and dimension value): assigned units ($1 experiment, $2 phase, $6 dimension) and the sums of the
    -- totals of the metric $3 capped at $5
    sums text := case when dimension is null then $q$
        with assigned as (
            select null::text as dim, c.variant_id, sum(c.units)::bigint as n
            from analytics.ab_experiment_unit_counts c
            where c.experiment_id = $1 and c.phase = $2
            group by c.variant_id
            having sum(c.units) > 0
        ), totals as (
            select null::text as dim, t.variant_id, count(*) as converted, sum(least(t.total, $5)) as sy,
                   sum(least(t.total, $5) * least(t.total, $5)) as syy
            from analytics.ab_experiment_unit_totals t
            where t.experiment_id = $1 and t.metric = $3 and t.phase = $2
            group by t.variant_id
        )$q$ else $q$
        with assigned as (
            select analytics._dimension_value($6, c.assigned_on::timestamp at time zone 'UTC', c.attributes) as dim,
                   c.variant_id, sum(c.units)::bigint as n
            from analytics.ab_experiment_unit_counts c
            where c.experiment_id = $1 and c.phase = $2
            group by 1, c.variant_id
            having sum(c.units) > 0
        ), totals as (
            select analytics._dimension_value($6, t.assigned_at, t.attributes) as dim, t.variant_id, count(*) as converted,
                   sum(least(t.total, $5)) as sy, sum(least(t.total, $5) * least(t.total, $5)) as syy
            from analytics.ab_experiment_unit_totals t
            where t.experiment_id = $1 and t.metric = $3 and t.phase = $2
            group by 1, t.variant_id
        )$q$ end;
begin
    return query execute sums || $q$, m as (
        select a.dim, a.variant_id, a.n, t.converted, t.sy, t.syy
        from assigned a left join totals t on t.variant_id = a.variant_id and t.dim is not distinct from a.dim
    )
    select jsonb_build_object('dimension', dl.dim, 'groups',
               jsonb_agg(jsonb_build_object('key', v.key, 'is_control', v.is_control, 'weight', v.weight,
                                            'moments', jsonb_build_object(
                                                'n', coalesce(m.n, 0),
                                                'sum', coalesce(case when $4 = 'binomial' then m.converted else m.sy end, 0),
                                                'sum_squares', coalesce(case when $4 = 'binomial' then m.converted else m.syy end, 0),
                                                'den_sum', 0, 'den_sum_squares', 0, 'cross_sum', 0, 'pre_sum', 0,
                                                'pre_sum_squares', 0, 'pre_cross_sum', 0))
                         order by v.position))
    from (select m.dim from m union select null::text where $6 is null) dl
    cross join analytics.ab_experiment_variants v
    left join m on m.variant_id = v.id and m.dim is not distinct from dl.dim
    where v.experiment_id = $1
    group by dl.dim
    $q$ using experiment_id, phase, metric, kind, cap, dimension;
end
$fn$;
COMMENT ON FUNCTION analytics._experiment_event_moments(uuid, integer, text, text, double precision, text) IS 'Internal: per-variant moments of an event metric from ab_experiment_unit_totals, unit totals capped at cap (NULL: none), per value of a dimension of the assignment (assigned_date, attribute.<name>).';

-- The percentile cap of an event metric (metric capping) from the per-unit totals, without a pass over the events:
-- percentile_cont(q) of every assigned unit's total, a unit without events counting 0 (left out with ignore_zeros),
-- as analytics.experiment_results computes it from the per-unit values. The zeros are not materialised: the k-th
-- smallest of the N values is the k-th negative total, a 0, or the (k - negatives - zeros)-th positive total, and the
-- quantile interpolates between two of them exactly as percentile_cont does.
CREATE FUNCTION analytics._experiment_event_cap(experiment_id uuid, phase integer, metric text, q double precision,
                                                ignore_zeros boolean)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
declare
    n bigint;
    negatives bigint;
    zeros bigint;
    h double precision;
    lo double precision;
    hi double precision;
begin
    if not (q >= 0 and q <= 1) then  -- (NaN too)
        raise exception 'q: the cap''s percentile must be between 0 and 1, got %', q using errcode = '22023';
    end if;
    if ignore_zeros then
        return (select percentile_cont(q) within group (order by t.total)
                from analytics.ab_experiment_unit_totals t
                where t.experiment_id = _experiment_event_cap.experiment_id and t.metric = _experiment_event_cap.metric
                  and t.phase = _experiment_event_cap.phase and t.total <> 0);
    end if;
    select coalesce(sum(c.units), 0) into n from analytics.ab_experiment_unit_counts c
    where c.experiment_id = _experiment_event_cap.experiment_id and c.phase = _experiment_event_cap.phase;
    if n = 0 then
        return null;
    end if;
    select count(*) filter (where t.total < 0), n - count(*) filter (where t.total <> 0) into negatives, zeros
    from analytics.ab_experiment_unit_totals t
    where t.experiment_id = _experiment_event_cap.experiment_id and t.metric = _experiment_event_cap.metric
      and t.phase = _experiment_event_cap.phase;
    h := q * (n - 1);
    lo := analytics._experiment_event_nth(experiment_id, phase, metric, floor(h)::bigint, negatives, zeros);
    if h = floor(h) then
        return lo;
    end if;
    hi := analytics._experiment_event_nth(experiment_id, phase, metric, ceil(h)::bigint, negatives, zeros);
    return lo + (hi - lo) * (h - floor(h));
end
$$;
COMMENT ON FUNCTION analytics._experiment_event_cap(uuid, integer, text, double precision, boolean) IS 'Internal: the percentile cap of an event metric (percentile_cont of every assigned unit''s total, 0 without events) from ab_experiment_unit_totals.';

-- The k-th smallest (from 0) of an experiment's unit totals with `zeros` zero values among them and `negatives` below.
CREATE FUNCTION analytics._experiment_event_nth(experiment_id uuid, phase integer, metric text, k bigint,
                                                negatives bigint, zeros bigint)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = ''
AS $$
begin
    -- (callable through PostgREST as every function an API role may execute: its arguments are checked)
    if k < 0 then
        raise exception 'k: must not be negative, got %', k using errcode = '22023';
    elsif negatives < 0 then
        raise exception 'negatives: must not be negative, got %', negatives using errcode = '22023';
    elsif zeros < 0 then
        raise exception 'zeros: must not be negative, got %', zeros using errcode = '22023';
    end if;
    return case
        when k < negatives then
            (select t.total from analytics.ab_experiment_unit_totals t
             where t.experiment_id = _experiment_event_nth.experiment_id and t.metric = _experiment_event_nth.metric
               and t.phase = _experiment_event_nth.phase and t.total < 0
             order by t.total offset k limit 1)
        -- (numeric: two counts near the bigint limit do not overflow their sum)
        when k < negatives::numeric + zeros then 0
        else
            (select t.total from analytics.ab_experiment_unit_totals t
             where t.experiment_id = _experiment_event_nth.experiment_id and t.metric = _experiment_event_nth.metric
               and t.phase = _experiment_event_nth.phase and t.total > 0
             order by t.total offset k - negatives - zeros limit 1)
    end;
end
$$;
COMMENT ON FUNCTION analytics._experiment_event_nth(uuid, integer, text, bigint, bigint, bigint) IS 'Internal: the k-th smallest unit total of an event metric, zeros included (analytics._experiment_event_cap).';
