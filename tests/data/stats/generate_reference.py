#!/usr/bin/env python3
"""Regenerates tests/data/stats/reference.json: reference values for analytics_ext's statistics, computed with
scipy and statsmodels (pip install scipy statsmodels). The Rust unit tests compare against it to 1e-9 relative.

    python3 tests/data/stats/generate_reference.py > tests/data/stats/reference.json
"""
import json
import math

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests
from scipy.optimize import brentq
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest


def welch(n1, m1, v1, n2, m2, v2, relative, alpha):
    """Welch's t-test of treatment (2) vs control (1); relative: lift m2/m1 - 1 with the delta-method variance."""
    a, b = v1 / n1, v2 / n2
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    if relative:
        effect = m2 / m1 - 1
        se = math.sqrt(b / m1 ** 2 + a * m2 ** 2 / m1 ** 4)
    else:
        effect = m2 - m1
        se = math.sqrt(a + b)
    t = effect / se
    p = 2 * stats.t.sf(abs(t), df)
    q = stats.t.ppf(1 - alpha / 2, df)
    if not relative:
        # cross-check the absolute case against scipy's own Welch test
        t_sp, p_sp = stats.ttest_ind_from_stats(m2, math.sqrt(v2), n2, m1, math.sqrt(v1), n1, equal_var=False)
        assert abs(t_sp - t) < 1e-12 * max(1, abs(t)) and abs(p_sp - p) < 1e-12, (t, t_sp, p, p_sp)
    return {"effect": effect, "std_error": se, "statistic": t, "df": df, "p_value": p,
            "ci_lower": effect - q * se, "ci_upper": effect + q * se}


def two_proportions(x1, n1, x2, n2, alpha):
    """Pooled two-proportion z-test (statsmodels proportions_ztest), unpooled Wald interval for the difference."""
    z, p = proportions_ztest([x2, x1], [n2, n1])
    p1, p2 = x1 / n1, x2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    q = stats.norm.ppf(1 - alpha / 2)
    return {"effect": p2 - p1, "statistic": z, "p_value": p, "ci_lower": p2 - p1 - q * se, "ci_upper": p2 - p1 + q * se}


def srm(observed, weights):
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    chi2, p = stats.chisquare(observed, expected)
    return {"chi_square": chi2, "p_value": p}


cases = {
    "generator": f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}, numpy {np.__version__}",
    "welch": [],
    "two_proportions": [],
    "srm": [],
    "holm": [],
    "bh": [],
    # [df, t, sf(t), quantile(0.975)] on both sides of the thresholds where analytics_ext switches to expansions
    "student_t": [],
}
for df in [30.0, 999.0, 9999.0, 10000.0, 50000.0, 999999.0, 1000000.0, 2000000.0, 10000000.0]:
    for t in [0.1, 1.0, 1.96, 3.0, 5.0]:
        cases["student_t"].append([df, t, float(stats.t.sf(t, df)), float(stats.t.ppf(0.975, df))])
for (n1, m1, v1, n2, m2, v2) in [
    (3407, 1396.87 / 3407, (52377.9767 - 1396.87 ** 2 / 3407) / 3406, 3461, 2422.7 / 3461, (134698.29 - 2422.7 ** 2 / 3461) / 3460),
    (100, 10.0, 4.0, 120, 10.5, 6.25),
    (30, 0.5, 0.01, 25, 0.52, 0.02),
    (5000, 123.4, 900.0, 5100, 121.9, 1100.0),
    (2, 1.0, 0.5, 3, 2.0, 1.0),
    (1000000, 0.2, 0.16, 1000000, 0.2005, 0.16),
    (25000, 3.1, 2.5, 26000, 3.12, 2.7),
    (6000000, 0.11, 0.0979, 6000000, 0.1102, 0.0981),
]:
    for relative in (False, True):
        for alpha in (0.05, 0.01):
            cases["welch"].append({"args": [n1, m1, v1, n2, m2, v2, relative, alpha],
                                   "want": welch(n1, m1, v1, n2, m2, v2, relative, alpha)})
for (x1, n1, x2, n2) in [(116, 1000, 129, 1000), (50, 2000, 80, 2000), (1, 10, 9, 10), (4500, 10000, 4600, 10000), (0, 500, 3, 500)]:
    for alpha in (0.05, 0.1):
        cases["two_proportions"].append({"args": [x1, n1, x2, n2, alpha], "want": two_proportions(x1, n1, x2, n2, alpha)})
