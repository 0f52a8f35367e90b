//! The Numenta Anomaly Benchmark's scoring (NAB, github.com/numenta/NAB, MIT since commit ea702d7), written
//! from its rules in nab/sweeper.py, nab/optimizer.py, nab/scorer.py and nab/runner.py:
//!
//! - Each labelled anomaly has a window (NAB's labels give them as timestamps; here as row indices). The first
//!   `min(floor(0.15 · rows), 0.15 · 5000)` rows of a file are probation and not scored at all.
//! - A detection is a row whose anomaly score is at or above the threshold. In a window only the earliest
//!   detection counts: at relative position `p = -(right - i + 1) / width` it earns
//!   `tpWeight · S(p) / S(-1)` with `S(p) = 2·sigmoid(-5p) - 1`. A window without a detection costs `fnWeight`.
//! - A detection outside every window is a false positive worth `fpWeight · S(q)` (negative), where `q` is its
//!   distance after the preceding window's right edge divided by that window's width minus one (`q = 3`, i.e.
//!   the full `-fpWeight`, before the first window). `S(q) = -1` from `q ≥ 3` on.
//! - The threshold is optimised per profile over the whole corpus at once: every scorable row of every file is
//!   sorted by anomaly score and the score is computed after each distinct value; the best threshold wins (the
//!   highest among ties). The corpus is then scored file by file at that threshold and summed.
//! - Normalised score = 100 · (raw − null) / (perfect − null): the null detector (no detection) scores
//!   `-fnWeight` per scorable window, the perfect one `tpWeight` per labelled window.
//!
//! [`corpus`] reads NAB's files (data, windows, profiles, result CSVs).

use std::collections::HashMap;

/// A profile's weights (NAB's `config/profiles.json` CostMatrix; tnWeight is unused by NAB's scoring).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostMatrix {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// The three application profiles NAB reports.
pub const PROFILES: [(&str, CostMatrix); 3] = [
    ("standard", CostMatrix { tp: 1.0, fp: 0.11, fn_: 1.0 }),
    ("reward_low_FP_rate", CostMatrix { tp: 1.0, fp: 0.22, fn_: 1.0 }),
    ("reward_low_FN_rate", CostMatrix { tp: 1.0, fp: 0.11, fn_: 2.0 }),
];

pub const PROBATION_PERCENT: f64 = 0.15;

/// One labelled series: its length and its windows as inclusive row ranges, in order.
#[derive(Debug, Clone)]
pub struct Labels {
    pub name: String,
    pub rows: usize,
    pub windows: Vec<(usize, usize)>,
}

/// NAB's probation length: `min(floor(0.15 · rows), 0.15 · 5000)` rows.
pub fn probation(rows: usize) -> usize {
    ((PROBATION_PERCENT * rows as f64).floor()).min(PROBATION_PERCENT * 5000.0) as usize
}

/// NAB's scaled sigmoid of a relative position: 2·sigmoid(-5x) - 1, and -1 from x = 3 on.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// A scorable row: its anomaly score, what detecting it is worth, and the window it lies in (an index into all
/// windows of the corpus) if any.
#[derive(Debug, Clone, Copy)]
struct Row {
    anomaly: f64,
    worth: f64,
    window: Option<usize>,
}

/// The score at one threshold, with NAB's row counts (probation rows excluded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    pub threshold: f64,
    pub score: f64,
    pub tp: usize,
    pub tn: usize,
    pub fp: usize,
    pub fn_: usize,
}

/// The scorable rows of one file (NAB's `calcSweepScore`): windows get ids from `first_window` on; returns the
/// rows and the ids of windows that have at least one scorable row (the only ones a miss is charged for).
fn sweep(labels: &Labels, anomaly: &[f64], cost: CostMatrix, first_window: usize) -> (Vec<Row>, Vec<usize>) {
    let max_tp = scaled_sigmoid(-1.0);
    let skip = probation(labels.rows);
    let mut rows = Vec::with_capacity(anomaly.len().saturating_sub(skip));
    let mut scorable = Vec::new();
    let mut next = 0usize;
    let mut current: Option<(usize, usize, usize)> = None; // (window id, right edge, width)
    let mut previous: Option<(usize, usize)> = None; // (right edge, width) of the last window left
    for (i, &a) in anomaly.iter().enumerate() {
        if current.is_none() && next < labels.windows.len() && labels.windows[next].0 == i {
            let (l, r) = labels.windows[next];
            current = Some((first_window + next, r, r - l + 1));
            next += 1;
        }
        let worth = match (current, previous) {
            (Some((_, right, width)), _) => {
                scaled_sigmoid(-((right - i + 1) as f64) / width as f64) * cost.tp / max_tp
            }
            (None, None) => scaled_sigmoid(3.0) * cost.fp,
            // NAB divides by width - 1: a one-row window followed by rows divides by zero there (inf, then -1)
            (None, Some((right, width))) => scaled_sigmoid((i - right) as f64 / (width as f64 - 1.0)) * cost.fp,
        };
        if i >= skip {
            let window = current.map(|c| c.0);
            if let Some(w) = window {
                if scorable.last() != Some(&w) {
                    scorable.push(w);
                }
            }
            rows.push(Row { anomaly: a, worth, window });
        }
        if let Some((_, right, width)) = current {
            if right == i {
                previous = Some((right, width));
                current = None;
            }
        }
    }
    (rows, scorable)
}

