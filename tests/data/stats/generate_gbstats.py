#!/usr/bin/env python3
"""Regenerates tests/data/stats/gbstats.json: what GrowthBook's stats engine (gbstats, pinned below) answers for
random two-group comparisons, the oracle for analytics_ext's experiment statistics. The Rust unit tests in
crates/analytics-core/src/experiments/analysis.rs and stats.rs compare every field to 1e-9 relative.

    python3 -m venv /tmp/gb && /tmp/gb/bin/pip install gbstats==0.8.0 numpy==1.26.4 scipy==1.17.1 pandas==1.5.3
    /tmp/gb/bin/python tests/data/stats/generate_gbstats.py > tests/data/stats/gbstats.json

Covered so far: the frequentist two-sided t-test (gbstats' TwoSidedTTest), the sequential test
(SequentialTwoSidedTTest) and the Bayesian effect test with GrowthBook's default flat prior (EffectBayesianABTest:
chance to win, risk) for proportion and sample-mean metrics, relative and absolute effects, several alphas and
tuning parameters; GrowthBook's no-result cases; the sample-ratio-mismatch check (check_srm), zero-weight
groups included; and the Bayesian test with an informative ("proper") Gaussian prior on the effect (posterior mean,
credible interval, chance to win, risk), over positive control means; and quantile metrics (QuantileStatistic,
QuantileClusteredStatistic) from simulated latencies, with the grid of order statistics GrowthBook's SQL takes; and
the one-sided t-tests (OneSidedTreatmentGreaterTTest, OneSidedTreatmentLesserTTest).
"""
import importlib.metadata
import json
import random

import numpy
import scipy.stats

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import (
    FrequentistConfig,
    OneSidedTreatmentGreaterTTest,
    OneSidedTreatmentLesserTTest,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    QuantileClusteredStatistic,
    QuantileStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    compute_theta,
)
from gbstats.utils import check_srm

GBSTATS_VERSION = "0.8.0"
assert importlib.metadata.version("gbstats") == GBSTATS_VERSION, "pip install gbstats==" + GBSTATS_VERSION
# the numbers move in the 13th digit with scipy's version: the fixture was made with these
for package, version in (("numpy", "1.26.4"), ("scipy", "1.17.1")):
    assert importlib.metadata.version(package) == version, f"pip install {package}=={version}"

rng = random.Random(20261125)


def proportion_group(n=None):
    n = n or rng.choice([rng.randint(2, 60), rng.randint(60, 3000), rng.randint(3000, 200000)])
    rate = rng.choice([0.01, 0.05, 0.1, 0.3, 0.5, 0.8]) * rng.uniform(0.7, 1.3)
    x = max(1, min(n - 1, round(n * min(rate, 0.99))))
    return {"n": n, "sum": x, "sum_squares": x}


def mean_group(n=None):
    n = n or rng.choice([rng.randint(3, 60), rng.randint(60, 5000), rng.randint(5000, 500000)])
    mean = rng.choice([1.0, 12.5, 250.0, -3.0, 0.2]) * rng.uniform(0.8, 1.2)
    sd = abs(mean) * rng.uniform(0.1, 3.0) + 0.01
    s = mean * n
    ss = sd * sd * (n - 1) + s * s / n
    return {"n": n, "sum": s, "sum_squares": ss}


def stat(kind, g):
    if kind == "binomial":
        return ProportionStatistic(n=g["n"], sum=g["sum"])
    return SampleMeanStatistic(n=g["n"], sum=g["sum"], sum_squares=g["sum_squares"])


def result(r):
    return {"effect": r.expected, "ci": list(r.ci), "p_value": r.p_value, "error": r.error_message}


cases = []
for i in range(400):
    kind = "binomial" if i % 2 == 0 else "mean"
    group = proportion_group if kind == "binomial" else mean_group
    control = group()
    # half the cases with similar group sizes, as an even split gives
    treatment = group(max(3, int(control["n"] * rng.uniform(0.9, 1.1))) if rng.random() < 0.5 else None)
    relative = i % 4 < 2
    alpha = rng.choice([0.05, 0.05, 0.1, 0.01])
    tuning = rng.choice([5000.0, 5000.0, 1000.0, 20000.0])
    difference = "relative" if relative else "absolute"
    fixed = TwoSidedTTest(stat(kind, control), stat(kind, treatment),
                          FrequentistConfig(alpha=alpha, difference_type=difference)).compute_result()
    seq = SequentialTwoSidedTTest(stat(kind, control), stat(kind, treatment),
                                  SequentialConfig(alpha=alpha, difference_type=difference,
                                                   sequential_tuning_parameter=tuning)).compute_result()
    bayes = EffectBayesianABTest(stat(kind, control), stat(kind, treatment),
                                 EffectBayesianConfig(alpha=alpha, difference_type=difference)).compute_result()
    cases.append({"metric_type": kind, "relative": relative, "alpha": alpha, "sequential_tuning": tuning,
                  "control": control, "treatment": treatment, "frequentist": result(fixed), "sequential": result(seq),
                  "bayesian": {"chance_to_win": bayes.chance_to_win, "risk": list(bayes.risk),
                               "error": bayes.error_message}})

