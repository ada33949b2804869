"""Latency-throughput curves and latency distributions, checked on synthetic frames whose numbers are known."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from plot_artists import by_gid  # noqa: E402

from perfkit.errors import PerfkitError  # noqa: E402
from perfkit.frames.schemas import QUERIES, SWEEP  # noqa: E402
from perfkit.plots import plot_latency_distribution, plot_latency_throughput  # noqa: E402

BATCHES = (16, 1, 4)                    # unsorted: curves run through the batch sizes in order


def _sweep(ci=True, failed=False):
    rows = []
    for m, model in enumerate(("a", "b")):
        for p, prec in enumerate(("fp32", "fp16")):
            for b in BATCHES:
                lat = (1 + m) * (0.5 + 0.25 * b) / (1 + p)           # ms; "b" twice as slow, fp16 twice as fast
                row = {"run_id": "r", "model": model, "device": "cpu", "precision": prec, "batch_size": b,
                       "iterations": 5, "latency_mean_ms": lat, "latency_median_ms": lat, "latency_p90_ms": lat,
                       "latency_min_ms": lat, "latency_max_ms": lat, "throughput_per_s": b / lat * 1e3,
                       "device_memory_bytes": 1, "weights_bytes": 1, "activation_bytes": 1, "build_time_ms": 1.0,
                       "unstable": (model, prec, b) == ("b", "fp32", 4)}
                if ci:
                    row.update(latency_ci_low_ms=lat * 0.9, latency_ci_high_ms=lat * 1.2)
                rows.append(row)
    if failed:
        rows.append({**rows[0], "batch_size": 64, "iterations": 0, "latency_median_ms": np.nan,
                     "throughput_per_s": np.nan, **({"latency_ci_low_ms": np.nan, "latency_ci_high_ms": np.nan}
                                                    if ci else {})})
    return SWEEP.frame(rows, {"device_name": "test gpu"})


def test_a_curve_per_model_and_precision_through_the_batch_sizes():
    df = _sweep()
    ax = plot_latency_throughput(df).axes[0]
    assert ax.get_xlabel() == "median latency per inference (ms)" and ax.get_ylabel() == "throughput (samples/s)"
    assert ax.get_title() == "throughput vs latency over batch sizes — test gpu"
    for model in ("a", "b"):
        for prec in ("fp32", "fp16"):
            (line,) = by_gid(ax, f"curve:{model}:{prec}")
            want = df[(df["model"] == model) & (df["precision"] == prec)].sort_values("batch_size")
            np.testing.assert_allclose(line.get_xdata(), want["latency_median_ms"])
            np.testing.assert_allclose(line.get_ydata(), want["throughput_per_s"])
            assert line.get_linestyle() == {"fp32": "-", "fp16": "--"}[prec]
    assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "batch_label") == sorted(["b1", "b4", "b16"] * 4)
    ci = [c for c in ax.collections if c.get_gid() == "ci"]
    assert len(ci) == 8                                                  # latency and throughput bars per curve
    xs = np.array([seg[:, 0] for seg in ci[0].get_segments()])           # a fp32: latency bars span the interval
    want = df[(df["model"] == "a") & (df["precision"] == "fp32")].sort_values("batch_size")
    np.testing.assert_allclose(xs, np.c_[want["latency_ci_low_ms"], want["latency_ci_high_ms"]])
    ys = np.array([seg[:, 1] for seg in ci[1].get_segments()])           # throughput bars: batch over those bounds
    b, lo, hi = want["batch_size"], want["latency_ci_low_ms"], want["latency_ci_high_ms"]
    np.testing.assert_allclose(ys, np.c_[b / hi * 1e3, b / lo * 1e3])
    (ring,) = by_gid(ax, "unstable")
    row = df[df["unstable"]].iloc[0]
    assert list(ring.get_xdata()) == [row["latency_median_ms"]]
    assert any("interval of the median (at least 95%)" in t.get_text() for t in ax.texts)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["a fp32", "a fp16", "b fp32", "b fp16"] and "unstable: spread too wide" in labels


def test_log_latency_ticks_are_plain_and_batch_labels_do_not_overlap():
    df = _sweep()
    crowded = pd.concat([df, df.assign(model="c", latency_median_ms=df["latency_median_ms"] * 1.02)])
    fig = plot_latency_throughput(crowded.reset_index(drop=True))
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xscale() == "log"
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks and all("10^" not in t and "mathdefault" not in t for t in ticks) and "1" in ticks
    shown = [t for t in ax.texts if t.get_gid() == "batch_label" and t.get_visible()]
    boxes = [t.get_window_extent() for t in shown]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    hidden = [t for t in ax.texts if t.get_gid() == "batch_label" and not t.get_visible()]
    assert hidden                                                  # model c's labels sit on model a's


def test_budget_line_and_the_best_point_within_it():
    df = _sweep()
    ax = plot_latency_throughput(df, budget_ms=2.5).axes[0]
    (budget,) = by_gid(ax, "budget")
    assert list(budget.get_xdata()) == [2.5, 2.5]
    # within 2.5 ms: a fp16 batch 16 takes 2.25 ms at 7,111 samples/s, the most of any point within
    (best,) = by_gid(ax, "best")
    assert list(best.get_xdata()) == [2.25] and best.get_ydata()[0] == pytest.approx(16 / 2.25e-3)
    assert "best within budget: a fp16 batch 16\n7,111 samples/s at 2.25 ms" in \
        [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title().endswith("— budget 2.50 ms")
    none = plot_latency_throughput(df, budget_ms=0.1).axes[0]
    assert not by_gid(none, "best")
    assert [t.get_text() for t in none.texts if t.get_gid() == "best_label"] == \
        ["no configuration meets the 100 µs budget"]


def test_failed_rows_are_counted_microseconds_and_empty_sweeps():
    df = _sweep(ci=False, failed=True)
    fast = df.assign(latency_median_ms=df["latency_median_ms"] / 100)
    ax = plot_latency_throughput(fast).axes[0]
    assert ax.get_xlabel() == "median latency per inference (µs)"
    assert not [c for c in ax.collections if c.get_gid() == "ci"]
    assert any(t.get_text() == "1 configuration(s) failed, not drawn" for t in ax.texts)
    (line,) = by_gid(ax, "curve:a:fp32")
    np.testing.assert_allclose(line.get_xdata(), np.sort(fast[(fast["model"] == "a") & (fast["precision"] == "fp32")]
                                                         ["latency_median_ms"].dropna()) * 1e3)
    empty = plot_latency_throughput(SWEEP.frame([])).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no measured configurations"]


def test_distribution_histogram_cdf_and_percentiles():
    values = np.linspace(0.1, 1.1, 1001)                                # p50 0.6, p90 1.0, p99 1.09 ms
    fig = plot_latency_distribution(values)
    ax, cdf_ax = fig.axes
    assert ax.get_xlabel() == "latency per inference (ms)" and ax.get_ylabel() == "inferences"
    assert cdf_ax.get_ylabel() == "inferences at or below (%)"
    assert sum(p.get_height() for p in ax.patches if p.get_gid() == "histogram") == len(values)
    for p, want in ((50, 0.6), (90, 1.0), (99, 1.09)):
        (line,) = by_gid(ax, f"p{p}")
        assert line.get_xdata()[0] == pytest.approx(want)
    assert [t.get_text() for t in ax.texts if t.get_gid().endswith("_label")] == \
        ["p50 600 µs", "p90 1.00 ms", "p99 1.09 ms"]
    (cdf,) = by_gid(cdf_ax, "cdf")
    assert cdf.get_ydata()[-1] == 100 and cdf.get_ydata()[500] == pytest.approx(100 * 501 / 1001)
    assert ax.get_title() == "latency distribution — n = 1,001 inferences"


def test_distribution_of_a_queries_frame_cuts_a_long_tail_and_says_so():
    lat = [0.2] * 95 + [0.3] * 4 + [5.0]                                 # one inference 25x slower than the rest
    rows = [{"run_id": "r", "query": i, "stream": 0, "batch_size": 8, "enqueue_start_ns": 0, "enqueue_end_ns": 1,
             "end_ns": 2, "enqueue_ms": 0.01, "h2d_ms": 0.0, "compute_ms": v, "d2h_ms": 0.0, "latency_ms": v,
             "host_latency_ms": v + 0.05} for i, v in enumerate(lat)]
    ax = plot_latency_distribution(QUERIES.frame(rows, {"engine": "lenet", "device_name": "cpu x"})).axes[0]
    assert ax.get_xlabel() == "host latency per inference (µs)"
    assert ax.get_title() == "host latency distribution — n = 100 inferences · lenet · cpu x · batch 8"
    (note,) = [t for t in ax.texts if t.get_gid() == "tail_note"]
    assert note.get_text().startswith("1 slower than") and "(slowest 5.05 ms)" in note.get_text()
    no_host = QUERIES.frame([{**r, "host_latency_ms": np.nan} for r in rows])
    assert plot_latency_distribution(no_host).axes[0].get_xlabel() == "latency per inference (µs)"
    empty = plot_latency_distribution(pd.Series([], dtype=float)).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no latencies"]


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_few_samples_bins_resolve_the_bulk_the_tail_is_counted_and_p99_is_called_the_maximum():
    # like 20 inferences of resnet_small on an H200: a bulk at 0.65-0.82 ms and one at 7.8 ms
    bulk = [0.652, 0.653, 0.656, 0.658, 0.675, 0.727, 0.741, 0.746, 0.748, 0.749, 0.751, 0.753, 0.755, 0.756, 0.757,
            0.759, 0.774, 0.775, 0.815]
    fig = plot_latency_distribution(np.array(bulk + [7.846]))
    ax = fig.axes[0]
    assert ax.get_title() == "latency distribution — n = 20 inferences"
    bars = [p for p in ax.patches if p.get_gid() == "histogram"]
    assert len(bars) >= 8 and max(p.get_width() for p in bars) <= (815 - 652) / 8 + 1e-6     # µs, the bulk in 8+
    assert sum(p.get_height() for p in bars) == 19
    (over,) = [p for p in ax.patches if p.get_gid() == "overflow"]
    assert over.get_height() == 1 and ax.get_xticklabels()[-1].get_text().startswith("> ")
    assert not by_gid(ax, "p99") and by_gid(ax, "p50") and by_gid(ax, "p90")
    (mx,) = by_gid(ax, "max")
    assert mx.get_xdata()[0] == pytest.approx(over.get_x() + over.get_width() / 2)       # drawn on the overflow bin
    labels = {t.get_gid(): t for t in ax.texts if (t.get_gid() or "").endswith("_label")}
    assert labels["max_label"].get_text() == "max 7.85 ms (n = 20: p99 ≈ max)"
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in labels.values()]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    few = plot_latency_distribution([1.0, 1.1, 1.2, 1.3, 1.4]).axes[0]
    assert not by_gid(few, "p90") and [t.get_text() for t in few.texts if t.get_gid() == "max_label"] == \
        ["max 1.40 ms (n = 5: p90 and p99 ≈ max)"]


@pytest.mark.parametrize("bad", ["x", ["a", 1.0], pd.DataFrame({"x": [1.0]}), None, [True, 1.0], 3.0])
def test_distribution_refuses_what_is_not_latencies(bad):
    with pytest.raises(PerfkitError):
        plot_latency_distribution(bad)


@pytest.mark.parametrize("kw", [dict(budget_ms=0), dict(budget_ms=-1), dict(budget_ms="5"), dict(ax=3),
                                dict(sweep=pd.DataFrame({"model": ["a"]}))])
def test_latency_throughput_refuses_bad_arguments(kw):
    with pytest.raises(PerfkitError):
        plot_latency_throughput(**{"sweep": _sweep(), **kw})