/// NAB's `calcScoreByThreshold`: the score after each distinct anomaly value, highest threshold first, starting
/// at 1.1 (nothing detected).
fn scores_by_threshold(mut rows: Vec<Row>, scorable: &[usize], windows: usize, cost: CostMatrix) -> Vec<ThresholdScore> {
    rows.sort_by(|a, b| b.anomaly.total_cmp(&a.anomaly));
    // the best detection per window (NaN: none yet); a window's part is -fn until detected
    let mut best = vec![f64::NAN; windows];
    let mut fp_part = 0.0;
    let mut tn = rows.iter().filter(|r| r.window.is_none()).count();
    let mut fn_ = rows.len() - tn;
    let (mut tp, mut fp) = (0usize, 0usize);
    let total = |fp_part: f64, best: &[f64]| -> f64 {
        fp_part + scorable.iter().map(|&w| if best[w].is_nan() { -cost.fn_ } else { best[w] }).sum::<f64>()
    };
    let mut out = Vec::new();
    let mut threshold = 1.1;
    for r in &rows {
        if r.anomaly != threshold {
            out.push(ThresholdScore { threshold, score: total(fp_part, &best), tp, tn, fp, fn_ });
            threshold = r.anomaly;
        }
        match r.window {
            Some(w) => {
                tp += 1;
                fn_ -= 1;
                // NAB starts each window's part at -fn and takes the max with every detection's worth
                best[w] = if best[w].is_nan() { r.worth.max(-cost.fn_) } else { best[w].max(r.worth) };
            }
            None => {
                fp += 1;
                tn -= 1;
                fp_part += r.worth;
            }
        }
    }
    out.push(ThresholdScore { threshold, score: total(fp_part, &best), tp, tn, fp, fn_ });
    out
}

/// One file's score at `threshold` (NAB's `scoreDataSet`: the row of that exact threshold, else the last one
/// above it).
pub fn score_file(labels: &Labels, anomaly: &[f64], cost: CostMatrix, threshold: f64) -> ThresholdScore {
    let (rows, scorable) = sweep(labels, anomaly, cost, 0);
    let table = scores_by_threshold(rows, &scorable, labels.windows.len(), cost);
    let mut chosen = table[0];
    for t in &table {
        if t.threshold < threshold {
            break;
        }
        chosen = *t;
    }
    chosen
}

/// The threshold with the best score over the whole corpus (NAB's `optimizeThreshold`; ties: the highest).
pub fn optimise(corpus: &[(&Labels, &[f64])], cost: CostMatrix) -> ThresholdScore {
    let mut rows = Vec::new();
    let mut scorable = Vec::new();
    let mut windows = 0;
    for (labels, anomaly) in corpus {
        let (r, s) = sweep(labels, anomaly, cost, windows);
        rows.extend(r);
        scorable.extend(s);
        windows += labels.windows.len();
    }
    let table = scores_by_threshold(rows, &scorable, windows, cost);
    let mut best = table[0];
    for t in &table[1..] {
        if t.score > best.score {
            best = *t;
        }
    }
    best
}

/// A detector's result on one profile: the optimised threshold, the raw corpus score at it (summed file by
/// file, as NAB's scoring step does) and the normalised score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileScore {
    pub threshold: f64,
    pub raw: f64,
    pub score: f64,
}

