"""compare(): ratios with intervals, and 'not significant' where the interval holds 1."""
import numpy as np
import pandas as pd
import pytest
from explorer_data import sweep_frame, sweep_row

import perfkit as pk
from perfkit.frames.schemas import LAYER_TIMES
from perfkit.widgets import compare
from perfkit.frames.stats import bootstrap_ratio, ratio_from_intervals
from perfkit.plots._ratios import plot_ratios
from perfkit.widgets.ratios import verdicts


def _changed(factor_by_batch):
    return sweep_frame([sweep_row(m, p, b, base * (1 + b / 8) * (0.8 if p == "fp16" else 1.0) * factor_by_batch[b])
                        for m, base in (("mlp", 1.0), ("cnn", 3.0)) for p in ("fp32", "fp16") for b in (1, 4, 16)])


def test_two_sweeps_give_ratios_with_intervals_and_verdicts():
    c = compare(sweep_frame(), _changed({1: 1.0, 4: 0.7, 16: 1.4}), labels=("before", "after"))
    t = c.table.set_index(["model", "precision", "batch_size"])
    assert len(t) == 12
    np.testing.assert_allclose(t.xs(4, level="batch_size")["ratio"], 0.7)
    row1 = t.loc[("mlp", "fp32", 1)]
    assert row1["ratio_low"] < 1 < row1["ratio_high"] and not row1["significant"]
    assert row1["verdict"] == "after takes 1.00x the time of before; not significant (the interval contains 1)"
    assert t.loc[("mlp", "fp32", 4), "verdict"] == "after takes 0.70x the time of before: after is faster"
    assert t.loc[("mlp", "fp32", 16), "verdict"] == "after takes 1.40x the time of before: before is faster"
    assert t.loc[("cnn", "fp16", 16), "significant"]
    ax = c.figure.axes[0]
    assert ax.get_xlabel().startswith("after / before median latency")
    assert ax.get_title().startswith("after against before on test cpu: ratio")
    assert [l for l in ax.get_lines() if l.get_gid() == "one"][0].get_xdata()[0] == 1.0
    assert "not significant" in c.table_html.value and "8 differ significantly; 4 cannot be told apart" in c.note.value
    assert "perfkit-compare" in c.widget._dom_classes


def test_labels_default_to_what_differs():
    a = sweep_frame([sweep_row(precision="fp32", batch=1, ms=1.0)])
    b = sweep_frame([sweep_row(precision="fp16", batch=1, ms=0.5)])
    assert compare(a, b).labels == ("fp32", "fp16")
    b.attrs["device_name"] = "NVIDIA H200"
    assert compare(a, b).labels == ("test cpu", "NVIDIA H200")
    assert compare(a, a).labels == ("a", "b")


def test_ratios_far_apart_get_a_log_axis():
    assert compare(sweep_frame(), _changed({1: 1.0, 4: 0.7, 16: 1.4})).figure.axes[0].get_xscale() == "linear"
    assert compare(sweep_frame(), _changed({1: 1.0, 4: 0.1, 16: 10.0})).figure.axes[0].get_xscale() == "log"


def test_one_precision_against_another_matches_the_rest():
    a = sweep_frame([sweep_row(precision="fp32", batch=b, ms=1.0) for b in (1, 8)])
    b = sweep_frame([sweep_row(precision="fp16", batch=b, ms=0.5) for b in (1, 8)])
    c = compare(a, b, labels=("fp32", "fp16"))
    assert list(c.table["ratio"]) == [0.5, 0.5] and c.table["significant"].all()


def test_interval_of_the_ratio_widens_with_the_rows_intervals():
    narrow = ratio_from_intervals(1.0, 0.99, 1.01, 1.1, 1.09, 1.11)
    wide = ratio_from_intervals(1.0, 0.8, 1.25, 1.1, 0.88, 1.375)
    assert narrow[0] == pytest.approx(1.1) and narrow[1] > 1          # significant
    assert wide[1] < 1 < wide[2]                                       # not significant
    assert np.isnan(ratio_from_intervals(1.0, np.nan, np.nan, 1.1, 1.0, 1.2)[1])


