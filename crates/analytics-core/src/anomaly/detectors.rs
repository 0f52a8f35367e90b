//! Anomaly detectors over a metric series. Plain Rust, no database.
//!
//! Every detector is causal: point i is judged only against the points before it (what an alert running every
//! few minutes sees), so a detector never looks into the future. Missing points (None or NaN: a bucket without
//! data) are gaps: they get no score and do not enter the history. A point is scored once `min_history` valid
//! points precede it; before that it is never an anomaly.
//!
//! | method     | expected value              | scale                                      | default threshold |
//! |------------|-----------------------------|--------------------------------------------|-------------------|
//! | `zscore`   | mean of the trailing window | standard deviation of the window           | 3                 |
//! | `mad`      | median of the window        | MAD / 0.6745 (Iglewicz–Hoaglin modified z) | 3.5               |
//! | `iqr`      | median of the window        | Tukey fences Q1 - k·IQR, Q3 + k·IQR        | k = 1.5           |
//! | `ewma`     | EWMA of the past (λ = 0.3)  | EW standard deviation of the residuals     | 3                 |
//! | `seasonal` | median of the same phase in past seasons | robust z of residuals (median/MAD) | 3.5          |
//! | `cusum`    | robust mean of the window   | CUSUM of standardised values, k = 0.5      | h = 8             |
//! | `likelihood` | the base detector's (EWMA, λ = 0.1) | mean and sd of the base's recent average \|score\| | 4   |
//! | `surprise` | median of the long window     | robust z in two windows and at the same time of day, ÷ its own q99 | 1.8 |
//!
//! `likelihood` is Numenta's anomaly likelihood (Ahmad et al., 2017) over any other detector: the base
//! detector's |score| averaged over the last `short` points is standardised against that average's own mean and
//! standard deviation over the trailing `history` points. A series that is always noisy (large base scores every
//! day) then raises nothing, while a change in how surprising the series is does — on NAB's AWS CloudWatch series
//! it had the best F1 of the first seven methods here. `surprise` (the default in SQL) scores best on NAB by NAB's
//! own rules (`nab.rs`, docs/benchmarks.md#numenta-anomaly-benchmark).
//!
//! `alert` marks the first anomaly of an episode: an anomaly with no other anomaly in the `cooldown` points
//! before it (default 0: every anomaly is an alert). A monitor pages on alerts, not on every point of an outage.
//! A constant history has no scale: a point equal to it scores 0, any other point scores ±infinity (certainly
//! anomalous), never NaN.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::AnalyticsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ZScore,
    Mad,
    Iqr,
    Ewma,
    Seasonal,
    Cusum,
    Likelihood,
    Surprise,
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Method {
    /// Every method, in the order the docs list them. The CHECK on `analytics.anomaly_detections.method` must list
    /// the same names (a #[pg_test] compares them).
    pub const ALL: [Method; 8] = [
        Method::ZScore,
        Method::Mad,
        Method::Iqr,
        Method::Ewma,
        Method::Seasonal,
        Method::Cusum,
        Method::Likelihood,
        Method::Surprise,
    ];

    pub fn parse(s: &str) -> Result<Method, AnalyticsError> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
            AnalyticsError::invalid(format!("method: unknown method \"{s}\"; allowed: {}", names.join(", ")))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::ZScore => "zscore",
            Method::Mad => "mad",
            Method::Iqr => "iqr",
            Method::Ewma => "ewma",
            Method::Seasonal => "seasonal",
            Method::Cusum => "cusum",
            Method::Likelihood => "likelihood",
            Method::Surprise => "surprise",
        }
    }
}

/// Which deviations count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Both,
    Up,
    Down,
}

impl Direction {
    /// The size of a signed score on the side this direction watches (0 on the other side).
    pub fn watched(self, score: f64) -> f64 {
        match self {
            Direction::Both => score.abs(),
            Direction::Up => score.max(0.0),
            Direction::Down => (-score).max(0.0),
        }
    }
}

/// Detector parameters, all optional in the JSON (`{"window": 48, "threshold": 4}`); unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    /// trailing points forming the history (zscore, mad, iqr, cusum's reference; seasonal: past seasons)
    pub window: usize,
    /// score beyond which a point is an anomaly (iqr: the fence multiplier k; cusum: the decision interval h)
    pub threshold: f64,
    /// valid points needed before the first score
    pub min_history: usize,
    /// ewma: smoothing factor λ in (0, 1]
    pub alpha: f64,
    /// seasonal: points per season (24 for hourly buckets with a daily cycle, 168 for weekly)
    pub period: usize,
    /// cusum: allowance k in standard deviations
    pub slack: f64,
    pub direction: Direction,
    /// likelihood: the detector whose scores it judges
    pub base: Method,
    /// likelihood: points averaged into the recent |score|
    pub short: usize,
    /// likelihood: trailing points of averaged scores giving their usual level and spread
    pub history: usize,
    /// an anomaly within this many points after another one is not a new alert
    pub cooldown: usize,
    /// surprise: points in the long robust window (the short one is `window`)
    pub long: usize,
    /// surprise: a point counts only if its surprise is higher than every one of the `rest` points before it
    pub rest: usize,
    /// surprise: past periods (`period` points each, a day) whose same time of day a point is compared with
    pub seasons: usize,
}

const KEYS: &str = "window, threshold, min_history, alpha, period, slack, direction, base, short, history, cooldown, long, rest, seasons";

/// Averaged base scores needed (per `short` point) before the likelihood scores: its mean and spread need some
/// history to mean anything.
const LIKELIHOOD_WARMUP: usize = 10;

/// surprise: valid points in its robust windows before it computes a surprise, and surprises in its history
/// before it scores one against them.
const SURPRISE_WARMUP: usize = 20;
const SURPRISE_CALIBRATION: usize = 50;
/// surprise: the quantile of its own past surprises a new one is measured against.
const SURPRISE_QUANTILE: f64 = 0.99;
/// surprise: no scale is taken smaller than this share of the range of values seen so far.
const SURPRISE_SCALE_FLOOR: f64 = 0.01;
/// surprise: points on each side of the same time of day in a past season that count as that time.
const SURPRISE_PHASE_JITTER: usize = 3;
/// surprise: past same-time points needed before the time-of-day comparison counts.
const SURPRISE_PHASE_MIN: usize = 5;

impl Params {
    pub fn defaults(method: Method) -> Params {
        let (window, threshold) = match method {
            Method::ZScore => (30, 3.0),
            Method::Mad => (30, 3.5),
            Method::Iqr => (30, 1.5),
            Method::Ewma => (30, 3.0),
            Method::Seasonal => (4, 3.5),
            Method::Cusum => (30, 8.0),
            Method::Likelihood => (30, 4.0),
            Method::Surprise => (100, 1.8),
        };
        let period = 24;
        let alpha = if method == Method::Likelihood { 0.1 } else { 0.3 };
        let base = Method::Ewma;
        let min_history = Params::default_min_history(method, base, window, period);
        Params {
            window,
            threshold,
            min_history,
            alpha,
            period,
            slack: 0.5,
            direction: Direction::Both,
            base,
            short: 10,
            history: 1000,
            cooldown: 0,
            long: 1000,
            rest: 100,
            seasons: if method == Method::Surprise { 5 } else { 0 },
        }
    }

