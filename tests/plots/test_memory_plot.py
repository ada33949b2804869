"""Memory over time, checked through its artists on synthetic allocator events whose levels are known."""
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from plot_artists import by_gid  # noqa: E402

from perfkit.errors import PerfkitError  # noqa: E402
from perfkit.frames.schemas import LAYER_TIMES, MEMORY_EVENTS  # noqa: E402
from perfkit.plots import memory_phases, memory_time_range, plot_memory, top_allocations  # noqa: E402

MiB, KiB = 2**20, 2**10
# (ms, action, ptr, MiB, tag, owner, layer): a build's workspace, context creation, then two inferences' temporaries
EVENTS = [(0.0, "alloc", 1, 8, "workspace", "builder", ""), (1.0, "free", 1, 8, "workspace", "builder", ""),
          (10.0, "alloc", 2, 4, "weights", "engine:net#1", ""),
          (11.0, "alloc", 3, 2, "activations", "context:net#1/ctx1", ""),
          (12.0, "alloc", 4, 1, "workspace", "context:net#1/ctx1", ""),
          (20.0, "alloc", 5, 0.5, "user", "", "conv1"), (21.0, "free", 5, 0.5, "user", "", "conv1"),
          (22.0, "alloc", 5, 3, "user", "", "fc"), (23.0, "free", 5, 3, "user", "", "fc")]
T0 = 5_000_000_000


def _frame(events=EVENTS, start_in_use=0, attrs=None):
    rows, in_use, peak = [], start_in_use, start_in_use
    for ms, action, ptr, mib, tag, owner, layer in events:
        size = int(mib * MiB)
        in_use += size if action == "alloc" else -size
        peak = max(peak, in_use)
        rows.append({"ts_ns": T0 + int(ms * 1e6), "action": action, "ptr": ptr, "size_bytes": size,
                     "requested_bytes": size, "tag": tag, "owner": owner, "layer": layer, "thread": "MainThread",
                     "in_use_bytes": in_use, "peak_bytes": peak})
    return MEMORY_EVENTS.frame(rows, attrs or {})


def _areas(ax):
    return {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("tag:")}


def _ys(coll):
    return coll.get_paths()[0].vertices[:, 1]


def test_phases_are_build_context_creation_and_inference():
    ev = _frame()
    assert list(memory_phases(ev)) == ["build"] * 2 + ["context creation"] * 3 + ["inference"] * 4
    shuffled = ev.iloc[[3, 8, 0, 5, 1, 7, 2, 6, 4]]                       # a frame out of time order keeps its own
    assert (memory_phases(shuffled) == memory_phases(ev).reindex(shuffled.index)).all()
    # layer times that begin before the first event with a layer move the start of inference
    lt = LAYER_TIMES.frame([{"run_id": "r", "iteration": 0, "index": 0, "layer": "conv1", "type": "convolution",
                             "start_ns": T0 + int(11.5e6), "end_ns": T0 + int(24e6), "ms": 12.5, "stream": "s",
                             "context": "c", "batch_size": 1, "precision": "fp32", "clock": "host"}])
    assert list(memory_phases(ev, lt))[4] == "inference"
    # on that axis the phases are named where they begin: inference at its first layer, before its first event
    ax = plot_memory(ev, layer_times=lt).axes[0]
    marks = {t.get_text(): t.xy[0] for t in ax.texts if t.get_gid() == "phase_label"}
    # context creation's 1.5 ms is drawn 12% of the 14 ms shown wide (the scale changes where inference begins)
    assert list(marks) == ["context creation", "inference"] and marks["inference"] == pytest.approx(0.12 * 14)
    assert memory_time_range(ev) == (0.0, 13.0)                           # from weights at 10 ms to the last free
    assert memory_time_range(ev, ["build"]) == (0.0, 1.0)
    assert memory_time_range(ev, ["inference"], t0_ns=T0) == (20.0, 23.0)


