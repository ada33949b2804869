"""One definition of latency statistics (frames/stats.py), checked against direct computations."""
import math

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.frames.stats import (aggregations, latency_stats, median_ci, median_ci_level, median_ci_ranks,
                                  spread_pct)


def test_latency_stats_values():
    x = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 10.0])
    s = latency_stats(x, percentiles=(50, 90))
    assert s["count"] == 6 and s["total"] == 25.0 and s["mean"] == pytest.approx(25 / 6)
    assert s["median"] == 3.5 and s["p50"] == 3.5 and s["p90"] == pytest.approx(7.5)   # linear: 5 + 0.5*5
    assert s["min"] == 1.0 and s["max"] == 10.0 and s["std"] == pytest.approx(np.std(x))
    assert (s["median_ci_low"], s["median_ci_high"]) == (1.0, 10.0)      # 6 samples: only min..max reaches 95 %


def test_median_ci_ranks_match_the_binomial_table():
    # n=10: x(2)..x(9) covers 97.9 %; n=100: x(40)..x(61) (1-based), the textbook values
    assert median_ci_ranks(10) == (1, 8) and median_ci_ranks(100) == (39, 60)
    assert median_ci_ranks(1000)[0] in (468, 469) and median_ci_ranks(1001)[0] in (468, 469)
    for n in (10, 37, 100, 999):                    # exact coverage of the chosen ranks is at least 95 %
        lo, _ = median_ci_ranks(n)
        tail = sum(math.comb(n, i) for i in range(lo + 1)) / 2**n
        wider = sum(math.comb(n, i) for i in range(lo + 2)) / 2**n
        assert 1 - 2 * tail >= 0.95 > 1 - 2 * wider, n


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_too_few_samples_have_no_interval_rather_than_min_to_max(n):
    # min..max covers the median with 1 - 2^(1-n): 0% at 1, 50% at 2, 75% at 3, 93.75% at 5, all below 95%
    assert median_ci_ranks(n) is None and math.isnan(median_ci_level(n))
    lo, hi = median_ci(np.arange(1.0, n + 1))
    assert math.isnan(lo) and math.isnan(hi)
    s = latency_stats(np.arange(1.0, n + 1))
    assert math.isnan(s["median_ci_low"]) and math.isnan(s["median_ci_high"])


def test_the_level_reached_is_the_exact_binomial_coverage():
    assert median_ci_level(6) == pytest.approx(1 - 2 / 64) and median_ci_level(10) == pytest.approx(0.978515625)
    for n in (6, 9, 17, 100, 1000, 5000):
        assert 0.95 <= median_ci_level(n) < 1.0, n


def test_small_sample_coverage_is_at_least_95_percent_by_simulation():
    rng = np.random.default_rng(3)
    for n in (6, 8):
        hits = sum(lo <= 1.0 <= hi for lo, hi in (median_ci(rng.lognormal(0.0, 0.5, n)) for _ in range(2000)))
        assert hits / 2000 >= median_ci_level(n) - 0.015, n


def test_spread_ignores_one_outlier_but_shows_two_modes():
    steady = np.full(50, 1.0) * (1 + np.linspace(-0.005, 0.005, 50))
    assert spread_pct(np.append(steady, 40.0)) < 1.0                    # one 40x hiccup among steady samples
    assert spread_pct(np.r_[np.full(25, 1.0), np.full(25, 1.5)]) > 20.0   # a real spread: two modes
    assert spread_pct([2.0]) == 0.0 and spread_pct([]) == 0.0
    normal = np.random.default_rng(0).normal(10.0, 0.5, 20000)
    assert spread_pct(normal) == pytest.approx(5.0, rel=0.05)           # the CV (std / mean) of normal data


def test_median_ci_covers_the_true_median():
    rng = np.random.default_rng(0)
    hits = sum(lo <= 1.0 <= hi for lo, hi in (median_ci(rng.lognormal(0.0, 0.5, 51)) for _ in range(400)))
    assert 0.93 <= hits / 400 <= 0.995       # nominal >= 95 %, the exact order-statistic coverage is 95.1 %


def test_empty_and_groupby_agree_with_latency_stats():
    assert latency_stats([])["count"] == 0 and math.isnan(latency_stats([])["median"])
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"k": rng.integers(0, 3, 200), "ms": rng.exponential(1.0, 200)})
    agg = df.groupby("k")["ms"].agg(**aggregations())
    for k, g in df.groupby("k"):
        direct = latency_stats(g["ms"])
        for name, value in direct.items():
            assert agg.loc[k, name] == pytest.approx(value, rel=1e-12), name