# GrowthBook's "no result" cases: a control mean of 0, groups without variance, groups of one unit
degenerate = [
    ("binomial", {"n": 100, "sum": 0, "sum_squares": 0}, {"n": 100, "sum": 5, "sum_squares": 5}),
    ("binomial", {"n": 100, "sum": 40, "sum_squares": 40}, {"n": 100, "sum": 100, "sum_squares": 100}),
    ("binomial", {"n": 100, "sum": 100, "sum_squares": 100}, {"n": 80, "sum": 60, "sum_squares": 60}),
    ("binomial", {"n": 1, "sum": 1, "sum_squares": 1}, {"n": 50, "sum": 20, "sum_squares": 20}),
    ("mean", {"n": 2, "sum": 2.0, "sum_squares": 2.0}, {"n": 2, "sum": 4.0, "sum_squares": 8.0}),
    ("mean", {"n": 10, "sum": 0.0, "sum_squares": 40.0}, {"n": 10, "sum": 5.0, "sum_squares": 30.0}),
    ("mean", {"n": 1, "sum": 3.0, "sum_squares": 9.0}, {"n": 30, "sum": 60.0, "sum_squares": 200.0}),
    ("mean", {"n": 30, "sum": 60.0, "sum_squares": 200.0}, {"n": 0, "sum": 0.0, "sum_squares": 0.0}),
]
for kind, control, treatment in degenerate:
    for relative in (True, False):
        difference = "relative" if relative else "absolute"
        fixed = TwoSidedTTest(stat(kind, control), stat(kind, treatment),
                              FrequentistConfig(difference_type=difference)).compute_result()
        seq = SequentialTwoSidedTTest(stat(kind, control), stat(kind, treatment),
                                      SequentialConfig(difference_type=difference)).compute_result()
        assert fixed.error_message, (kind, control, treatment)
        cases.append({"metric_type": kind, "relative": relative, "alpha": 0.05, "sequential_tuning": 5000.0,
                      "control": control, "treatment": treatment, "frequentist": result(fixed), "sequential": result(seq)})

srm = []
for i in range(60):
    k = rng.randint(2, 5)
    weights = [rng.choice([0.0, 0.1, 0.25, 0.5, 1.0]) for _ in range(k)]
    if sum(weights) == 0:
        weights[0] = 1.0
    total = rng.randint(20, 20000)
    # near the planned split (sometimes off by more), and a few stray units in zero-weight groups
    skew = rng.choice([0.02, 0.05, 0.2])
    users = [round(total * w / sum(weights) * rng.uniform(1 - skew, 1 + skew)) if w > 0 else rng.choice([0, 0, 3])
             for w in weights]
    if sum(users) == 0:
        users[0] = 10
    srm.append({"users": users, "weights": weights, "p_value": check_srm(users, weights)})

# informative Gaussian priors (a generator of their own, so the cases above stay as they were)
rng = random.Random(20261126)
priors = []
while len(priors) < 80:
    kind = "binomial" if len(priors) % 2 == 0 else "mean"
    group = proportion_group if kind == "binomial" else mean_group
    control, treatment = group(), group()
    if control["sum"] <= 0:
        continue  # gbstats 0.8.0 divides a lift by the signed control mean; this crate by its absolute value
    relative = len(priors) % 4 < 2
    alpha = rng.choice([0.05, 0.1])
    scale = 1.0 if relative else abs(control["sum"] / control["n"])
    prior = GaussianPrior(mean=rng.uniform(-0.1, 0.1) * scale, variance=(rng.choice([0.01, 0.1, 0.3]) * scale) ** 2,
                          proper=True)
    difference = "relative" if relative else "absolute"
    r = EffectBayesianABTest(stat(kind, control), stat(kind, treatment),
                             EffectBayesianConfig(alpha=alpha, difference_type=difference, prior_type=difference,
                                                  prior_effect=prior)).compute_result()
    priors.append({"metric_type": kind, "relative": relative, "alpha": alpha, "control": control,
                   "treatment": treatment, "prior_mean": prior.mean, "prior_variance": prior.variance,
                   "expected": r.expected, "ci": list(r.ci), "chance_to_win": r.chance_to_win, "risk": list(r.risk),
                   "error": r.error_message})