/// Optimises, scores and normalises a detector's anomaly scores over a corpus for one profile.
pub fn evaluate(corpus: &[(&Labels, &[f64])], cost: CostMatrix) -> ProfileScore {
    let threshold = optimise(corpus, cost).threshold;
    let raw: f64 = corpus.iter().map(|(l, a)| score_file(l, a, cost, threshold).score).sum();
    let null: f64 = corpus.iter().map(|(l, a)| score_file(l, &vec![0.0; a.len()], cost, 1.1).score).sum();
    let perfect = corpus.iter().map(|(l, _)| l.windows.len()).sum::<usize>() as f64 * cost.tp;
    ProfileScore { threshold, raw, score: 100.0 * (raw - null) / (perfect - null) }
}

/// All three profiles, in [`PROFILES`] order.
pub fn evaluate_profiles(corpus: &[(&Labels, &[f64])]) -> Vec<(&'static str, ProfileScore)> {
    PROFILES.iter().map(|(name, cost)| (*name, evaluate(corpus, *cost))).collect()
}

/// Reading NAB's files: `timestamp,value` data, `timestamp,anomaly_score` results, `combined_windows.json`.
pub mod corpus {
    use super::*;
    use std::path::Path;

    /// A NAB series: its relative path (`realTraffic/speed_6005.csv`), timestamps and values.
    #[derive(Debug, Clone)]
    pub struct Series {
        pub name: String,
        pub timestamps: Vec<String>,
        pub values: Vec<f64>,
    }

