-- Experiments: A/B tests owned by an account (user_id), their variants, the stored (sticky) assignments of units to
-- variants, and the events (conversions, numeric outcomes) that are not traces.
--
-- Child tables carry the owner too and reference their parent through (id, user_id), so a row can only ever hang off
-- a parent of the same owner: a user who guesses another user's experiment id gets a foreign-key error that is the
-- same whether or not that experiment exists.
--
-- Every primary, unique and foreign key includes user_id, so that each table can be distributed by user_id
-- (Citus: docs/scaling.md; tests/pg_regress/sql/distribution_keys.sql checks the catalog). The keys lead with the
-- column they are looked up by (id, experiment_id): user_id rides along.

CREATE TABLE analytics.ab_experiments (
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL DEFAULT analytics.current_user_id(),
    key                text NOT NULL,
    name               text NOT NULL,
    hypothesis         text,
    status             text NOT NULL DEFAULT 'draft',
    -- GrowthBook: the hash seed defaults to the experiment key.
    seed               text,
    hash_version       smallint NOT NULL DEFAULT 2,
    coverage           double precision NOT NULL DEFAULT 1,
    namespace_name     text,
    namespace_start    double precision,
    namespace_end      double precision,
    primary_metric     text,
    winner_variant_key text,
    phase              integer NOT NULL DEFAULT 0,
    started_at         timestamptz,
    ended_at           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT ab_experiments_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT ab_experiments_key_per_owner UNIQUE (user_id, key),
    CONSTRAINT ab_experiments_key_check CHECK (length(key) BETWEEN 1 AND 200),
    CONSTRAINT ab_experiments_name_check CHECK (length(name) BETWEEN 1 AND 1000),
    CONSTRAINT ab_experiments_status_check CHECK (status IN ('draft', 'running', 'paused', 'completed', 'archived')),
    CONSTRAINT ab_experiments_hash_version_check CHECK (hash_version IN (1, 2)),
    CONSTRAINT ab_experiments_coverage_check CHECK (coverage >= 0 AND coverage <= 1),
    CONSTRAINT ab_experiments_namespace_check CHECK (
        (namespace_name IS NULL AND namespace_start IS NULL AND namespace_end IS NULL)
        OR (namespace_name IS NOT NULL AND namespace_start >= 0 AND namespace_start < namespace_end AND namespace_end <= 1)),
    CONSTRAINT ab_experiments_phase_check CHECK (phase >= 0),
    CONSTRAINT ab_experiments_ended_after_started CHECK (ended_at >= started_at)
);

COMMENT ON TABLE analytics.ab_experiments IS
'A/B experiments owned by an account (user_id). Lifecycle: draft -> running <-> paused -> completed -> archived.';

CREATE TRIGGER ab_experiments_touch_updated_at BEFORE UPDATE ON analytics.ab_experiments
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

CREATE TABLE analytics.ab_experiment_variants (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL DEFAULT analytics.current_user_id(),
    experiment_id uuid NOT NULL,
    key           text NOT NULL,
    name          text,
    -- GrowthBook's variation index: the order of the variants in bucket ranges.
    position      integer NOT NULL,
    weight        double precision NOT NULL,
    is_control    boolean NOT NULL DEFAULT false,
    payload       jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT ab_experiment_variants_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT ab_experiment_variants_experiment_fk FOREIGN KEY (experiment_id, user_id)
        REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT ab_experiment_variants_key_per_experiment UNIQUE (experiment_id, key, user_id),
    CONSTRAINT ab_experiment_variants_position_per_experiment UNIQUE (experiment_id, position, user_id),
    CONSTRAINT ab_experiment_variants_id_experiment UNIQUE (id, experiment_id, user_id),
    CONSTRAINT ab_experiment_variants_key_check CHECK (length(key) BETWEEN 1 AND 200),
    CONSTRAINT ab_experiment_variants_position_check CHECK (position >= 0),
    CONSTRAINT ab_experiment_variants_weight_check CHECK (weight >= 0 AND weight <= 1)
);

COMMENT ON TABLE analytics.ab_experiment_variants IS
'Variants (arms) of an experiment, with their traffic weight in [0, 1] and at most one control.';

-- At most one control per experiment; "exactly one" is enforced when an experiment is created or started.
CREATE UNIQUE INDEX ab_experiment_variants_one_control ON analytics.ab_experiment_variants (experiment_id, user_id)
    WHERE is_control;