# ratio metrics (RatioStatistic: relative and absolute) and CUPED (RegressionAdjustedStatistic with gbstats' pooled
# theta; absolute only: for a relative lift this crate follows GrowthBook's main branch, which changed the formula
# after 0.8.0), a generator of their own again
rng = random.Random(20261204)


def moments(n, mean_y, sd_y, mean_x, sd_x, rho):
    """Sums of n units whose y and x have these means, deviations and correlation."""
    sy, sx = mean_y * n, mean_x * n
    return (sy, sd_y * sd_y * (n - 1) + sy * sy / n, sx, sd_x * sd_x * (n - 1) + sx * sx / n,
            rho * sd_x * sd_y * (n - 1) + sx * sy / n)


def ratio_params():
    d_mean = rng.uniform(1.0, 6.0)
    m_mean = d_mean * rng.choice([0.05, 1.0, 800.0]) * rng.uniform(0.8, 1.2)
    return {"m_mean": m_mean, "m_sd": m_mean * rng.uniform(0.2, 1.5), "d_mean": d_mean,
            "d_sd": d_mean * rng.uniform(0.1, 0.8), "rho": rng.uniform(0.1, 0.9)}


def ratio_group(p, n, lift=0.0):
    """Numerator (e.g. total latency per unit) and denominator (spans per unit, positive) sums of n units; the
    treatment's numerator mean moved by lift."""
    sy, syy, sd, sdd, syd = moments(n, p["m_mean"] * (1 + lift), p["m_sd"], p["d_mean"], p["d_sd"], p["rho"])
    return {"n": n, "sum": sy, "sum_squares": syy, "den_sum": sd, "den_sum_squares": sdd, "cross_sum": syd}


def cuped_params(kind):
    if kind == "binomial":
        return {"y": rng.uniform(0.05, 0.6), "x": rng.uniform(0.05, 0.6), "overlap": rng.random()}
    mean = rng.choice([1.0, 12.5, 250.0]) * rng.uniform(0.8, 1.2)
    return {"mean": mean, "sd": mean * rng.uniform(0.2, 2.0), "pre_mean": mean * rng.uniform(0.7, 1.1),
            "pre_sd": mean * rng.uniform(0.2, 2.0), "rho": rng.uniform(-0.3, 0.95)}


def cuped_group(kind, p, n, lift=0.0):
    """Post (y) and pre-period (x) sums of n units; the treatment's post mean moved by lift."""
    if kind == "binomial":
        y, x = round(n * min(0.95, p["y"] * (1 + lift))), round(n * p["x"])
        # units converted both before and after: somewhere between what the two counts allow
        lo, hi = max(0, x + y - n), min(x, y)
        xy = lo + round((hi - lo) * p["overlap"])
        return {"n": n, "sum": y, "sum_squares": y, "pre_sum": x, "pre_sum_squares": x, "pre_cross_sum": xy}
    sy, syy, sx, sxx, sxy = moments(n, p["mean"] * (1 + lift), p["sd"], p["pre_mean"], p["pre_sd"], p["rho"])
    return {"n": n, "sum": sy, "sum_squares": syy, "pre_sum": sx, "pre_sum_squares": sxx, "pre_cross_sum": sxy}


def ratio_stat(g):
    return RatioStatistic(n=g["n"], m_statistic=SampleMeanStatistic(n=g["n"], sum=g["sum"], sum_squares=g["sum_squares"]),
                          d_statistic=SampleMeanStatistic(n=g["n"], sum=g["den_sum"], sum_squares=g["den_sum_squares"]),
                          m_d_sum_of_products=g["cross_sum"])


def cuped_stats(kind, a, b):
    def one(g):
        post = stat(kind, g)
        pre = (ProportionStatistic(n=g["n"], sum=g["pre_sum"]) if kind == "binomial"
               else SampleMeanStatistic(n=g["n"], sum=g["pre_sum"], sum_squares=g["pre_sum_squares"]))
        return RegressionAdjustedStatistic(n=g["n"], post_statistic=post, pre_statistic=pre,
                                           post_pre_sum_of_products=g["pre_cross_sum"], theta=0)
    sa, sb = one(a), one(b)
    theta = compute_theta(sa, sb)
    sa.theta = theta
    sb.theta = theta
    return sa, sb


