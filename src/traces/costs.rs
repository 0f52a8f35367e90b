//! Prices and costs: `analytics.builtin_model_prices`, `analytics.model_price` and `analytics.recompute_costs`.
//! The price list and the matching and cost rules are the core's (`analytics_core::traces::pricing`).
//!
//! SECURITY INVOKER: row-level security decides whose prices are read and whose spans are recomputed.

use pgrx::prelude::*;
use pgrx::Uuid;

use super::pricing::{self, Price, PriceKey, PriceRef, Rates, Tokens};
use super::store::{builtin_prices_on, micros, uuid_from_text};
use crate::bind::{required, AnalyticsError, ErrorKind, Raise};

/// The prices of `owners` (None: every owner the caller may read) in `analytics.model_prices`; `with_reasoning` false
/// for 0.1.0's table, which has no reasoning price. Shared by ingest (`store::load_prices`) and the functions here.
pub(crate) fn read_prices(owners: Option<Vec<Option<Uuid>>>, with_reasoning: bool) -> Vec<Price> {
    let reasoning = if with_reasoning { "reasoning_usd_per_mtok" } else { "null::double precision" };
    let query = format!(
        "select user_id::text, model, provider, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, \
                cache_write_usd_per_mtok, {reasoning}, effective_from \
         from analytics.model_prices where $1::uuid[] is null or user_id = any($1)"
    );
    Spi::connect(|client| {
        let rows = client.select(query.as_str(), None, &[owners.into()])?;
        rows.map(|r| {
            Ok(Price {
                user_id: r.get(1)?.unwrap_or_default(),
                model: r.get(2)?.unwrap_or_default(),
                provider: r.get(3)?,
                rates: Rates {
                    input: r.get(4)?.unwrap_or(0.0),
                    output: r.get(5)?.unwrap_or(0.0),
                    cache_read: r.get(6)?,
                    cache_write: r.get(7)?,
                    reasoning: r.get(8)?,
                },
                effective_from_us: micros(r.get(9)?),
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| AnalyticsError::invalid(format!("model_prices: {e}")).raise())
}

/// `analytics.builtin_model_prices()`: the built-in price list, one row per model name.
#[pg_extern(stable, parallel_safe)]
#[allow(clippy::type_complexity)]
pub fn builtin_model_prices() -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(provider, String),
        name!(input_usd_per_mtok, f64),
        name!(output_usd_per_mtok, f64),
        name!(cache_read_usd_per_mtok, f64),
        name!(cache_write_usd_per_mtok, f64),
        name!(reasoning_usd_per_mtok, f64),
        name!(as_of, pgrx::datum::Date),
        name!(source, String),
    ),
> {
    let rows: Vec<_> = pricing::BUILTIN_PRICES
        .iter()
        .flat_map(|p| {
            let r = p.rates;
            let (y, m, d) = (p.as_of[0..4].parse().unwrap_or(2000), p.as_of[5..7].parse().unwrap_or(1), p.as_of[8..10].parse().unwrap_or(1));
            let as_of = pgrx::datum::Date::new(y, m, d).unwrap_or_else(|_| AnalyticsError::invalid(format!("as_of: {}", p.as_of)).raise());
            p.models.iter().map(move |m| {
                (
                    m.to_string(),
                    p.provider.to_string(),
                    r.input,
                    r.output,
                    r.cache_read.unwrap_or(r.input),
                    r.cache_write.unwrap_or(r.input),
                    r.reasoning.unwrap_or(r.output),
                    as_of,
                    p.source.to_string(),
                )
            })
        })
        .collect();
    TableIterator::new(rows)
}

/// `analytics.model_price(model, provider, at, user_id)`: the price that ingest would apply to a span of this model.
#[pg_extern(stable, parallel_safe)]
#[allow(clippy::type_complexity)]
pub fn model_price(
    model: Option<&str>,
    provider: default!(Option<&str>, "NULL"),
    at: default!(Option<TimestampWithTimeZone>, "now()"),
    user_id: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(origin, String),
        name!(price_model, String),
        name!(price_provider, Option<String>),
        name!(input_usd_per_mtok, f64),
        name!(output_usd_per_mtok, f64),
        name!(cache_read_usd_per_mtok, f64),
        name!(cache_write_usd_per_mtok, f64),
        name!(reasoning_usd_per_mtok, f64),
        name!(source, String),
    ),
> {
    let model = required(model, "model");
    let at = required(at, "at");
    let owner = user_id.map(|u| u.to_string()).or_else(crate::identity::caller_id);
    let prices = match owner.as_deref() {
        Some(o) => read_prices(Some(vec![uuid_from_text(o)]), true),
        None => Vec::new(),
    };
    let key = PriceKey { user_id: owner.as_deref(), model: Some(model), provider, start_us: micros(Some(at)) };
    let row = pricing::price_for(&key, &prices, builtin_prices_on()).map(|p| {
        let r = p.rates();
        let (origin, pattern, prov, source) = match p {
            PriceRef::Owner(o) => ("owner", o.model.clone(), o.provider.clone(), "analytics.model_prices".to_string()),
            PriceRef::Builtin(b) => ("builtin", model.to_string(), Some(b.provider.to_string()), format!("{} (as of {})", b.source, b.as_of)),
        };
        (
            origin.to_string(),
            pattern,
            prov,
            r.input,
            r.output,
            r.cache_read.unwrap_or(r.input),
            r.cache_write.unwrap_or(r.input),
            r.reasoning.unwrap_or(r.output),
            source,
        )
    });
    TableIterator::new(row)
}

/// The spans a recomputation reads: the range's spans with a model, whose cost was computed (or is unknown, or any
/// cost with include_sent), oldest first.
const RECOMPUTE_SPANS: &str = "
select t.user_id::text, t.trace_id, t.span_id, t.start_time, t.model, t.provider, t.input_tokens, t.output_tokens,
       t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.cost_usd
from analytics.llm_traces t
where t.start_time >= $1 and t.start_time < $2 and t.model is not null
  and ($3::text is null or t.model = $3)
  and ($4 or t.cost_computed or t.cost_usd is null)";

/// One statement per chunk writes the new costs (by each span's exact key, so one index probe per span).
const WRITE_COSTS: &str = "
with changed as (
    update analytics.llm_traces t set cost_usd = u.cost_usd, cost_computed = u.cost_usd is not null
    from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::double precision[])
         as u(user_id, trace_id, span_id, start_time, cost_usd)
    where t.user_id = u.user_id and t.trace_id = u.trace_id and t.span_id = u.span_id and t.start_time = u.start_time
    returning 1)
select count(*) from changed";

/// `analytics.recompute_costs(from_time, to_time, model, include_sent)`: applies today's prices to stored spans.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
pub fn recompute_costs(
    from_time: Option<TimestampWithTimeZone>,
    to_time: Option<TimestampWithTimeZone>,
    model: default!(Option<&str>, "NULL"),
    include_sent: default!(Option<bool>, "false"),
) -> TableIterator<
    'static,
    (
        name!(spans_examined, i64),
        name!(spans_updated, i64),
        name!(cost_before_usd, f64),
        name!(cost_after_usd, f64),
    ),
> {
    let from_time = required(from_time, "from_time");
    let to_time = required(to_time, "to_time");
    let include_sent = required(include_sent, "include_sent");
    if micros(Some(to_time)) <= micros(Some(from_time)) {
        AnalyticsError::new(ErrorKind::InvalidParameter, "to_time: must be after from_time".to_string()).raise();
    }
    let prices = read_prices(None, true);
    let builtin = builtin_prices_on();
    let (mut examined, mut updated, mut before, mut after) = (0i64, 0i64, 0f64, 0f64);
    Spi::connect_mut(|client| {
        // the update changes no key: the check of one row per span (a statement trigger) has nothing to find
        client.update("select pg_catalog.set_config('analytics.spans_checked', 'on', true)", None, &[])?;
        let mut cursor = client.try_open_cursor(
            RECOMPUTE_SPANS,
            &[from_time.into(), to_time.into(), model.into(), include_sent.into()],
        )?;
        loop {
            let mut changes: (Vec<Option<Uuid>>, Vec<Option<String>>, Vec<Option<String>>, Vec<Option<TimestampWithTimeZone>>, Vec<Option<f64>>) =
                Default::default();
            let rows = cursor.fetch(10_000)?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                examined += 1;
                let user_id: Option<String> = r.get(1)?;
                let start: Option<TimestampWithTimeZone> = r.get(4)?;
                let span_model: Option<String> = r.get(5)?;
                let provider: Option<String> = r.get(6)?;
                let old: Option<f64> = r.get(12)?;
                let key = PriceKey {
                    user_id: user_id.as_deref(),
                    model: span_model.as_deref(),
                    provider: provider.as_deref(),
                    start_us: micros(start),
                };
                let tokens = Tokens::from_counts(r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?);
                let new = tokens.and_then(|t| Some(pricing::price_for(&key, &prices, builtin)?.rates().usd(&t)));
                before += old.unwrap_or(0.0);
                after += new.unwrap_or(0.0);
                if new != old {
                    changes.0.push(user_id.as_deref().and_then(uuid_from_text));
                    changes.1.push(r.get(2)?);
                    changes.2.push(r.get(3)?);
                    changes.3.push(start);
                    changes.4.push(new);
                }
            }
            if !changes.0.is_empty() {
                let n = client
                    .update(
                        WRITE_COSTS,
                        Some(1),
                        &[changes.0.into(), changes.1.into(), changes.2.into(), changes.3.into(), changes.4.into()],
                    )?
                    .first()
                    .get_one::<i64>()?;
                updated += n.unwrap_or(0);
            }
        }
        client.update("select pg_catalog.set_config('analytics.spans_checked', '', true)", None, &[])?;
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| AnalyticsError::invalid(format!("recompute_costs: {e}")).raise());
    TableIterator::once((examined, updated, before, after))
}