for (obs, w) in [([5000, 5000], [0.5, 0.5]), ([5060, 4940], [0.5, 0.5]), ([5300, 4700], [0.5, 0.5]),
                 ([2100, 2950, 4950], [0.2, 0.3, 0.5]), ([100, 120, 90, 110], [1, 1, 1, 1])]:
    cases["srm"].append({"args": [obs, w], "want": srm(obs, w)})
for ps in [[0.01, 0.04, 0.03, 0.005, 0.55, 0.6], [0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138], [0.2], [0.001, 0.001, 0.5]]:
    cases["holm"].append({"args": ps, "want": list(multipletests(ps, method="holm")[1])})
    cases["bh"].append({"args": ps, "want": list(multipletests(ps, method="fdr_bh")[1])})


# ---- comparisons from raw per-unit data (src/experiments/analysis.rs) -------------------------------------------
SEQUENTIAL_TUNING = 5000.0


def moments(y, d=None, x=None):
    m = {"n": len(y), "sum": float(np.sum(y)), "sum_squares": float(np.sum(y * y))}
    if d is not None:
        m.update(den_sum=float(np.sum(d)), den_sum_squares=float(np.sum(d * d)), cross_sum=float(np.sum(y * d)))
    if x is not None:
        m.update(pre_sum=float(np.sum(x)), pre_sum_squares=float(np.sum(x * x)), pre_cross_sum=float(np.sum(x * y)))
    return m


def views(effect, se, n_total, alpha):
    """Bayesian (flat prior, Gaussian) and sequential (Howard et al. normal mixture, GrowthBook's tuning) views."""
    z = effect / se
    la = math.log(alpha)
    rho2 = (-2 * la + math.log(1 - 2 * la)) / SEQUENTIAL_TUNING
    v = n_total * rho2
    half = se * math.sqrt(2 * (v + 1) * math.log(math.sqrt(v + 1) / alpha) / v)
    return {"chance_to_beat_control": stats.norm.cdf(z),
            "expected_loss": se * stats.norm.pdf(z) - effect * stats.norm.cdf(-z),
            "sequential_p_value": min(1.0, math.sqrt(v + 1) * math.exp(-z * z * v / (2 * (v + 1)))),
            "sequential_ci_lower": effect - half, "sequential_ci_upper": effect + half}


def welch_raw(c, t, alpha):
    """scipy's own Welch test on raw arrays: effect, se, p and interval."""
    r = stats.ttest_ind(t, c, equal_var=False)
    ci = r.confidence_interval(1 - alpha)
    effect = float(np.mean(t) - np.mean(c))
    return {"effect": effect, "std_error": effect / r.statistic, "p_value": r.pvalue,
            "ci_lower": ci.low, "ci_upper": ci.high}


rng = np.random.RandomState(20261125)
cases["compare"] = []


def add(name, metric_type, relative, alpha, cuped, control, treatment, want):
    cases["compare"].append({"name": name, "metric_type": metric_type, "relative": relative, "alpha": alpha,
                             "cuped": cuped, "control": control, "treatment": treatment, "want": want})


