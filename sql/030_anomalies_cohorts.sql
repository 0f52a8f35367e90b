-- Anomaly detections: what the detectors found in a metric series, one row per
-- (owner, metric, dimension, bucket, method), so re-running detection updates instead of duplicating.

CREATE TABLE analytics.anomaly_detections (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL DEFAULT analytics.current_user_id(),
    -- latency_p95, error_rate, cost, tokens, request_count, or a custom metric name
    metric          text NOT NULL,
    -- e.g. {"model": "gpt-4o"}; {} for the whole series
    dimension       jsonb NOT NULL DEFAULT '{}'::jsonb,
    bucket_start    timestamptz NOT NULL,
    bucket_width    interval NOT NULL,
    observed        double precision NOT NULL,
    expected        double precision,
    lower_bound     double precision,
    upper_bound     double precision,
    score           double precision,
    severity        text NOT NULL DEFAULT 'warning',
    method          text NOT NULL,
    parameters      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'open',
    detected_at     timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by uuid,
    resolved_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT anomaly_detections_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT anomaly_detections_finding_key UNIQUE (user_id, metric, dimension, bucket_start, method),
    CONSTRAINT anomaly_detections_metric_check CHECK (metric ~ '^[a-z][a-z0-9_.]{0,99}$'),
    CONSTRAINT anomaly_detections_dimension_is_object CHECK (jsonb_typeof(dimension) = 'object'),
    CONSTRAINT anomaly_detections_parameters_is_object CHECK (jsonb_typeof(parameters) = 'object'),
    CONSTRAINT anomaly_detections_bucket_width_positive CHECK (bucket_width > interval '0'),
    CONSTRAINT anomaly_detections_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT anomaly_detections_method_check CHECK (method IN ('zscore', 'mad', 'iqr', 'ewma', 'seasonal', 'cusum', 'likelihood', 'surprise')),
    CONSTRAINT anomaly_detections_status_check CHECK (status IN ('open', 'acknowledged', 'resolved')),
    CONSTRAINT anomaly_detections_observed_finite CHECK (observed > '-Infinity'::double precision AND observed < 'Infinity'::double precision),
    CONSTRAINT anomaly_detections_bounds_ordered CHECK (lower_bound <= upper_bound),
    CONSTRAINT anomaly_detections_acknowledged_after_detected CHECK (acknowledged_at >= detected_at),
    CONSTRAINT anomaly_detections_resolved_after_detected CHECK (resolved_at >= detected_at)
);

COMMENT ON TABLE analytics.anomaly_detections IS
'Anomalies found in metric series, one row per (owner, metric, dimension, bucket_start, method); status open -> acknowledged -> resolved.';

CREATE INDEX anomaly_detections_user_open_idx ON analytics.anomaly_detections (user_id, status, detected_at DESC);

CREATE TRIGGER anomaly_detections_touch_updated_at BEFORE UPDATE ON analytics.anomaly_detections
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

-- Cohorts: named sets of end users (units) of an account, for targeting and breakdowns. A cohort with a rule
-- (definition) is dynamic: analytics.refresh_cohort materialises its members; one without is static: members are
-- added and removed explicitly. Membership is history: a row per stay, [entered_at, exited_at). sql/061_cohorts.sql.

CREATE TABLE analytics.user_cohorts (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL DEFAULT analytics.current_user_id(),
    key         text NOT NULL,
    name        text NOT NULL,
    description text,
    -- the rule of a dynamic cohort (analytics_core::cohorts::rule; checked on every write), NULL for a static one
    definition  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- the moment of the last analytics.refresh_cohort (membership history is written in time order)
    refreshed_at timestamptz,

    CONSTRAINT user_cohorts_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT user_cohorts_key_per_owner UNIQUE (user_id, key),
    CONSTRAINT user_cohorts_key_check CHECK (length(key) BETWEEN 1 AND 200),
    CONSTRAINT user_cohorts_name_check CHECK (length(name) BETWEEN 1 AND 1000),
    CONSTRAINT user_cohorts_definition_is_object CHECK (jsonb_typeof(definition) = 'object')
);

COMMENT ON TABLE analytics.user_cohorts IS 'Named sets of end users (units) of an account.';

CREATE TRIGGER user_cohorts_touch_updated_at BEFORE UPDATE ON analytics.user_cohorts
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

CREATE TABLE analytics.user_cohort_members (
    user_id    uuid NOT NULL DEFAULT analytics.current_user_id(),
    cohort_id  uuid NOT NULL,
    -- an end_user_id (collation "C", as llm_traces.end_user_id: joined with it through its indexes)
    member_id  text COLLATE "C" NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    entered_at timestamptz NOT NULL DEFAULT now(),
    -- NULL while a member; one row per stay in the cohort
    exited_at  timestamptz,

    CONSTRAINT user_cohort_members_pkey PRIMARY KEY (cohort_id, member_id, entered_at, user_id),
    CONSTRAINT user_cohort_members_exited_after_entered CHECK (exited_at >= entered_at),
    CONSTRAINT user_cohort_members_cohort_fk FOREIGN KEY (cohort_id, user_id)
        REFERENCES analytics.user_cohorts (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT user_cohort_members_member_id_check CHECK (length(member_id) BETWEEN 1 AND 256),
    CONSTRAINT user_cohort_members_properties_is_object CHECK (jsonb_typeof(properties) = 'object')
);

COMMENT ON TABLE analytics.user_cohort_members IS
'Membership history of cohorts: one row per stay of an end user (member_id: an end_user_id or experiment unit id) in a cohort, from entered_at until exited_at (NULL: still a member). Written by analytics.refresh_cohort, add_cohort_members and remove_cohort_members.';

CREATE INDEX user_cohort_members_user_idx ON analytics.user_cohort_members (user_id, member_id);
-- at most one open stay per member and cohort
CREATE UNIQUE INDEX user_cohort_members_open_key ON analytics.user_cohort_members (user_id, cohort_id, member_id)
    WHERE exited_at IS NULL;

-- End users' properties (analytics.identify_end_user, sql/060_end_users.sql); cohort rules test them.
CREATE TABLE analytics.end_user_profiles (
    user_id     uuid NOT NULL DEFAULT analytics.current_user_id(),
    end_user_id text COLLATE "C" NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT end_user_profiles_pkey PRIMARY KEY (user_id, end_user_id),
    CONSTRAINT end_user_profiles_end_user_id_check CHECK (length(end_user_id) BETWEEN 1 AND 256),
    CONSTRAINT end_user_profiles_properties_is_object CHECK (jsonb_typeof(properties) = 'object')
);

COMMENT ON TABLE analytics.end_user_profiles IS
'Properties of an owner''s end users (the end_user_id of their spans), set by analytics.identify_end_user; cohort rules test them.';

CREATE TRIGGER end_user_profiles_touch_updated_at BEFORE UPDATE ON analytics.end_user_profiles
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();
