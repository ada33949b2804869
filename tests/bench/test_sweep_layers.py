"""sweep(..., layers=True): per-layer times of each configuration, their file beside the sweep's, resume."""
import importlib

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod
from perfkit.bench import sweep_layers as layers_mod
from perfkit.frames.schemas import SWEEP_LAYERS

sweep_mod = importlib.import_module("perfkit.bench.sweep")      # the module (perfkit.bench.sweep is the function)


def _net():
    net = pk.Network("tiny")
    x = net.add_input("x", (8,))
    h = net.add_fully_connected(x, 6, np.ones((6, 8), np.float32), name="fc").output
    net.mark_output(net.add_softmax(h, name="sm").output)
    return net


def _run(monkeypatch, **kw):
    calls = []

    def fake_slice(context, inputs, min_time_s, min_iterations):
        calls.append(context.engine.max_batch_size)
        return np.array([1.0, 1.0, 1.0])
    monkeypatch.setattr(rounds_mod, "time_slice", fake_slice)
    kw.setdefault("batch_sizes", (1, 2))
    return pk.sweep(_net(), device="cpu", min_time_s=0.0, min_iterations=1, rounds=2, layers=True, **kw), calls


def test_layer_rows_per_configuration_with_intervals_shares_and_costs(monkeypatch):
    (frame, layers), _ = _run(monkeypatch, precisions=("fp32", "fp16"))
    SWEEP_LAYERS.validate(layers, strict=True)
    engine = pk.Builder("cpu").build(_net(), pk.BuilderConfig(max_batch_size=2))
    want = engine.layers
    assert len(layers) == len(frame) * len(want)
    for (prec, batch), g in layers.groupby(["precision", "batch_size"]):
        assert g["index"].tolist() == want["index"].tolist() and g["layer"].tolist() == want["layer"].tolist()
        assert g["pct"].sum() == pytest.approx(100.0)
        assert (g["ci_low_ms"] <= g["median_ms"]).all() and (g["median_ms"] <= g["ci_high_ms"]).all()
        assert (g["count"] >= layers_mod.LAYER_INFERENCES_MIN).all()
        assert g["flops"].tolist() == pytest.approx(want["flops"].tolist())
        assert g["bytes"].tolist() == pytest.approx(want["bytes"].tolist())
    assert set(layers["run_id"]) == set(frame["run_id"])
    assert set(layers["layer_precision"]) <= {"fp32", "fp16"}


def test_layer_rows_summarise_the_profiled_times():
    times = pd.DataFrame({"index": [0] * 6 + [1] * 6, "layer": ["a"] * 6 + ["b"] * 6, "type": ["fc"] * 6 + ["act"] * 6,
                          "ms": [1.0, 3.0, 2.0, 2.0, 1.5, 2.5] + [1.0] * 6, "precision": ["fp32"] * 12})
    info = pd.DataFrame({"index": [0, 1], "precision": ["fp16", "fp32"], "flops": [10.0, 2.0], "bytes": [4.0, 8.0]})
    rows = layers_mod.layer_rows(times, info, {"run_id": "r", "model": "m", "device": "cpu", "precision": "fp16",
                                               "batch_size": 4})
    a, b = rows
    assert (a["median_ms"], a["count"], a["layer_precision"], a["flops"]) == (2.0, 6, "fp16", 10.0)
    assert (a["ci_low_ms"], a["ci_high_ms"], a["ci_level_pct"]) == (1.0, 3.0, 96.875)   # six samples: min and max
    three = layers_mod.layer_rows(times.groupby("index").head(3), info, {"run_id": "r", "model": "m", "device": "cpu",
                                                                       "precision": "fp16", "batch_size": 4})[0]
    assert np.isnan(three["ci_low_ms"]) and np.isnan(three["ci_level_pct"])    # 3 samples reach only 75%: unknown
    assert a["pct"] == pytest.approx(200 / 3) and b["pct"] == pytest.approx(100 / 3)


