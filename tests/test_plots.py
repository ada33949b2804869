"""Plots are checked by drawing them: each must render axes, data and labels from a frame."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import perfkit as pk  # noqa: E402
from perfkit.frames import FUSION_BENEFIT, SWEEP  # noqa: E402
from perfkit.plots import plot_fusion_benefit, plot_sweep  # noqa: E402


def _png_size(fig, tmp_path, name):
    p = tmp_path / name
    fig.savefig(p)
    return p.stat().st_size


def test_plot_sweep_draws_one_line_per_model_and_precision(tmp_path):
    rows = []
    for model in ("a", "b"):
        for prec in ("fp32", "fp16"):
            for b in (1, 8, 32):
                rows.append({"run_id": "r", "model": model, "device": "cpu", "precision": prec, "batch_size": b,
                             "iterations": 5, "latency_mean_ms": 1.0 * b, "latency_median_ms": 1.0 * b,
                             "latency_p90_ms": 1.1 * b, "latency_min_ms": 0.9 * b, "latency_max_ms": 1.2 * b,
                             "throughput_per_s": 1000.0 + b, "device_memory_bytes": 10, "weights_bytes": 5,
                             "activation_bytes": 5, "build_time_ms": 1.0})
    fig = plot_sweep(SWEEP.frame(rows, {"device_name": "test cpu"}))
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and "batch size" in ax.get_xlabel() and "test cpu" in ax.get_title()
    assert list(ax.lines[0].get_xdata()) == [1, 8, 32]
    assert _png_size(fig, tmp_path, "s.png") > 5000


def test_plot_fusion_benefit(tmp_path):
    rows = [{"rule": r, "fusions": 1, "layers": 3, "latency_ms": 1.0 + d, "latency_delta_ms": d,
             "latency_delta_pct": d * 100, "device_memory_bytes": 10, "memory_delta_bytes": 0}
            for r, d in (("(all rules)", 0.0), ("conv_relu", 0.2), ("conv_sum", -0.05), ("(no rules)", 0.5))]
    fig = plot_fusion_benefit(FUSION_BENEFIT.frame(rows, {"network": "net", "batch_size": 4, "device": "cpu"}))
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["(no rules)", "conv_sum", "conv_relu", "(all rules)"]
    assert _png_size(fig, tmp_path, "f.png") > 5000


def test_layer_timeline_and_memory_plots(tmp_path):
    from perfkit.plots import plot_layer_timeline, plot_memory
    net = pk.models.lenet()
    tracker = pk.TrackingAllocator(device="cpu")
    eng = pk.Builder("cpu", allocator=tracker).build(net, pk.BuilderConfig(max_batch_size=4))
    ctx = eng.create_execution_context()
    with pk.profile(ctx) as run:
        for _ in range(4):
            ctx.execute(pk.models.sample_input(net, 4))
    fig = plot_layer_timeline(run.layers)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(eng.plan.steps)           # the last three inferences
    assert _png_size(fig, tmp_path, "t.png") > 5000
    fig = plot_memory(tracker.events)
    ax = fig.axes[0]
    assert ax.lines and max(ax.lines[0].get_ydata()) * 2**20 == pytest.approx(tracker.peak_bytes)
    assert _png_size(fig, tmp_path, "m.png") > 5000
