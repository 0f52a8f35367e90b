-- LLM costs: the built-in price list, the price that applies to a model, and recomputing stored costs when prices
-- change (src/traces/costs.rs; the list and the rules are the core's, analytics_core::traces::pricing).

COMMENT ON FUNCTION analytics.builtin_model_prices() IS
$$The built-in price list, one row per model name: USD per million input, output, cache-read, cache-write and reasoning tokens (standard tier, prompts up to 200k tokens, 5-minute cache writes), the day the price was read (as_of) and its source. Ingest prices a span sent without cost_usd from it when the owner has no matching row in analytics.model_prices; the setting analytics.builtin_prices = off switches it off.
Example: select model, input_usd_per_mtok, output_usd_per_mtok from analytics.builtin_model_prices() where provider = 'anthropic';$$;

COMMENT ON FUNCTION analytics.model_price(text, text, timestamptz, uuid) IS
$$The price ingest applies to a span of this model (and provider) starting at `at`, for the caller (or user_id): the owner's most specific row of analytics.model_prices (origin 'owner'), else the built-in one (origin 'builtin'), else no row. Cache prices default to the input price, the reasoning price to the output price.
Example: select origin, input_usd_per_mtok, output_usd_per_mtok from analytics.model_price('gpt-4o-mini');$$;

COMMENT ON FUNCTION analytics.recompute_costs(timestamptz, timestamptz, text, boolean) IS
$$Applies today's prices (analytics.model_prices, then the built-in list) to the caller's stored spans that started in [from_time, to_time), optionally of one model: a cost computed at ingest (cost_computed) or missing is recomputed; a cost the client sent is kept unless include_sent. A span no price applies to any more loses its computed cost. Returns the spans examined and updated and the total cost before and after. Reads and writes in chunks of 10,000 spans.
Example: select * from analytics.recompute_costs(now() - interval '30 days', now());$$;