    /// Rows of a two-column CSV with a header: (first column, second column as a number).
    pub fn read_csv(path: &Path) -> Result<Vec<(String, f64)>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        text.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                let (t, v) = line.split_once(',').ok_or_else(|| format!("{}:{}: expected two columns", path.display(), i + 2))?;
                let v = v.trim().parse::<f64>().map_err(|e| format!("{}:{}: {e}", path.display(), i + 2))?;
                Ok((t.trim().to_string(), v))
            })
            .collect()
    }

    /// Every series under `dir/data`, sorted by name.
    pub fn read_series(dir: &Path) -> Result<Vec<Series>, String> {
        let mut out = Vec::new();
        let data = dir.join("data");
        let mut categories: Vec<_> = std::fs::read_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?.flatten().collect();
        categories.sort_by_key(|e| e.file_name());
        for c in categories {
            let mut files: Vec<_> = std::fs::read_dir(c.path()).map_err(|e| e.to_string())?.flatten().collect();
            files.sort_by_key(|e| e.file_name());
            for f in files {
                let rows = read_csv(&f.path())?;
                out.push(Series {
                    name: format!("{}/{}", c.file_name().to_string_lossy(), f.file_name().to_string_lossy()),
                    timestamps: rows.iter().map(|r| r.0.clone()).collect(),
                    values: rows.iter().map(|r| r.1).collect(),
                });
            }
        }
        Ok(out)
    }

    /// NAB timestamps compare on their first 19 characters (`2014-04-10 07:15:00` = `2014-04-10 07:15:00.000000`).
    fn same_time(a: &str, b: &str) -> bool {
        a.get(..19).unwrap_or(a) == b.get(..19).unwrap_or(b)
    }

    /// The windows of every series from `combined_windows.json`, as row ranges; a window edge that is not a row
    /// of its series is an error (NAB would silently never enter such a window).
    pub fn read_labels(dir: &Path, series: &[Series]) -> Result<Vec<Labels>, String> {
        let path = dir.join("combined_windows.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: HashMap<String, Vec<(String, String)>> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        series
            .iter()
            .map(|s| {
                let limits = json.get(&s.name).ok_or_else(|| format!("{}: no entry in combined_windows.json", s.name))?;
                let find = |t: &str| {
                    s.timestamps.iter().position(|x| same_time(x, t)).ok_or_else(|| format!("{}: window edge {t} is not a row", s.name))
                };
                let windows = limits.iter().map(|(a, b)| Ok((find(a)?, find(b)?))).collect::<Result<Vec<_>, String>>()?;
                Ok(Labels { name: s.name.clone(), rows: s.values.len(), windows })
            })
            .collect()
    }

    /// A detector's shipped anomaly scores for `series`: `results/<detector>/<category>/<detector>_<file>`.
    pub fn read_results(results: &Path, detector: &str, series: &Series) -> Result<Vec<f64>, String> {
        let (category, file) = series.name.split_once('/').ok_or("series name without a category")?;
        let path = results.join(detector).join(category).join(format!("{detector}_{file}"));
        let rows = read_csv(&path)?;
        if rows.len() != series.values.len() || rows.iter().zip(&series.timestamps).any(|(r, t)| !same_time(&r.0, t)) {
            return Err(format!("{}: rows do not match the series' timestamps", path.display()));
        }
        Ok(rows.into_iter().map(|r| r.1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::corpus::*;
    use super::*;
    use std::path::PathBuf;

    fn nab_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/nab")
    }

    const STANDARD: CostMatrix = PROFILES[0].1;

    fn labels(rows: usize, windows: &[(usize, usize)]) -> Labels {
        Labels { name: "t".into(), rows, windows: windows.to_vec() }
    }

    /// NAB's own unit cases (tests/unit/sweeper_test.py), by hand: with probation 0 (rows < 7) every row counts.
    #[test]
    fn single_file_rules_by_hand() {
        // 6 rows (probation floor(0.9) = 0), window rows 2..=4
        let l = labels(6, &[(2, 4)]);
        let s = |scores: &[f64]| score_file(&l, scores, STANDARD, 0.5).score;
        assert_eq!(s(&[0.0; 6]), -1.0, "a missed window costs fnWeight");
        // earliest detection at row 2: position -(4-2+1)/3 = -1 → exactly tpWeight
        assert!((s(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]) - 1.0).abs() < 1e-12);
        // only the earliest detection in a window counts
        assert_eq!(s(&[0.0, 0.0, 1.0, 1.0, 1.0, 0.0]), s(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]));
        let last = scaled_sigmoid(-1.0 / 3.0) / scaled_sigmoid(-1.0);
        assert!((s(&[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]) - last).abs() < 1e-12);
        // before any window: the full -fpWeight; after one: weighted by distance / (width - 1)
        assert!((s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]) - (-1.0 - 0.11)).abs() < 1e-12);
        let after = 0.11 * scaled_sigmoid(1.0 / 2.0);
        assert!((s(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]) - (-1.0 + after)).abs() < 1e-12);
        // a threshold between the values: the row of the next higher value
        assert_eq!(score_file(&l, &[0.0, 0.0, 0.7, 0.0, 0.0, 0.0], STANDARD, 0.6).score, s(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn probation_rows_are_not_scored() {
        assert_eq!(probation(100), 15);
        assert_eq!(probation(10_000), 750);
        // 20 rows: probation 3; a detection in row 1 costs nothing, a window entirely in probation is not charged
        let l = labels(20, &[(0, 1), (10, 12)]);
        let mut a = vec![0.0; 20];
        assert_eq!(score_file(&l, &a, STANDARD, 0.5).score, -1.0);
        a[1] = 1.0;
        assert_eq!(score_file(&l, &a, STANDARD, 0.5).score, -1.0);
    }

    #[test]
    fn optimiser_takes_the_best_threshold() {
        let l = labels(10, &[(5, 7)]);
        // 0.9 at the window start (a hit), 0.8 at two rows before it (false positives)
        let a = [0.0, 0.0, 0.8, 0.8, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0];
        let best = optimise(&[(&l, &a)], STANDARD);
        assert_eq!(best.threshold, 0.9);
        assert!((best.score - 1.0).abs() < 1e-12);
        assert_eq!((best.tp, best.fp), (1, 0));
        let e = evaluate(&[(&l, &a)], STANDARD);
        assert!((e.score - 100.0).abs() < 1e-9, "{e:?}");
    }

    /// The acceptance test of the port: NAB's own scorer run on the shipped results of two detectors over these
    /// 41 files gives `expected_scores.json`; so must we (to ±0.05).
    #[test]
    fn reproduces_nab_expected_scores() {
        let dir = nab_dir();
        let series = read_series(&dir.join(".")).unwrap();
        assert_eq!(series.len(), 41);
        let labels = read_labels(&dir, &series).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected_scores.json")).unwrap()).unwrap();
        for detector in ["windowedGaussian", "numenta"] {
            let results: Vec<Vec<f64>> =
                series.iter().map(|s| read_results(&dir.join("reference_results"), detector, s).unwrap()).collect();
            let corpus: Vec<(&Labels, &[f64])> = labels.iter().zip(&results).map(|(l, r)| (l, r.as_slice())).collect();
            for (profile, got) in evaluate_profiles(&corpus) {
                let want = &expected[detector][profile];
                let (score, threshold) = (want["score"].as_f64().unwrap(), want["threshold"].as_f64().unwrap());
                assert!((got.score - score).abs() <= 0.05, "{detector} {profile}: {} vs NAB {score}", got.score);
                assert!((got.threshold - threshold).abs() < 1e-9, "{detector} {profile}: threshold {} vs {threshold}", got.threshold);
            }
        }
    }
}
