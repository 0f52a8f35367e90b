//! GrowthBook's deterministic assignment, exactly as every GrowthBook SDK implements it (spec version 0.8.0), so an
//! edge SDK and the database never disagree about a user's variant. Plain Rust, no database; checked against
//! GrowthBook's own cross-SDK cases (`tests/data/growthbook/cases.json`).
//!
//! One difference by design: we hash the UTF-8 bytes of the strings, while the JavaScript SDK hashes UTF-16 code
//! units. They agree on ASCII ids, keys and seeds (what the cases use, and what ids nearly always are); a string
//! with non-ASCII characters can hash differently in JavaScript.

/// 32-bit FNV-1a.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// GrowthBook's hash of a unit into [0, 1): version 1 `fnv32a(value + seed) % 1000 / 1000`, version 2
/// `fnv32a(decimal text of fnv32a(seed + value)) % 10000 / 10000`; None for any other version.
pub fn hash(seed: &str, value: &str, version: i32) -> Option<f64> {
    match version {
        1 => Some(f64::from(fnv32a(format!("{value}{seed}").as_bytes()) % 1000) / 1000.0),
        2 => {
            let inner = fnv32a(format!("{seed}{value}").as_bytes());
            Some(f64::from(fnv32a(inner.to_string().as_bytes()) % 10000) / 10000.0)
        }
        _ => None,
    }
}

/// `n` equal weights summing to 1 (none for n <= 0).
pub fn equal_weights(n: i32) -> Vec<f64> {
    if n <= 0 {
        Vec::new()
    } else {
        vec![1.0 / f64::from(n); n as usize]
    }
}

/// The bucket range `[start, end)` of each variation. Coverage is clamped to [0, 1]; weights that are missing, of
/// the wrong length, or that do not sum to 1 within ±0.01 are replaced by equal weights. A range starts where the
/// previous variation's full weight ended, so lowering coverage never moves a unit into another variation.
pub fn bucket_ranges(n: i32, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = if coverage.is_nan() { 1.0 } else { coverage.clamp(0.0, 1.0) };
    let equal = equal_weights(n);
    let weights = match weights {
        Some(w) if w.len() == equal.len() => {
            let total: f64 = w.iter().sum();
            if (0.99..=1.01).contains(&total) {
                w.to_vec()
            } else {
                equal
            }
        }
        _ => equal,
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            (start, start + coverage * w)
        })
        .collect()
}

/// The index of the range `x` falls in (`start <= x < end`), or None.
pub fn choose_variation(x: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges.iter().position(|&(start, end)| x >= start && x < end)
}

/// Whether a unit falls in the namespace slice `[start, end)`: GrowthBook hashes the unit with seed
/// `"__" + namespace`, version 1.
pub fn in_namespace(unit: &str, namespace: &str, start: f64, end: f64) -> bool {
    hash(&format!("__{namespace}"), unit, 1).is_some_and(|n| n >= start && n < end)
}

/// An experiment as far as assignment is concerned (GrowthBook's `run` without targeting, forcing or sticky
/// buckets): the variation count, weights, coverage, namespace, hash seed (defaults to the key) and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment<'a> {
    pub key: &'a str,
    pub seed: Option<&'a str>,
    pub hash_version: i32,
    pub variations: usize,
    pub weights: Option<&'a [f64]>,
    pub coverage: f64,
    pub namespace: Option<(&'a str, f64, f64)>,
}

/// What `run` decides for a unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// the variation index, or None when the unit is not in the experiment
    pub variation: Option<usize>,
    /// the unit's hash, when it was computed and used
    pub hash: Option<f64>,
}