def test_default_view_stacks_each_tag_without_the_build():
    ev = _frame()
    fig = plot_memory(ev, predicted_bytes=7 * MiB)
    ax = fig.axes[0]
    areas = _areas(ax)
    assert list(areas) == ["tag:weights", "tag:activations", "tag:workspace", "tag:user"]   # bottom to top
    top = {g: _ys(c).max() for g, c in areas.items()}
    assert top == {"tag:weights": 4, "tag:activations": 6, "tag:workspace": 7, "tag:user": 10}
    assert _ys(areas["tag:activations"]).min() == 0                      # the stack grows as the context is made
    assert ax.get_ylabel() == "held (MiB)"
    assert ax.get_xlabel() == "time (ms) since the start of the phases shown\nidle gaps cut short"
    assert ax.get_title() == "device memory over time — context creation + inference"
    # 12-20 ms held no event: it is cut to 3% of the 5 ms of activity; the ticks still read real times
    (gap,) = [p for p in ax.patches if p.get_gid() == "idle_gap"]
    assert (gap.get_x(), gap.get_width()) == pytest.approx((2.0, 0.15))
    assert [t.get_text() for t in ax.texts if t.get_gid() == "idle_gap_label"] == ["idle 8.00 ms"]
    ticks = dict(zip([t.get_text() for t in ax.get_xticklabels()], ax.get_xticks()))
    assert ticks["0"] == 0 and ticks["12"] == pytest.approx(4.15) and ticks["10"] == pytest.approx(2.15)
    (peak,) = by_gid(ax, "peak")
    assert list(peak.get_xdata()) == pytest.approx([4.15]) and list(peak.get_ydata()) == [10.0]   # fc's 3 MiB
    (label,) = [t for t in ax.texts if t.get_gid() == "peak_label"]
    assert label.get_text() == "peak 10.0 MiB at 12 ms\nduring fc"                               # real time
    (pred,) = by_gid(ax, "predicted")
    assert list(pred.get_ydata()) == [7.0, 7.0]
    assert "builder's prediction 7.00 MiB (engine + one context)" in [t.get_text() for t in ax.get_legend().get_texts()]
    (bands,) = [c for c in ax.collections if c.get_gid() == "layer_bands"]
    xs = sorted(p.vertices[:, 0].min() for p in bands.get_paths())
    assert np.allclose(xs, [2.15, 4.15]) and all(p.vertices[:, 1].max() < 0 for p in bands.get_paths())
    assert [t.get_text() for t in ax.texts if t.get_gid() == "phase_label"] == ["context creation", "inference"]
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1      # beside the data


def test_build_phase_counts_the_builders_blocks():
    ax = plot_memory(_frame(), phases=("build",)).axes[0]
    assert {g: _ys(c).max() for g, c in _areas(ax).items()} == {"tag:workspace": 8}
    (peak,) = by_gid(ax, "peak")
    assert list(peak.get_ydata()) == [8.0]
    every = plot_memory(_frame(), phases=["build", "context creation", "inference"]).axes[0]
    assert _ys(_areas(every)["tag:workspace"]).max() == 8                   # the builder's 8 MiB, then 1 MiB


def test_window_carries_the_levels_held_before_it_and_tags_filter():
    ev = _frame()
    ax = plot_memory(ev, window_ms=(20.5, 30.0), phases=["inference"], t0_ns=T0).axes[0]
    assert ax.get_xlim()[0] == pytest.approx(20.5) and ax.get_xlabel() == "time (ms) since the first event"
    assert plot_memory(ev, t0_ns=T0 - 10**6).axes[0].get_xlabel().startswith(
        "time (ms) since 1.00 ms before the first event")                   # what t0_ns is, not its name
    total = by_gid(ax, "total")[0].get_ydata()
    assert list(total[:3]) == [7.5, 7.0, 10.0]          # conv1's 0.5 MiB held when the window opens, then freed
    areas = _areas(ax)
    assert _ys(areas["tag:weights"]).max() == 4 and _ys(areas["tag:workspace"]).min() == 6
    assert plot_memory(ev, window_ms=(0.0, 5.0), phases=["inference"], t0_ns=T0).axes[0].texts[0].get_text() == \
        "no memory events in inference within 0-5 ms"
    only = plot_memory(ev, tags=["weights", "user"]).axes[0]
    assert {g: _ys(c).max() for g, c in _areas(only).items()} == {"tag:weights": 4, "tag:user": 7}
    one = plot_memory(ev, by_tag=False).axes[0]
    assert {g: _ys(c).max() for g, c in _areas(one).items()} == {"tag:all tags": 10}


