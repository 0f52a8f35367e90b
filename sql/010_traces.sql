-- Traces: one row per span of an LLM application (trace -> spans -> child spans).
--
-- Ids are chosen by the client (OpenTelemetry hex ids, Langfuse observation ids, uuids...) and are unique per
-- owner and trace, so one user can neither see nor block another's rows through a constraint error.
-- A span's parent need not exist yet: children may arrive before their parents.
--
-- Range-partitioned by start_time (sql/013_partitions.sql: partitions, their indexes and security, maintenance,
-- retention by dropping a partition). Postgres has no unique index across partitions: each partition has a unique
-- index on (user_id, trace_id, span_id), and across partitions "one row per span" is kept by the writers: ingest
-- takes a lock per trace and updates (moving it, if its start_time changed) a span already stored
-- (src/traces/store.rs); any other INSERT or UPDATE is checked by the statement trigger llm_traces_one_row_per_span
-- (sql/013_partitions.sql), which raises 23505 on a second row of a span.
--
-- The indexes are the partitions' own, not the parent's: pg_dump then restores partitions made by maintenance (which
-- are not members of the extension) without colliding with indexes that attaching them to an indexed parent would
-- create. The planner uses each partition's indexes the same way.
--
-- Token accounting follows the OpenTelemetry GenAI conventions:
--   input_tokens  includes cache_read_tokens and cache_write_tokens (prompt tokens, cached or not);
--   output_tokens includes reasoning_tokens;
--   total_tokens  = input_tokens + output_tokens when the client does not send it.

