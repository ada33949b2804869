"""ProfileExplorer on a real tiny run (MNIST MLP, CPU) and on a synthetic two-stream frame."""
import pandas as pd
import pytest
from matplotlib.backend_bases import MouseEvent

import perfkit as pk
from perfkit.frames.schemas import ENGINE_LAYERS, LAYER_TIMES, MEMORY_EVENTS, QUERIES
from perfkit.profiling.data import RunData
from perfkit.widgets import ProfileExplorer
from perfkit.widgets._explorer import count_text
from perfkit.frames.schemas import GPU_SAMPLES, KERNELS


def _bars(fig):
    return [p for p in fig.axes[0].patches if p.get_gid() == "layer"]


def synthetic_run():
    """Two streams, 4 inferences; per inference: conv 300 µs then fc 100 µs on each stream."""
    rows, t = [], 10_000_000
    for it in range(4):
        for s, offset in (("s0", 0), ("s1", 50_000)):
            start = t + offset
            for i, (name, typ, us) in enumerate((("conv", "convolution", 300), ("fc", "fully_connected", 100))):
                rows.append({"run_id": "r", "iteration": it, "index": i, "layer": name, "type": typ, "start_ns": start,
                             "end_ns": start + us * 1000, "ms": us / 1000, "stream": s, "context": "ctx",
                             "batch_size": 8, "precision": "fp16", "clock": "host"})
                start += us * 1000
        t += 600_000
    frames = {"layers": LAYER_TIMES.frame(rows), "memory": MEMORY_EVENTS.frame([]), "queries": QUERIES.frame([]),
              "gpu": GPU_SAMPLES.frame([]), "kernels": KERNELS.frame([])}
    return RunData(frames, {"run_id": "r"}, [])


ENGINE = ENGINE_LAYERS.frame([
    {"index": 0, "layer": "conv", "type": "convolution", "precision": "fp16", "inputs": "x", "outputs": "y",
     "input_shapes": "(3,)", "output_shapes": "(3,)", "origin": "conv, bn, relu", "flops": 3e6, "bytes": 6e4,
     "weights_bytes": 10, "workspace_bytes": 0},
    {"index": 1, "layer": "fc", "type": "fully_connected", "precision": "fp16", "inputs": "y", "outputs": "z",
     "input_shapes": "(3,)", "output_shapes": "(3,)", "origin": "fc", "flops": 1e6, "bytes": 2e4,
     "weights_bytes": 10, "workspace_bytes": 0}])


def test_default_view_shows_the_last_three_inferences_of_every_lane():
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=False)
    assert e.iterations.value == (1, 3) and e.iterations.description == "iterations"
    assert len(_bars(e.figure)) == 3 * 2 * 2
    assert "perfkit-profile-explorer" in e.widget._dom_classes


def test_iteration_range_and_lanes_change_the_timeline():
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=False)
    e.iterations.value = (0, 0)
    assert len(_bars(e.figure)) == 4
    assert "inference 0" in e.figure.get_suptitle()
    e.lanes.value = ("ctx / s1",)
    assert len(_bars(e.figure)) == 2
    assert [t.get_text() for t in e.figure.axes[0].get_yticklabels()] == ["ctx\ns1"]
    assert set(e.table_frame["count"]) == {1}


def test_table_joins_flops_and_bytes_into_achieved_rates_and_sorts():
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=False)
    t = e.table_frame.set_index("layer")
    # conv: 3e6 flop/sample x 8 samples in 0.3 ms = 80 GFLOP/s; 6e4 B x 8 / 0.3 ms = 1.6 GB/s
    assert t.loc["conv", "gflops_per_s"] == pytest.approx(80.0)
    assert t.loc["conv", "gb_per_s"] == pytest.approx(1.6)
    assert t.loc["fc", "gflops_per_s"] == pytest.approx(80.0)
    assert t.loc["conv", "origin"] == "conv, bn, relu"
    assert list(e.table_frame["layer"]) == ["conv", "fc"]         # by total time, largest first
    e.sort.value = "median_ms"
    e.ascending.value = True
    assert list(e.table_frame["layer"]) == ["fc", "conv"]
    assert e.table.value.index(">fc<") < e.table.value.index(">conv<")
    e.sort.value = "layer"
    assert list(e.table_frame["layer"]) == ["conv", "fc"]