def test_frame_that_starts_while_blocks_are_live_gets_a_band_for_them():
    # a run's frame: 5 MiB held before it began (its blocks never appear), then a temporary and a free of one of those
    ev = _frame([(0.0, "alloc", 9, 1, "user", "", "fc"), (1.0, "free", 9, 1, "user", "", "fc"),
                 (2.0, "free", 2, 2, "weights", "engine:net#1", "")], start_in_use=5 * MiB)
    ax = plot_memory(ev).axes[0]
    areas = _areas(ax)
    assert list(areas)[0] == "tag:held before the frame"
    assert list(_areas(plot_memory(ev, tags=["user", "weights", "io"]).axes[0])) == list(areas)   # all tags: no filter
    assert "tag:held before the frame" not in _areas(plot_memory(ev, tags=["user"]).axes[0])
    total = by_gid(ax, "total")[0].get_ydata()
    assert total.max() == 6.0 and total[-1] == 3.0                      # the allocator's in_use_bytes
    assert _ys(areas["tag:weights"]).max() - _ys(areas["tag:held before the frame"]).max() == 2


def test_small_frames_in_kib_and_empty_frames_say_so():
    ev = _frame([(0.0, "alloc", 1, 0.25, "io", "context:c", ""), (1.0, "alloc", 2, 0.5, "io", "context:c", "")])
    ax = plot_memory(ev).axes[0]
    assert ax.get_ylabel() == "held (KiB)" and _ys(_areas(ax)["tag:io"]).max() == 768
    assert "no allocation or free in inference" in [t.get_text() for t in ax.get_legend().get_texts()]
    empty = plot_memory(MEMORY_EVENTS.frame([])).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no memory events (nothing was allocated or freed in this frame)"]
    assert not empty.collections
    none_here = plot_memory(_frame(), tags=["io"]).axes[0]
    assert "no memory events in context creation + inference for tags io" in [t.get_text() for t in none_here.texts]


def test_title_names_the_run():
    ev = _frame(attrs={"engine": "lenet", "device_name": "NVIDIA H200"})
    assert plot_memory(ev).axes[0].get_title() == "device memory over time — lenet · NVIDIA H200 — " \
                                                  "context creation + inference"


def test_many_events_are_downsampled_keeping_the_peak():
    n = 200_000
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 100, n // 2) * KiB
    sizes[12_345] = 50 * MiB
    events = [(0.0, "alloc", 1, 1, "weights", "engine:e", "")]
    events += [(1 + i * 0.001 + d * 0.0005, a, 10 + i, s / MiB, "user", "", f"l{i % 7}")
               for i, s in enumerate(sizes) for d, a in ((0, "alloc"), (1, "free"))]
    ax = plot_memory(_frame(events)).axes[0]
    total = by_gid(ax, "total")[0]
    assert total.get_ydata().max() == pytest.approx(51.0)
    assert len(total.get_ydata()) < n / 10
    (bands,) = [c for c in ax.collections if c.get_gid() == "layer_bands"]
    assert len(bands.get_paths()) <= 2000


def test_top_allocations_of_a_window():
    ev = _frame()
    top = top_allocations(ev, n=3)
    assert list(top["size_bytes"]) == [8 * MiB, 4 * MiB, 3 * MiB]
    assert list(top["size"]) == ["8.00 MiB", "4.00 MiB", "3.00 MiB"]
    assert list(top["phase"]) == ["build", "context creation", "inference"]
    assert top.loc[2, "free_ms"] - top.loc[2, "alloc_ms"] == pytest.approx(1.0) and top.loc[2, "layer"] == "fc"
    assert np.isnan(top.loc[1, "free_ms"])                                 # the weights are never freed
    win = top_allocations(ev, window_ms=(20.2, 21.5), t0_ns=T0)            # ptr 5 is reused: pair each free right
    assert list(win["size_bytes"]) == [4 * MiB, 2 * MiB, 1 * MiB, MiB // 2]
    assert list(top_allocations(ev, phases=["inference"])["layer"]) == ["fc", "conv1"]
    small = top_allocations(ev, n=2, tags=["user", "activations"])           # the largest of those tags, not of all
    assert list(small["tag"]) == ["user", "activations"] and len(small) == 2


@pytest.mark.parametrize("kw", [dict(phases=["boot"]), dict(phases=[]), dict(window_ms=(5, 1)), dict(window_ms=3),
                                dict(tags="x" and [3]), dict(predicted_bytes=-1), dict(by_tag=1),
                                dict(layer_times="x"), dict(t0_ns=1.5), dict(ax="x")])
def test_bad_arguments_are_refused(kw):
    with pytest.raises(PerfkitError):
        plot_memory(_frame(), **kw)


def test_a_level_held_throughout_the_span_says_so():
    ev = _frame()
    lt = LAYER_TIMES.frame([{"run_id": "r", "iteration": 0, "index": 0, "layer": "conv1", "type": "convolution",
                             "start_ns": T0 + int(30e6), "end_ns": T0 + int(31e6), "ms": 1.0, "stream": "s",
                             "context": "c", "batch_size": 1, "precision": "fp32", "clock": "host"}])
    ax = plot_memory(ev, layer_times=lt, window_ms=(29.0, 40.0), t0_ns=T0).axes[0]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "peak_label"] == ["7.00 MiB held throughout"]
    opened = plot_memory(ev, window_ms=(20.5, 30.0), t0_ns=T0).axes[0]       # conv1's block is freed at 21 ms
    assert [t.get_text() for t in opened.texts if t.get_gid() == "peak_label"][0] == "peak 10.0 MiB at 22 ms\nduring fc"
    falls = plot_memory(ev, window_ms=(22.5, 30.0), t0_ns=T0).axes[0]
    assert [t.get_text() for t in falls.texts if t.get_gid() == "peak_label"] == \
        ["peak 10.0 MiB when the span opens"]


