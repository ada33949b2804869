"""Plots are checked through their artists: every line, bar and label must carry the frame's values."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import perfkit as pk  # noqa: E402
from perfkit.frames import FUSION_BENEFIT, SWEEP  # noqa: E402
from perfkit.plots import plot_fusion_benefit, plot_sweep  # noqa: E402


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _sweep():
    rows = []
    for m, model in enumerate(("a", "b")):
        for p, prec in enumerate(("fp32", "fp16")):
            for b in (32, 1, 8):                        # unsorted: the plot sorts by batch size
                k = 1 + m + 2 * p                       # every (model, precision) has its own values
                rows.append({"run_id": "r", "model": model, "device": "cpu", "precision": prec, "batch_size": b,
                             "iterations": 5, "latency_mean_ms": k * b, "latency_median_ms": k * b + 0.5,
                             "latency_p90_ms": 1.1 * k * b, "latency_min_ms": 0.9 * b, "latency_max_ms": 1.2 * b,
                             "throughput_per_s": 1000.0 * k + b, "device_memory_bytes": 10, "weights_bytes": 5,
                             "activation_bytes": 5, "build_time_ms": 1.0})
    return SWEEP.frame(rows, {"device_name": "test cpu"})


def test_plot_sweep_draws_each_model_and_precision_from_the_frame():
    frame = _sweep()
    ax = plot_sweep(frame).axes[0]
    assert ax.get_xlabel() == "batch size" and ax.get_ylabel() == "throughput (samples/s)"
    assert ax.get_title() == "throughput (samples/s) vs batch size — test cpu"
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert _legend(ax) == ["a fp32", "a fp16", "b fp32", "b fp16"]
    assert len(ax.lines) == 4
    for line, (model, prec) in zip(ax.lines, [("a", "fp32"), ("a", "fp16"), ("b", "fp32"), ("b", "fp16")]):
        want = frame[(frame["model"] == model) & (frame["precision"] == prec)].sort_values("batch_size")
        assert list(line.get_xdata()) == [1, 8, 32] == list(want["batch_size"])
        assert list(line.get_ydata()) == list(want["throughput_per_s"])
        assert line.get_linestyle() == {"fp32": "-", "fp16": "--"}[prec]
    colors = [line.get_color() for line in ax.lines]
    assert colors[0] == colors[1] != colors[2] == colors[3]        # a colour per model


def test_plot_sweep_other_metric_on_a_linear_axis():
    frame = _sweep()
    ax = plot_sweep(frame, "latency_median_ms", logy=False).axes[0]
    assert ax.get_ylabel() == "median latency (ms)" and ax.get_yscale() == "linear"
    want = frame[(frame["model"] == "b") & (frame["precision"] == "fp16")].sort_values("batch_size")
    assert list(ax.lines[3].get_ydata()) == list(want["latency_median_ms"])


def test_plot_sweep_draws_the_interval_of_each_line_as_a_band():
    frame = _sweep()
    assert not [c for c in plot_sweep(frame).axes[0].collections if c.get_gid() == "interval"]   # none recorded
    frame["latency_ci_low_ms"] = frame["latency_median_ms"] * 0.9
    frame["latency_ci_high_ms"] = frame["latency_median_ms"] * 1.2
    for metric in ("latency_median_ms", "throughput_per_s"):
        ax = plot_sweep(frame, metric).axes[0]
        bands = [c for c in ax.collections if c.get_gid() == "interval"]
        assert len(bands) == 4                                   # one per (model, precision) line
        rows = frame[(frame["model"] == "b") & (frame["precision"] == "fp16")].sort_values("batch_size")
        ys = bands[3].get_paths()[0].vertices[:, 1]
        b, lo, hi = rows["batch_size"], rows["latency_ci_low_ms"], rows["latency_ci_high_ms"]
        want = (lo, hi) if metric == "latency_median_ms" else (b / hi * 1e3, b / lo * 1e3)
        assert np.isclose(ys.min(), min(want[0])) and np.isclose(ys.max(), max(want[1]))
        assert bands[3].get_facecolor()[0][:3] == pytest.approx(matplotlib.colors.to_rgb(ax.lines[3].get_color()))
        assert "band: interval of the median latency (at least 95%)" in _legend(ax)


def test_plot_sweep_batch_ticks_unstable_rings_and_failed_rows():
    frame = _sweep()
    frame.loc[(frame["model"] == "a") & (frame["precision"] == "fp16") & (frame["batch_size"] == 8), "unstable"] = True
    frame["error"] = ""
    bad = (frame["model"] == "b") & (frame["precision"] == "fp32") & (frame["batch_size"] == 32)
    frame.loc[bad, ["error", "throughput_per_s"]] = ["CUDA out of memory", np.nan]
    fig = plot_sweep(frame)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert list(ax.get_xticks()) == [1, 8, 32] and [t.get_text() for t in ax.get_xticklabels()] == ["1", "8", "32"]
    assert not ax.xaxis.get_minorticklocs().size
    (ring,) = [line for line in ax.lines if line.get_gid() == "unstable"]
    assert list(ring.get_xdata()) == [8] and list(ring.get_ydata()) == [3008.0] and ring.get_markerfacecolor() == "none"
    (cross,) = [line for line in ax.lines if line.get_gid() == "failed"]
    assert list(cross.get_xdata()) == [32]
    assert {"unstable: spread too wide", "failed (on the batch axis):", "b fp32 batch 32:\n  CUDA out of memory"} \
        <= set(_legend(ax))
    line = [ln for ln in ax.lines if ln.get_label() == "b fp32"][0]
    assert list(line.get_xdata()) == [1, 8]                                # the failed row is not on the line
    assert "1k" in [t.get_text() for t in ax.get_yticklabels()]          # not 10^3
    mem = plot_sweep(frame.assign(device_memory_bytes=3 * 2**20), "device_memory_bytes", logy=False).axes[0]
    assert mem.get_ylabel() == "device memory (MiB)" and list(mem.lines[0].get_ydata()) == [3.0, 3.0, 3.0]


def test_plot_fusion_benefit():
    rows = [{"rule": r, "fusions": 1, "layers": n, "latency_ms": 1.0 + d, "latency_delta_ms": d,
             "latency_delta_pct": d * 100, "device_memory_bytes": 10, "memory_delta_bytes": 0}
            for r, d, n in (("(all rules)", 0.0, 3), ("conv_relu", 0.2, 4), ("conv_sum", -0.05, 5),
                            ("(no rules)", 0.5, 9))]
    fig = plot_fusion_benefit(FUSION_BENEFIT.frame(rows, {"network": "net", "batch_size": 4, "device": "cpu"}))
    ax = fig.axes[0]
    order = ["(no rules)", "conv_sum", "conv_relu", "(all rules)"]     # bottom to top: the frame reversed
    assert [t.get_text() for t in ax.get_yticklabels()] == order
    assert [p.get_width() for p in ax.patches] == [0.5, -0.05, 0.2, 0.0]
    gray, gain, loss = "#999999", "#2a7ab9", "#c0504d"
    assert [to_hex(p.get_facecolor()) for p in ax.patches] == [gray, loss, gain, gray]
    assert [t.get_text() for t in ax.texts] == ["+0.500 ms, 9 layers", "-0.050 ms, 5 layers", "+0.200 ms, 4 layers",
                                                "+0.000 ms, 3 layers"]
    assert ax.get_xlabel() == "latency added with the rule switched off (ms); all rules on: 1.000 ms"
    assert ax.get_title() == "fusion benefit — net, batch 4, cpu"


@pytest.fixture(scope="module")
def profiled_lenet():
    net = pk.models.lenet()
    tracker = pk.TrackingAllocator(device="cpu")
    eng = pk.Builder("cpu", allocator=tracker).build(net, pk.BuilderConfig(max_batch_size=4))
    ctx = eng.create_execution_context()
    with pk.profile(ctx) as run:
        for _ in range(4):
            ctx.execute(pk.models.sample_input(net, 4))
    return eng, run, tracker


def test_layer_timeline_bars_are_the_last_three_inferences(profiled_lenet):
    from perfkit.plots import plot_layer_timeline
    eng, run, _ = profiled_lenet
    layers = run.layers
    fig = plot_layer_timeline(layers)
    ax = fig.axes[0]
    last = sorted(layers["iteration"].unique())[-3:]
    shown = layers[layers["iteration"].isin(last)]
    ctx = shown["context"].iloc[0]
    assert ax.figure.get_suptitle() == (f"layer timeline — inferences {last[0]}–{last[-1]}\n"
                                        f"{eng.name} · {ctx} · {eng.device.name} · fp32 · batch 4")  # engine, device
    t0 = shown["start_ns"].min()
    span_ns = shown["end_ns"].max() - t0
    unit, per = ("µs", 1e3) if span_ns < 2e6 else ("ms", 1e6)
    assert ax.get_xlabel() == f"time since the first layer shown ({unit})"
    bars = [p for p in ax.patches if p.get_gid() == "layer"]
    assert len(bars) == 3 * len(eng.plan.steps) == len(shown)
    want = sorted(zip((shown["start_ns"] - t0) / per, np.maximum((shown["end_ns"] - shown["start_ns"]) / per,
                                                                  span_ns / per * 1e-4)))
    got = sorted((p.get_x(), p.get_width()) for p in bars)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert [line.get_gid() for line in ax.lines] == ["separator"] * 2
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    slowest = (shown["end_ns"] - shown["start_ns"]).groupby(shown["layer"]).sum().sort_values(ascending=False)
    assert [t.split("  ")[0] for t in legend[:len(slowest)]] == [n.split(" + ")[0] + ("+" if " + " in n else "")
                                                                 for n in slowest.index]
    assert legend[len(slowest):] == ["layer type (hatch):", *sorted(shown["type"].unique())]
    lanes = sorted(set(zip(shown["context"], shown["stream"])))
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{c}\n{s.removeprefix(c + '/')}" for c, s in lanes]
    one = plot_layer_timeline(layers, iterations=last[0]).axes[0]
    assert len([p for p in one.patches if p.get_gid() == "layer"]) == len(eng.plan.steps)
    assert one.figure.get_suptitle().split("\n")[0].endswith(f"inference {last[0]}")


def test_memory_plot_of_a_real_build_stacks_the_context_and_meets_the_prediction(profiled_lenet):
    from perfkit.plots import plot_memory
    eng, run, tracker = profiled_lenet
    ev = tracker.events
    ax = plot_memory(ev, predicted_bytes=eng.device_memory_bytes).axes[0]
    live = tracker.live().groupby("tag")["bytes"].sum()
    areas = {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("tag:")}
    assert sorted(areas) == sorted(f"tag:{t}" for t in live.index)      # the build's workspace churn is left out
    total = [line for line in ax.lines if line.get_gid() == "total"][0].get_ydata()
    assert total[-1] * 2**20 == pytest.approx(tracker.in_use_bytes) == pytest.approx(live.sum())
    peak = [line for line in ax.lines if line.get_gid() == "peak"][0]
    assert peak.get_ydata()[0] * 2**20 == pytest.approx(eng.device_memory_bytes)   # on the CPU the plan is exact
    assert ax.get_ylabel() == "held (MiB)"


def test_empty_frames_say_so():
    from perfkit.frames import LAYER_TIMES, MEMORY_EVENTS
    from perfkit.plots import plot_layer_timeline, plot_memory
    for fig, what in ((plot_layer_timeline(LAYER_TIMES.frame([])), "no layer times"),
                      (plot_memory(MEMORY_EVENTS.frame([])),
                       "no memory events (nothing was allocated or freed in this frame)")):
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.texts] == [what] and not ax.patches and not ax.lines
