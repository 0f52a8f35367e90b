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
print(json.dumps(cases, indent=1))
