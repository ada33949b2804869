"""The figures of throughput under load: throughput and latency against streams, the queries on one
lane per stream, and batching latency/throughput against T (predicted lines, measured markers)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import perfkit as pk  # noqa: E402
from perfkit.frames.schemas_load import BATCHING_SIMULATION, THROUGHPUT  # noqa: E402
from perfkit.plots.throughput import plot_batching, plot_stream_timeline, plot_throughput  # noqa: E402


def _row(streams, threads, tput):
    return {"run_id": "r", "engine": "net", "device": "cpu", "precision": "fp32", "batch_size": 8,
            "streams": streams, "threads": threads, "rounds": 6, "queries": 100, "throughput_per_s": tput,
            "throughput_ci_low_per_s": tput * 0.95, "throughput_ci_high_per_s": tput * 1.05, "speedup": tput / 1000,
            "latency_median_ms": 1.0 * streams, "latency_median_ci_low_ms": 0.9, "latency_median_ci_high_ms": 1.1,
            "latency_p99_ms": 2.0 * streams, "in_flight_mean": streams, "overlap_pct": 50.0, "blas_threads": 1,
            "host_load_1m": 0.1, "host_other_busy_cores": 0.0}


def test_throughput_marks_where_it_saturates():
    df = THROUGHPUT.frame([_row(1, 1, 1000), _row(2, 2, 1800), _row(4, 4, 1980), _row(8, 8, 2000)],
                          {"engine": "net", "device_name": "cpu", "precision": "fp32", "batch_size": 8})
    fig = plot_throughput(df)
    left, right = fig.axes
    ring = [l for l in left.lines if l.get_gid() == "saturation"][0]
    assert ring.get_xdata()[0] == 4                         # first within 5% of the best (2000)
    assert "4 stream(s)" in ring.get_label()
    assert {l.get_gid() for l in right.lines} == {"latency_median", "latency_p99"}
    assert "samples/s" in left.get_ylabel() and "ms" in right.get_ylabel()
    assert "net" in left.get_title() and "batch 8" in left.get_title()
    assert [t.get_text() for t in left.get_xticklabels()] == ["1", "2", "4", "8"]
    plt.close(fig)


def test_stream_timeline_has_a_lane_per_stream():
    net = pk.models.mlp((8, 8), seed=0, name="tl")
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, tactics="default"))
    r = pk.bench.throughput(eng, 2, streams=3, threads=1, duration_s=0.05, warmup_ms=5)
    fig = plot_stream_timeline(r.queries, max_queries=30)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["stream 0 · thread 0", "stream 1 · thread 0", "stream 2 · thread 0"]
    bars = [c for c in ax.collections if c.get_gid() == "query"]
    assert len(bars) == 3 and sum(len(b.get_paths()) for b in bars) == min(30, len(r.queries))
    assert "in flight on average" in ax.get_title()
    plt.close(fig)


def test_batching_predicted_lines_and_measured_markers():
    sim = pk.bench.simulate_batching({1: 0.2, 16: 0.8}, 3000, [0, 0.5, 1, 2], requests=2000)
    meas = BATCHING_SIMULATION.frame([{**sim.iloc[1].to_dict(), "source": "measured", "latency_p99_ms": 5.0}])
    fig = plot_batching(sim, meas)
    left, right, twin = fig.axes
    gids = {l.get_gid() for l in left.lines}
    assert {"p50_predicted", "p99_predicted", "p50_measured", "p99_measured"} <= gids
    assert "3,000 requests/s" in left.get_title() and "max batch 16" in left.get_title()
    top = max(l.get_ydata().max() for l in left.lines)
    assert left.get_ylim()[1] > top                  # the measured p99 is inside the axes
    assert {l.get_gid() for l in twin.lines} == {"batch_predicted", "batch_measured"}
    plt.close(fig)
    with pytest.raises(pk.ArgumentError):
        plot_batching(pd.DataFrame({"x": [1]}))
    with pytest.raises(pk.ArgumentError):
        plot_throughput(sim)