def test_highlight_fades_the_other_layers():
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=False)
    png = e.view.widget.children[0].value
    e.highlight.value = "fc"
    alphas = {(b.get_alpha(), lay) for b, lay in zip(_bars(e.figure), e._bars[3]["layer"])}
    assert alphas == {(1.0, "fc"), (0.18, "conv")}
    assert e.view.widget.children[0].value != png                 # the static image was redrawn
    e.iterations.value = (0, 0)                                   # a new timeline keeps the highlight
    assert {(b.get_alpha(), lay) for b, lay in zip(_bars(e.figure), e._bars[3]["layer"])} == {(1.0, "fc"),
                                                                                             (0.18, "conv")}
    e.highlight.value = ""
    assert {b.get_alpha() for b in _bars(e.figure)} == {1.0}


def _event(e, name, bar, button=None):
    ax = e.figure.axes[0]
    x, y = ax.transData.transform((bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2))
    ev = MouseEvent(name, e.figure.canvas, x, y, button)
    e.figure.canvas.callbacks.process(name, ev)


def test_hover_names_layer_members_tactic_precision_time_and_share_and_click_highlights():
    pytest.importorskip("ipympl")
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=True)
    e.iterations.value = (2, 2)
    conv = next(b for b, lay in zip(_bars(e.figure), e._bars[3]["layer"]) if lay == "conv")
    _event(e, "motion_notify_event", conv)
    text = e.hover.value
    assert "<b>conv</b>" in text and "conv, bn, relu" in text and "fp16" in text and "300 µs" in text
    assert "37.5% of that inference" in text                      # 300 of 800 µs over both streams
    _event(e, "button_press_event", conv, 1)
    assert e.highlight.value == "conv"


def test_a_real_run_live_and_saved(tiny_run, tmp_path):
    e = ProfileExplorer(tiny_run, interactive=False)
    t = e.table_frame
    assert set(t["layer"]) == set(tiny_run.layers["layer"])
    assert (t["flops"] > 0).all() and (t["gflops_per_s"] > 0).all()   # from the run's engine frames
    assert (t["tactic"] != "").any()
    saved = ProfileExplorer(tiny_run.save(str(tmp_path / "run")), interactive=False)
    pd.testing.assert_frame_equal(saved.table_frame[["layer", "flops", "bytes", "origin", "tactic"]],
                                  t[["layer", "flops", "bytes", "origin", "tactic"]], check_dtype=False)


def test_a_run_without_engine_frames_leaves_flops_blank():
    run = synthetic_run()
    e = ProfileExplorer(run, interactive=False)
    assert e.table_frame["flops"].isna().all() and e.table_frame["gflops_per_s"].isna().all()
    assert (e.table_frame["origin"] == "").all()


@pytest.mark.parametrize("bad", [None, "/no/such/run", 3, pk.models.mnist_mlp()])
def test_bad_runs_are_refused(bad):
    with pytest.raises(pk.PerfkitError):
        ProfileExplorer(bad, interactive=False)


def test_table_says_flops_and_bytes_in_human_units():
    e = ProfileExplorer(synthetic_run(), engine_layers=ENGINE, interactive=False)
    assert e.table.layout.width == "100%" and e.table.layout.overflow == "auto"          # scrolls in its box
    assert "e+" not in e.table.value and "e-0" not in e.table.value
    conv = e.table.value.split("<tr>")[2]                       # the first row: conv, 3e6 FLOPs and 60000 bytes
    assert ">3 M<" in conv and ">58.6 KiB<" in conv and count_text(3e6) == "3 M"
