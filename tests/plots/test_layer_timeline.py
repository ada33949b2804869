"""The layer timeline, checked through its artists on synthetic frames whose content is known."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from perfkit.errors import PerfkitError  # noqa: E402
from perfkit.frames.schemas import KERNELS, LAYER_TIMES, MEMORY_EVENTS  # noqa: E402
from perfkit.plots import plot_layer_timeline  # noqa: E402

# (layer, type, duration in µs): all but "tiny_layer" are wide enough for their names
LAYERS = [("big_conv_layer", "convolution", 400), ("mid", "pooling", 200), ("tiny_layer", "activation", 1),
          ("fc", "fully_connected", 20)]


def _frame(iterations=3, streams=(("ctx1", "s0"),), gap_us=50, attrs=None):
    rows, t = [], 1_000_000
    for it in range(iterations):
        for j, (ctx, stream) in enumerate(streams):
            start = t + j * 150_000                                 # streams overlap, staggered by 150 µs
            for i, (name, typ, us) in enumerate(LAYERS):
                rows.append({"run_id": "r", "iteration": it, "index": i, "layer": name, "type": typ,
                             "start_ns": start, "end_ns": start + us * 1000, "ms": us / 1000, "stream": stream,
                             "context": ctx, "batch_size": 4, "precision": "fp32", "clock": "host"})
                start += us * 1000
        t = start + gap_us * 1000
    return LAYER_TIMES.frame(rows, attrs or {})


def _bars(ax, gid="layer"):
    return [p for p in ax.patches if p.get_gid() == gid]


def _legend(fig):
    leg = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    return [t.get_text() for t in leg.get_texts()]


def test_one_bar_per_layer_execution_on_its_lane():
    df = _frame(streams=(("ctx1", "s0"), ("ctx1", "s1"), ("ctx2", "s0")))
    ax = plot_layer_timeline(df).axes[0]
    bars = _bars(ax)
    assert len(bars) == len(df) == 3 * 3 * len(LAYERS)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ctx1\ns0", "ctx1\ns1", "ctx2\ns0"]
    t0 = df["start_ns"].min()
    lane = {("ctx1", "s0"): 0, ("ctx1", "s1"): 1, ("ctx2", "s0"): 2}
    assert ax.get_xlabel() == "time since the first layer shown (ms)"
    want = sorted(zip((df["start_ns"] - t0) / 1e6, (df["end_ns"] - df["start_ns"]) / 1e6,
                      [lane[k] for k in zip(df["context"], df["stream"])]))
    got = sorted((p.get_x(), p.get_width(), round(p.get_y() + p.get_height() / 2)) for p in bars)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_separators_between_inferences_and_human_units():
    df = _frame(iterations=5)
    fig = plot_layer_timeline(df, iterations=[1, 2, 3, 4])
    ax = fig.axes[0]
    seps = [line for line in ax.lines if line.get_gid() == "separator"]
    t0 = df[df["iteration"] == 1]["start_ns"].min()
    starts = [df[df["iteration"] == i]["start_ns"].min() for i in (2, 3, 4)]
    assert sorted(line.get_xdata()[0] for line in seps) == pytest.approx([(s - t0) / 1e6 for s in starts])
    assert ax.get_xlabel() == "time since the first layer shown (ms)"      # 4 x 621 µs + 3 gaps: above 2 ms
    one = plot_layer_timeline(df, iterations=2).axes[0]
    assert not [line for line in one.lines if line.get_gid() == "separator"]
    assert one.get_xlabel() == "time since the first layer shown (µs)"     # 621 µs
    assert max(p.get_x() + p.get_width() for p in _bars(one)) == pytest.approx(621.0)


def test_a_layer_keeps_its_colour_in_every_inference():
    df = _frame(iterations=3)
    bars = _bars(plot_layer_timeline(df).axes[0])
    by_layer: dict = {}
    for p, name in zip(bars, df["layer"]):
        by_layer.setdefault(name, set()).add(to_hex(p.get_facecolor()))
    assert all(len(c) == 1 for c in by_layer.values())
    assert len({c.pop() for c in by_layer.values()}) == len(LAYERS)
    hatches = {name: p.get_hatch() for p, name in zip(bars, df["layer"])}
    assert len(set(hatches.values())) == len(LAYERS)          # four types, four hatches
    same = df.assign(type="convolution")                       # one type: still a colour per layer
    assert len({to_hex(p.get_facecolor()) for p in _bars(plot_layer_timeline(same).axes[0])}) == len(LAYERS)


def test_many_layers_all_get_distinct_colours():
    from perfkit.plots.layer_timeline import layer_colors
    colors = [to_hex(c) for c in layer_colors([f"l{i}" for i in range(150)]).values()]
    assert len(set(colors)) == 150


def test_labels_only_on_bars_wide_enough():
    df = _frame(iterations=1)
    ax = plot_layer_timeline(df).axes[0]
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == "label")
    assert labels == ["big_conv_layer", "fc", "mid"]                # "tiny_layer" (1 µs of 621) gets none
    wide = plot_layer_timeline(df, label_min_pct=50).axes[0]                   # 400 of 621 µs: 64 %
    assert [t.get_text() for t in wide.texts if t.get_gid() == "label"] == ["big_conv_layer"]


def test_slow_layer_legend_lists_the_top_layers_in_order():
    df = _frame(iterations=2)
    fig = plot_layer_timeline(df, top=2)
    texts = _legend(fig)
    assert texts[:3] == ["big_conv_layer  800 µs · 64.4%", "mid  400 µs · 32.2%", "2 more layers · 3.4%"]
    assert texts[3:] == ["layer type (hatch):", "activation", "convolution", "fully_connected", "pooling"]
    leg = fig.legends[0]
    fig.canvas.draw()
    assert not leg.get_window_extent().overlaps(fig.axes[0].get_window_extent())    # outside the data


def test_title_names_model_context_device_precision_batch():
    df = _frame(iterations=2, attrs={"model": "resnet_small", "device_name": "H200"})
    assert plot_layer_timeline(df).get_suptitle() == \
        "layer timeline — inferences 0–1\nresnet_small · ctx1 · H200 · fp32 · batch 4"
    assert plot_layer_timeline(_frame(iterations=5), iterations=[0, 1, 2, 4]).get_suptitle().startswith(
        "layer timeline — inferences 0–2, 4\n")


def _iteration_labels(fig):
    fig.canvas.draw()
    marks = [t for t in fig.axes[0].texts if t.get_gid() == "iteration"]
    return [(int(t.get_text().split()[-1]), t.xy, t.get_window_extent()) for t in marks]


def test_inference_labels_are_in_time_order_and_never_collide():
    df = _frame(iterations=14, gap_us=0)               # 14 inferences of 621 µs: not every label fits
    marks = _iteration_labels(plot_layer_timeline(df, iterations=list(range(14))))
    assert 3 <= len(marks) < 14
    assert [m[0] for m in marks] == sorted(m[0] for m in marks)
    assert [m[1][0] for m in marks] == sorted(m[1][0] for m in marks)
    boxes = [m[2] for m in marks]
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def test_overlapping_inferences_of_several_contexts_are_labelled_per_lane_in_order():
    df = _frame(iterations=3, streams=(("ctx1", "s0"), ("ctx2", "s1")))
    df["iteration"] = df["iteration"] * 2 + (df["context"] == "ctx2").astype(int)      # each context numbers its own
    fig = plot_layer_timeline(df, iterations=list(range(6)))
    marks = _iteration_labels(fig)
    lanes = {round(xy[1] + 0.36): [] for _, xy, _ in marks}
    for it, xy, _ in marks:
        lanes[round(xy[1] + 0.36)].append((xy[0], it))
    assert sorted(lanes) == [0, 1]
    assert [it for _, it in sorted(lanes[0])] == [0, 2, 4] and [it for _, it in sorted(lanes[1])] == [1, 3, 5]
    seps = [line for line in fig.axes[0].lines if line.get_gid() == "separator"]
    assert len(seps) == 4 and all(abs(line.get_ydata()[1] - line.get_ydata()[0]) < 1 for line in seps)


def test_kernel_lane_under_each_stream():
    df = _frame(iterations=2, streams=(("ctx1", "s0"), ("ctx1", "s1")))
    rows = []
    for r in df.itertuples():
        for k in range(2):                                         # two kernels per layer
            rows.append({"name": f"k{k}", "kind": "kernel", "start_ns": r.start_ns + k * 1000,
                         "end_ns": r.start_ns + k * 1000 + 500, "ms": 0.0005, "stream": 7, "correlation_id": 1,
                         "layer": r.layer, "iteration": r.iteration})
    rows.append({"name": "lost", "kind": "kernel", "start_ns": df["start_ns"].min(), "end_ns": df["start_ns"].min()
                 + 500, "ms": 0.0005, "stream": 9, "correlation_id": 2, "layer": "", "iteration": -1})
    ax = plot_layer_timeline(df, kernels=KERNELS.frame(rows)).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ctx1\ns0", "kernels", "ctx1\ns1", "kernels",
                                                             "CUDA stream 9, no layer\n1 kernel"]
    kern = _bars(ax, "kernel")
    assert len(kern) == len(rows)
    lanes = sorted(round(p.get_y() + p.get_height() / 2) for p in kern)
    assert lanes == [1] * (2 * len(df) // 2) + [3] * (2 * len(df) // 2) + [4]
    colors = {to_hex(p.get_facecolor()) for p in _bars(ax)}
    assert {to_hex(p.get_facecolor()) for p in kern[:-1]} <= colors       # a kernel wears its layer's colour
    assert len(_bars(plot_layer_timeline(df, kernels=KERNELS.frame([])).axes[0], "kernel")) == 0


def test_work_under_no_layer_is_named_by_kind_and_lanes_outside_the_window_are_dropped():
    df = _frame(iterations=3)
    t0 = df[df["iteration"] == 1]["start_ns"].min()

    def row(name, kind, start, stream):
        return {"name": name, "kind": kind, "start_ns": start, "end_ns": start + 900, "ms": 0.0009, "stream": stream,
                "correlation_id": 1, "layer": "", "iteration": -1}
    rows = [row("perfkit_stamp", "kernel", t0 + 10_000 * i, 326) for i in range(3)] + \
        [row("cupy_copy", "kernel", t0 + 5_000, 7), row("memcpy HtoD", "memcpy", t0 + 6_000, 7),
         row("cupy_copy", "kernel", df["start_ns"].min() + 1_000, 12)]           # in inference 0: not shown
    fig = plot_layer_timeline(df, iterations=[1, 2], kernels=KERNELS.frame(rows))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][1:] == \
        ["CUDA stream 7, no layer\n1 kernel\n1 memcpy", "CUDA stream 326, no layer\n3 timer stamps"]
    kern = _bars(ax, "kernel")
    assert len(kern) == 5
    span = ax.get_xlim()[1]
    assert min(p.get_width() for p in kern) >= 1e-3 * span                  # a 0.9 µs kernel still shows
    assert {"GPU work under no layer:", "timer stamp: perfkit's clock-reading kernel (~1 µs)",
            "kernel (e.g. an input copy)", "memcpy"} <= set(_legend(fig))
    stamp_colors = {to_hex(p.get_facecolor()) for p in kern if round(p.get_y() + p.get_height() / 2) == 2}
    assert len(stamp_colors) == 1 and stamp_colors != {to_hex(p.get_facecolor()) for p in _bars(ax)}


def test_an_empty_memory_frame_is_said_not_silently_dropped():
    df = _frame(iterations=1)
    fig = plot_layer_timeline(df, memory_events=MEMORY_EVENTS.frame([]))
    assert len(fig.axes) == 1
    assert "memory: no events in memory_events (none recorded in this run)" in _legend(fig)
    assert not any(t.startswith("memory:") for t in _legend(plot_layer_timeline(df)))


def test_memory_lane_is_in_use_mib_on_the_same_time_axis():
    df = _frame(iterations=1)
    t0, t1 = df["start_ns"].min(), df["end_ns"].max()
    ts = [t0 - 10, t0 + 100_000, t0 + 300_000]
    in_use = [3 * 2**20, 5 * 2**20, 4 * 2**20]
    ev = MEMORY_EVENTS.frame([{"ts_ns": t, "action": "alloc", "ptr": 1, "size_bytes": 1, "requested_bytes": 1,
                               "tag": "activations", "owner": "", "layer": "", "thread": "", "in_use_bytes": b,
                               "peak_bytes": b} for t, b in zip(ts, in_use)])
    fig = plot_layer_timeline(df, memory_events=ev)
    top, mem = fig.axes[:2]
    line, = [x for x in mem.lines if x.get_gid() == "memory"]
    np.testing.assert_allclose(line.get_xdata(), [0, 100, 300, (t1 - t0) / 1e3])
    np.testing.assert_allclose(line.get_ydata(), [3, 5, 4, 4])
    assert line.get_drawstyle() == "steps-post"
    assert mem.get_ylabel() == "in use (MiB)" and mem.get_xlabel() == "time since the first layer shown (µs)"
    assert mem.get_shared_x_axes().joined(top, mem)


def test_bad_combinations_are_refused():
    df = _frame(iterations=1)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ev = MEMORY_EVENTS.frame([{"ts_ns": 1, "action": "alloc", "ptr": 1, "size_bytes": 1, "requested_bytes": 1,
                               "tag": "io", "owner": "", "layer": "", "thread": "", "in_use_bytes": 1,
                               "peak_bytes": 1}])
    with pytest.raises(PerfkitError, match="ax=None"):
        plot_layer_timeline(df, ax=ax, memory_events=ev)
    with pytest.raises(PerfkitError, match="top"):
        plot_layer_timeline(df, top=0)
    plt.close("all")


def test_readable_for_many_layers():
    rows, t = [], 0
    for it in range(3):
        for i in range(120):                                      # 120 layers of 2..40 µs, four of 400 µs
            us = 400 if i % 30 == 7 else 2 + (i * 7) % 39
            rows.append({"run_id": "r", "iteration": it, "index": i, "layer": f"block{i // 4}_layer{i % 4}",
                         "type": ("convolution", "activation", "pooling")[i % 3], "start_ns": t,
                         "end_ns": t + us * 1000, "ms": us / 1000, "stream": "s0", "context": "c", "batch_size": 1,
                         "precision": "fp16", "clock": "host"})
            t += us * 1000
    df = LAYER_TIMES.frame(rows)
    fig = plot_layer_timeline(df)
    ax = fig.axes[0]
    assert len(_bars(ax)) == 360
    texts = _legend(fig)
    assert texts[10] == "110 more layers · " + f"{100 * (1 - _top_share(df, 10)):.1f}%"
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts if t.get_gid() == "label"]
    assert boxes                                                   # some bars are wide enough ...
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])   # ... and no label overlaps


def _top_share(df, n):
    t = (df["end_ns"] - df["start_ns"]).groupby(df["layer"]).sum().sort_values(ascending=False)
    return t.head(n).sum() / t.sum()


def test_draws_on_the_callers_axes_with_the_legend_beside_them():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(12, 3), layout="constrained")
    assert plot_layer_timeline(_frame(iterations=2), ax=ax, top=1) is fig and not fig.legends
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "big_conv_layer  800 µs · 64.4%"
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1            # outside the data
    plt.close(fig)


def test_hover_readout_names_the_time_layer_and_inference():
    df = _frame(iterations=3)
    ax = plot_layer_timeline(df, iterations=[1, 2]).axes[0]
    # inference 1 starts at 0; big_conv_layer runs 0-400 µs, then mid 400-600 µs
    assert ax.format_coord(100.0, 0.0) == "t = 100 µs · big_conv_layer (inference 1)"
    assert ax.format_coord(637.2, 0.0) == "t = 637 µs · ctx1 / s0"            # between inferences: the lane
    ax.set_xlim(630, 640)                                                      # zoomed in: finer times
    assert ax.format_coord(637.2, 0.0) == "t = 637.2 µs · ctx1 / s0"
    assert ax.format_coord(500.0, 0.2) == "t = 500 µs · mid (inference 1)"
