//! Cost of a span from its tokens and the owner's `analytics.model_prices`, for spans sent without `cost_usd`.
//! Plain Rust, no database.
//!
//! Matching: the price's owner is the span's owner; its model is the span's model exactly, or a prefix ending in
//! `*`; its provider is the span's or NULL (any); its `effective_from` is at or before the span's start. Of several
//! matches the most specific wins: an exact model over a prefix, a longer prefix over a shorter one, a named
//! provider over any, then the latest `effective_from`.
//!
//! Cost (OpenTelemetry token accounting: input includes cached tokens, output includes reasoning tokens):
//! `(input - cache_read - cache_write) * input_price + cache_read * cache_read_price
//!  + cache_write * cache_write_price + output * output_price`, prices per million tokens; the cache prices
//! default to the input price.

use super::ingest::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub user_id: String,
    pub model: String,
    pub provider: Option<String>,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cache_read_usd_per_mtok: Option<f64>,
    pub cache_write_usd_per_mtok: Option<f64>,
    /// microseconds since the Unix epoch (i64::MIN for '-infinity')
    pub effective_from_us: i64,
}

impl Price {
    /// How well this price fits the span: None when it does not apply, else a key where larger is more specific.
    fn fit(&self, span: &Span) -> Option<(bool, usize, bool, i64)> {
        let model = span.model.as_deref()?;
        if span.user_id.as_deref() != Some(self.user_id.as_str()) || self.effective_from_us > span.start_time.0 {
            return None;
        }
        let (exact, prefix_len) = match self.model.strip_suffix('*') {
            Some(prefix) if model.starts_with(prefix) => (false, prefix.len()),
            Some(_) => return None,
            None if self.model == model => (true, model.len()),
            None => return None,
        };
        let provider_named = match (&self.provider, &span.provider) {
            (None, _) => false,
            (Some(p), Some(s)) if p == s => true,
            _ => return None,
        };
        Some((exact, prefix_len, provider_named, self.effective_from_us))
    }
}

/// The cost of `span` under the best-fitting price, or None (no model, no tokens, or no price).
pub fn cost(span: &Span, prices: &[Price]) -> Option<f64> {
    let price = prices.iter().filter_map(|p| p.fit(span).map(|f| (f, p))).max_by(|a, b| a.0.cmp(&b.0))?.1;
    if span.input_tokens.is_none() && span.output_tokens.is_none() {
        return None;
    }
    let input = span.input_tokens.unwrap_or(0) as f64;
    let cache_read = span.cache_read_tokens.unwrap_or(0) as f64;
    let cache_write = span.cache_write_tokens.unwrap_or(0) as f64;
    let output = span.output_tokens.unwrap_or(0) as f64;
    let uncached = (input - cache_read - cache_write).max(0.0);
    let usd = uncached * price.input_usd_per_mtok
        + cache_read * price.cache_read_usd_per_mtok.unwrap_or(price.input_usd_per_mtok)
        + cache_write * price.cache_write_usd_per_mtok.unwrap_or(price.input_usd_per_mtok)
        + output * price.output_usd_per_mtok;
    Some(usd / 1_000_000.0)
}

/// Fills in `cost_usd` of the spans that have none, where a price applies.
pub fn fill_costs(spans: &mut [Span], prices: &[Price]) {
    if prices.is_empty() {
        return;
    }
    for span in spans.iter_mut().filter(|s| s.cost_usd.is_none()) {
        span.cost_usd = cost(span, prices);
    }
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
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            cache_read_usd_per_mtok: None,
            cache_write_usd_per_mtok: None,
            effective_from_us: i64::MIN,
        }
    }

    #[test]
    fn tokens_times_price_per_million() {
        let s = span(r#","model":"gpt-4o","input_tokens":1000000,"output_tokens":500000"#);
        assert_eq!(cost(&s, &[price("gpt-4o", 2.5, 10.0)]), Some(2.5 + 5.0));
    }

    #[test]
    fn cached_input_tokens_use_the_cache_prices() {
        let s = span(r#","model":"claude-sonnet-4","input_tokens":1000,"cache_read_tokens":600,"cache_write_tokens":100,"output_tokens":10"#);
        let p = Price { cache_read_usd_per_mtok: Some(0.3), cache_write_usd_per_mtok: Some(3.75), ..price("claude*", 3.0, 15.0) };
        let expected = (300.0 * 3.0 + 600.0 * 0.3 + 100.0 * 3.75 + 10.0 * 15.0) / 1e6;
        assert!((cost(&s, &[p]).unwrap() - expected).abs() < 1e-15);
    }

    #[test]
    fn the_most_specific_price_wins() {
        let s = span(r#","model":"gpt-4o-mini","provider":"openai","input_tokens":1000000"#);
        let prices = vec![
            price("gpt-4o*", 2.5, 10.0),
            price("gpt-4o-mini*", 0.15, 0.6),
            Price { provider: Some("azure".into()), ..price("gpt-4o-mini", 9.0, 9.0) },
        ];
        assert_eq!(cost(&s, &prices), Some(0.15), "longer prefix beats shorter; another provider does not apply");
        let mut with_exact = prices.clone();
        with_exact.push(price("gpt-4o-mini", 0.1, 0.1));
        assert_eq!(cost(&s, &with_exact), Some(0.1), "exact name beats any prefix");
        let mut later = prices.clone();
        later.push(Price { effective_from_us: s.start_time.0 + 1, ..price("gpt-4o-mini*", 5.0, 5.0) });
        assert_eq!(cost(&s, &later), Some(0.15), "a price that starts after the span does not apply");
        later.push(Price { effective_from_us: s.start_time.0, ..price("gpt-4o-mini*", 0.2, 0.2) });
        assert_eq!(cost(&s, &later), Some(0.2), "the latest applicable price wins");
    }

    #[test]
    fn no_price_no_model_or_no_tokens_leaves_cost_unset() {
        let p = [price("gpt-4o", 2.5, 10.0)];
        assert_eq!(cost(&span(r#","model":"gpt-4.1","input_tokens":10"#), &p), None);
        assert_eq!(cost(&span(r#","input_tokens":10"#), &p), None);
        assert_eq!(cost(&span(r#","model":"gpt-4o""#), &p), None);
        let other_owner = Price { user_id: "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".into(), ..price("gpt-4o", 2.5, 10.0) };
        assert_eq!(cost(&span(r#","model":"gpt-4o","input_tokens":10"#), &[other_owner]), None);
    }

    #[test]
    fn a_cost_sent_is_kept() {
        let mut spans = vec![span(r#","model":"gpt-4o","input_tokens":10,"cost_usd":0.5"#), span(r#","model":"gpt-4o","output_tokens":100000"#)];
        fill_costs(&mut spans, &[price("gpt-4o", 2.5, 10.0)]);
        assert_eq!((spans[0].cost_usd, spans[1].cost_usd), (Some(0.5), Some(1.0)));
    }
}
