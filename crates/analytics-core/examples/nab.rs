//! NAB bench: scores every detector on the Numenta Anomaly Benchmark series in tests/data/nab with NAB's own
//! rules (analytics_core::anomaly::nab, which reproduces NAB's expected_scores.json), beside the scores NAB
//! publishes for its detectors on the same 41 files. Run by `bash scripts/bench.sh nab`, or directly:
//! `cargo run --release -p analytics-core --example nab [method params-json]...`
//!
//! Each detector runs with one configuration over every file (no per-file tuning) and feeds NAB its
//! `anomaly_score` (the `probability` of detectors::Point), the column `analytics.detect_anomalies` returns.
//! Overfitting check: the standard score on two halves of the categories, A (artificial + AWS CloudWatch) and
//! B (ad exchange + traffic), is printed beside the total.
use analytics_core::anomaly::detectors::{self, Method, Params};
use analytics_core::anomaly::nab::{corpus, evaluate_profiles, Labels};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/nab");
    let series = corpus::read_series(&dir).expect("NAB data");
    let labels = corpus::read_labels(&dir, &series).expect("NAB windows");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected_scores.json")).expect("expected_scores.json")).unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut configs: Vec<(String, String)> =
        args.chunks(2).map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_else(|| "{}".into()))).collect();
    if configs.is_empty() {
        configs = ["numenta@ref", "windowedGaussian@ref"].iter().map(|d| (d.to_string(), String::new())).collect();
        // one configuration for every file: the defaults, with `period` = the series' points per day for the two
        // detectors that use a daily period (seasonal over 2 past days: NAB's shortest files hold 4 days)
        configs.extend(Method::ALL.iter().map(|m| {
            let params = match m {
                Method::Surprise => r#"{"period":"daily"}"#,
                Method::Seasonal => r#"{"period":"daily","window":2}"#,
                _ => "{}",
            };
            (m.name().to_string(), params.to_string())
        }));
    }
    let points: usize = series.iter().map(|s| s.values.len()).sum();
    println!("NAB: {} files, {points} points, {} windows", series.len(), labels.iter().map(|l| l.windows.len()).sum::<usize>());
    println!("{:<22} {:<28} {:>8} {:>8} {:>8} | {:>7} {:>7} | {:>9} | {:>10}", "detector", "params", "standard", "low FP", "low FN", "A", "B", "published", "ms/1M pts");
    // (the last column: the optimised standard-profile threshold on anomaly_score)
    for (method, params) in configs {
        let started = Instant::now();
        let results: Vec<Vec<f64>> = if let Some(d) = method.strip_suffix("@ref") {
            series.iter().map(|s| corpus::read_results(&dir.join("reference_results"), d, s).expect("reference results")).collect()
        } else {
            let m = Method::parse(&method).expect("method");
            // "period": "daily" = the points per day of each series, from its median sampling interval
            let mut json: serde_json::Value = serde_json::from_str(&params).expect("params JSON");
            let daily = json.get("period").and_then(|v| v.as_str()) == Some("daily");
            if daily {
                json.as_object_mut().unwrap().remove("period");
            }
            series
                .iter()
                .map(|s| {
                    let mut json = json.clone();
                    if daily {
                        json["period"] = points_per_day(&s.timestamps).into();
                    }
                    let p = Params::from_json(m, &json).expect("params");
                    let v: Vec<Option<f64>> = s.values.iter().map(|x| Some(*x)).collect();
                    detectors::detect(&v, m, &p).expect("detect").iter().map(|pt| pt.probability.unwrap_or(0.0)).collect()
                })
                .collect()
        };
        let per_million = started.elapsed().as_secs_f64() * 1e3 * 1e6 / points as f64;
        let run = |keep: &dyn Fn(&str) -> bool| {
            let corpus: Vec<(&Labels, &[f64])> =
                labels.iter().zip(&results).filter(|(l, _)| keep(&l.name)).map(|(l, r)| (l, r.as_slice())).collect();
            evaluate_profiles(&corpus)
        };
        let all = run(&|_| true);
        let a = run(&|n| n.starts_with("realAWS") || n.starts_with("artificial"));
        let b = run(&|n| n.starts_with("realAd") || n.starts_with("realTraffic"));
        let name = method.trim_end_matches("@ref");
        let published = expected["_published_on_these_41_files_standard_profile"][name].as_f64().map(|x| format!("{x:.2}")).unwrap_or_default();
        let cost = if method.ends_with("@ref") { String::new() } else { format!("{per_million:.0}") };
        println!(
            "{name:<22} {params:<28} {:>8.2} {:>8.2} {:>8.2} | {:>7.2} {:>7.2} | {published:>9} | {cost:>10} | {:.4}",
            all[0].1.score, all[1].1.score, all[2].1.score, a[0].1.score, b[0].1.score, all[0].1.threshold
        );
    }
    // calm data: alerts per 1,000 points of white noise with each detector's defaults (three seeds of 100,000)
    println!("\nwhite noise, defaults: alerts per 1,000 points");
    for m in Method::ALL {
        let p = Params::defaults(m);
        let rates: Vec<String> = (1..=3u64)
            .map(|seed| {
                let xs = gaussian(100_000, seed);
                let alerts = detectors::detect(&xs, m, &p).expect("detect").iter().filter(|pt| pt.alert).count();
                format!("{:.2}", alerts as f64 / 100.0)
            })
            .collect();
        println!("{:<12} {}", m.name(), rates.join(" "));
    }
}

/// Standard normal noise around 50 (Box–Muller over a linear congruential generator: no random crate needed).
fn gaussian(n: usize, seed: u64) -> Vec<Option<f64>> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| Some(50.0 + (-2.0 * next().ln()).sqrt() * (std::f64::consts::TAU * next()).cos())).collect()
}

/// Points per day of a series: one day over its median sampling interval (NAB's timestamps: `2014-02-14 14:30:00`).
fn points_per_day(timestamps: &[String]) -> u64 {
    let t: Vec<i64> = timestamps
        .iter()
        .map(|x| chrono::NaiveDateTime::parse_from_str(&x[..19], "%Y-%m-%d %H:%M:%S").expect("timestamp").and_utc().timestamp())
        .collect();
    let mut d: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
    d.sort();
    (86_400.0 / d[d.len() / 2] as f64).round().max(2.0) as u64
}