    /// Valid points before the first score unless params say otherwise: the window; 10 for ewma (it has none);
    /// two seasons for seasonal; likelihood: its base's.
    fn default_min_history(method: Method, base: Method, window: usize, period: usize) -> usize {
        match method {
            Method::Seasonal => 2 * period,
            Method::Ewma => 10,
            Method::Likelihood => Params::default_min_history(base, base, window, period),
            Method::Surprise => SURPRISE_WARMUP + SURPRISE_CALIBRATION,
            _ => window,
        }
    }

    /// The defaults of `method` overridden by the JSON object `params`.
    pub fn from_json(method: Method, params: &Value) -> Result<Params, AnalyticsError> {
        let mut p = Params::defaults(method);
        let empty = Map::new();
        let obj = match params {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(AnalyticsError::invalid("params: must be a JSON object, e.g. {\"window\": 48}")),
        };
        let mut min_history_given = false;
        for (k, v) in obj {
            let num = || v.as_f64().ok_or_else(|| AnalyticsError::invalid(format!("params.{k}: must be a number, got {v}")));
            let count = |min: f64| -> Result<usize, AnalyticsError> {
                let x = num()?;
                if x.fract() != 0.0 || x < min || x > 1e7 {
                    return Err(AnalyticsError::invalid(format!("params.{k}: must be a whole number from {min} to 10000000, got {v}")));
                }
                Ok(x as usize)
            };
            match k.as_str() {
                "window" => p.window = count(2.0)?,
                "min_history" => {
                    p.min_history = count(1.0)?;
                    min_history_given = true;
                }
                "period" => p.period = count(2.0)?,
                "short" => p.short = count(1.0)?,
                "history" => p.history = count(2.0)?,
                "cooldown" => p.cooldown = count(0.0)?,
                "long" => p.long = count(2.0)?,
                "rest" => p.rest = count(0.0)?,
                "seasons" => p.seasons = count(0.0)?,
                "base" => {
                    p.base = match v.as_str().map(Method::parse) {
                        Some(Ok(Method::Likelihood)) | None => {
                            return Err(AnalyticsError::invalid(format!(
                                "params.base: must name another detector (zscore, mad, iqr, ewma, seasonal, cusum, surprise), got {v}"
                            )))
                        }
                        Some(Ok(m)) => m,
                        Some(Err(_)) => {
                            return Err(AnalyticsError::invalid(format!(
                                "params.base: unknown method {v}; allowed: zscore, mad, iqr, ewma, seasonal, cusum, surprise"
                            )))
                        }
                    }
                }
                "threshold" => {
                    p.threshold = num()?;
                    if !(p.threshold > 0.0 && p.threshold.is_finite()) {
                        return Err(AnalyticsError::invalid(format!("params.threshold: must be a positive number, got {v}")));
                    }
                }
                "alpha" => {
                    p.alpha = num()?;
                    if !(p.alpha > 0.0 && p.alpha <= 1.0) {
                        return Err(AnalyticsError::invalid(format!("params.alpha: must be in (0, 1], got {v}")));
                    }
                }
                "slack" => {
                    p.slack = num()?;
                    if !(p.slack >= 0.0 && p.slack.is_finite()) {
                        return Err(AnalyticsError::invalid(format!("params.slack: must be a non-negative number, got {v}")));
                    }
                }
                "direction" => {
                    p.direction = match v.as_str() {
                        Some("both") => Direction::Both,
                        Some("up") => Direction::Up,
                        Some("down") => Direction::Down,
                        _ => return Err(AnalyticsError::invalid(format!("params.direction: must be both, up or down, got {v}"))),
                    }
                }
                other => return Err(AnalyticsError::invalid(format!("params.{other}: unknown parameter; allowed: {KEYS}"))),
            }
        }
        if !min_history_given {
            p.min_history = Params::default_min_history(method, p.base, p.window, p.period);
        }
        Ok(p)
    }

    /// The points of history the detector needs before its first score.
    pub fn history_needed(&self, method: Method) -> usize {
        match method {
            Method::Seasonal => self.min_history.max(2 * self.period),
            Method::Likelihood => self.history_needed(self.base) + LIKELIHOOD_WARMUP * self.short,
            _ => self.min_history.max(2),
        }
    }

    /// The parameters as recorded with a finding: the likelihood's and surprise's own keys only for them.
    pub fn to_json(&self, method: Method) -> Value {
        let mut v = serde_json::to_value(self).expect("params serialise");
        if let Value::Object(o) = &mut v {
            if method != Method::Likelihood {
                o.remove("base");
                o.remove("short");
            }
            if method != Method::Likelihood && method != Method::Surprise {
                o.remove("history");
            }
            if method != Method::Surprise {
                o.remove("long");
                o.remove("rest");
                o.remove("seasons");
            }
        }
        v
    }

    /// The parameters the base detector of `likelihood` runs with: its own defaults for the threshold (which
    /// matters to ewma's clipping, cusum's restarts and iqr's fences), everything else as given.
    fn for_base(&self) -> Params {
        Params { threshold: Params::defaults(self.base).threshold, cooldown: 0, ..self.clone() }
    }
}

/// The verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// signed: positive above the expected value; None for gaps and points without enough history
    pub score: Option<f64>,
    pub is_anomaly: bool,
    /// the first anomaly of an episode (see `cooldown`)
    pub alert: bool,
    /// the score as a probability-like anomaly score in [0, 1] (see [`anomaly_probability`]); None where score is None
    pub probability: Option<f64>,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

const NONE: Point = Point { score: None, is_anomaly: false, alert: false, probability: None, expected: None, lower: None, upper: None };

/// Runs `method` over `values` (None or NaN = gap). Errors name the parameter: a window longer than the series,
/// for instance, could never score a point.
pub fn detect(values: &[Option<f64>], method: Method, p: &Params) -> Result<Vec<Point>, AnalyticsError> {
    let n = values.len();
    if let Some(i) = values.iter().position(|v| v.is_some_and(f64::is_infinite)) {
        return Err(AnalyticsError::invalid(format!("values[{}]: must be finite (NULL or NaN marks a gap)", i + 1)));
    }
    // the likelihood's history is its base detector's
    let scorer = if method == Method::Likelihood { p.base } else { method };
    if scorer == Method::Likelihood {
        return Err(AnalyticsError::invalid("params.base: must name another detector (zscore, mad, iqr, ewma, seasonal, cusum)"));
    }
    let horizon = match scorer {
        Method::Seasonal => p.window * p.period,
        // its windows are caps: it scores as soon as it has its warm-up and calibration points
        Method::Ewma | Method::Surprise => 0,
        _ => p.window,
    };
    if n > 0 && horizon >= n {
        return Err(AnalyticsError::invalid(match scorer {
            Method::Seasonal => format!(
                "params.window: {} seasons of {} points need more than the {n} points of the series",
                p.window, p.period
            ),
            _ => format!("params.window: {} is not smaller than the series ({n} points)", p.window),
        }));
    }
    let clean: Vec<Option<f64>> = values.iter().map(|v| v.filter(|x| !x.is_nan())).collect();
    let mut out = if method == Method::Likelihood {
        let mut out = likelihood(&scores(&clean, p.base, &p.for_base()), p);
        limit_history(&clean, &mut out, p.history_needed(method));
        out
    } else {
        scores(&clean, method, p)
    };
    // alerts: anomalies more than `cooldown` points after the previous anomaly
    let mut last: Option<usize> = None;
    for (i, pt) in out.iter_mut().enumerate() {
        pt.probability = pt.score.map(|s| match method {
            Method::Likelihood => anomaly_probability(s, Direction::Up),
            // its score is already a ratio to its own usual surprise: u / (1 + u), 0.5 = as surprising as the
            // 99th percentile of its history
            Method::Surprise => {
                let u = p.direction.watched(s);
                if u.is_infinite() { 1.0 } else { u / (1.0 + u) }
            }
            _ => anomaly_probability(s, p.direction),
        });
        if pt.is_anomaly {
            pt.alert = last.is_none_or(|l| i - l > p.cooldown);
            last = Some(i);
        }
    }
    Ok(out)
}

