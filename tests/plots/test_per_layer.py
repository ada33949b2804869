"""Per-layer time against batch size and precision, checked on a synthetic sweep_layers frame whose times are known."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from plot_artists import by_gid  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from perfkit.errors import PerfkitError  # noqa: E402
from perfkit.frames.schemas import SWEEP_LAYERS  # noqa: E402
from perfkit.plots import layer_scaling, plot_layers_vs_batch, plot_layers_vs_precision  # noqa: E402

BATCHES = (1, 4, 16)
# layer -> ms per inference at batch b and fp32: "flat" costs the same per sample at any batch (batching gains
# nothing), "fixed" costs the same per inference (batching gains fully); fp16 halves every layer but "flat"
LAYERS = {"fixed": lambda b: 2.0, "flat": lambda b: 0.5 * b, "mid": lambda b: 0.2 + 0.1 * b,
          "tiny1": lambda b: 0.01, "tiny2": lambda b: 0.02}
RED = "#c0392b"


def _frame(models=("net",), precisions=("fp32", "fp16")):
    rows = []
    for model in models:
        for prec in precisions:
            for b in BATCHES:
                for i, (name, ms) in enumerate(LAYERS.items()):
                    t = ms(b) * (0.5 if prec == "fp16" and name != "flat" else 1.0)
                    rows.append({"run_id": "r", "model": model, "device": "cpu", "precision": prec, "batch_size": b,
                                 "index": i, "layer": name, "type": "convolution", "layer_precision": prec,
                                 "count": 5, "median_ms": t, "ci_low_ms": t * 0.9, "ci_high_ms": t * 1.1,
                                 "pct": 0.0, "flops": 1.0, "bytes": 1.0})
    return SWEEP_LAYERS.frame(rows, {"device_name": "test cpu"})


def _bars(ax, name):
    return [p for p in ax.patches if p.get_gid() == f"bar:{name}"]


def _legend(ax):
    leg = ax.figure.legends[0] if ax.figure.legends else ax.get_legend()
    return [t.get_text() for t in leg.get_texts()]


def test_layer_scaling_orders_layers_by_how_little_batching_helps():
    s = layer_scaling(_frame(), precision="fp32")
    assert list(s["layer"][:2]) == ["flat", "mid"] and s.loc[0, "scaling"] == pytest.approx(1.0)
    fixed = s.set_index("layer").loc["fixed"]
    assert fixed["scaling"] == pytest.approx(1 / 16) and fixed["per_sample_ms_large"] == pytest.approx(2.0 / 16)
    assert (fixed["batch_small"], fixed["batch_large"]) == (1, 16)
    assert s["pct_at_large"].sum() == pytest.approx(100.0)


def test_bars_stack_each_layer_per_batch_with_the_rest_as_other():
    df = _frame()
    fig = plot_layers_vs_batch(df, precision="fp32", top=3)
    ax = fig.axes[0]
    assert ax.get_title() == "per-layer time vs batch size — net · test cpu · fp32 · batch 1/4/16"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"] and ax.get_xlabel() == "batch size"
    assert ax.get_ylabel() == "layer time per inference (ms, stacked medians)"
    for name in ("fixed", "flat", "mid"):                              # the 3 slowest at batch 16
        bars = _bars(ax, name)
        assert len(bars) == 3
        np.testing.assert_allclose([r.get_height() for r in bars], [LAYERS[name](b) for b in BATCHES])
    other = _bars(ax, "other")
    np.testing.assert_allclose([r.get_height() for r in other], [0.03] * 3)
    fixed, flat = _bars(ax, "fixed"), _bars(ax, "flat")
    assert [r.get_y() for r in flat] == pytest.approx([r.get_height() for r in fixed])   # stacked in execution order
    totals = [sum(f(b) for f in LAYERS.values()) for b in BATCHES]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "bar_total"] == \
        ["2.83 ms", "4.63 ms", "11.8 ms"] == [f"{v:.3g} ms" for v in totals]
    twin = fig.axes[1]
    (line,) = [ln for ln in twin.lines if ln.get_gid() == "per_sample"]
    np.testing.assert_allclose(line.get_ydata(), [t / b for t, b in zip(totals, BATCHES)])
    assert twin.get_ylabel() == "time per sample (ms)"


def test_layers_that_scale_worst_are_outlined_and_named():
    ax = plot_layers_vs_batch(_frame(), precision="fp32", top=3).axes[0]
    outlined = {p.get_gid() for p in ax.patches if to_hex(p.get_edgecolor()) == RED}
    assert outlined == {"bar:flat", "bar:mid"}                           # "fixed" gains fully, it is not named
    legend = _legend(ax)
    assert "flat  ⚠ per sample ×1.00 from batch 1 to 16" in legend
    assert any(t.startswith("red outline: gains least (×1.00: batching gained nothing, ×0.062") for t in legend)
    assert "other (2 layers · 0.25% at batch 16)" in legend                 # 0.03 of 11.83 ms


def test_precision_bars_and_the_layer_that_gains_nothing():
    fig = plot_layers_vs_precision(_frame(), batch_size=4, top=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fp32", "fp16"]
    assert ax.get_title() == "per-layer time vs precision — net · test cpu · fp16/fp32 · batch 4"
    np.testing.assert_allclose([r.get_height() for r in _bars(ax, "flat")], [2.0, 2.0])
    np.testing.assert_allclose([r.get_height() for r in _bars(ax, "fixed")], [2.0, 1.0])
    assert {p.get_gid() for p in ax.patches if to_hex(p.get_edgecolor()) == RED} == {"bar:flat"}
    assert "flat  ⚠ fp16 takes ×1.00 of its fp32 time" in _legend(ax)
    default = plot_layers_vs_precision(_frame()).axes[0]                 # the largest batch by default
    assert default.get_title().endswith("batch 16")
    assert not [p for p in ax.patches if p.get_hatch()]


def test_layers_that_ran_in_another_precision_are_hatched():
    df = _frame()
    kept = (df["precision"] == "fp16") & (df["layer"] == "flat")          # the builder kept "flat" in fp32
    df.loc[kept, "layer_precision"] = "fp32"
    ax = plot_layers_vs_precision(df, batch_size=4, top=3).axes[0]
    assert [(p.get_gid(), p.get_x() > 0.5) for p in ax.patches if p.get_hatch()] == [("bar:flat", True)]
    assert "hatched: the layer ran in another precision than the engine's" in _legend(ax)


def test_on_given_axes_and_empty_frames():
    fig, ax = plt.subplots()
    assert plot_layers_vs_batch(_frame(precisions=("fp32",)), ax=ax) is fig and ax.get_legend() is not None
    empty = plot_layers_vs_batch(SWEEP_LAYERS.frame([])).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no layer times"]
    assert [t.get_text() for t in plot_layers_vs_precision(SWEEP_LAYERS.frame([])).axes[0].texts] == ["no layer times"]


def test_ambiguous_or_unknown_choices_are_refused_with_the_choices():
    two = _frame(models=("a", "b"))
    with pytest.raises(PerfkitError, match="holds 2 values of model \\(a, b\\)"):
        plot_layers_vs_batch(two, precision="fp32")
    with pytest.raises(PerfkitError, match="holds 2 values of precision"):
        plot_layers_vs_batch(two, model="a")
    with pytest.raises(PerfkitError, match="'c' is not in the frame"):
        plot_layers_vs_batch(two, model="c", precision="fp32")
    with pytest.raises(PerfkitError, match="batch_size 3 is not in the frame"):
        plot_layers_vs_precision(two, model="a", batch_size=3)
    for kw in (dict(top=0), dict(top=2.0), dict(ax="x"), dict(precision=3)):
        with pytest.raises(PerfkitError):
            plot_layers_vs_batch(two, **{"model": "a", "precision": "fp32", **kw})


def _real_like():
    # resnet_small fp16 on an H200: all layers 122 µs at batch 1 ... 2.44 ms at 256; a 1 µs reformat layer in fp32
    totals = {1: 0.122, 4: 0.149, 16: 0.251, 64: 0.672, 256: 2.443}
    rows = []
    for b, ms in totals.items():
        for i, (name, share, lp) in enumerate((("conv", 0.999, "fp16"), ("reformat prob -> float32", 0.001, "fp32"))):
            rows.append({"run_id": "r", "model": "resnet_small", "device": "cuda", "precision": "fp16", "batch_size": b,
                         "index": i, "layer": name, "type": "convolution", "layer_precision": lp, "count": 5,
                         "median_ms": ms * share, "ci_low_ms": ms, "ci_high_ms": ms, "pct": 0.0, "flops": 1.0,
                         "bytes": 1.0})
    return SWEEP_LAYERS.frame(rows, {"device_name": "NVIDIA H200"})


@pytest.mark.parametrize("plot", [lambda df: plot_layers_vs_batch(df, top=1),
                                  lambda df: plot_layers_vs_precision(
                                      df.assign(precision=df["batch_size"].map({1: "fp32", 4: "fp16"}))
                                      .dropna(subset=["precision"]).assign(batch_size=4), top=1)])
def test_bar_totals_never_meet_the_time_per_sample_markers(plot):
    fig = plot(_real_like())
    ax, twin = fig.axes[0], fig.axes[1]
    fig.canvas.draw()
    (line,) = [ln for ln in twin.lines if ln.get_gid() == "per_sample"]
    marks = twin.transData.transform(np.c_[line.get_xdata(), line.get_ydata()])
    labels = [t.get_window_extent() for t in ax.texts if t.get_gid() == "bar_total"]
    assert labels and len(marks)
    r = line.get_markersize() * fig.dpi / 72                        # marker diameter in pixels, as a margin
    for box in labels:
        for mx, my in marks:
            assert not (box.x0 - r <= mx <= box.x1 + r and box.y0 - r <= my <= box.y1 + r)
    assert min(my for _, my in marks) > max(box.y1 for box in labels)        # the line runs above every total


def test_a_layer_in_another_precision_inside_other_is_named_not_claimed_as_a_hatch():
    ax = plot_layers_vs_batch(_real_like(), top=1).axes[0]
    legend = _legend(ax)
    assert "in other, ran in another precision: reformat prob -> float32" in legend
    assert not any(t.startswith("hatched:") for t in legend)
    assert not any(p.get_hatch() for p in ax.patches if (p.get_gid() or "").startswith("bar:"))