@pytest.mark.parametrize("ends", [(1.0, 1.0, 1.0, 1.2), (0.9, 1.1, 1.5, 1.5), (1.0, 1.0, 1.5, 1.5)])
def test_a_zero_width_interval_is_unknown_not_exact(ends):
    # a sweep timed with rounds=1 (or fewer than 6) has no real interval: its ratio must not look significant
    ratio, lo, hi = ratio_from_intervals(1.0, ends[0], ends[1], 1.5, ends[2], ends[3])
    assert ratio == 1.5 and np.isnan(lo) and np.isnan(hi)


def test_a_sweep_without_intervals_is_never_called_significantly_different():
    one = [sweep_row(batch=b, ms=1.0, latency_ci_low_ms=1.0, latency_ci_high_ms=1.0) for b in (1, 4)]
    two = [sweep_row(batch=b, ms=2.0, latency_ci_low_ms=2.0, latency_ci_high_ms=2.0) for b in (1, 4)]
    c = compare(sweep_frame(one), sweep_frame(two), labels=("x", "y"))
    assert not c.table["significant"].any()
    assert (c.table["verdict"] == "y takes 2.00x the time of x; interval unknown: cannot tell").all()


def test_a_difference_under_three_percent_is_grey_and_not_counted_in_the_note():
    import pandas as pd
    table = verdicts(pd.DataFrame({"layer": ["tiny", "big"], "a_ms": [1.0, 1.0], "b_ms": [0.98, 0.8],
                                   "ratio": [0.98, 0.8], "ratio_low": [0.97, 0.75], "ratio_high": [0.99, 0.85]}),
                     ("a", "b"))
    assert table["significant"].tolist() == [False, True]
    assert table["verdict"][0] == "b takes 0.98x the time of a; under 3% apart: treat as noise"
    ax = plot_ratios(table, ("a", "b"), "layer").axes[0]
    colours = [str(c.lines[0].get_color()) for c in ax.containers]
    assert colours == ["0.55", "tab:green"]


def test_bootstrap_of_equal_samples_is_not_significant_and_of_shifted_ones_is():
    rng = np.random.default_rng(0)
    x, y = rng.normal(1.0, 0.05, 200), rng.normal(1.0, 0.05, 200)
    r, lo, hi = bootstrap_ratio(x, y)
    assert lo < 1 < hi
    r, lo, hi = bootstrap_ratio(x, y * 1.2)
    assert 1.15 < lo < r < hi < 1.25


def _run_frame(scale):
    rows, t = [], 0
    rng = np.random.default_rng(int(scale * 100))
    for it in range(30):
        for i, (name, ms) in enumerate((("conv", 0.3 * scale), ("fc", 0.1))):
            d = ms * rng.uniform(0.97, 1.03)
            rows.append({"run_id": "r", "iteration": it, "index": i, "layer": name, "type": "x", "start_ns": t,
                         "end_ns": t + int(d * 1e6), "ms": d, "stream": "s", "context": "c", "batch_size": 1,
                         "precision": "fp32", "clock": "host"})
            t += int(d * 1e6)
    return LAYER_TIMES.frame(rows)


def test_two_runs_are_compared_per_layer_and_per_inference():
    from test_profile_explorer import synthetic_run
    a, b = synthetic_run(), synthetic_run()
    a.frames["layers"], b.frames["layers"] = _run_frame(1.0), _run_frame(2.0)
    c = compare(a, b)
    t = c.table.set_index("layer")
    assert list(t.index) == ["(inference: sum of layers)", "conv", "fc"]
    assert t.loc["conv", "ratio"] == pytest.approx(2.0, rel=0.05) and t.loc["conv", "significant"]
    assert not t.loc["fc", "significant"] and t.loc["fc", "verdict"].endswith("not significant (the interval contains 1)")
    assert t.loc["(inference: sum of layers)", "ratio"] == pytest.approx(0.7 / 0.4, rel=0.05)


