"""Reference statistics for robustctl's Evaluation module, from SciPy (1.17).

Writes Tests/EvaluationTests/Fixtures/statistics.json: Wilcoxon signed-rank cases
(scipy.stats.wilcoxon) over sample sizes with and without ties and zeros, every zero
method, continuity correction, alternative and method; Vargha–Delaney A12 (from
scipy.stats.mannwhitneyu's U); McNemar's exact test (scipy.stats.binomtest); binomial
cumulative probabilities.

Run by hand from the repository root after `pip install scipy numpy`:
    python3 Tools/reference/make_stats_fixtures.py
"""
import json
import os
import warnings

import numpy as np
import scipy
from scipy import stats

OUT = os.path.join("Tests", "EvaluationTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261125)
cases = {"scipy": scipy.__version__, "wilcoxon": [], "vda": [], "mcnemar": []}


def samples(n, kind):
    if kind == "continuous":
        x = rng.normal(0.3, 1, n); y = rng.normal(0, 1, n)
    elif kind == "ties":
        x = rng.integers(0, 6, n).astype(float); y = rng.integers(0, 6, n).astype(float) + 0.5
    elif kind == "zeros":
        x = rng.integers(0, 4, n).astype(float); y = rng.integers(0, 4, n).astype(float)
    else:  # success rates on a 0.01 grid, as the study compares
        x = np.round(rng.uniform(0, 1, n), 2); y = np.clip(np.round(x + rng.normal(0.02, 0.05, n), 2), 0, 1)
    return x, y


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for n in [4, 6, 9, 13, 14, 20, 36, 51, 80]:
        for kind in ["continuous", "ties", "zeros", "rates"]:
            x, y = samples(n, kind)
            if np.all(x == y):
                continue
            x, y = np.round(x, 6), np.round(y, 6)
            results = []
            cases["wilcoxon"].append({"x": x.tolist(), "y": y.tolist(), "results": results})
            for zero_method in ["wilcox", "pratt", "zsplit"]:
                for correction in [False, True]:
                    for alternative in ["two-sided", "greater", "less"]:
                        for method in ["auto", "exact", "asymptotic"]:
                            if method == "exact" and n > 30:
                                continue
                            if zero_method == "wilcox" and np.count_nonzero(x - y) == 0:
                                continue
                            r = stats.wilcoxon(x, y, zero_method=zero_method, correction=correction,
                                               alternative=alternative, method=method)
                            results.append({
                                "zero_method": zero_method, "correction": correction, "alternative": alternative,
                                "method": method, "statistic": float(r.statistic), "pvalue": float(r.pvalue)})
        # One-sample form: y = 0.
        x = np.round(samples(n, "continuous")[0], 6)
        r = stats.wilcoxon(x)
        cases["wilcoxon"].append({"x": x.tolist(), "y": None, "results": [{
            "zero_method": "wilcox", "correction": False, "alternative": "two-sided", "method": "auto",
            "statistic": float(r.statistic), "pvalue": float(r.pvalue)}]})

for m, n in [(5, 7), (30, 30), (12, 40)]:
    for kind in ["continuous", "ties", "rates"]:
        x, _ = samples(m, kind)
        _, y = samples(n, kind)
        u = stats.mannwhitneyu(x, y).statistic
        cases["vda"].append({"x": x.tolist(), "y": y.tolist(), "paired": False, "a": float(u / (m * n))})
        xp, yp = samples(m, kind)
        a = (np.sum(xp > yp) + 0.5 * np.sum(xp == yp)) / m
        cases["vda"].append({"x": xp.tolist(), "y": yp.tolist(), "paired": True, "a": float(a)})

for n, p in [(10, 0.5), (40, 0.3), (200, 0.1), (3000, 0.02), (25, 0.0)]:
    x = (rng.uniform(size=n) < 0.5).astype(int)
    flip = rng.uniform(size=n) < p
    y = np.where(flip, 1 - x, x)
    b = int(np.sum((x == 1) & (y == 0))); c = int(np.sum((x == 0) & (y == 1)))
    pvalue = 1.0 if b + c == 0 else float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    cases["mcnemar"].append({"x": x.tolist(), "y": y.tolist(), "b": b, "c": c, "statistic": float(min(b, c)), "pvalue": pvalue})

json.dump(cases, open(os.path.join(OUT, "statistics.json"), "w"))
print(sum(len(c["results"]) for c in cases["wilcoxon"]), "wilcoxon,", len(cases["vda"]), "vda,", len(cases["mcnemar"]), "mcnemar cases")