impl Assignment<'_> {
    /// GrowthBook's decision for a unit id (empty id, fewer than two variations, outside the namespace or the
    /// coverage, or an unknown hash version: not in the experiment).
    pub fn decide(&self, unit: &str) -> Decision {
        let out = Decision { variation: None, hash: None };
        if self.variations < 2 || unit.is_empty() {
            return out;
        }
        if let Some((ns, start, end)) = self.namespace {
            if !in_namespace(unit, ns, start, end) {
                return out;
            }
        }
        let Some(n) = hash(self.seed.filter(|s| !s.is_empty()).unwrap_or(self.key), unit, self.hash_version) else {
            return out;
        };
        let ranges = bucket_ranges(self.variations as i32, self.coverage, self.weights);
        match choose_variation(n, &ranges) {
            Some(v) => Decision { variation: Some(v), hash: Some(n) },
            None => out,
        }
    }
}

/// One case of the `run` section of GrowthBook's cross-SDK test file (`cases.json`: `[name, context, experiment,
/// value, inExperiment, hashUsed]`) of the kind analytics_ext implements: an `id` attribute and the experiment
/// fields key, seed, hashVersion, variations, weights, coverage and namespace. The unit tests here and the
/// extension's #[pg_test]s read the file through [`run_cases`], so both check the same cases the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCase {
    pub name: String,
    pub key: String,
    pub seed: Option<String>,
    pub hash_version: i32,
    pub variations: Vec<serde_json::Value>,
    pub weights: Option<Vec<f64>>,
    pub coverage: f64,
    pub namespace: Option<(String, f64, f64)>,
    /// the unit id as GrowthBook reads it (a number becomes its text); None without one
    pub unit: Option<String>,
    pub value: serde_json::Value,
    pub in_experiment: bool,
    pub hash_used: bool,
}

impl RunCase {
    pub fn assignment(&self) -> Assignment<'_> {
        Assignment {
            key: &self.key,
            seed: self.seed.as_deref(),
            hash_version: self.hash_version,
            variations: self.variations.len(),
            weights: self.weights.as_deref(),
            coverage: self.coverage,
            namespace: self.namespace.as_ref().map(|(n, a, b)| (n.as_str(), *a, *b)),
        }
    }

    /// The variation GrowthBook expects, when the unit is in the experiment.
    pub fn expected_variation(&self) -> Option<usize> {
        self.variations.iter().position(|v| v == &self.value).filter(|_| self.in_experiment)
    }
}