def test_layers_profiled_in_one_run_only_are_named_not_dropped():
    """A run recorded before a layer was renamed (the MLP fusions' names changed) against a new one: the
    renamed layer cannot be matched, and the note says so instead of leaving it out silently."""
    from test_profile_explorer import synthetic_run
    a, b = synthetic_run(), synthetic_run()
    a.frames["layers"], b.frames["layers"] = _run_frame(1.0), _run_frame(1.0)
    b.frames["layers"]["layer"] = b.frames["layers"]["layer"].replace({"conv": "conv (renamed)"})
    c = compare(a, b, labels=("old", "new"))
    assert list(c.table["layer"]) == ["(inference: sum of layers)", "fc"]
    assert c.table.attrs["unmatched"] == {"old": ["conv"], "new": ["conv (renamed)"]}
    assert "only in old: conv; only in new: conv (renamed)" in c.note.value
    assert "Not compared" not in compare(a, a, labels=("x", "y")).note.value


def test_a_real_run_against_itself_is_not_significant(tiny_run):
    c = compare(tiny_run, tiny_run, labels=("x", "y"))
    assert (c.table["ratio"] == 1.0).all() and not c.table["significant"].any()
    # the same engine on both sides: whatever differs is the machine's drift, and the note says so
    assert c.table.attrs["same_engine"] and "the machine's drift between the two runs" in c.note.value


def test_runs_of_different_engines_get_no_drift_warning(tiny_run):
    from perfkit.profiling.data import RunData
    assert len(tiny_run.engine_layers)
    other = RunData({**tiny_run.frames, "engine_layers": tiny_run.engine_layers.assign(precision=pd.Series("fp16", index=tiny_run.engine_layers.index, dtype="string"))},
                    dict(tiny_run.meta), list(tiny_run.messages))
    c = compare(tiny_run, other, labels=("x", "y"))
    assert not c.table.attrs["same_engine"] and "machine's drift" not in c.note.value
    saved_without = RunData({k: v for k, v in tiny_run.frames.items() if k != "engine_layers"},
                            dict(tiny_run.meta), list(tiny_run.messages))
    assert not compare(tiny_run, saved_without, labels=("x", "y")).table.attrs["same_engine"]


@pytest.mark.parametrize("a, b, labels", [(None, None, None), ("sweep", "run", None), ("sweep", "sweep", ("x",)),
                                          ("sweep", "sweep", ("x", "x")), ("sweep", "sweep", "ab"), (3, 3, None)])
def test_bad_arguments_are_refused(a, b, labels, tiny_run):
    pick = {"sweep": sweep_frame(), "run": tiny_run}
    with pytest.raises(pk.PerfkitError):
        compare(pick.get(a, a), pick.get(b, b), labels=labels)


def test_configurations_of_engines_the_builder_chose_differently_are_named():
    a, b = sweep_frame(), _changed({1: 1.0, 4: 0.7, 16: 1.4})
    a["tactics_id"] = "a1b2c3d4e5f6"
    b["tactics_id"] = np.where(b["batch_size"] == 16, "ffffffffffff", "a1b2c3d4e5f6")
    c = compare(a, b, labels=("run 1", "run 2"))
    t = c.table.set_index(["model", "precision", "batch_size"])
    assert (t.xs(16, level="batch_size")["engine"] == "other").all()
    assert (t.drop(16, level="batch_size")["engine"] == "same").all()
    assert "4 of 12 configurations ran engines whose builder chose other tactics" in c.note.value
    assert "timing_cache" in c.note.value
    ax = c.figure.axes[0]
    hollow = [lbl.get_text().endswith("other engine") for lbl in ax.get_yticklabels()]
    faces = [cont.lines[0].get_markerfacecolor() for cont in ax.containers]
    assert hollow == list(t["engine"] == "other") and sum(hollow) == 4
    assert [f == "white" for f in faces] == hollow and "hollow: configurations whose engines differ" in ax.get_title()
    # rows recorded before tactics_id existed say nothing either way
    old = compare(sweep_frame(), b, labels=("old", "new"))
    assert "engine" not in old.table.columns and "other tactics" not in old.note.value
    a["tactics_id"] = ""
    assert "other tactics" not in compare(a, b, labels=("x", "y")).note.value
