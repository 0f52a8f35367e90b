//! Cost of a span from its tokens: the owner's `analytics.model_prices` first, else the built-in list below, for
//! spans sent without `cost_usd`. Plain Rust, no database.
//!
//! Matching an owner's price: the price's owner is the span's owner; its model is the span's model exactly, or a
//! prefix ending in `*`; its provider is the span's or NULL (any); its `effective_from` is at or before the span's
//! start. Of several matches the most specific wins: an exact model over a prefix, a longer prefix over a shorter
//! one, a named provider over any, then the latest `effective_from`. Any owner price that matches beats the
//! built-in list.
//!
//! Matching the built-in list ([`BUILTIN_PRICES`]): the span's model, lower-cased and without a routing prefix
//! (`openai/gpt-4o`, `models/gemini-2.5-pro`: the part after the last `/`), equals one of an entry's names. Any
//! provider: the same model through Azure or a gateway is priced the same.
//!
//! Cost (OpenTelemetry token accounting: input includes cached tokens, output includes reasoning tokens):
//! `(input - cache_read - cache_write) * input_price + cache_read * cache_read_price
//!  + cache_write * cache_write_price + (output - reasoning) * output_price + reasoning * reasoning_price`, prices
//! per million tokens; the cache prices default to the input price, the reasoning price to the output price.

use super::ingest::Span;

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    /// None: the input price
    pub cache_read: Option<f64>,
    /// None: the input price
    pub cache_write: Option<f64>,
    /// None: the output price
    pub reasoning: Option<f64>,
}

impl Rates {
    const fn new(input: f64, output: f64) -> Rates {
        Rates { input, output, cache_read: None, cache_write: None, reasoning: None }
    }
    const fn cache_read(self, usd: f64) -> Rates {
        Rates { cache_read: Some(usd), ..self }
    }
    const fn cache(self, read: f64, write: f64) -> Rates {
        Rates { cache_read: Some(read), cache_write: Some(write), ..self }
    }

    /// The cost in USD of these token counts (see the module's formula).
    pub fn usd(&self, tokens: &Tokens) -> f64 {
        let uncached = (tokens.input - tokens.cache_read - tokens.cache_write).max(0.0);
        let plain_output = (tokens.output - tokens.reasoning).max(0.0);
        (uncached * self.input
            + tokens.cache_read * self.cache_read.unwrap_or(self.input)
            + tokens.cache_write * self.cache_write.unwrap_or(self.input)
            + plain_output * self.output
            + tokens.reasoning.min(tokens.output) * self.reasoning.unwrap_or(self.output))
            / 1_000_000.0
    }
}

/// A span's token counts (missing counts are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tokens {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub reasoning: f64,
}

impl Tokens {
    pub fn of(span: &Span) -> Option<Tokens> {
        Tokens::from_counts(
            span.input_tokens,
            span.output_tokens,
            span.cache_read_tokens,
            span.cache_write_tokens,
            span.reasoning_tokens,
        )
    }

    /// None when neither input nor output tokens are known (nothing to price).
    pub fn from_counts(
        input: Option<i64>,
        output: Option<i64>,
        cache_read: Option<i64>,
        cache_write: Option<i64>,
        reasoning: Option<i64>,
    ) -> Option<Tokens> {
        if input.is_none() && output.is_none() {
            return None;
        }
        let f = |v: Option<i64>| v.unwrap_or(0) as f64;
        Some(Tokens { input: f(input), output: f(output), cache_read: f(cache_read), cache_write: f(cache_write), reasoning: f(reasoning) })
    }
}

/// One row of an owner's `analytics.model_prices`.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub user_id: String,
    pub model: String,
    pub provider: Option<String>,
    pub rates: Rates,
    /// microseconds since the Unix epoch (i64::MIN for '-infinity')
    pub effective_from_us: i64,
}

/// What a span is priced by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PriceRef<'a> {
    Owner(&'a Price),
    Builtin(&'a BuiltinPrice),
}

impl PriceRef<'_> {
    pub fn rates(&self) -> &Rates {
        match self {
            PriceRef::Owner(p) => &p.rates,
            PriceRef::Builtin(b) => &b.rates,
        }
    }
}

/// The span's key fields for matching a price.
#[derive(Debug, Clone, Copy)]
pub struct PriceKey<'a> {
    pub user_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    /// microseconds since the Unix epoch
    pub start_us: i64,
}