for (size_c, size_t, lift, alpha) in [(400, 420, 0.3, 0.05), (60, 50, 0.0, 0.1), (3000, 2900, 0.05, 0.05)]:
    c = rng.gamma(2.0, 3.0, size_c)
    t = rng.gamma(2.0, 3.0, size_t) + lift
    want = welch_raw(c, t, alpha)
    want.update(views(want["effect"], want["std_error"], size_c + size_t, alpha))
    want.update(control_value=float(np.mean(c)), treatment_value=float(np.mean(t)))
    add(f"mean {size_c}/{size_t}", "mean", False, alpha, False, moments(c), moments(t), want)
    # relative: the delta-method lift checked by the welch section above
    m1, m2, v1, v2 = np.mean(c), np.mean(t), np.var(c, ddof=1), np.var(t, ddof=1)
    rel = welch(size_c, m1, v1, size_t, m2, v2, True, alpha)
    rel.update(views(rel["effect"], rel["std_error"], size_c + size_t, alpha))
    add(f"mean relative {size_c}/{size_t}", "mean", True, alpha, False, moments(c), moments(t),
        {k: rel[k] for k in ("effect", "std_error", "p_value", "ci_lower", "ci_upper", "chance_to_beat_control",
                             "expected_loss", "sequential_p_value", "sequential_ci_lower", "sequential_ci_upper")})

    # CUPED: the same test on y - theta (x - pooled mean of x), theta from both groups pooled
    xc = rng.gamma(2.0, 3.0, size_c)
    xt = rng.gamma(2.0, 3.0, size_t)
    yc = 0.8 * xc + rng.normal(0, 1.5, size_c)
    yt = 0.8 * xt + rng.normal(0, 1.5, size_t) + lift
    x_all, y_all = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    theta = np.cov(x_all, y_all, ddof=1)[0, 1] / np.var(x_all, ddof=1)
    ac, at = yc - theta * (xc - x_all.mean()), yt - theta * (xt - x_all.mean())
    want = welch_raw(ac, at, alpha)
    want.update(views(want["effect"], want["std_error"], size_c + size_t, alpha))
    before = np.var(yc, ddof=1) / size_c + np.var(yt, ddof=1) / size_t
    want.update(cuped_theta=theta, variance_reduction=1 - want["std_error"] ** 2 / before,
                control_value=float(np.mean(yc)), treatment_value=float(np.mean(yt)))
    add(f"cuped {size_c}/{size_t}", "mean", False, alpha, True, moments(yc, x=xc), moments(yt, x=xt), want)

    # ratio: per-unit (latency sum y, spans d); R = sum y / sum d, delta-method variance, Welch df
    dc = rng.poisson(3.0, size_c) + 1
    dt = rng.poisson(3.0, size_t) + 1
    yc = np.array([rng.gamma(2.0, 400.0, k).sum() for k in dc])
    yt = np.array([rng.gamma(2.0, 400.0 * (1 - lift / 3), k).sum() for k in dt])

    def ratio(y, d):
        n, r, dbar = len(y), y.sum() / d.sum(), d.mean()
        cov = np.cov(y, d, ddof=1)
        return n, r, (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / dbar ** 2

    (n1, r1, v1), (n2, r2, v2) = ratio(yc, dc), ratio(yt, dt)
    want = welch(n1, r1, v1, n2, r2, v2, False, alpha)
    want.update(views(want["effect"], want["std_error"], size_c + size_t, alpha))
    want.update(control_value=r1, treatment_value=r2)
    add(f"ratio {size_c}/{size_t}", "ratio", False, alpha, False, moments(yc, d=dc), moments(yt, d=dt), want)

for (x1, n1, x2, n2) in [(116, 1000, 129, 1000), (50, 2000, 80, 2000)]:
    yc = np.array([1.0] * x1 + [0.0] * (n1 - x1))
    yt = np.array([1.0] * x2 + [0.0] * (n2 - x2))
    # experiment_results tests a conversion rate as GrowthBook does: Welch's t-test of the reported effect with
    # each group's variance p(1 - p) (the pooled z-test stays the primitive two_proportion_z_test, checked above)
    p1, p2 = x1 / n1, x2 / n2
    want = welch(n1, p1, p1 * (1 - p1), n2, p2, p2 * (1 - p2), False, 0.05)
    want.update(views(want["effect"], want["std_error"], n1 + n2, 0.05))
    add(f"binomial {x1}/{n1} vs {x2}/{n2}", "binomial", False, 0.05, False, moments(yc), moments(yt), want)

# ---- sample size (src/experiments/power.rs): statsmodels' two-sided normal power, both tails ---------------------
cases["sample_size"] = []
for (metric_type, baseline, std_dev, mde, relative, alpha, power, variants) in [
    ("binomial", 0.10, None, 0.02, False, 0.05, 0.8, 2),
    ("binomial", 0.10, None, 0.05, True, 0.05, 0.8, 2),
    ("binomial", 0.30, None, 0.10, True, 0.01, 0.9, 3),
    ("binomial", 0.02, None, -0.2, True, 0.05, 0.8, 2),
    ("mean", 12.5, 8.0, 0.03, True, 0.05, 0.8, 2),
    ("mean", 100.0, 30.0, 5.0, False, 0.1, 0.95, 4),
    ("mean", 1.0, 1.0, 1.5, False, 0.05, 0.5, 2),
]:
    a = alpha / (variants - 1)
    treatment = baseline * (1 + mde) if relative else baseline + mde
    if metric_type == "binomial":
        sd = math.sqrt((baseline * (1 - baseline) + treatment * (1 - treatment)) / 2)
    else:
        sd = std_dev
    es = abs(treatment - baseline) / sd
    n = NormalIndPower().solve_power(effect_size=es, alpha=a, power=power, ratio=1.0, alternative="two-sided")
    n = brentq(lambda k: NormalIndPower().power(es, k, a, ratio=1.0, alternative="two-sided") - power,
               n * 0.9, n * 1.1, xtol=1e-13, rtol=1e-15)
    cases["sample_size"].append({"metric_type": metric_type, "baseline": baseline, "std_dev": std_dev, "mde": mde,
                                 "relative": relative, "alpha": alpha, "power": power, "variants": variants,
                                 "per_variant_exact": n})

print(json.dumps(cases, indent=1))