ratio_cuped = []
for i in range(120):
    n = rng.choice([rng.randint(20, 200), rng.randint(200, 20000), rng.randint(20000, 300000)])
    n_treatment = max(20, int(n * rng.uniform(0.9, 1.1)))
    lift = rng.choice([0.0, 0.01, -0.02, 0.05, 0.2])
    if i < 60:
        kind, cuped, relative = "ratio", False, i % 2 == 0
        p = ratio_params()
        control, treatment = ratio_group(p, n), ratio_group(p, n_treatment, lift)
        a, b = ratio_stat(control), ratio_stat(treatment)
    else:
        kind, cuped, relative = ("binomial" if i % 2 == 0 else "mean"), True, False
        p = cuped_params(kind)
        control, treatment = cuped_group(kind, p, n), cuped_group(kind, p, n_treatment, lift)
        a, b = cuped_stats(kind, control, treatment)
    alpha = rng.choice([0.05, 0.05, 0.1, 0.01])
    tuning = rng.choice([5000.0, 1000.0, 20000.0])
    difference = "relative" if relative else "absolute"
    fixed = TwoSidedTTest(a, b, FrequentistConfig(alpha=alpha, difference_type=difference)).compute_result()
    seq = SequentialTwoSidedTTest(a, b, SequentialConfig(alpha=alpha, difference_type=difference,
                                                         sequential_tuning_parameter=tuning)).compute_result()
    bayes = EffectBayesianABTest(a, b, EffectBayesianConfig(alpha=alpha, difference_type=difference)).compute_result()
    ratio_cuped.append({"metric_type": kind, "cuped": cuped, "relative": relative, "alpha": alpha,
                        "sequential_tuning": tuning, "control": control, "treatment": treatment,
                        "frequentist": result(fixed), "sequential": result(seq),
                        "bayesian": {"chance_to_win": bayes.chance_to_win, "risk": list(bayes.risk),
                                     "error": bayes.error_message}})

# Quantile metrics (QuantileStatistic: a quantile of the units' values; QuantileClusteredStatistic: a quantile of
# every event's value, events clustered in units), from simulated values the way GrowthBook's SQL summarises them:
# the sample quantile (PERCENTILE_CONT, numpy's linear interpolation), and the order statistics at
# nu -/+ z sqrt(nu (1 - nu) / n*) for the largest n* of its grid below the number of values (getQuantileBoundValues
# and N_STAR_VALUES in GrowthBook's back end). Each case keeps the 41 levels and order statistics, so the Rust test
# checks the grid and the choice of n* too.
rng = random.Random(20261205)
N_STAR_VALUES = [100 * 2 ** k for k in range(20)]
Z = scipy.stats.norm.ppf(0.975)


def quantile_levels(nu):
    levels = [nu]
    for nstar in N_STAR_VALUES:
        se = (nu * (1 - nu) / nstar) ** 0.5
        levels += [max(nu - Z * se, 0.00000001), min(nu + Z * se, 0.99999999)]
    return levels


def quantile_summary(values, nu):
    grid = [float(v) for v in numpy.quantile(numpy.array(values), quantile_levels(nu))] if values else [0.0] * 41
    n = len(values)
    k = max([i for i, nstar in enumerate(N_STAR_VALUES) if nstar < n], default=0)
    return {"quantile_level": nu, "quantile_n": n, "quantile_nstar": N_STAR_VALUES[k], "quantile": grid[0],
            "quantile_lower": grid[1 + 2 * k], "quantile_upper": grid[2 + 2 * k]}, grid


def latency(scale):
    return rng.lognormvariate(scale, 0.6) + (rng.expovariate(0.02) if rng.random() < 0.05 else 0.0)


def quantile_group(event, nu, units, scale):
    """A group of units: (the moments the database sends, the order statistics)."""
    if not event:
        values = [sum(latency(scale) for _ in range(rng.choice([1, 1, 2, 3]))) for _ in range(units)]
        g, grid = quantile_summary(values, nu)
        return {"n": units, "sum": 0.0, "sum_squares": 0.0, **g}, grid
    per_unit = [[latency(scale) for _ in range(min(40, int(rng.expovariate(1 / 4.0))))] for _ in range(units)]
    g, grid = quantile_summary([v for u in per_unit for v in u], nu)
    below = [sum(1 for v in u if v <= g["quantile"]) for u in per_unit]
    counts = [len(u) for u in per_unit]
    return {"n": units, "sum": float(sum(below)), "sum_squares": float(sum(b * b for b in below)),
            "den_sum": float(sum(counts)), "den_sum_squares": float(sum(c * c for c in counts)),
            "cross_sum": float(sum(b * c for b, c in zip(below, counts))), **g}, grid