/// The anomaly score in [0, 1] of a signed score, on the log scale of Numenta's anomaly likelihood (what NAB's
/// threshold sweep expects): the score's two-sided normal tail probability t = erfc(|s|/√2) (only the side the
/// direction watches counts) mapped to ln(t) / ln(1e-10), capped at 1. 0 = nothing unusual, 0.5 = a 1-in-100,000
/// deviation (|s| ≈ 4.4), 1 = one in 10^10 or rarer (|s| ≥ 6.5).
pub fn anomaly_probability(score: f64, direction: Direction) -> f64 {
    let a = direction.watched(score);
    if a.is_infinite() {
        return 1.0;
    }
    let tail = statrs::function::erf::erfc(a / std::f64::consts::SQRT_2);
    (tail.ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
}

/// One detector's points, the minimum-history rule (counted in valid points) applied.
fn scores(clean: &[Option<f64>], method: Method, p: &Params) -> Vec<Point> {
    let mut out = match method {
        Method::ZScore => zscore(clean, p),
        Method::Mad => robust(clean, p, false),
        Method::Iqr => robust(clean, p, true),
        Method::Ewma => ewma(clean, p),
        Method::Seasonal => seasonal(clean, p),
        Method::Cusum => cusum(clean, p),
        Method::Surprise => surprise(clean, p),
        Method::Likelihood => unreachable!("detect() rejects a likelihood base"),
    };
    limit_history(clean, &mut out, p.history_needed(method));
    out
}

/// No verdict on gaps or on the first `need` valid points.
fn limit_history(clean: &[Option<f64>], out: &mut [Point], need: usize) {
    let mut seen = 0;
    for (i, v) in clean.iter().enumerate() {
        if v.is_none() {
            out[i] = NONE;
            continue;
        }
        if seen < need {
            out[i] = NONE;
        }
        seen += 1;
    }
}

/// Anomaly likelihood over the base detector's points: a = |score| (up: the positive part; down: the negative
/// part; capped at 1000 so one infinite score from a constant history stays a large finite step), m = the mean of
/// a over the last `short` scored points, and the score of point i is m standardised by the mean and standard
/// deviation of m over the `history` scored points before i. Only a rise is anomalous: a series becoming calmer
/// than usual is no alarm. Expected value: the base's; there is no band on the value itself.
fn likelihood(base: &[Point], p: &Params) -> Vec<Point> {
    let mut out = vec![NONE; base.len()];
    let mut recent = Moments::new(p.short);
    let mut past = Moments::new(p.history);
    let warmup = LIKELIHOOD_WARMUP * p.short;
    for (i, pt) in base.iter().enumerate() {
        let Some(score) = pt.score else { continue };
        let a = p.direction.watched(score).min(1000.0);
        recent.push(a);
        let m = recent.mean();
        if past.len() >= warmup.max(2) {
            let (mean, sd) = (past.mean(), past.sd());
            let z = standardise_at(m, mean, sd, mean.abs().max(m.abs()).max(1.0));
            out[i] = Point { score: Some(z), is_anomaly: z > p.threshold, alert: false, probability: None, expected: pt.expected, lower: None, upper: None };
        }
        past.push(m);
    }
    out
}

/// The score of `x` against `expected` with `scale`. A scale at the level of rounding error (1e-9 of the values)
/// is no scale: a history that repeats exactly (a constant, or a cycle in the seasonal detector) makes a value
/// within rounding of the expected one score 0 and any other value score ±infinity.
fn standardise(x: f64, expected: f64, scale: f64) -> f64 {
    standardise_at(x, expected, scale, expected.abs().max(x.abs()))
}

/// `standardise` with the magnitude of the underlying values given (the seasonal detector scores residuals,
/// whose own magnitude says nothing about rounding).
fn standardise_at(x: f64, expected: f64, scale: f64, magnitude: f64) -> f64 {
    let d = x - expected;
    let rounding = 1e-9 * magnitude;
    if scale > rounding {
        d / scale
    } else if d.abs() <= rounding {
        0.0
    } else {
        d.signum() * f64::INFINITY
    }
}

fn flagged(score: f64, threshold: f64, direction: Direction) -> bool {
    match direction {
        Direction::Both => score.abs() > threshold,
        Direction::Up => score > threshold,
        Direction::Down => score < -threshold,
    }
}

fn scored(x: f64, expected: f64, scale: f64, p: &Params) -> Point {
    scored_at(x, expected, scale, p, expected.abs().max(x.abs()))
}

fn scored_at(x: f64, expected: f64, scale: f64, p: &Params, magnitude: f64) -> Point {
    let score = standardise_at(x, expected, scale, magnitude);
    Point {
        score: Some(score),
        is_anomaly: flagged(score, p.threshold, p.direction),
        alert: false,
        probability: None,
        expected: Some(expected),
        lower: Some(expected - p.threshold * scale),
        upper: Some(expected + p.threshold * scale),
    }
}

/// Trailing windows of the last `window` valid values before each point, in order.
struct Trailing {
    buf: std::collections::VecDeque<f64>,
    cap: usize,
}

impl Trailing {
    fn new(cap: usize) -> Trailing {
        Trailing { buf: std::collections::VecDeque::with_capacity(cap + 1), cap }
    }
    /// adds a value; returns the one that fell out
    fn push(&mut self, x: f64) -> Option<f64> {
        self.buf.push_back(x);
        if self.buf.len() > self.cap { self.buf.pop_front() } else { None }
    }
}

/// Mean and sample standard deviation of the last `cap` values pushed, from running sums.
struct Moments {
    window: Trailing,
    s: f64,
    ss: f64,
}

impl Moments {
    fn new(cap: usize) -> Moments {
        Moments { window: Trailing::new(cap), s: 0.0, ss: 0.0 }
    }
    fn push(&mut self, x: f64) {
        self.s += x;
        self.ss += x * x;
        if let Some(old) = self.window.push(x) {
            self.s -= old;
            self.ss -= old * old;
        }
    }
    fn len(&self) -> usize {
        self.window.buf.len()
    }
    fn mean(&self) -> f64 {
        self.s / self.len() as f64
    }
    fn sd(&self) -> f64 {
        let k = self.len() as f64;
        ((self.ss - self.s * self.s / k) / (k - 1.0)).max(0.0).sqrt()
    }
}

/// Rolling z-score: running sums around a shift (the first value) keep the variance accurate for large levels.
fn zscore(v: &[Option<f64>], p: &Params) -> Vec<Point> {
    let mut out = vec![NONE; v.len()];
    let mut w = Moments::new(p.window);
    let shift = v.iter().flatten().next().copied().unwrap_or(0.0);
    for (i, x) in v.iter().enumerate() {
        let Some(x) = *x else { continue };
        if w.len() >= 2 {
            out[i] = scored(x, w.mean() + shift, w.sd(), p);
        }
        w.push(x - shift);
    }
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    // linear interpolation between order statistics (numpy's default, R type 7)
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median and MAD-based modified z (mad), or Tukey's fences (iqr), over the trailing window.
fn robust(v: &[Option<f64>], p: &Params, fences: bool) -> Vec<Point> {
    let mut out = vec![NONE; v.len()];
    let mut window = SortedWindow::new(p.window);
    let mut dev: Vec<f64> = Vec::with_capacity(p.window + 1);
    for (i, x) in v.iter().enumerate() {
        let Some(x) = *x else { continue };
        if window.len() >= 2 {
            let med = window.quantile(0.5);
            if fences {
                let (q1, q3) = (window.quantile(0.25), window.quantile(0.75));
                let iqr = q3 - q1;
                let (lo, hi) = (q1 - p.threshold * iqr, q3 + p.threshold * iqr);
                // score: how far beyond the fence, in IQRs (0 inside); infinite past a zero-width fence
                let score = if x > hi {
                    standardise(x, hi, iqr)
                } else if x < lo {
                    standardise(x, lo, iqr)
                } else {
                    0.0
                };
                let is_anomaly = score != 0.0 && flagged(score, 0.0, p.direction);
                out[i] = Point { score: Some(score), is_anomaly, alert: false, probability: None, expected: Some(med), lower: Some(lo), upper: Some(hi) };
            } else {
                dev.clear();
                dev.extend(window.sorted.iter().map(|y| (y - med).abs()));
                dev.sort_by(f64::total_cmp);
                let mad = quantile(&dev, 0.5);
                // MAD = 0 (more than half the window equal): Iglewicz–Hoaglin's mean absolute deviation fallback
                let scale = if mad > 0.0 {
                    mad / 0.6745
                } else {
                    dev.iter().sum::<f64>() / dev.len() as f64 * 1.253314
                };
                out[i] = scored(x, med, scale, p);
            }
        }
        window.push(x);
    }
    out
}

/// EWMA control chart: expected = exponentially weighted mean of the past (λ = alpha), scale = exponentially
/// weighted standard deviation of the past residuals, smoothed three times more slowly (λ/3) so that the scale is
/// stable enough for a fixed threshold. An anomalous point enters the averages clipped to the band, so one spike
/// neither drags the mean nor inflates the scale for long.
fn ewma(v: &[Option<f64>], p: &Params) -> Vec<Point> {
    let mut out = vec![NONE; v.len()];
    let a = p.alpha;
    let (mut mean, mut var, mut k) = (0.0f64, 0.0f64, 0usize);
    for (i, x) in v.iter().enumerate() {
        let Some(x) = *x else { continue };
        if k == 0 {
            mean = x;
        } else {
            let scale = var.sqrt();
            if k >= 2 {
                out[i] = scored(x, mean, scale, p);
            }
            let band = p.threshold * scale;
            let xc = if out[i].is_anomaly { x.clamp(mean - band, mean + band) } else { x };
            let r = xc - mean;
            let av = a / 3.0;
            mean += a * r;
            var = (1.0 - av) * (var + av * r * r);
        }
        k += 1;
    }
    out
}

/// Seasonal: the expected value is the median of the same phase in the last `window` seasons; the residuals
/// (value minus expected) of the trailing `window · period` points give a robust location and scale
/// (median/MAD, refreshed once per period), and the score is the residual's modified z.
fn seasonal(v: &[Option<f64>], p: &Params) -> Vec<Point> {
    let mut out = vec![NONE; v.len()];
    let mut residuals: Vec<Option<f64>> = vec![None; v.len()];
    let mut phase: Vec<f64> = Vec::with_capacity(p.window);
    let mut window: Vec<f64> = Vec::new();
    let mut cached: Option<(usize, f64, (f64, f64))> = None;
    for i in 0..v.len() {
        let Some(x) = v[i] else { continue };
        phase.clear();
        for s in 1..=p.window {
            if let Some(j) = i.checked_sub(s * p.period) {
                if let Some(y) = v[j] {
                    phase.push(y);
                }
            }
        }
        if phase.is_empty() {
            continue;
        }
        phase.sort_by(f64::total_cmp);
        let expected = quantile(&phase, 0.5);
        let r = x - expected;
        // robust location and scale of the residuals in the trailing seasons, recomputed once per period (a
        // sort of window · period residuals at every point would make the detector quadratic in practice)
        if cached.is_none_or(|(at, _, _)| i >= at + p.period) {
            window.clear();
            window.extend(residuals[i.saturating_sub(p.window * p.period)..i].iter().flatten());
            cached = if window.len() >= 2 {
                window.sort_by(f64::total_cmp);
                let med = quantile(&window, 0.5);
                for y in window.iter_mut() {
                    *y = (*y - med).abs();
                }
                window.sort_by(f64::total_cmp);
                let mad = quantile(&window, 0.5);
                let mean_ad = window.iter().sum::<f64>() / window.len() as f64;
                Some((i, med, (mad, mean_ad)))
            } else {
                None
            };
        }
        if let Some((_, med, (mad, mean_ad))) = cached {
            let rounding = 1e-9 * x.abs().max(expected.abs());
            let scale = if mad > rounding { mad / 0.6745 } else { mean_ad * 1.253314 };
            let point = scored_at(r, med, scale, p, x.abs().max(expected.abs()));
            out[i] = Point {
                expected: Some(expected + med),
                lower: point.lower.map(|l| expected + l),
                upper: point.upper.map(|u| expected + u),
                ..point
            };
        }
        residuals[i] = Some(r);
    }
    out
}

/// CUSUM for level shifts: values standardised by the median and MAD of the trailing window, cumulated on each
/// side with allowance `slack`; a side that passes `threshold` (h) raises an anomaly and restarts. While a sum is
/// building up, the reference stays the one from before (an in-control estimate), so a shift cannot hide by
/// becoming its own reference. The score is the larger cumulative sum, signed by its side.
fn cusum(v: &[Option<f64>], p: &Params) -> Vec<Point> {
    let robust_points = robust(v, &Params { threshold: 1.0, direction: Direction::Both, ..p.clone() }, false);
    let mut out = vec![NONE; v.len()];
    let (mut hi, mut lo) = (0.0f64, 0.0f64);
    let mut reference: Option<(f64, f64)> = None;
    let need = p.history_needed(Method::Cusum);
    let mut seen = 0usize;
    for (i, x) in v.iter().enumerate() {
        if x.is_some() {
            seen += 1;
        }
        // the sums start once the reference rests on the full history
        if seen <= need {
            continue;
        }
        let (Some(x), Some(exp), Some(upper)) = (*x, robust_points[i].expected, robust_points[i].upper) else { continue };
        if hi == 0.0 && lo == 0.0 || reference.is_none() {
            reference = Some((exp, upper - exp));
        }
        let (exp, scale) = reference.expect("set above");
        let z = standardise(x, exp, scale).clamp(-1e6, 1e6); // a constant history gives ±inf: one huge step
        hi = (hi + z - p.slack).max(0.0);
        lo = (lo - z - p.slack).max(0.0);
        let score = if hi >= lo { hi } else { -lo };
        let is_anomaly = match p.direction {
            Direction::Both => hi > p.threshold || lo > p.threshold,
            Direction::Up => hi > p.threshold,
            Direction::Down => lo > p.threshold,
        };
        if is_anomaly {
            hi = 0.0;
            lo = 0.0;
        }
        out[i] = Point {
            score: Some(score),
            is_anomaly,
            alert: false,
        probability: None,
            expected: Some(exp),
            lower: Some(exp - (p.threshold + p.slack) * scale),
            upper: Some(exp + (p.threshold + p.slack) * scale),
        };
    }
    out
}

/// The last `cap` values pushed, kept sorted as well, for quantiles over a trailing window.
struct SortedWindow {
    order: Trailing,
    sorted: Vec<f64>,
}

impl SortedWindow {
    fn new(cap: usize) -> SortedWindow {
        SortedWindow { order: Trailing::new(cap), sorted: Vec::with_capacity(cap + 1) }
    }
    fn push(&mut self, x: f64) {
        let at = self.sorted.partition_point(|y| *y < x);
        self.sorted.insert(at, x);
        if let Some(old) = self.order.push(x) {
            let at = self.sorted.partition_point(|y| *y < old);
            self.sorted.remove(at);
        }
    }
    fn len(&self) -> usize {
        self.sorted.len()
    }
    fn quantile(&self, q: f64) -> f64 {
        quantile(&self.sorted, q)
    }
    /// median and a robust standard deviation (IQR / 1.349), the latter no smaller than `floor`
    fn location_scale(&self, floor: f64) -> (f64, f64) {
        let iqr = self.quantile(0.75) - self.quantile(0.25);
        (self.quantile(0.5), (iqr / 1.349).max(floor))
    }
}

/// Surprise: how unusual a point is in two contexts at once, measured against how unusual this series usually
/// is, counted once per episode. Built and tuned on NAB (docs/benchmarks.md#numenta-anomaly-benchmark):
///
/// 1. z_s and z_l: the point's robust z (median, IQR / 1.349) in the short (`window`) and long (`long`) trailing
///    windows; no scale below 1% of the range seen so far. raw = √(|z_s| · |z_l|): a point must stand out both
///    against the last hours and against the longer run (a new level stops surprising the short window soon, a
///    daily burst is ordinary in the long one).
///    With `seasons` > 0 and a `period` (the points in a day: 24 for hourly buckets, 288 for 5-minute ones) raw is
///    also compared with what happened at this time of day before: raw = √(raw · d / long scale), d the distance to
///    the nearest value within ±3 points of the same time in the last `seasons` periods. A burst that comes every
///    day at nine stops surprising after its first day; a value never seen at that time still surprises.
/// 2. u = raw / the 99th percentile of the last `history` raws: 1 = as surprising as this series gets one
///    time in a hundred. This is what makes one threshold work across series as calm and as noisy as they come.
/// 3. A point counts only while u is higher than every u of the `rest` points before it: the first, or worst,
///    point of an episode is scored, the rest of it scores 0.
///
/// Score: u, signed by the side of the long median (±infinity after a constant history: certain). Expected value:
/// the long median; band: where a point surprising every context alike would reach the threshold (median ±
/// threshold · q99 · long scale), an approximation, since the contexts differ.
/// One pass, bounded state (three sorted windows of at most `long`, `window` and `history` values).
fn surprise(v: &[Option<f64>], p: &Params) -> Vec<Point> {
    let mut out = vec![NONE; v.len()];
    let mut short = SortedWindow::new(p.window);
    let mut long = SortedWindow::new(p.long);
    let mut past = SortedWindow::new(p.history);
    // previous (index, u) in decreasing u: the maximum of the last `rest` points in O(1) amortised
    let mut peaks: std::collections::VecDeque<(usize, f64)> = std::collections::VecDeque::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, x) in v.iter().enumerate() {
        let Some(x) = *x else { continue };
        lo = lo.min(x);
        hi = hi.max(x);
        let floor = ((hi - lo) * SURPRISE_SCALE_FLOOR).max(f64::MIN_POSITIVE);
        if short.len() >= SURPRISE_WARMUP.min(p.window) && long.len() >= SURPRISE_WARMUP.min(p.long) {
            let (ms, ss) = short.location_scale(floor);
            let (ml, sl) = long.location_scale(floor);
            let mut raw = (((x - ms) / ss).abs() * ((x - ml) / sl).abs()).sqrt();
            // the nearest value at the same time of day (± jitter) in the last `seasons` periods, in long scales
            let (mut nearest, mut seen) = (f64::INFINITY, 0usize);
            for s in 1..=p.seasons {
                let Some(c) = i.checked_sub(s * p.period) else { break };
                for y in v[c.saturating_sub(SURPRISE_PHASE_JITTER)..=(c + SURPRISE_PHASE_JITTER).min(i - 1)].iter().flatten() {
                    nearest = nearest.min((x - y).abs());
                    seen += 1;
                }
            }
            if seen >= SURPRISE_PHASE_MIN {
                raw = (raw * nearest / sl).sqrt();
            }
            let raw = raw.min(1e6);
            if past.len() >= SURPRISE_CALIBRATION {
                let usual = past.quantile(SURPRISE_QUANTILE).max(f64::MIN_POSITIVE);
                let u = raw / usual;
                while peaks.front().is_some_and(|(j, _)| j + p.rest < i) {
                    peaks.pop_front();
                }
                let counts = peaks.front().is_none_or(|(_, top)| u > *top);
                while peaks.back().is_some_and(|(_, b)| *b <= u) {
                    peaks.pop_back();
                }
                if p.rest > 0 {
                    peaks.push_back((i, u));
                }
                let score = if counts { u.copysign(x - ml) } else { 0.0 };
                let band = p.threshold * usual * sl;
                out[i] = Point {
                    score: Some(score),
                    is_anomaly: flagged(score, p.threshold, p.direction),
                    alert: false,
                    probability: None,
                    expected: Some(ml),
                    lower: Some(ml - band),
                    upper: Some(ml + band),
                };
            }
            past.push(raw);
        }
        short.push(x);
        long.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().map(|x| Some(*x)).collect()
    }

    fn params(method: Method, json: &str) -> Params {
        Params::from_json(method, &serde_json::from_str(json).unwrap()).unwrap()
    }

    /// Deterministic noise in [-1, 1] (a linear congruential generator), so tests need no random crate.
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Hand-computed: history [1, 2, 3, 4, 5] has mean 3 and sample sd sqrt(2.5); 10 scores 7 / 1.5811 = 4.427.
    #[test]
    fn zscore_by_hand() {
        let r = detect(&series(&[1.0, 2.0, 3.0, 4.0, 5.0, 10.0]), Method::ZScore, &params(Method::ZScore, r#"{"window":5}"#)).unwrap();
        let last = r[5];
        assert!((last.score.unwrap() - 7.0 / 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(last.expected, Some(3.0));
        assert!(last.is_anomaly);
        assert!(r[..5].iter().all(|p| p.score.is_none()), "no score before the window is full");
    }

    /// Hand-computed: window [1, 2, 3, 4, 100]: median 3, deviations [2, 1, 0, 1, 97] -> MAD 1; x = 10 gives
    /// 0.6745 * 7 / 1 = 4.7215 > 3.5. The outlier 100 in the history barely moves the median.
    #[test]
    fn mad_by_hand() {
        let r = detect(&series(&[1.0, 2.0, 3.0, 4.0, 100.0, 10.0]), Method::Mad, &params(Method::Mad, r#"{"window":5}"#)).unwrap();
        assert!((r[5].score.unwrap() - 0.6745 * 7.0).abs() < 1e-12);
        assert!(r[5].is_anomaly);
    }

    /// Hand-computed: window [1..8]: Q1 = 2.75, Q3 = 6.25, IQR 3.5, upper fence 11.5; 13 is (13 - 11.5)/3.5 beyond.
    #[test]
    fn iqr_by_hand() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 13.0];
        let r = detect(&series(&xs), Method::Iqr, &params(Method::Iqr, r#"{"window":8}"#)).unwrap();
        assert_eq!((r[8].lower, r[8].upper), (Some(2.75 - 5.25), Some(11.5)));
        assert!((r[8].score.unwrap() - 1.5 / 3.5).abs() < 1e-12 && r[8].is_anomaly);
        let r = detect(&series(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 11.0]), Method::Iqr, &params(Method::Iqr, r#"{"window":8}"#)).unwrap();
        assert_eq!((r[8].score, r[8].is_anomaly), (Some(0.0), false));
    }

    /// Hand-computed EWMA (λ = 0.5, variance λ/3 = 1/6): 10 -> mean 10; 12 -> r 2, mean 11,
    /// var (5/6)(0 + 4/6) = 5/9; 11 scores 0 (r 0, var (5/6)(5/9) = 25/54); 30 scores 19 / sqrt(25/54).
    #[test]
    fn ewma_by_hand() {
        let r = detect(&series(&[10.0, 12.0, 11.0, 30.0]), Method::Ewma, &params(Method::Ewma, r#"{"alpha":0.5,"min_history":2}"#)).unwrap();
        assert_eq!(r[2].expected, Some(11.0));
        assert_eq!(r[2].score, Some(0.0));
        assert!((r[3].score.unwrap() - 19.0 / (25.0f64 / 54.0).sqrt()).abs() < 1e-9 && r[3].is_anomaly);
    }

    #[test]
    fn injected_spike_drop_and_level_shift_are_found() {
        let n = 600;
        let base: Vec<f64> = noise(n, 7).iter().map(|e| 100.0 + 5.0 * e).collect();
        let mut spike = base.clone();
        spike[400] += 60.0;
        let mut drop = base.clone();
        drop[450] -= 60.0;
        for m in [Method::ZScore, Method::Mad, Method::Iqr, Method::Ewma, Method::Likelihood] {
            let p = Params::defaults(m);
            assert!(detect(&series(&spike), m, &p).unwrap()[400].is_anomaly, "{m:?} misses the spike");
            assert!(detect(&series(&drop), m, &p).unwrap()[450].is_anomaly, "{m:?} misses the drop");
        }
        // a level shift of about 1.4 standard deviations: CUSUM finds it within a few points
        let mut shift = base.clone();
        for x in shift.iter_mut().skip(300) {
            *x += 4.0;
        }
        let r = detect(&series(&shift), Method::Cusum, &Params::defaults(Method::Cusum)).unwrap();
        let first = r.iter().enumerate().skip(300).find(|(_, p)| p.is_anomaly).map(|(i, _)| i).unwrap();
        assert!(first < 320, "CUSUM found the shift at {first}");
        let early: Vec<usize> = (0..300).filter(|&i| r[i].is_anomaly).collect();
        assert!(early.is_empty(), "CUSUM alarms before the shift at {early:?}");
    }

    #[test]
    fn seasonal_finds_an_anomaly_a_flat_detector_misses() {
        // daily cycle of 24 points with amplitude 50; at 10 days in, a value normal for the day but wrong for the hour
        let n = 24 * 14;
        let e = noise(n, 3);
        let mut xs: Vec<f64> = (0..n).map(|i| 100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + 2.0 * e[i]).collect();
        let at = 24 * 10 + 6; // the peak hour
        xs[at] = 100.0; // the daily mean: a 50-point drop for that hour
        let s = detect(&series(&xs), Method::Seasonal, &Params::defaults(Method::Seasonal)).unwrap();
        assert!(s[at].is_anomaly, "{:?}", s[at]);
        let flagged = s.iter().filter(|p| p.is_anomaly).count();
        assert!(flagged <= 3, "seasonal false alarms: {flagged}");
        let z = detect(&series(&xs), Method::ZScore, &Params::defaults(Method::ZScore)).unwrap();
        assert!(!z[at].is_anomaly, "a plain z-score cannot see it");
    }

    /// Standard normal noise (Box–Muller over `noise`).
    fn gaussian(n: usize, seed: u64) -> Vec<f64> {
        let u = noise(2 * n, seed);
        (0..n)
            .map(|i| {
                let (a, b) = ((u[2 * i] + 1.0) / 2.0, (u[2 * i + 1] + 1.0) / 2.0);
                (-2.0 * (1.0 - a).ln()).sqrt() * (std::f64::consts::TAU * b).cos()
            })
            .collect()
    }

    /// The calm-data bar for the detector we recommend (issue #17): on white noise at most one alert per 1,000
    /// points; a single 10-sigma spike and a 5-sigma level shift flagged within 5 points.
    #[test]
    fn surprise_is_quiet_on_noise_and_sees_spikes_and_shifts() {
        let p = Params::defaults(Method::Surprise);
        for seed in [1, 2, 3] {
            let xs: Vec<f64> = gaussian(100_000, seed).iter().map(|e| 50.0 + 2.0 * e).collect();
            let alerts = detect(&series(&xs), Method::Surprise, &p).unwrap().iter().filter(|p| p.alert).count();
            assert!(alerts <= 100, "seed {seed}: {alerts} alerts on 100,000 points of white noise");
            for at in [1_500usize, 20_000, 77_777] {
                let mut spike = xs[..at + 50].to_vec();
                spike[at] = 50.0 + 10.0 * 2.0;
                let r = detect(&series(&spike), Method::Surprise, &p).unwrap();
                assert!(r[at].is_anomaly && r[at].score.unwrap() > 0.0, "seed {seed}: 10-sigma spike at {at}: {:?}", r[at]);
                let mut down = xs[..at + 50].to_vec();
                down[at] = 50.0 - 10.0 * 2.0;
                assert!(detect(&series(&down), Method::Surprise, &p).unwrap()[at].is_anomaly, "seed {seed}: a 10-sigma drop at {at}");
                let shifted: Vec<f64> = xs[..at + 50].iter().enumerate().map(|(i, x)| if i >= at { x + 5.0 * 2.0 } else { *x }).collect();
                let r = detect(&series(&shifted), Method::Surprise, &p).unwrap();
                assert!((at..at + 5).any(|i| r[i].is_anomaly), "seed {seed}: 5-sigma level shift at {at} not flagged within 5 points");
            }
        }
    }

    /// The peak rule: an episode is scored at its first (or worst) point, and its scores are ratios to the series'
    /// own 99th-percentile surprise, so the same spike is less surprising in a noisier series.
    #[test]
    fn surprise_counts_an_episode_once_and_scales_with_the_series() {
        let p = Params::defaults(Method::Surprise);
        let calm: Vec<f64> = gaussian(3000, 5).iter().map(|e| 10.0 + e).collect();
        let mut xs = calm.clone();
        for x in &mut xs[2000..2010] {
            *x += 30.0;
        }
        let r = detect(&series(&xs), Method::Surprise, &p).unwrap();
        assert!(r[2000].is_anomaly);
        assert!(r[2001..2010].iter().all(|pt| !pt.is_anomaly || pt.score.unwrap() > r[2000].score.unwrap()), "later points count only if worse");
        let u = r[2000].score.unwrap();
        assert!((r[2000].probability.unwrap() - u / (1.0 + u)).abs() < 1e-12);
        let noisy: Vec<f64> = gaussian(3000, 5).iter().map(|e| 10.0 + 3.0 * e).collect();
        let mut ys = noisy.clone();
        ys[2000] += 30.0;
        let mut zs = calm.clone();
        zs[2000] += 30.0;
        let (a, b) = (
            detect(&series(&ys), Method::Surprise, &p).unwrap()[2000].score.unwrap(),
            detect(&series(&zs), Method::Surprise, &p).unwrap()[2000].score.unwrap(),
        );
        assert!(a < b, "a 30 jump scores less over noise of sd 3 ({a}) than of sd 1 ({b})");
        // no score before warm-up and calibration (70 points), gaps keep their place
        assert!(r[..70].iter().all(|pt| pt.score.is_none()) && r[70].score.is_some());
    }

    /// Time of day: a burst at 09:00 every day (5-minute points, period 288) is news on its first day and then
    /// scores far less; the same burst at 15:00 is news. With seasons 0 (no time-of-day memory) it stays news every
    /// day: one point a day is too rare for the 99th percentile to absorb.
    #[test]
    fn surprise_learns_a_daily_routine() {
        let (days, day) = (12, 288);
        let mut xs: Vec<f64> = gaussian(day * days, 9).iter().map(|e| 50.0 + e).collect();
        for d in 0..days {
            xs[d * day + 108] += 12.0;
        }
        let odd = 10 * day + 180;
        xs[odd] += 12.0;
        let p = Params::from_json(Method::Surprise, &serde_json::json!({"period": day})).unwrap();
        let with = detect(&series(&xs), Method::Surprise, &p).unwrap();
        let blind = detect(&series(&xs), Method::Surprise, &Params { seasons: 0, ..p.clone() }).unwrap();
        assert!(with[108].is_anomaly && blind[108].is_anomaly, "the first burst is news either way");
        assert!(with[odd].is_anomaly, "the same burst at 15:00 is news: {:?}", with[odd]);
        let routine = |r: &[Point]| -> (f64, usize) {
            let later: Vec<&Point> = (3..days).map(|d| &r[d * day + 108]).collect();
            (later.iter().map(|pt| pt.score.unwrap()).sum::<f64>() / later.len() as f64, later.iter().filter(|pt| pt.is_anomaly).count())
        };
        let ((mean_with, flags_with), (mean_blind, flags_blind)) = (routine(&with), routine(&blind));
        assert!(mean_with < 0.5 * mean_blind, "routine bursts score {mean_with:.2} with the memory, {mean_blind:.2} without");
        assert!(flags_with * 3 <= flags_blind, "days 3-11 flagged: {flags_with} with the memory, {flags_blind} without");
    }

    #[test]
    fn anomaly_probability_is_a_log_tail() {
        assert_eq!(anomaly_probability(0.0, Direction::Both), 0.0);
        assert_eq!(anomaly_probability(f64::INFINITY, Direction::Both), 1.0);
        assert_eq!(anomaly_probability(-5.0, Direction::Up), 0.0);
        // |s| = 4.417: two-sided tail 1e-5 -> 0.5
        assert!((anomaly_probability(4.417173, Direction::Both) - 0.5).abs() < 1e-4);
        assert!(anomaly_probability(3.0, Direction::Both) < anomaly_probability(-4.0, Direction::Both));
        assert_eq!(anomaly_probability(40.0, Direction::Down), 0.0);
        assert_eq!(anomaly_probability(-40.0, Direction::Down), 1.0);
    }

    /// Flat noise: the false-positive rate of every detector with its defaults stays under 1% (stated bound).
    #[test]
    fn flat_noise_is_not_flagged() {
        let xs: Vec<f64> = noise(5000, 11).iter().map(|e| 50.0 + e).collect();
        for m in Method::ALL {
            let r = detect(&series(&xs), m, &Params::defaults(m)).unwrap();
            let rate = r.iter().filter(|p| p.is_anomaly).count() as f64 / xs.len() as f64;
            assert!(rate < 0.01, "{m:?} flags {:.2}% of flat noise", rate * 100.0);
        }
    }

    #[test]
    fn gaps_constant_series_and_nan_are_defined() {
        let mut xs = series(&[5.0; 40]);
        xs[35] = None;
        xs[36] = Some(f64::NAN);
        xs[38] = Some(6.0);
        for m in [Method::ZScore, Method::Mad, Method::Iqr, Method::Ewma, Method::Cusum] {
            let r = detect(&xs, m, &Params::defaults(m)).unwrap();
            assert_eq!(r[35].score, None, "{m:?} scores a gap");
            assert_eq!(r[36].score, None, "{m:?} scores NaN");
            assert_eq!((r[37].score, r[37].is_anomaly), (Some(0.0), false), "{m:?}: equal to a constant history");
            assert!(r[38].is_anomaly, "{m:?}: different from a constant history");
            assert!(r.iter().all(|p| p.score.is_none_or(|s| !s.is_nan())), "{m:?} gives NaN");
        }
        // surprise: a constant history has no usual surprise either; a different value is certain, never NaN
        let mut ys = series(&[5.0; 200]);
        ys[150] = None;
        ys[151] = Some(f64::NAN);
        ys[160] = Some(6.0);
        let r = detect(&ys, Method::Surprise, &Params::defaults(Method::Surprise)).unwrap();
        assert_eq!((r[150].score, r[151].score), (None, None));
        assert_eq!((r[152].score, r[152].is_anomaly, r[152].probability), (Some(0.0), false, Some(0.0)));
        assert!(r[160].is_anomaly && r[160].probability == Some(1.0), "{:?}", r[160]);
        assert!(r.iter().all(|p| p.score.is_none_or(|s| !s.is_nan()) && p.probability.is_none_or(|q| (0.0..=1.0).contains(&q))));
        // a single point, an empty series
        assert_eq!(detect(&series(&[1.0]), Method::Ewma, &Params::defaults(Method::Ewma)).unwrap()[0], NONE);
        assert!(detect(&[], Method::Mad, &Params::defaults(Method::Mad)).unwrap().is_empty());
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let e = |m: Method, json: &str| Params::from_json(m, &serde_json::from_str(json).unwrap()).unwrap_err().message;
        assert!(e(Method::ZScore, r#"{"window":-3}"#).starts_with("params.window:"));
        assert!(e(Method::ZScore, r#"{"window":2.5}"#).starts_with("params.window:"));
        assert!(e(Method::ZScore, r#"{"threshold":0}"#).starts_with("params.threshold:"));
        assert!(e(Method::Ewma, r#"{"alpha":1.5}"#).starts_with("params.alpha:"));
        assert!(e(Method::ZScore, r#"{"direction":"sideways"}"#).starts_with("params.direction:"));
        assert!(e(Method::ZScore, r#"{"windw":5}"#).starts_with("params.windw: unknown parameter"));
        assert!(e(Method::ZScore, r#"[1]"#).starts_with("params:"));
        assert!(Method::parse("prophet").unwrap_err().message.starts_with("method: unknown method"));
        assert!(e(Method::Likelihood, r#"{"base":"likelihood"}"#).starts_with("params.base: must name another detector"));
        assert!(e(Method::Likelihood, r#"{"base":"prophet"}"#).starts_with("params.base: unknown method"));
        assert!(e(Method::Likelihood, r#"{"short":0}"#).starts_with("params.short:"));
        assert!(e(Method::Mad, r#"{"cooldown":-1}"#).starts_with("params.cooldown:"));
        let long = detect(&series(&[1.0; 10]), Method::ZScore, &Params::defaults(Method::ZScore)).unwrap_err().message;
        assert_eq!(long, "params.window: 30 is not smaller than the series (10 points)");
        let inf = detect(&[Some(1.0), Some(f64::INFINITY)], Method::Ewma, &Params::defaults(Method::Ewma)).unwrap_err();
        assert!(inf.message.starts_with("values[2]:"));
    }

    /// Hand-computed: a constant history gives the base z-score 0 at every point, so the averaged score has mean 0
    /// and no spread; a different value scores +inf in the base, enters the average capped at 1000 and is certainly
    /// anomalous. Before the base's window plus 10 · short averaged scores there is no verdict.
    #[test]
    fn likelihood_by_hand() {
        let mut xs = vec![5.0; 60];
        xs.push(6.0);
        let p = params(Method::Likelihood, r#"{"base":"zscore","window":5,"short":2}"#);
        assert_eq!(p.history_needed(Method::Likelihood), 5 + 20);
        let r = detect(&series(&xs), Method::Likelihood, &p).unwrap();
        assert!(r[..25].iter().all(|pt| pt.score.is_none()), "scored during the warm-up");
        assert!(r[25..60].iter().all(|pt| pt.score == Some(0.0) && !pt.is_anomaly));
        assert_eq!((r[60].score, r[60].is_anomaly, r[60].expected), (Some(f64::INFINITY), true, Some(5.0)));
        assert_eq!((r[60].lower, r[60].upper), (None, None), "no band on the value");
    }

    /// The point of the likelihood: a series whose base scores are always large (a spike every 7 points) raises
    /// nothing once that is its normal, where the base detector flags every spike; a change in behaviour (the
    /// spikes become bursts) is found within a few points.
    #[test]
    fn likelihood_learns_chronic_noise_and_finds_a_change() {
        let mut xs: Vec<f64> = noise(3000, 3).iter().map(|e| 100.0 + e).collect();
        for i in (0..3000).step_by(7) {
            xs[i] += 15.0;
        }
        for x in xs.iter_mut().skip(2500).take(40) {
            *x += 15.0;
        }
        let lik = detect(&series(&xs), Method::Likelihood, &params(Method::Likelihood, r#"{"base":"mad"}"#)).unwrap();
        let base = detect(&series(&xs), Method::Mad, &Params::defaults(Method::Mad)).unwrap();
        let before = |r: &[Point]| r[1000..2500].iter().filter(|p| p.is_anomaly).count();
        assert!(before(&base) > 100, "the base flags the chronic spikes: {}", before(&base));
        assert_eq!(before(&lik), 0, "likelihood alarms on chronic noise");
        let found = (2500..2540).find(|&i| lik[i].is_anomaly);
        assert!(found.is_some_and(|i| i < 2515), "likelihood finds the change at {found:?}");
        let quiet = "{\"base\":\"mad\",\"direction\":\"down\"}";
        let down = detect(&series(&xs), Method::Likelihood, &params(Method::Likelihood, quiet)).unwrap();
        assert!(down[2500..2540].iter().all(|p| !p.is_anomaly), "direction down ignores a rise");
    }

    /// cooldown 3: anomalies at 50, 52, 55 form one episode (gaps of 2 and 3), 60 starts a new one (gap 5).
    #[test]
    fn alerts_start_episodes() {
        let mut xs: Vec<f64> = noise(80, 9).iter().map(|e| 10.0 + 0.1 * e).collect();
        for i in [50, 52, 55, 60] {
            xs[i] = 100.0;
        }
        let alerts = |json: &str| -> Vec<usize> {
            detect(&series(&xs), Method::Mad, &params(Method::Mad, json)).unwrap().iter().enumerate()
                .filter(|(_, p)| p.alert).map(|(i, _)| i).collect()
        };
        assert_eq!(alerts(r#"{"cooldown":3}"#), vec![50, 60]);
        assert_eq!(alerts("{}"), vec![50, 52, 55, 60], "cooldown 0: every anomaly is an alert");
        assert_eq!(alerts(r#"{"cooldown":5}"#), vec![50]);
    }

    #[test]
    fn direction_up_ignores_drops() {
        let mut xs: Vec<f64> = noise(100, 5).iter().map(|e| 10.0 + e).collect();
        xs[80] = -50.0;
        xs[90] = 70.0;
        let r = detect(&series(&xs), Method::Mad, &params(Method::Mad, r#"{"direction":"up"}"#)).unwrap();
        assert!(!r[80].is_anomaly && r[90].is_anomaly);
    }
}