CREATE TABLE analytics.llm_traces (
    id                    uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id               uuid NOT NULL DEFAULT analytics.current_user_id(),
    trace_id              text NOT NULL,
    span_id               text NOT NULL,
    parent_span_id        text,
    conversation_id       text,
    message_id            text,
    session_id            text,
    name                  text NOT NULL,
    operation_type        text NOT NULL DEFAULT 'unknown',
    status                text NOT NULL DEFAULT 'unset',
    status_message        text,
    level                 text NOT NULL DEFAULT 'default',
    start_time            timestamptz NOT NULL,
    end_time              timestamptz,
    completion_start_time timestamptz,
    duration_ms           double precision
                          GENERATED ALWAYS AS ((extract(epoch FROM (end_time - start_time)) * 1000)::double precision) STORED,
    provider              text,
    model                 text,
    input_tokens          bigint,
    output_tokens         bigint,
    total_tokens          bigint,
    cache_read_tokens     bigint,
    cache_write_tokens    bigint,
    reasoning_tokens      bigint,
    cost_usd              double precision,
    -- true: cost_usd was computed at ingest from a price (analytics.model_prices or the built-in list), so
    -- analytics.recompute_costs may redo it; false: sent by the client (or not known)
    cost_computed         boolean NOT NULL DEFAULT false,
    input                 jsonb,
    output                jsonb,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags                  text[] NOT NULL DEFAULT '{}'::text[],
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- the traced application's end user (Langfuse userId, OpenTelemetry enduser.id): whom the owner's app served,
    -- not the owner (user_id). Last in the row: 0.2.0 added it (an upgraded table has it there too). Collation "C":
    -- an identifier, compared and sorted byte by byte (retention merges the partitions' indexes on it in that order).
    end_user_id           text COLLATE "C",

    CONSTRAINT llm_traces_end_user_id_check CHECK (length(end_user_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_trace_id_check CHECK (length(trace_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_span_id_check CHECK (length(span_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_parent_span_id_check CHECK (parent_span_id IS NULL OR length(parent_span_id) BETWEEN 1 AND 256),
    CONSTRAINT llm_traces_not_own_parent CHECK (parent_span_id IS DISTINCT FROM span_id),
    CONSTRAINT llm_traces_name_check CHECK (length(name) BETWEEN 1 AND 1000),
    -- OpenTelemetry GenAI operation names (gen_ai.operation.name) plus the OpenInference span kinds that have no
    -- GenAI equivalent. Ingest maps aliases (llm, tool, agent, retriever, embedding, reranker) onto these.
    -- the enumerations are defined once, in the core crate (analytics_core::traces::ingest::{OPERATION_TYPES,
    -- STATUSES, LEVELS}); the #[pg_test] check_constraints_list_the_core_enumerations keeps these CHECKs equal to them
    CONSTRAINT llm_traces_operation_type_check CHECK (operation_type IN (
        'chat', 'text_completion', 'generate_content', 'embeddings', 'execute_tool', 'create_agent', 'invoke_agent',
        'retrieval', 'rerank', 'chain', 'guardrail', 'evaluator', 'unknown')),
    CONSTRAINT llm_traces_status_check CHECK (status IN ('ok', 'error', 'unset')),
    CONSTRAINT llm_traces_level_check CHECK (level IN ('debug', 'default', 'warning', 'error')),
    CONSTRAINT llm_traces_end_after_start CHECK (end_time >= start_time),
    CONSTRAINT llm_traces_first_token_in_span CHECK (
        completion_start_time >= start_time AND (end_time IS NULL OR completion_start_time <= end_time)),
    CONSTRAINT llm_traces_tokens_non_negative CHECK (
        input_tokens >= 0 AND output_tokens >= 0 AND total_tokens >= 0
        AND cache_read_tokens >= 0 AND cache_write_tokens >= 0 AND reasoning_tokens >= 0),
    -- In Postgres NaN sorts above every number (NaN >= 0 is true), so "< 'Infinity'" is what rejects NaN and Infinity.
    CONSTRAINT llm_traces_cost_usd_check CHECK (cost_usd >= 0 AND cost_usd < 'Infinity'::double precision),
    CONSTRAINT llm_traces_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT llm_traces_tags_check CHECK (cardinality(tags) <= 64 AND array_position(tags, NULL) IS NULL)
) PARTITION BY RANGE (start_time);

COMMENT ON TABLE analytics.llm_traces IS
'One row per span of an LLM application trace. Owner-scoped by user_id (row-level security). Write through analytics.record_span / analytics.ingest_spans / analytics.ingest_otlp or plain INSERT.';

CREATE TRIGGER llm_traces_touch_updated_at BEFORE UPDATE ON analytics.llm_traces
    FOR EACH ROW EXECUTE FUNCTION analytics.touch_updated_at();

-- Model prices: how ingest computes cost_usd for spans that arrive without one (tokens x price). Owner-scoped like
-- every table: each account keeps the prices it pays.
CREATE TABLE analytics.model_prices (
    id                       uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id                  uuid NOT NULL DEFAULT analytics.current_user_id(),
    -- an exact model name ('gpt-4o-2024-08-06') or a prefix ending in '*' ('gpt-4o*')
    model                    text NOT NULL,
    -- NULL: any provider
    provider                 text,
    input_usd_per_mtok       double precision NOT NULL,
    output_usd_per_mtok      double precision NOT NULL,
    -- NULL: the input price
    cache_read_usd_per_mtok  double precision,
    cache_write_usd_per_mtok double precision,
    -- the price applies to spans that start at or after this time (the latest applicable one wins)
    effective_from           timestamptz NOT NULL DEFAULT '-infinity',
    created_at               timestamptz NOT NULL DEFAULT now(),
    -- NULL: the output price (reasoning tokens are part of the output tokens)
    reasoning_usd_per_mtok   double precision,

    CONSTRAINT model_prices_pkey PRIMARY KEY (id, user_id),
    CONSTRAINT model_prices_key UNIQUE NULLS NOT DISTINCT (user_id, model, provider, effective_from),
    CONSTRAINT model_prices_model_check CHECK (length(model) BETWEEN 1 AND 256 AND model <> '*'),
    CONSTRAINT model_prices_non_negative CHECK (
        input_usd_per_mtok >= 0 AND input_usd_per_mtok < 'Infinity'::double precision
        AND output_usd_per_mtok >= 0 AND output_usd_per_mtok < 'Infinity'::double precision
        AND cache_read_usd_per_mtok >= 0 AND cache_read_usd_per_mtok < 'Infinity'::double precision
        AND cache_write_usd_per_mtok >= 0 AND cache_write_usd_per_mtok < 'Infinity'::double precision),
    CONSTRAINT model_prices_reasoning_check CHECK (
        reasoning_usd_per_mtok >= 0 AND reasoning_usd_per_mtok < 'Infinity'::double precision)
);

COMMENT ON TABLE analytics.model_prices IS
'An owner''s prices per million tokens by model (exact name or prefix*), optionally per provider, from effective_from on: input, output, cache read and write (NULL: the input price), reasoning (NULL: the output price). Ingest uses them, before the built-in list (analytics.builtin_model_prices), to compute cost_usd of spans sent without one; analytics.recompute_costs applies changed prices to stored spans.';
