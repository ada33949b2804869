"""SweepExplorer on synthetic sweeps with known values: every control changes the figure or the table,
live rows appear, and untrustworthy points are said to be so."""
import os
import time

import numpy as np
import pandas as pd
import pytest
from explorer_data import layer_rows, layers_frame, sweep_frame, sweep_row

import perfkit as pk
from perfkit.frames.schemas import SWEEP_LAYERS
from perfkit.widgets import SweepExplorer


def _lines(fig, gid="line"):
    return [l for ax in fig.axes for l in ax.get_lines() if l.get_gid() == gid]


def _collections(fig, gid):
    return [c for ax in fig.axes for c in ax.collections if c.get_gid() == gid]


def test_default_view_is_median_latency_against_batch_size_with_bands():
    e = SweepExplorer(sweep_frame(), interactive=False)
    ax = e.figure.axes[0]
    assert ax.get_ylabel() == "median latency (ms)" and ax.get_xlabel() == "batch size"
    assert len(_lines(e.figure)) == 4                             # 2 models x 2 precisions
    mlp32 = next(l for l in _lines(e.figure) if l.get_label() == "mlp · fp32")
    np.testing.assert_allclose(mlp32.get_ydata(), [1.125, 1.5, 3.0])
    assert len(_collections(e.figure, "band")) == 4
    assert "test cpu" in e.figure._suptitle.get_text()
    assert len(e.table_frame) == 12 and "95% interval" in e.table_frame
    assert "<table" in e.table.value and e.note.value == ""
    assert "perfkit-sweep-explorer" in e.widget._dom_classes


def test_metric_changes_label_and_data():
    e = SweepExplorer(sweep_frame(), interactive=False)
    before = e.figure
    e.metric.value = "throughput_per_s"
    assert e.figure is not before
    assert e.figure.axes[0].get_ylabel() == "throughput (samples/s)"
    mlp32 = next(l for l in _lines(e.figure) if l.get_label() == "mlp · fp32")
    np.testing.assert_allclose(mlp32.get_ydata(), [1 / 1.125 * 1e3, 4 / 1.5 * 1e3, 16 / 3.0 * 1e3])
    e.metric.value = "time_per_sample_ms"
    mlp32 = next(l for l in _lines(e.figure) if l.get_label() == "mlp · fp32")
    np.testing.assert_allclose(mlp32.get_ydata(), [1.125, 1.5 / 4, 3.0 / 16])
    e.metric.value = "device_memory_bytes"
    assert e.figure.axes[0].get_ylabel() == "device memory, predicted (KiB)"
    assert not _collections(e.figure, "band")                    # no interval for memory
    e.metric.value = "latency_p90_ms"
    assert e.figure.axes[0].get_ylabel() == "p90 latency (ms)"


def test_durations_below_a_millisecond_are_in_microseconds():
    e = SweepExplorer(sweep_frame([sweep_row(batch=b, ms=0.05 * b) for b in (1, 2)]), interactive=False)
    assert e.figure.axes[0].get_ylabel() == "median latency (µs)"
    np.testing.assert_allclose(_lines(e.figure)[0].get_ydata(), [50, 100])


def test_precision_filter_x_axis_colour_facet_logs_and_bands():
    e = SweepExplorer(sweep_frame(), interactive=False)
    e.precision.value = ("fp16",)
    assert {l.get_label() for l in _lines(e.figure)} == {"mlp", "cnn"}
    assert set(e.table_frame["precision"]) == {"fp16"}
    e.precision.value = ("fp32", "fp16")
    e.x.value = "precision"
    ax = e.figure.axes[0]
    assert ax.get_xlabel() == "precision" and [t.get_text() for t in ax.get_xticklabels()] == ["fp32", "fp16"]
    assert len(_lines(e.figure)) == 6                            # 2 models x 3 batch sizes
    e.x.value = "batch_size"
    e.facet.value = "model"
    visible = [a for a in e.figure.axes if a.get_visible()]
    assert sorted(a.get_title() for a in visible) == ["cnn", "mlp"]
    e.color.value = "precision"
    colors = {l.get_label(): l.get_color() for l in _lines(e.figure)}
    assert colors["fp32"] != colors["fp16"]
    e.facet.value = "none"
    assert e.figure.axes[0].get_xscale() == "log"
    e.logx.value = False
    assert e.figure.axes[0].get_xscale() == "linear"
    e.logy.value = True
    assert e.figure.axes[0].get_yscale() == "log"
    e.bands.value = False
    assert not _collections(e.figure, "band")