impl<'a> PriceKey<'a> {
    pub fn of(span: &'a Span) -> PriceKey<'a> {
        PriceKey {
            user_id: span.user_id.as_deref(),
            model: span.model.as_deref(),
            provider: span.provider.as_deref(),
            start_us: span.start_time.0,
        }
    }
}

impl Price {
    /// How well this price fits the span: None when it does not apply, else a key where larger is more specific.
    fn fit(&self, key: &PriceKey) -> Option<(bool, usize, bool, i64)> {
        let model = key.model?;
        if key.user_id != Some(self.user_id.as_str()) || self.effective_from_us > key.start_us {
            return None;
        }
        let (exact, prefix_len) = match self.model.strip_suffix('*') {
            Some(prefix) if model.starts_with(prefix) => (false, prefix.len()),
            Some(_) => return None,
            None if self.model == model => (true, model.len()),
            None => return None,
        };
        let provider_named = match (&self.provider, key.provider) {
            (None, _) => false,
            (Some(p), Some(s)) if p == s => true,
            _ => return None,
        };
        Some((exact, prefix_len, provider_named, self.effective_from_us))
    }
}

/// The price that applies to a span: the best-fitting owner price, else (when `builtin`) the built-in one.
pub fn price_for<'a>(key: &PriceKey, prices: &'a [Price], builtin: bool) -> Option<PriceRef<'a>> {
    if let Some(p) = prices.iter().filter_map(|p| p.fit(key).map(|f| (f, p))).max_by(|a, b| a.0.cmp(&b.0)) {
        return Some(PriceRef::Owner(p.1));
    }
    if builtin {
        return builtin_price(key.model?).map(PriceRef::Builtin);
    }
    None
}

/// The cost of `span` under the price that applies, or None (no model, no tokens, or no price).
pub fn cost(span: &Span, prices: &[Price], builtin: bool) -> Option<f64> {
    let tokens = Tokens::of(span)?;
    Some(price_for(&PriceKey::of(span), prices, builtin)?.rates().usd(&tokens))
}

/// Fills in `cost_usd` of the spans that have none, where a price applies; returns, per span, whether its cost was
/// computed here (stored as `llm_traces.cost_computed`, so that `analytics.recompute_costs` may redo it).
pub fn fill_costs(spans: &mut [Span], prices: &[Price], builtin: bool) -> Vec<bool> {
    spans
        .iter_mut()
        .map(|span| {
            if span.cost_usd.is_some() || (prices.is_empty() && !builtin) {
                return false;
            }
            span.cost_usd = cost(span, prices, builtin);
            span.cost_usd.is_some()
        })
        .collect()
}

// ---- the built-in price list ----------------------------------------------------------------------------------

/// A price of the built-in list: list prices in USD per million tokens, standard tier (no batch discount, prompts up
/// to 200k tokens where a provider charges more above), cache writes at the 5-minute rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuiltinPrice {
    /// the model names it applies to (lower case; a span's model is compared lower-cased, without a routing prefix)
    pub models: &'static [&'static str],
    pub provider: &'static str,
    pub rates: Rates,
    /// the day the price was read from its source
    pub as_of: &'static str,
    pub source: &'static str,
}

const OPENAI: &str = "https://openai.com/api/pricing (via Langfuse default-model-prices.json, langfuse/langfuse@fbcd4fac)";
const ANTHROPIC: &str = "https://www.anthropic.com/pricing#api (via Langfuse default-model-prices.json, langfuse/langfuse@fbcd4fac)";
const GOOGLE: &str = "https://ai.google.dev/gemini-api/docs/pricing (via Langfuse default-model-prices.json, langfuse/langfuse@fbcd4fac)";
const MISTRAL: &str = "https://mistral.ai/pricing#api-pricing";
const LANGFUSE_DATE: &str = "2026-02-23";

const fn openai(models: &'static [&'static str], rates: Rates) -> BuiltinPrice {
    BuiltinPrice { models, provider: "openai", rates, as_of: LANGFUSE_DATE, source: OPENAI }
}
const fn anthropic(models: &'static [&'static str], input: f64, output: f64) -> BuiltinPrice {
    // Anthropic's cache: writes (5 minutes) at 1.25x the input price, reads at 0.1x
    let rates = Rates::new(input, output).cache(input / 10.0, input * 1.25);
    BuiltinPrice { models, provider: "anthropic", rates, as_of: LANGFUSE_DATE, source: ANTHROPIC }
}
const fn google(models: &'static [&'static str], rates: Rates) -> BuiltinPrice {
    BuiltinPrice { models, provider: "google", rates, as_of: LANGFUSE_DATE, source: GOOGLE }
}
const fn mistral(models: &'static [&'static str], input: f64, output: f64) -> BuiltinPrice {
    BuiltinPrice { models, provider: "mistral", rates: Rates::new(input, output), as_of: "2025-06-01", source: MISTRAL }
}