CREATE INDEX ab_experiment_variants_user_idx ON analytics.ab_experiment_variants (user_id, experiment_id);

CREATE TABLE analytics.ab_experiment_assignments (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL DEFAULT analytics.current_user_id(),
    experiment_id uuid NOT NULL,
    variant_id    uuid NOT NULL,
    unit_id       text NOT NULL,
    phase         integer NOT NULL DEFAULT 0,
    hash_value    double precision,
    assigned_at   timestamptz NOT NULL DEFAULT now(),
    -- The unit's attributes when it was assigned (assign_variant's attributes: country, plan, browser, ...): the unit
    -- dimensions experiment_results breaks results down by, as GrowthBook's experiment dimensions from its exposures.
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,

    CONSTRAINT ab_experiment_assignments_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT ab_experiment_assignments_experiment_fk FOREIGN KEY (experiment_id, user_id)
        REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE,
    -- NO ACTION (checked at the end of the statement): deleting an experiment removes its assignments and variants
    -- together, while deleting a variant that still has assignments is refused.
    CONSTRAINT ab_experiment_assignments_variant_fk FOREIGN KEY (variant_id, experiment_id, user_id)
        REFERENCES analytics.ab_experiment_variants (id, experiment_id, user_id) ON DELETE NO ACTION,
    CONSTRAINT ab_experiment_assignments_unit_per_phase UNIQUE (experiment_id, unit_id, phase, user_id),
    CONSTRAINT ab_experiment_assignments_unit_id_check CHECK (length(unit_id) BETWEEN 1 AND 256),
    CONSTRAINT ab_experiment_assignments_phase_check CHECK (phase >= 0),
    CONSTRAINT ab_experiment_assignments_hash_value_check CHECK (hash_value >= 0 AND hash_value <= 1),
    CONSTRAINT ab_experiment_assignments_attributes_check CHECK (jsonb_typeof(attributes) = 'object')
);

COMMENT ON TABLE analytics.ab_experiment_assignments IS
'Sticky assignments: the first variant a unit got in an experiment phase, stored once (unique per experiment, unit, phase).';

-- also answers experiment_results' count of units per variant with an index-only scan
CREATE INDEX ab_experiment_assignments_user_idx ON analytics.ab_experiment_assignments (user_id, experiment_id, phase, variant_id);
-- a unit's assignments in all experiments, for events that apply to every experiment (sql/023_experiment_totals.sql)
CREATE INDEX ab_experiment_assignments_user_unit_idx ON analytics.ab_experiment_assignments (user_id, unit_id, experiment_id, phase);
CREATE INDEX ab_experiment_assignments_variant_idx ON analytics.ab_experiment_assignments (variant_id, experiment_id);

CREATE TABLE analytics.ab_experiment_events (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL DEFAULT analytics.current_user_id(),
    -- NULL: an event of a unit that applies to every experiment the unit is assigned to.
    experiment_id uuid,
    unit_id       text NOT NULL,
    metric        text NOT NULL,
    value         double precision NOT NULL DEFAULT 1,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    properties    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT ab_experiment_events_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT ab_experiment_events_experiment_fk FOREIGN KEY (experiment_id, user_id)
        REFERENCES analytics.ab_experiments (id, user_id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT ab_experiment_events_unit_id_check CHECK (length(unit_id) BETWEEN 1 AND 256),
    CONSTRAINT ab_experiment_events_metric_check CHECK (length(metric) BETWEEN 1 AND 200),
    -- rejects NaN and +/-Infinity (NaN sorts above Infinity in Postgres)
    CONSTRAINT ab_experiment_events_value_finite CHECK (value > '-Infinity'::double precision AND value < 'Infinity'::double precision),
    CONSTRAINT ab_experiment_events_properties_is_object CHECK (jsonb_typeof(properties) = 'object')
);

COMMENT ON TABLE analytics.ab_experiment_events IS
'Outcomes that are not traces: conversions (value 1) and numeric metrics per unit, optionally tied to one experiment.';

CREATE INDEX ab_experiment_events_user_experiment_idx ON analytics.ab_experiment_events (user_id, experiment_id, metric, unit_id);
CREATE INDEX ab_experiment_events_user_unit_idx ON analytics.ab_experiment_events (user_id, unit_id, metric, occurred_at);