def test_unstable_and_loaded_points_are_ringed_and_said():
    rows = [sweep_row(batch=1, ms=1.0), sweep_row(batch=4, ms=2.0, unstable=True),
            sweep_row(batch=16, ms=3.0, load=5.5, cpus=2), sweep_row(batch=64, error="BuildError: out of memory")]
    e = SweepExplorer(sweep_frame(rows), interactive=False)
    assert len(_collections(e.figure, "unstable")) == 1
    assert "(mlp fp32 batch 4)" in e.note.value and "latency varied by 20.0%" in e.note.value
    assert "(mlp fp32 batch 16)" in e.note.value and "load average was 5.5 on 2 core(s)" in e.note.value
    assert "1 configuration(s) failed" in e.note.value
    assert list(e.table_frame["unstable"]) == ["", "UNSTABLE", ""]
    assert list(e.table_frame["batch_size"]) == [1, 4, 16]       # the failed one is not a point
    e.precision.value = ()
    assert e.note.value == "" and e.table_frame.empty           # nothing shown, nothing to distrust


def test_per_layer_time_with_layer_picker():
    e = SweepExplorer((sweep_frame(), layers_frame()), interactive=False)
    assert "layer_time_ms" in [v for _, v in e.metric.options]
    assert e.layer.disabled
    e.metric.value = "layer_time_ms"
    assert not e.layer.disabled and list(e.layer.options) == ["fc1", "fc2"]
    assert "fc1" in e.figure.axes[0].get_ylabel() and "test cpu" in e.figure._suptitle.get_text()
    fc1 = next(l for l in _lines(e.figure) if "fp32" in l.get_label())
    np.testing.assert_allclose(fc1.get_ydata(), [0.4, 1.6, 6.4])
    e.layer.value = "fc2"
    fc2 = next(l for l in _lines(e.figure) if "fp32" in l.get_label())
    np.testing.assert_allclose(fc2.get_ydata(), [0.6, 2.4, 9.6])
    assert len(_collections(e.figure, "band")) == 2


def test_live_rows_and_layers_from_an_empty_explorer():
    e = SweepExplorer(interactive=False, redraw_interval_s=0)
    assert not _lines(e.figure) and e.table_frame.empty
    e(sweep_row(batch=1, ms=1.0))
    assert len(e.table_frame) == 1 and e.precision.value == ("fp32",)
    e(sweep_row(batch=8, ms=2.0, precision="fp16"))
    assert e.precision.value == ("fp32", "fp16") and len(e.table_frame) == 2
    shown = e.figure
    e.add_layers(SWEEP_LAYERS.frame(layer_rows(batch=1)))
    assert e.figure is shown                                      # its row (next) redraws, not the layers
    e(sweep_row(batch=1, ms=1.0, precision="bf16"))
    assert "layer_time_ms" in [v for _, v in e.metric.options]
    e.metric.value = "layer_time_ms"
    assert len(_lines(e.figure)) == 1
    e.add_layers(SWEEP_LAYERS.frame(layer_rows(batch=4)))
    assert len(_lines(e.figure)) == 1 and len(_lines(e.figure)[0].get_xdata()) == 2   # shown: redrawn at once


def test_live_redraws_are_throttled_and_finish_draws_what_waits():
    e = SweepExplorer(interactive=False, redraw_interval_s=30)
    first = e.figure
    for b in (1, 2, 4):
        e(sweep_row(batch=b))
    assert e.figure is first and len(e.frame) == 3              # no redraw inside the interval
    e.finish()
    assert e.figure is not first and len(e.table_frame) == 3
    drawn = e.figure
    e.finish()
    assert e.figure is drawn                                     # nothing waited: no redraw


def test_a_row_after_the_interval_draws_the_rows_that_waited():
    e = SweepExplorer(interactive=False, redraw_interval_s=0.05)
    e(sweep_row(batch=1))
    e(sweep_row(batch=2))
    time.sleep(0.1)
    e(sweep_row(batch=4))
    assert len(e.table_frame) == 3