def test_a_sink_with_add_layers_gets_each_configurations_layers_before_its_row(monkeypatch):
    events = []

    class Sink:
        def __call__(self, row):
            events.append(("row", row["batch_size"]))

        def add_layers(self, frame):
            assert frame.attrs["schema"] == "sweep_layers"
            events.append(("layers", int(frame["batch_size"].iloc[0]), len(frame)))

        def finish(self):       # after each network's rows: where a drawing sink draws
            events.append(("finish",))
    _run(monkeypatch, on_row=Sink())
    assert events == [("layers", 1, 2), ("row", 1), ("layers", 2, 2), ("row", 2), ("finish",)]


def test_without_layers_the_frame_alone_is_returned_and_no_profile_runs(monkeypatch):
    monkeypatch.setattr(layers_mod, "profile_layers", lambda *a: pytest.fail("profiled without layers=True"))
    monkeypatch.setattr(rounds_mod, "time_slice", lambda *a: np.array([1.0]))
    frame = pk.sweep(_net(), (1,), device="cpu", min_time_s=0.0, min_iterations=1, rounds=1)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1


def test_layers_file_sits_beside_the_sweep_and_a_killed_sweep_resumes_both(monkeypatch, tmp_path):
    out = tmp_path / "s.parquet"
    assert layers_mod.sweep_layers_path(out) == str(tmp_path / "s_layers.parquet")
    seen = []

    def killer(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _run(monkeypatch, batch_sizes=(1, 2, 3), out=out, on_row=killer)
    kept = pd.read_parquet(tmp_path / "s_layers.parquet")
    assert sorted(set(kept["batch_size"])) == [1, 2]
    (frame, layers), calls = _run(monkeypatch, batch_sizes=(1, 2, 3), out=out, resume=True)
    assert calls == [3, 3]                                  # only the unfinished configuration was timed
    assert sorted(frame["batch_size"]) == [1, 2, 3]
    assert layers.groupby("batch_size").size().to_dict() == {1: 2, 2: 2, 3: 2}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s_layers.parquet"), layers)


def test_layer_rows_written_before_a_kill_that_lost_their_sweep_row_are_not_kept_twice(monkeypatch, tmp_path):
    out = tmp_path / "s.parquet"
    real_write = sweep_mod._write

    def write(path, frame):
        if path == str(out) and len(frame) == 2:
            raise KeyboardInterrupt            # killed after the second layers write, before its sweep row
        real_write(path, frame)
    monkeypatch.setattr(sweep_mod, "_write", write)
    with pytest.raises(KeyboardInterrupt):
        _run(monkeypatch, batch_sizes=(1, 2), out=out)
    assert sorted(set(pd.read_parquet(tmp_path / "s_layers.parquet")["batch_size"])) == [1, 2]
    monkeypatch.setattr(sweep_mod, "_write", real_write)
    (frame, layers), calls = _run(monkeypatch, batch_sizes=(1, 2), out=out, resume=True)
    assert calls == [2, 2] and sorted(frame["batch_size"]) == [1, 2]
    assert layers.groupby("batch_size").size().to_dict() == {1: 2, 2: 2}


def test_a_failed_configuration_has_no_layer_rows(monkeypatch):
    (frame, layers), _ = _run(monkeypatch, batch_sizes=(1, 10 ** 12))
    assert frame.set_index("batch_size").loc[10 ** 12, "error"].startswith("BuildError")
    assert set(layers["batch_size"]) == {1}


def test_a_failed_layer_pass_keeps_the_timing_and_says_so_in_layers_error(monkeypatch):
    real = layers_mod.profile_layers

    def flaky(context, inputs, batch):
        if batch == 2:
            raise pk.errors.ExecutionError("the profiler lost its events")
        return real(context, inputs, batch)
    monkeypatch.setattr(layers_mod, "profile_layers", flaky)
    (frame, layers), _ = _run(monkeypatch)
    ok, timed = (frame[frame["batch_size"] == b].iloc[0] for b in (1, 2))
    assert ok["layers_error"] == "" and ok["error"] == ""
    assert timed["error"] == "" and timed["latency_median_ms"] == 1.0         # the timing stands
    assert timed["layers_error"] == "profiling the layers: ExecutionError: the profiler lost its events"
    assert set(layers["batch_size"]) == {1}
    notes = frame.attrs["disturbances"]
    assert not any("failed" in n for n in notes)
    assert any(n.startswith("1 configuration(s) were timed but their layers could not be profiled") for n in notes)
    pk.frames.SWEEP.validate(frame, strict=True)
