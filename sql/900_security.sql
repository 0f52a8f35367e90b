-- Security, applied last to every table and function of the extension (this file is the `finalize` block):
--
--  * row level security ENABLEd and FORCEd on every table, with one policy per command, each written as
--    user_id = (select analytics.current_user_id())   -- an InitPlan: evaluated once per query, not per row
--  * every table registered with pg_extension_config_dump, so pg_dump keeps its rows
--  * EXECUTE revoked from PUBLIC on every function; privileges granted to Supabase's API roles
--    (anon, authenticated, service_role) only where those roles exist, so the same install works on Supabase,
--    behind plain PostgREST and on a bare Postgres (where a DBA grants to roles of their own, see README).
--
-- Done in a loop over the catalog rather than table by table, so a table added later cannot be forgotten; the
-- regression test tests/pg_regress/sql/security_catalog.sql checks the result for every table.

DO $security$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname, c.relkind
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE analytics.%I ENABLE ROW LEVEL SECURITY', t.relname);
        -- the usage snapshot's cache (sql/046_usage.sql) is node-local bookkeeping of partitions: no API role has any
        -- privilege on it, it has no policy (a role that does not bypass RLS sees no row), and the trigger that logs
        -- late writes (SECURITY DEFINER, as the table owner) may write it where the owner is not a superuser
        CONTINUE WHEN t.relname LIKE 'usage\_cache\_%';
        -- likewise the version of the rate limits (sql/040_rate_limits.sql): one row, no owner, written by the
        -- trigger on analytics.rate_limits and read by the limiter, both SECURITY DEFINER
        CONTINUE WHEN t.relname = 'rate_limit_rules_version';
        EXECUTE format('ALTER TABLE analytics.%I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format(
            'CREATE POLICY %I ON analytics.%I FOR SELECT USING (user_id = (select analytics.current_user_id()))',
            t.relname || '_select_own', t.relname);
        EXECUTE format(
            'CREATE POLICY %I ON analytics.%I FOR INSERT WITH CHECK (user_id = (select analytics.current_user_id()))',
            t.relname || '_insert_own', t.relname);
        EXECUTE format(
            'CREATE POLICY %I ON analytics.%I FOR UPDATE USING (user_id = (select analytics.current_user_id()))'
            ' WITH CHECK (user_id = (select analytics.current_user_id()))',
            t.relname || '_update_own', t.relname);
        EXECUTE format(
            'CREATE POLICY %I ON analytics.%I FOR DELETE USING (user_id = (select analytics.current_user_id()))',
            t.relname || '_delete_own', t.relname);
        -- derived data is not dumped: restoring its sources rebuilds it through their triggers; nor are the rate
        -- limiter's state and the result cache (UNLOGGED, emptied by a crash anyway). A partitioned table has no rows
        -- of its own: its partitions are dumped (sql/013_partitions.sql).
        IF t.relkind = 'r' AND t.relname NOT IN ('ab_experiment_unit_totals', 'ab_experiment_unit_counts', 'rate_limit_state',
                             'cache_entries', 'cache_writes', 'cache_events', 'cache_counters') THEN
            PERFORM pg_catalog.pg_extension_config_dump(format('analytics.%I', t.relname)::regclass, '');
        END IF;
    END LOOP;
END
$security$;

-- The default rate limits (user_id NULL) apply to every owner, who may read them (analytics.rate_limit_status).
CREATE POLICY rate_limits_select_defaults ON analytics.rate_limits FOR SELECT USING (user_id IS NULL);

-- The result cache is reached only through SECURITY DEFINER functions (sql/041_cache.sql), which take the owner from
-- the JWT and filter by it themselves; API roles have no privilege on its tables. Its tables are not FORCEd, so that
-- those functions (run as the table owner) may record a write to any owner's data (a service_role back end writing a
-- user's rows, a TRUNCATE) even where the extension owner is not a superuser (Supabase's postgres role).
ALTER TABLE analytics.cache_entries NO FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics.cache_writes NO FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics.cache_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics.cache_counters NO FORCE ROW LEVEL SECURITY;

REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics FROM PUBLIC;