/// The `run` cases of a parsed `cases.json` that only use what analytics_ext implements (see [`RunCase`]).
pub fn run_cases(cases: &serde_json::Value) -> Vec<RunCase> {
    use serde_json::Value;
    const FIELDS: [&str; 7] = ["key", "seed", "hashVersion", "variations", "weights", "coverage", "namespace"];
    let numbers = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<f64>>());
    let mut out = Vec::new();
    for c in cases["run"].as_array().into_iter().flatten() {
        let (ctx, exp) = (&c[1], &c[2]);
        let (Some(ctx_fields), Some(exp_fields)) = (ctx.as_object(), exp.as_object()) else { continue };
        let attributes_only_id = ctx.get("attributes").map_or(true, |a| a.as_object().is_some_and(|a| a.keys().all(|k| k == "id")));
        if !(ctx_fields.keys().all(|k| k == "attributes") && attributes_only_id && exp_fields.keys().all(|k| FIELDS.contains(&k.as_str()))) {
            continue;
        }
        out.push(RunCase {
            name: c[0].as_str().unwrap_or_default().to_string(),
            key: exp["key"].as_str().unwrap_or_default().to_string(),
            seed: exp.get("seed").and_then(Value::as_str).map(str::to_string),
            hash_version: exp.get("hashVersion").and_then(Value::as_i64).unwrap_or(1) as i32,
            variations: exp["variations"].as_array().cloned().unwrap_or_default(),
            weights: exp.get("weights").and_then(numbers),
            coverage: exp.get("coverage").and_then(Value::as_f64).unwrap_or(1.0),
            namespace: exp.get("namespace").map(|n| (n[0].as_str().unwrap_or_default().to_string(), n[1].as_f64().unwrap_or(0.0), n[2].as_f64().unwrap_or(1.0))),
            // GrowthBook uses the id as text; a missing or null id is no id
            unit: ctx.get("attributes").and_then(|a| a.get("id")).and_then(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }),
            value: c[3].clone(),
            in_experiment: c[4].as_bool().unwrap_or(false),
            hash_used: c[5].as_bool().unwrap_or(false),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const CASES: &str = include_str!("../../../../tests/data/growthbook/cases.json");

    fn floor8(x: f64) -> f64 {
        (x * 1e8).floor() / 1e8
    }

    #[test]
    fn fnv32a_matches_the_reference_values() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    /// Every case of the sections we implement; one wrong case fails the build.
    #[test]
    fn growthbook_cases_file_passes() {
        let cases: Value = serde_json::from_str(CASES).unwrap();
        let mut checked = 0;

        for c in cases["hash"].as_array().unwrap() {
            let (seed, value, version) = (c[0].as_str().unwrap(), c[1].as_str().unwrap(), c[2].as_i64().unwrap() as i32);
            assert_eq!(hash(seed, value, version), c[3].as_f64(), "hash {c}");
            checked += 1;
        }
        for c in cases["getBucketRange"].as_array().unwrap() {
            let args = &c[1];
            let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
            let got = bucket_ranges(args[0].as_i64().unwrap() as i32, args[1].as_f64().unwrap(), weights.as_deref());
            let want: Vec<(f64, f64)> =
                c[2].as_array().unwrap().iter().map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())).collect();
            let floored = |v: &[(f64, f64)]| v.iter().map(|&(a, b)| (floor8(a), floor8(b))).collect::<Vec<_>>();
            assert_eq!(floored(&got), floored(&want), "getBucketRange {}", c[0]);
            checked += 1;
        }
        for c in cases["chooseVariation"].as_array().unwrap() {
            let ranges: Vec<(f64, f64)> =
                c[2].as_array().unwrap().iter().map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())).collect();
            let want = c[3].as_i64().unwrap();
            let got = choose_variation(c[1].as_f64().unwrap(), &ranges).map_or(-1, |i| i as i64);
            assert_eq!(got, want, "chooseVariation {}", c[0]);
            checked += 1;
        }
        for c in cases["inNamespace"].as_array().unwrap() {
            let ns = &c[2];
            let got = in_namespace(c[1].as_str().unwrap(), ns[0].as_str().unwrap(), ns[1].as_f64().unwrap(), ns[2].as_f64().unwrap());
            assert_eq!(got, c[3].as_bool().unwrap(), "inNamespace {}", c[0]);
            checked += 1;
        }
        for c in cases["getEqualWeights"].as_array().unwrap() {
            let want: Vec<f64> = c[1].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let got = equal_weights(c[0].as_i64().unwrap() as i32);
            assert_eq!(got.iter().map(|&x| floor8(x)).collect::<Vec<_>>(), want.iter().map(|&x| floor8(x)).collect::<Vec<_>>(), "getEqualWeights {c}");
            checked += 1;
        }
        let mut checked_runs = 0;
        for case in run_cases(&cases) {
            let d = case.assignment().decide(case.unit.as_deref().unwrap_or(""));
            let value = &case.variations[d.variation.unwrap_or(0)];
            assert_eq!(value, &case.value, "run {}: value", case.name);
            assert_eq!(d.variation.is_some(), case.in_experiment, "run {}: inExperiment", case.name);
            assert_eq!(d.hash.is_some(), case.hash_used, "run {}: hashUsed", case.name);
            checked_runs += 1;
        }
        assert_eq!(checked_runs, 49, "the run cases that only use id/key/seed/hashVersion/variations/weights/coverage/namespace");
        assert_eq!(checked, 15 + 13 + 13 + 16 + 6);
    }

    #[test]
    fn lowering_coverage_never_moves_a_unit_to_another_variation() {
        let full = bucket_ranges(3, 1.0, Some(&[0.2, 0.3, 0.5]));
        let half = bucket_ranges(3, 0.5, Some(&[0.2, 0.3, 0.5]));
        for k in 0..1000 {
            let x = f64::from(k) / 1000.0;
            if let Some(v) = choose_variation(x, &half) {
                assert_eq!(choose_variation(x, &full), Some(v));
            }
        }
    }
}