/// Widely used models; owners add or override any model in `analytics.model_prices`.
pub const BUILTIN_PRICES: &[BuiltinPrice] = &[
    // OpenAI: cached input at the listed cached price, reasoning tokens at the output price
    openai(&["gpt-5.2", "gpt-5.2-2025-12-11"], Rates::new(1.75, 14.0).cache_read(0.175)),
    openai(&["gpt-5.2-pro", "gpt-5.2-pro-2025-12-11"], Rates::new(21.0, 168.0)),
    openai(&["gpt-5.1", "gpt-5.1-2025-11-13", "gpt-5", "gpt-5-2025-08-07", "gpt-5-chat-latest"], Rates::new(1.25, 10.0).cache_read(0.125)),
    openai(&["gpt-5-pro", "gpt-5-pro-2025-10-06"], Rates::new(15.0, 120.0)),
    openai(&["gpt-5-mini", "gpt-5-mini-2025-08-07"], Rates::new(0.25, 2.0).cache_read(0.025)),
    openai(&["gpt-5-nano", "gpt-5-nano-2025-08-07"], Rates::new(0.05, 0.4).cache_read(0.005)),
    openai(&["gpt-4.1", "gpt-4.1-2025-04-14"], Rates::new(2.0, 8.0).cache_read(0.5)),
    openai(&["gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"], Rates::new(0.4, 1.6).cache_read(0.1)),
    openai(&["gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"], Rates::new(0.1, 0.4).cache_read(0.025)),
    openai(&["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"], Rates::new(2.5, 10.0).cache_read(1.25)),
    openai(&["gpt-4o-2024-05-13", "chatgpt-4o-latest"], Rates::new(5.0, 15.0)),
    openai(&["gpt-4o-mini", "gpt-4o-mini-2024-07-18"], Rates::new(0.15, 0.6).cache_read(0.075)),
    openai(&["o1", "o1-2024-12-17"], Rates::new(15.0, 60.0).cache_read(7.5)),
    openai(&["o1-pro", "o1-pro-2025-03-19"], Rates::new(150.0, 600.0)),
    openai(&["o1-mini", "o1-mini-2024-09-12", "o3-mini", "o3-mini-2025-01-31"], Rates::new(1.1, 4.4).cache_read(0.55)),
    openai(&["o3", "o3-2025-04-16"], Rates::new(2.0, 8.0).cache_read(0.5)),
    openai(&["o3-pro", "o3-pro-2025-06-10"], Rates::new(20.0, 80.0)),
    openai(&["o4-mini", "o4-mini-2025-04-16"], Rates::new(1.1, 4.4).cache_read(0.275)),
    openai(&["gpt-4-turbo", "gpt-4-turbo-2024-04-09", "gpt-4-turbo-preview", "gpt-4-0125-preview", "gpt-4-1106-preview"], Rates::new(10.0, 30.0)),
    openai(&["gpt-4", "gpt-4-0613"], Rates::new(30.0, 60.0)),
    openai(&["gpt-3.5-turbo", "gpt-3.5-turbo-0125"], Rates::new(0.5, 1.5)),
    openai(&["text-embedding-3-small"], Rates::new(0.02, 0.0)),
    openai(&["text-embedding-3-large"], Rates::new(0.13, 0.0)),
    openai(&["text-embedding-ada-002"], Rates::new(0.1, 0.0)),
    // Anthropic (names as the API and Vertex spell them)
    anthropic(&["claude-opus-4-6", "claude-opus-4-5", "claude-opus-4-5-20251101"], 5.0, 25.0),
    anthropic(&["claude-opus-4-1", "claude-opus-4-1-20250805", "claude-opus-4", "claude-opus-4-20250514", "claude-3-opus-20240229", "claude-3-opus-latest"], 15.0, 75.0),
    anthropic(
        &[
            "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4", "claude-sonnet-4-20250514",
            "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20240620",
            "claude-3-5-sonnet-latest",
        ],
        3.0,
        15.0,
    ),
    anthropic(&["claude-haiku-4-5", "claude-haiku-4-5-20251001"], 1.0, 5.0),
    anthropic(&["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"], 0.8, 4.0),
    anthropic(&["claude-3-haiku-20240307"], 0.25, 1.25),
    // Google Gemini API (prompts up to 200k tokens); thinking tokens at the output price
    google(&["gemini-3-pro-preview", "gemini-3.1-pro-preview"], Rates::new(2.0, 12.0).cache_read(0.2)),
    google(&["gemini-3-flash-preview"], Rates::new(0.5, 3.0).cache_read(0.05)),
    google(&["gemini-2.5-pro"], Rates::new(1.25, 10.0).cache_read(0.125)),
    google(&["gemini-2.5-flash"], Rates::new(0.3, 2.5).cache_read(0.03)),
    google(&["gemini-2.5-flash-lite"], Rates::new(0.1, 0.4).cache_read(0.025)),
    google(&["gemini-2.0-flash", "gemini-2.0-flash-001"], Rates::new(0.1, 0.4)),
    google(&["gemini-2.0-flash-lite", "gemini-2.0-flash-lite-001"], Rates::new(0.075, 0.3)),
    // Mistral (dated model ids: the -latest aliases move to new models at new prices)
    mistral(&["mistral-large-2411", "mistral-large-2407"], 2.0, 6.0),
    mistral(&["mistral-medium-2505"], 0.4, 2.0),
    mistral(&["mistral-small-2503", "mistral-small-2501"], 0.1, 0.3),
    mistral(&["mistral-embed"], 0.1, 0.0),
];