def test_as_a_real_sweeps_row_sink_with_its_layers():
    e = SweepExplorer(interactive=False, redraw_interval_s=0)
    frame, layers = pk.sweep(pk.models.mnist_mlp(), (1, 2), device="cpu", min_time_s=0.01, rounds=2, on_row=e,
                             layers=True, progress=False)
    assert len(e.frame) == len(frame) == 2
    assert sorted(e.table_frame["batch_size"]) == [1, 2]               # finish() drew the last rows
    assert len(e.layers_frame) == len(layers) > 0
    e.metric.value = "layer_time_ms"
    assert e.layer.value in set(layers["layer"]) and len(e.table_frame) == 2


def test_reads_a_parquet_file_and_a_folder_with_its_layers(tmp_path):
    sweep_frame().to_parquet(tmp_path / "sweep.parquet")
    layers_frame().to_parquet(tmp_path / "sweep_layers.parquet")
    for source in (tmp_path, tmp_path / "sweep.parquet", str(tmp_path / "sweep.parquet")):
        e = SweepExplorer(source, interactive=False)
        assert len(e.frame) == 12 and len(e.layers_frame) == 12


@pytest.mark.parametrize("bad", [pd.DataFrame({"x": [1]}), "/no/such/sweep.parquet", 3, (sweep_frame(),)])
def test_bad_sources_are_refused(bad):
    with pytest.raises(pk.PerfkitError):
        SweepExplorer(bad, interactive=False)


def test_recorded_h200_data_explores(tmp_path):
    data = os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_demo_2026-11-28")
    e = SweepExplorer(data, interactive=False)
    assert len(_lines(e.figure)) == 8 and "NVIDIA H200" in e.figure._suptitle.get_text()


def test_interactive_mode_keeps_one_canvas_widget_and_swaps_its_figure():
    pytest.importorskip("ipympl")
    e = SweepExplorer(sweep_frame(), interactive=True)
    canvas = e.view.canvas
    assert e.mode == "interactive" and e.view.widget.children[-1:] == (canvas,) and e.figure.canvas is canvas
    e.metric.value = "throughput_per_s"
    e(sweep_row(batch=64))
    assert e.view.widget.children[-1:] == (canvas,) and e.figure.canvas is canvas
    assert canvas.figure is e.figure and canvas.figure.axes[0].get_ylabel() == "throughput (samples/s)"
    assert canvas.get_diff_image() is not None                  # the canvas renders the new figure


def test_a_bare_explorer_displays_its_widget():
    e = SweepExplorer(sweep_frame(), interactive=False)
    bundle = e._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == e.widget.model_id


def test_facets_wrap_into_rows_within_the_width_budget_and_line_styles_are_explained():
    from perfkit.plots._axes import WIDTH_IN
    rows = [sweep_row(m, p, b, 1.0 + b / 8) for m in ("a", "b", "c") for p in ("fp32", "fp16") for b in (1, 4)]
    e = SweepExplorer(sweep_frame(rows), interactive=False)
    e.color.value = "model"
    e.facet.value = "model"                                   # colour and facet the same: styles tell precisions
    fig = e.figure
    assert fig.get_figwidth() <= WIDTH_IN
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3 and len({round(a.get_position().y0, 3) for a in visible}) == 2      # 2 + 1
    fig.canvas.draw()
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "precision"
    assert {t.get_text() for t in legend.get_texts()} == {"fp32", "fp16"}
    styles = {h.get_label(): h.get_linestyle() for h in legend.legend_handles}
    assert styles["fp32"] != styles["fp16"]
    assert legend.get_window_extent().x1 <= fig.bbox.x1 + 1                     # inside the figure, not cut off


def test_hover_readout_says_the_axes_in_words():
    e = SweepExplorer(sweep_frame(), interactive=False)
    e.metric.value = "latency_median_ms"
    assert e.figure.axes[0].format_coord(16.0, 2.5) == "batch size 16 · median latency 2.5 ms"
    e.x.value = "precision"
    assert e.figure.axes[0].format_coord(1.1, 2.5) == "precision fp16 · median latency 2.5 ms"


def test_a_sweep_timed_on_two_devices_of_one_host_at_once_is_said_in_the_warning():
    frame = sweep_frame()
    two = frame.assign(host="h", device=np.where(np.arange(len(frame)) % 2, "cuda:1", "cuda:0"))
    e = SweepExplorer(two, interactive=False)
    assert "read these points with care" in e.note.value
    assert "were timed on 2 devices of host h at once (cuda:0, cuda:1)" in e.note.value
    assert "at once" not in SweepExplorer(frame.assign(host="h"), interactive=False).note.value