def _old_summary(layer_times, by):
    """The per-layer loop perfkit used before the groupby: the reference for count..pct."""
    keys = ["layer", "type"] if by == "layer" else ["type"]
    grand = float(layer_times["ms"].sum())
    rows = []
    for key in layer_times.groupby(keys, sort=False)["index"].min().sort_values().index:
        key = key if isinstance(key, tuple) else (key,)
        g = layer_times
        for k, v in zip(keys, key):
            g = g[g[k] == v]
        ms = g["ms"].to_numpy()
        rows.append({"layer": key[0] if by == "layer" else key[-1], "type": key[-1], "count": int(ms.size),
                     "total_ms": ms.sum(), "mean_ms": ms.mean(), "median_ms": np.median(ms),
                     "p90_ms": np.percentile(ms, 90), "min_ms": ms.min(), "max_ms": ms.max(),
                     "pct": 100.0 * ms.sum() / grand})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("by", ["layer", "type"])
def test_layer_summary_groupby_equals_the_loop(by):
    rng = np.random.default_rng(2)
    names = [("conv1", "convolution"), ("pool1", "pooling"), ("conv2", "convolution"), ("ip1", "fully_connected")]
    rows = [{"layer": n, "type": t, "index": i, "ms": float(rng.exponential(0.1 * (i + 1))), "iteration": it}
            for it in range(30) for i, (n, t) in enumerate(names)]
    lt = pd.DataFrame(rows)
    new = pk.profiling.layer_summary(lt, by=by, sort=None)
    old = _old_summary(lt, by)
    assert list(new["layer"]) == list(old["layer"]) and list(new["type"]) == list(old["type"])
    for c in ("count", "total_ms", "mean_ms", "median_ms", "p90_ms", "min_ms", "max_ms", "pct"):
        np.testing.assert_allclose(new[c].to_numpy(dtype=float), old[c].to_numpy(dtype=float), rtol=1e-12)
    assert (new["median_ci_low_ms"] <= new["median_ms"]).all() and (new["median_ms"] <= new["median_ci_high_ms"]).all()


@pytest.mark.parametrize("kwargs", [{"by": "nope"}, {"sort": "banana"}, {"by": 3}])
def test_layer_summary_bad_arguments_are_perfkit_errors(kwargs):
    lt = pd.DataFrame({"layer": ["a"], "type": ["t"], "index": [0], "ms": [1.0]})
    with pytest.raises(pk.PerfkitError, match="must be one of"):
        pk.profiling.layer_summary(lt, **kwargs)
    with pytest.raises(pk.PerfkitError, match="DataFrame"):
        pk.profiling.layer_summary([1, 2, 3])


@pytest.mark.parametrize("slow_share", [0.3, 0.45, 0.5, 0.55, 0.7])
def test_two_modes_show_whichever_holds_the_majority(slow_share):
    n = 101
    slow = int(round(slow_share * n))
    assert spread_pct(np.r_[np.full(n - slow, 1.0), np.full(slow, 1.5)]) > 20.0, slow_share


@pytest.mark.parametrize("shape", ["lognormal", "two_modes"])
def test_the_ratio_bootstrap_covers_at_the_sample_counts_of_a_run(shape):
    """compare() on two runs bootstraps the ratio of per-layer medians from the ten or so inferences a run
    profiles. A bootstrap of a median can under-cover at such counts; this one's coverage, simulated at 10
    samples a run on a spread and on a two-mode latency (65% fast, 35% 1.6x slower: the median sits in the
    fast mode's upper tail), stays at 95% within the simulation's error."""
    from perfkit.frames.stats import bootstrap_ratio
    rng = np.random.default_rng(7)

    def draw(n, scale):
        if shape == "lognormal":
            return scale * np.exp(rng.normal(0.0, 0.1, n))
        fast = rng.random(n) < 0.65
        return scale * np.where(fast, rng.normal(1.0, 0.02, n), rng.normal(1.6, 0.05, n))
    true = 1.2 * np.median(draw(400_000, 1.0)) / np.median(draw(400_000, 1.0))
    trials, hits = 400, 0
    for t in range(trials):
        _, lo, hi = bootstrap_ratio(draw(10, 1.0), draw(10, 1.2), seed=t, resamples=1000)
        hits += lo <= true <= hi
    assert hits / trials >= 0.93, hits / trials         # 0.95 less two standard errors of 400 trials
