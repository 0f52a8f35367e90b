-- analytics_ext 0.1.0 -> 0.2.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.2.0')
--
-- Every change to the SQL surface made after the 0.1.0 release goes here, in the order it is made, and its undoing
-- into analytics_ext--0.2.0--0.1.0.sql. tests/integration/upgrade_test.sh checks that 0.1.0 updated by this script
-- has exactly the schema of a fresh 0.2.0 install, that the downgrade gives exactly a fresh 0.1.0, and that every
-- row survives 0.1.0 -> 0.2.0 -> 0.1.0 -> 0.2.0.
--
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.2.0'" to load this file. \quit

-- Statistics as GrowthBook computes them (binomial t-test of the reported effect; SRM skips zero-weight groups):
-- the code is in the shared library, the SQL surface changes only in the functions' documentation.
COMMENT ON FUNCTION analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean) IS
$$A treatment against its control from the moments of their per-unit values: {"n", "sum", "sum_squares"}, plus "den_sum", "den_sum_squares", "cross_sum" (Σd, Σd², Σyd) for metric_type 'ratio', and "pre_sum", "pre_sum_squares", "pre_cross_sum" (Σx, Σx², Σxy of the pre-assignment value x) for cuped => true.
Returns the test (binomial: GrowthBook's t-test of the reported effect with variances p(1 - p) and Welch's df; mean: Welch; ratio: Welch on delta-method variances; relative lift by default) with control_value, treatment_value, chance_to_beat_control and expected_loss (Gaussian posterior, flat prior; better means lower when lower_is_better, e.g. for cost or latency), sequential_p_value and sequential_ci_lower/upper (always-valid: Howard et al.'s normal-mixture confidence sequence, GrowthBook's tuning N* = sequential_tuning), and with CUPED cuped_theta and variance_reduction. This is what experiment_results computes per variant.
Example: select analytics.compare_groups('{"n":1000,"sum":116,"sum_squares":116}', '{"n":1000,"sum":129,"sum_squares":129}', 'binomial');$$;
COMMENT ON FUNCTION analytics.srm_check(integer[], double precision[]) IS
$$Sample ratio mismatch: chi-square goodness of fit of observed group sizes to planned weights, as GrowthBook's check_srm (a group with weight 0 is left out of the sum): {"chi_square", "df", "p_value", "expected", "srm"}; srm is true when p < 0.001.
Example: select analytics.srm_check('{5300,4700}', '{0.5,0.5}');$$;

-- Retention policies per owner and analytics.apply_retention() (sql/012_retention.sql), with what 900_security.sql
-- gives every table and function on a fresh install
CREATE TABLE analytics.retention_policies (
    user_id    uuid PRIMARY KEY,
    keep_days  integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_policies_keep_days_check CHECK (keep_days BETWEEN 1 AND 36500)
);
COMMENT ON TABLE analytics.retention_policies IS
'How many days of spans each owner keeps (e.g. 30 for a free plan); analytics.apply_retention() deletes older spans. Written by the DBA or service_role; owners read their own.';

CREATE FUNCTION analytics.apply_retention(default_keep_days integer DEFAULT NULL, as_of timestamptz DEFAULT now())
RETURNS TABLE (user_id uuid, keep_days integer, spans_deleted bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if default_keep_days is not null and (default_keep_days < 1 or default_keep_days > 36500) then
        raise exception 'default_keep_days: must be between 1 and 36500 days, or NULL to keep spans of owners without a policy, got %',
            default_keep_days using errcode = '22023';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    -- each owner's limit: their policy, else the default (none: kept); spans that started before it are deleted
    return query
    with limits as (
        select o.user_id, coalesce(p.keep_days, default_keep_days) as keep_days
        from (select distinct t.user_id from analytics.llm_traces t) o
        left join analytics.retention_policies p on p.user_id = o.user_id
    ), deleted as (
        delete from analytics.llm_traces t
        using limits l
        where t.user_id = l.user_id and l.keep_days is not null
          and t.start_time < apply_retention.as_of - make_interval(days => l.keep_days)
        returning t.user_id
    )
    select l.user_id, l.keep_days, count(d.user_id)
    from limits l left join deleted d on d.user_id = l.user_id
    where l.keep_days is not null
    group by l.user_id, l.keep_days
    order by l.user_id;
end
$$;
COMMENT ON FUNCTION analytics.apply_retention(integer, timestamptz) IS
$$Deletes every owner's spans that started more than keep_days before as_of: keep_days from analytics.retention_policies, else default_keep_days (NULL: spans of owners without a policy are kept). Returns one row per owner with a limit: user_id, keep_days, spans_deleted. For the DBA or a pg_cron job (not granted to API roles); under row-level security a caller deletes only rows it may see.
Example: select * from analytics.apply_retention(default_keep_days => 90);$$;
ALTER TABLE analytics.retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics.retention_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY retention_policies_select_own ON analytics.retention_policies FOR SELECT
    USING (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_insert_own ON analytics.retention_policies FOR INSERT
    WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_update_own ON analytics.retention_policies FOR UPDATE
    USING (user_id = (select analytics.current_user_id())) WITH CHECK (user_id = (select analytics.current_user_id()));
CREATE POLICY retention_policies_delete_own ON analytics.retention_policies FOR DELETE
    USING (user_id = (select analytics.current_user_id()));
SELECT pg_catalog.pg_extension_config_dump('analytics.retention_policies'::regclass, '');
REVOKE ALL ON analytics.retention_policies FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION analytics.apply_retention(integer, timestamptz) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON analytics.retention_policies TO authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.retention_policies TO service_role;
    END IF;
END
$grants$;