/// The built-in price of a model name (see the module's matching rule).
pub fn builtin_price(model: &str) -> Option<&'static BuiltinPrice> {
    let name = model.rsplit('/').next().unwrap_or(model).trim().to_ascii_lowercase();
    BUILTIN_PRICES.iter().find(|p| p.models.contains(&name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::ingest::parse_batch;

    const OWNER: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    fn span(extra: &str) -> Span {
        let json = format!(r#"[{{"trace_id":"t","span_id":"s","name":"n","start_time":"2026-11-20T09:00:00Z"{extra}}}]"#);
        parse_batch(&json, Some(OWNER)).unwrap().spans.remove(0)
    }

    fn price(model: &str, input: f64, output: f64) -> Price {
        Price {
            user_id: OWNER.into(),
            model: model.into(),
            provider: None,
            rates: Rates::new(input, output),
            effective_from_us: i64::MIN,
        }
    }

    #[test]
    fn tokens_times_price_per_million() {
        let s = span(r#","model":"gpt-4o","input_tokens":1000000,"output_tokens":500000"#);
        assert_eq!(cost(&s, &[price("gpt-4o", 2.5, 10.0)], false), Some(2.5 + 5.0));
    }

    #[test]
    fn cached_input_tokens_use_the_cache_prices() {
        let s = span(r#","model":"claude-sonnet-4","input_tokens":1000,"cache_read_tokens":600,"cache_write_tokens":100,"output_tokens":10"#);
        let p = Price { rates: Rates::new(3.0, 15.0).cache(0.3, 3.75), ..price("claude*", 3.0, 15.0) };
        let expected = (300.0 * 3.0 + 600.0 * 0.3 + 100.0 * 3.75 + 10.0 * 15.0) / 1e6;
        assert!((cost(&s, &[p], false).unwrap() - expected).abs() < 1e-15);
    }

    #[test]
    fn the_most_specific_price_wins() {
        let s = span(r#","model":"gpt-4o-mini","provider":"openai","input_tokens":1000000"#);
        let prices = vec![
            price("gpt-4o*", 2.5, 10.0),
            price("gpt-4o-mini*", 0.15, 0.6),
            Price { provider: Some("azure".into()), ..price("gpt-4o-mini", 9.0, 9.0) },
        ];
        assert_eq!(cost(&s, &prices, false), Some(0.15), "longer prefix beats shorter; another provider does not apply");
        let mut with_exact = prices.clone();
        with_exact.push(price("gpt-4o-mini", 0.1, 0.1));
        assert_eq!(cost(&s, &with_exact, false), Some(0.1), "exact name beats any prefix");
        let mut later = prices.clone();
        later.push(Price { effective_from_us: s.start_time.0 + 1, ..price("gpt-4o-mini*", 5.0, 5.0) });
        assert_eq!(cost(&s, &later, false), Some(0.15), "a price that starts after the span does not apply");
        later.push(Price { effective_from_us: s.start_time.0, ..price("gpt-4o-mini*", 0.2, 0.2) });
        assert_eq!(cost(&s, &later, false), Some(0.2), "the latest applicable price wins");
    }

    #[test]
    fn no_price_no_model_or_no_tokens_leaves_cost_unset() {
        let p = [price("gpt-4o", 2.5, 10.0)];
        assert_eq!(cost(&span(r#","model":"gpt-4.1","input_tokens":10"#), &p, false), None);
        assert_eq!(cost(&span(r#","input_tokens":10"#), &p, false), None);
        assert_eq!(cost(&span(r#","model":"gpt-4o""#), &p, false), None);
        let other_owner = Price { user_id: "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".into(), ..price("gpt-4o", 2.5, 10.0) };
        assert_eq!(cost(&span(r#","model":"gpt-4o","input_tokens":10"#), &[other_owner], false), None);
    }

    #[test]
    fn a_cost_sent_is_kept() {
        let mut spans = vec![span(r#","model":"gpt-4o","input_tokens":10,"cost_usd":0.5"#), span(r#","model":"gpt-4o","output_tokens":100000"#)];
        let computed = fill_costs(&mut spans, &[price("gpt-4o", 2.5, 10.0)], false);
        assert_eq!(computed, vec![false, true]);
        assert_eq!((spans[0].cost_usd, spans[1].cost_usd), (Some(0.5), Some(1.0)));
    }

    #[test]
    fn reasoning_tokens_are_part_of_output_at_their_own_price() {
        let s = span(r#","model":"m","input_tokens":0,"output_tokens":1000,"reasoning_tokens":800"#);
        let p = Price { rates: Rates { reasoning: Some(20.0), ..Rates::new(1.0, 10.0) }, ..price("m", 1.0, 10.0) };
        assert!((cost(&s, &[p], false).unwrap() - (200.0 * 10.0 + 800.0 * 20.0) / 1e6).abs() < 1e-15);
        // without a reasoning price they cost the output price, as the output they are part of
        assert!((cost(&s, &[price("m", 1.0, 10.0)], false).unwrap() - 1000.0 * 10.0 / 1e6).abs() < 1e-15);
        // more reasoning than output (a client counting them apart): billed output is still the output count
        let odd = span(r#","model":"m","output_tokens":100,"reasoning_tokens":300"#);
        assert!((cost(&odd, &[price("m", 1.0, 10.0)], false).unwrap() - 100.0 * 10.0 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn builtin_prices_apply_when_the_owner_has_none() {
        let s = span(r#","model":"gpt-4o-mini","provider":"openai","input_tokens":1000000,"cache_read_tokens":400000,"output_tokens":100000"#);
        let expected = 600_000.0 * 0.15 / 1e6 + 400_000.0 * 0.075 / 1e6 + 100_000.0 * 0.6 / 1e6;
        assert!((cost(&s, &[], true).unwrap() - expected).abs() < 1e-12);
        assert_eq!(cost(&s, &[], false), None, "the built-in list switched off");
        // routing prefixes and case do not matter; the provider does not either
        for model in ["openai/gpt-4o-mini", "GPT-4o-mini", "azure/gpt-4o-mini"] {
            let m = span(&format!(r#","model":"{model}","input_tokens":1000000"#));
            assert_eq!(cost(&m, &[], true), Some(0.15), "{model}");
        }
        // Anthropic's cache writes cost 1.25x the input price, reads 0.1x
        let c = span(r#","model":"claude-sonnet-4-5","input_tokens":1000000,"cache_read_tokens":500000,"cache_write_tokens":100000,"output_tokens":0"#);
        let expected = (400_000.0 * 3.0 + 500_000.0 * 0.3 + 100_000.0 * 3.75) / 1e6;
        assert!((cost(&c, &[], true).unwrap() - expected).abs() < 1e-12);
        assert_eq!(cost(&span(r#","model":"my-finetune","input_tokens":10"#), &[], true), None);
    }

    #[test]
    fn an_owner_price_overrides_the_builtin_one() {
        let s = span(r#","model":"gpt-4o","input_tokens":1000000"#);
        assert_eq!(cost(&s, &[], true), Some(2.5));
        assert_eq!(cost(&s, &[price("gpt-4*", 1.0, 1.0)], true), Some(1.0), "even a prefix of the owner's wins");
        let k = PriceKey::of(&s);
        assert!(matches!(price_for(&k, &[], true), Some(PriceRef::Builtin(b)) if b.provider == "openai"));
    }

    #[test]
    fn the_builtin_list_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for p in BUILTIN_PRICES {
            assert!(!p.models.is_empty() && !p.source.is_empty(), "{p:?}");
            assert!(p.as_of.len() == 10 && p.as_of.starts_with("20"), "{p:?}");
            let r = &p.rates;
            for v in [Some(r.input), Some(r.output), r.cache_read, r.cache_write, r.reasoning].into_iter().flatten() {
                assert!(v.is_finite() && v >= 0.0, "{p:?}");
            }
            for m in p.models {
                assert_eq!(*m, m.to_ascii_lowercase(), "names are lower case");
                assert!(seen.insert(*m), "{m} is listed twice");
            }
        }
        assert!(["openai", "anthropic", "google", "mistral"].iter().all(|v| BUILTIN_PRICES.iter().any(|p| p.provider == *v)));
    }
}