def test_time_ticks_of_a_cut_axis_read_as_plain_numbers():
    # as context creation on an H200: one block at 0, 658 µs idle, then a burst within 34 µs
    events = [(0.0, "alloc", 1, 0.5, "weights", "engine:net#1", "")] + \
        [(0.658 + 0.002 * i, "alloc", 10 + i, 0.4, "activations", "context:net#1/ctx1", "") for i in range(17)]
    fig = plot_memory(_frame(events))
    ax = fig.axes[0]
    assert by_gid(ax, "idle_gap", "patches")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and len(labels) == len(set(labels)) >= 4
    assert not any("e" in text or text.startswith("-") for text in labels)
    assert ax.xaxis.get_offset_text().get_text() == ""
    xs = ax.get_xticks()
    assert (np.diff(xs) > 0.01 * (ax.get_xlim()[1] - ax.get_xlim()[0])).all()        # no two ticks on one spot


def test_a_short_context_creation_after_a_long_build_keeps_a_readable_share_of_the_axis():
    # a 100 ms build with busy workspace churn, then 0.5 ms of context creation: as an H200 build of resnet_small
    build = [(float(ms), action, 100 + ms, 2, "workspace", "builder", "")
             for ms in range(0, 100, 2) for action in ("alloc", "free")]
    build = [(ms + (1.0 if a == "free" else 0.0), a, p, m, t, o, lay) for ms, a, p, m, t, o, lay in build]
    context = [(100.0 + 0.1 * i, "alloc", 10 + i, 1, "activations", "context:net#1/ctx1", "") for i in range(6)]
    ax = plot_memory(_frame(build + context), phases=("build", "context creation")).axes[0]
    lo, hi = ax.get_xlim()
    (mark,) = [t.xy[0] for t in ax.texts if t.get_gid() == "phase_label" and t.get_text() == "context creation"]
    assert (hi - mark) / (hi - lo) >= 0.10                       # not a sliver at the right edge
    assert ax.get_xlabel().endswith("each phase at least 12% wide (the scale changes at the dotted lines)")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "100" in labels and any(text.startswith("100.") for text in labels)   # ticks still read real times


def _overlapping_ticks(ax):
    ax.figure.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    return [(a, b) for a, b in zip(boxes, boxes[1:]) if a.x1 > b.x0 - 2]


def test_ticks_beside_a_cut_gap_after_a_single_event_do_not_collide():
    # the H200 resnet_small history from its first event: one weights block, 658 µs idle, then the rest;
    # the lone event's stretch once got two ticks reading "245.763091245.763091"
    import pandas as pd
    path = os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_2026-11-29", "memory_resnet_small.parquet")
    ev = pd.read_parquet(path)
    ax = plot_memory(ev, t0_ns=int(ev["ts_ns"].min())).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert not _overlapping_ticks(ax) and len(labels) == len(set(labels)) >= 4, labels
    assert max(len(text) for text in labels) <= 7, labels                   # ms to the axis's resolution, not the ns
    one = [(0.0, "alloc", 1, 0.5, "weights", "engine:net#1", "")] + \
        [(5.0 + 0.001 * i, "alloc", 10 + i, 0.4, "activations", "context:net#1/ctx1", "") for i in range(17)]
    assert not _overlapping_ticks(plot_memory(_frame(one), t0_ns=T0 - 10**9).axes[0])