def quantile_stat(event, g):
    common = dict(n=g["quantile_n"], n_star=g["quantile_nstar"], nu=g["quantile_level"], quantile_hat=g["quantile"],
                  quantile_lower=g["quantile_lower"], quantile_upper=g["quantile_upper"])
    if not event:
        return QuantileStatistic(**common)
    return QuantileClusteredStatistic(**common, main_sum=g["sum"], main_sum_squares=g["sum_squares"],
                                      denominator_sum=g["den_sum"], denominator_sum_squares=g["den_sum_squares"],
                                      main_denominator_sum_product=g["cross_sum"], n_clusters=g["n"])


quantiles = []
for i in range(100):
    event = i % 2 == 1
    nu = rng.choice([0.5, 0.9, 0.95, 0.99, 0.25])
    # a few groups too small for the quantile's interval (gbstats: zero variance, no result)
    units = rng.choice([rng.randint(3, 30), rng.randint(100, 2000), rng.randint(2000, 20000)]) if i >= 6 else rng.randint(2, 12)
    scale = rng.uniform(4.0, 7.0)
    control, control_grid = quantile_group(event, nu, units, scale)
    treatment, treatment_grid = quantile_group(event, nu, max(2, int(units * rng.uniform(0.9, 1.1))),
                                               scale + rng.choice([0.0, 0.02, -0.05, 0.1]))
    a, b = quantile_stat(event, control), quantile_stat(event, treatment)
    relative = i % 4 < 2
    alpha = rng.choice([0.05, 0.05, 0.1, 0.01])
    tuning = rng.choice([5000.0, 1000.0, 20000.0])
    difference = "relative" if relative else "absolute"
    fixed = TwoSidedTTest(a, b, FrequentistConfig(alpha=alpha, difference_type=difference)).compute_result()
    seq = SequentialTwoSidedTTest(a, b, SequentialConfig(alpha=alpha, difference_type=difference,
                                                         sequential_tuning_parameter=tuning)).compute_result()
    bayes = EffectBayesianABTest(a, b, EffectBayesianConfig(alpha=alpha, difference_type=difference)).compute_result()
    quantiles.append({"metric_type": "quantile_event" if event else "quantile", "cuped": False, "relative": relative,
                      "alpha": alpha, "sequential_tuning": tuning, "control": control, "treatment": treatment,
                      "levels": quantile_levels(nu), "control_grid": control_grid, "treatment_grid": treatment_grid,
                      "variance": [a.variance, b.variance],
                      "frequentist": result(fixed), "sequential": result(seq),
                      "bayesian": {"chance_to_win": bayes.chance_to_win, "risk": list(bayes.risk),
                                   "error": bayes.error_message}})

# one-sided t-tests (a generator of their own). The open end of the interval is infinite (null here). gbstats 0.8.0
# puts the lesser test's upper end at effect - width; GrowthBook's main branch corrected it to effect + width, which
# this crate follows (the Rust test mirrors the value given here)
rng = random.Random(20261205)
finite = lambda x: x if numpy.isfinite(x) else None
one_sided = []
while len(one_sided) < 100:
    i = len(one_sided)
    kind = "binomial" if i % 2 == 0 else "mean"
    group = proportion_group if kind == "binomial" else mean_group
    control = group()
    if control["sum"] <= 0:
        continue  # gbstats 0.8.0 divides a lift by the signed control mean; this crate by its absolute value
    treatment = group(max(3, int(control["n"] * rng.uniform(0.9, 1.1))) if rng.random() < 0.5 else None)
    relative = i % 4 < 2
    greater = i % 8 < 4
    alpha = rng.choice([0.05, 0.05, 0.1, 0.01])
    difference = "relative" if relative else "absolute"
    test = OneSidedTreatmentGreaterTTest if greater else OneSidedTreatmentLesserTTest
    r = test(stat(kind, control), stat(kind, treatment), FrequentistConfig(alpha=alpha, difference_type=difference)).compute_result()
    one_sided.append({"metric_type": kind, "relative": relative, "alpha": alpha,
                      "alternative": "greater" if greater else "less", "control": control, "treatment": treatment,
                      "effect": r.expected, "ci": [finite(x) for x in r.ci], "p_value": r.p_value,
                      "error": r.error_message})

print(json.dumps({"source": "gbstats " + GBSTATS_VERSION + " (PyPI), generate_gbstats.py",
                  "comparisons": cases, "srm": srm, "priors": priors, "ratio_cuped": ratio_cuped,
                  "quantiles": quantiles, "one_sided": one_sided}, indent=1))