DO $grants$
BEGIN
    -- anon: the schema and the identity functions only. Anonymous callers own no rows, so they get no table access at
    -- all (a request fails with 42501 instead of silently returning nothing). Pure functions that are safe for
    -- anonymous callers are granted to anon by the capability that defines them.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        GRANT USAGE ON SCHEMA analytics TO anon;
        GRANT EXECUTE ON FUNCTION analytics.current_user_id(), analytics.current_role_claim() TO anon;
        -- pure computations that read no table (an edge function may bucket anonymous visitors; a pricing page may
        -- list the built-in model prices)
        GRANT EXECUTE ON FUNCTION analytics.gb_hash(text, text, integer), analytics.equal_weights(integer),
            analytics.bucket_ranges(integer, double precision, double precision[]),
            analytics.choose_variation(double precision, double precision[]),
            analytics.in_namespace(text, text, double precision, double precision),
            analytics.welch_t_test(bigint, double precision, double precision, bigint, double precision, double precision, boolean, double precision),
            analytics.two_proportion_z_test(bigint, bigint, bigint, bigint, boolean, double precision),
            analytics.srm_check(integer[], double precision[]), analytics.adjust_p_values(double precision[], text),
            analytics.compare_groups(jsonb, jsonb, text, boolean, double precision, boolean, double precision, boolean, double precision, double precision, text),
            analytics.sample_size(double precision, double precision, text, double precision, boolean, double precision, double precision, integer, text),
            analytics.minimum_detectable_effect(double precision, bigint, text, double precision, boolean, double precision, double precision, integer, text),
            analytics.power_analysis(double precision, double precision, bigint, text, double precision, integer, double precision, double precision, text, double precision, double precision, double precision),
            analytics.detect_anomalies(double precision[], text, jsonb), analytics.anomaly_params(text, jsonb),
            analytics.detect_series_anomalies(timestamptz[], double precision[], text, jsonb, interval),
            analytics.builtin_model_prices() TO anon;
        -- a project's db_pre_request function runs for anonymous requests too (they are never limited: no sub)
        GRANT EXECUTE ON FUNCTION analytics.check_rate_limit(text, boolean) TO anon;
    END IF;
    -- authenticated: everything, confined to its own rows by the policies above.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        GRANT USAGE ON SCHEMA analytics TO authenticated;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA analytics TO authenticated;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics TO authenticated;
    END IF;
    -- service_role: Supabase creates it with BYPASSRLS, for trusted back-ends; it keeps that behaviour here.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT USAGE ON SCHEMA analytics TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA analytics TO service_role;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics TO service_role;
    END IF;
    -- tables API roles read but do not write, and functions that are not API functions:
    --  * the experiment totals and unit counts are kept by triggers only (sql/023_experiment_totals.sql); neither
    --    the lock of their protocol nor their rebuild (a DBA's tool) is called by API roles
    --  * retention policies and rate limits are a plan's limits (sql/012_retention.sql, sql/040_rate_limits.sql):
    --    owners read theirs, only the DBA or service_role writes them, and applying retention is a DBA's job (pg_cron)
    --  * the rate limiter's state is written by analytics.check_rate_limit only (SECURITY DEFINER): an owner who
    --    could delete their own row would reset their limit; its lock function would let a caller hold another
    --    owner's lock
    --  * ingest failures are a log: the ingest functions insert the caller's, the owner reads and deletes them
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE UPDATE ON analytics.ingest_failures FROM authenticated;
        REVOKE INSERT, UPDATE, DELETE ON analytics.ab_experiment_unit_totals, analytics.ab_experiment_unit_counts,
            analytics.retention_policies, analytics.rate_limits, analytics.rate_limit_state FROM authenticated;
        REVOKE ALL ON analytics.cache_entries, analytics.cache_writes, analytics.cache_events, analytics.cache_counters,
            analytics.usage_cache_partitions, analytics.usage_cache_days, analytics.usage_cache_changes,
            analytics.rate_limit_rules_version FROM authenticated;
        REVOKE EXECUTE ON FUNCTION analytics._lock_unit_bucket(integer, boolean), analytics.rebuild_experiment_totals(),
            analytics.apply_retention(integer, timestamptz), analytics._cache_note_writes(),
            analytics.maintain_span_partitions(text, integer, interval, timestamptz), analytics.span_partitions(),
            analytics._secure_span_partition(regclass), analytics._index_span_partition(regclass),
            analytics._span_partition_layout(), analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]),
            analytics._span_partition_label(timestamptz),
            analytics._cache_current(uuid, pg_snapshot, xid8), analytics._cache_count(text, boolean),
            analytics._cache_drain(), analytics._cache_pending(), analytics._rate_limit_lock(uuid, text, boolean) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        REVOKE INSERT, UPDATE, DELETE ON analytics.ab_experiment_unit_totals, analytics.ab_experiment_unit_counts,
            analytics.rate_limit_state FROM service_role;
        REVOKE ALL ON analytics.cache_entries, analytics.cache_writes, analytics.cache_events, analytics.cache_counters,
            analytics.usage_cache_partitions, analytics.usage_cache_days, analytics.usage_cache_changes,
            analytics.rate_limit_rules_version FROM service_role;
        REVOKE EXECUTE ON FUNCTION analytics._lock_unit_bucket(integer, boolean), analytics.rebuild_experiment_totals(),
            analytics.apply_retention(integer, timestamptz), analytics._cache_note_writes(),
            analytics.maintain_span_partitions(text, integer, interval, timestamptz), analytics.span_partitions(),
            analytics._secure_span_partition(regclass), analytics._index_span_partition(regclass),
            analytics._span_partition_layout(), analytics._make_span_partition(text, timestamptz, timestamptz, regclass[]),
            analytics._span_partition_label(timestamptz),
            analytics._cache_current(uuid, pg_snapshot, xid8), analytics._cache_count(text, boolean),
            analytics._cache_drain(), analytics._cache_pending(), analytics._rate_limit_lock(uuid, text, boolean) FROM service_role;
    END IF;
END
$grants$;