def test_each_contexts_lifetime_is_drawn_and_named():
    # a sweep's context created and closed, the profile's context created 5 s later: two lifetimes, not one context
    events = [(0.0, "alloc", 1, 1, "weights", "engine:net#1", ""),
              (1.0, "alloc", 2, 2, "activations", "context:net#1/ctx1", ""),
              (2.0, "alloc", 3, 1, "workspace", "context:net#1/ctx1", ""),
              (50.0, "free", 2, 2, "activations", "context:net#1/ctx1", ""),
              (51.0, "free", 3, 1, "workspace", "context:net#1/ctx1", ""),
              (5000.0, "alloc", 4, 2, "activations", "context:net#1/ctx2", ""),
              (5001.0, "alloc", 5, 1, "workspace", "context:net#1/ctx2", ""),
              (5010.0, "alloc", 6, 0.5, "user", "", "fc"), (5011.0, "free", 6, 0.5, "user", "", "fc")]
    ax = plot_memory(_frame(events), t0_ns=T0).axes[0]
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "context_label"]
    assert labels == ["net#1/ctx1: created 1 ms, freed 51 ms", "net#1/ctx2: created 5000 ms, still held at the end"]
    lines = by_gid(ax, "context_life", "lines")
    assert len(lines) == 2 and lines[0].get_xdata()[1] < lines[1].get_xdata()[0]      # one ends before the next
    ax.figure.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts if t.get_gid() in ("context_label", "peak_label")]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_every_idle_gap_long_against_the_time_left_is_cut():
    # 43 s idle, then 5.5 s idle: once the 43 s are cut, the 5.5 s are most of what is left and are cut too
    events = [(0.0, "alloc", 1, 1, "weights", "engine:net#1", ""),
              (1.0, "alloc", 2, 1, "activations", "context:net#1/ctx1", ""),
              (43000.0, "alloc", 3, 1, "workspace", "context:net#1/ctx1", ""),
              (43001.0, "alloc", 4, 1, "io", "context:net#1/ctx1", ""),
              (48500.0, "alloc", 5, 0.5, "user", "", "fc"), (48501.0, "free", 5, 0.5, "user", "", "fc")]
    ax = plot_memory(_frame(events), t0_ns=T0).axes[0]
    assert len(by_gid(ax, "idle_gap", "patches")) == 2
    assert not _overlapping_ticks(ax)


def test_the_peak_and_the_hover_readout_say_times_in_the_axis_unit():
    events = [(0.0, "alloc", 1, 1, "weights", "engine:net#1", ""),
              (0.2, "alloc", 2, 2, "activations", "context:net#1/ctx1", ""),
              (0.45, "alloc", 3, 1, "user", "", "fc"), (0.6, "free", 3, 1, "user", "", "fc")]
    ax = plot_memory(_frame(events), t0_ns=T0).axes[0]
    (peak,) = [t.get_text() for t in ax.texts if t.get_gid() == "peak_label"]
    assert peak.startswith("peak 4.00 MiB at 0.45 ms") and "µs" not in peak
    assert ax.format_coord(0.3, 0.1) == "t = 0.3 ms · held 3 MiB"          # weights 1 + activations 2
    assert ax.format_coord(0.5, 3.9) == "t = 0.5 ms · held 4 MiB"


def test_tick_labels_that_would_touch_are_thinned_after_layout():
    import matplotlib.pyplot as plt
    from perfkit.plots._axes import drop_colliding_ticks
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.set_xlim(6500, 6700)
    ax.set_xticks([6500, 6550, 6553, 6560, 6600, 6700], ["6500", "6550", "6553", "6560", "6600", "6700"])
    assert _overlapping_ticks(ax)
    drop_colliding_ticks(ax)
    assert not _overlapping_ticks(ax) and [t.get_text() for t in ax.get_xticklabels()][:2] == ["6500", "6550"]
    plt.close(fig)


def test_a_long_axis_note_stays_inside_the_figure():
    events = [(0.0, "alloc", 1, 1, "weights", "engine:net#1", ""),
              (1.0, "alloc", 2, 1, "activations", "context:net#1/ctx1", ""),
              (43000.0, "alloc", 3, 1, "workspace", "context:net#1/ctx1", ""),
              (43001.0, "alloc", 4, 1, "io", "context:net#1/ctx1", ""),
              (48500.0, "alloc", 5, 0.5, "user", "", "fc"), (48501.0, "free", 5, 0.5, "user", "", "fc")]
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(5, 3), layout="constrained")             # a narrow figure of the user's
    fig = plot_memory(_frame(events), ax=ax, t0_ns=T0 - 5 * 10**9)         # 'since 5.00 s before the first event'
    fig.canvas.draw()
    assert "idle gaps cut short" in ax.get_xlabel()
    box = ax.xaxis.label.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1
    plt.close(fig)
