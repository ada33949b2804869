"""The trust machinery of pk.sweep, with injected timings: interleaved rounds, order-statistic intervals,
unstable rows re-measured, resumable output, failed configurations as rows."""
import collections
import os

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod
from perfkit.errors import ExecutionError


def _net():
    net = pk.Network("tiny")
    x = net.add_input("x", (4,))
    net.mark_output(net.add_activation(x, "relu", name="r").output)
    return net


class FakeTimer:
    """Replaces rounds.time_slice: ``plan(key, n)`` gives the latency (ms) of the n-th slice (0-based) of
    configuration ``key`` = (precision, batch size); every call is recorded."""

    def __init__(self, plan):
        self.plan = plan
        self.calls = []

    def __call__(self, context, inputs, min_time_s, min_iterations):
        key = (context.engine.precision, context.engine.max_batch_size)
        n = sum(1 for k in self.calls if k == key)
        self.calls.append(key)
        value = self.plan(key, n)
        return np.array([value, value * 1.001, value * 0.999])

    def count(self):
        return collections.Counter(self.calls)


def _sweep(monkeypatch, plan, **kw):
    timer = FakeTimer(plan)
    monkeypatch.setattr(rounds_mod, "time_slice", timer)
    kw.setdefault("batch_sizes", (1, 2))
    frame = pk.sweep(_net(), device="cpu", min_time_s=0.0, min_iterations=1, **kw)
    return frame, timer


def _row(frame, batch, precision="fp32"):
    (row,) = frame[(frame["batch_size"] == batch) & (frame["precision"] == precision)].to_dict("records")
    return row


def test_rounds_are_interleaved_one_outlier_round_is_not_unstable_and_a_real_spread_is_remeasured(monkeypatch):
    def plan(key, n):
        b = key[1]
        if b == 2 and n == 2:                       # one slow round among steady ones: not a spread
            return 5.0
        if b == 3 and n < 6 and n % 2:             # two modes in the first measurement only
            return 9.0
        if b == 4 and n % 2:                       # two modes in every measurement
            return 6.0
        return float(b)
    frame, timer = _sweep(monkeypatch, plan, batch_sizes=(1, 2, 3, 4), rounds=6, max_cv_pct=10.0)
    # round r times every configuration once before round r + 1 starts
    first = timer.calls[:24]
    for r in range(6):
        assert sorted(first[4 * r:4 * r + 4]) == [("fp32", 1), ("fp32", 2), ("fp32", 3), ("fp32", 4)]
    assert timer.count() == {("fp32", 1): 6, ("fp32", 2): 6, ("fp32", 3): 12, ("fp32", 4): 12}
    steady, outlier, transient, noisy = (_row(frame, b) for b in (1, 2, 3, 4))
    assert (steady["unstable"], steady["remeasured"]) == (False, False)
    assert (outlier["unstable"], outlier["remeasured"]) == (False, False)         # robust spread: 0%
    assert outlier["latency_cv_pct"] == 0.0 and outlier["latency_median_ms"] == pytest.approx(2.0)
    assert (transient["unstable"], transient["remeasured"]) == (False, True)      # the second timing was clean
    assert (noisy["unstable"], noisy["remeasured"]) == (True, True)
    assert noisy["latency_cv_pct"] > 10.0 > transient["latency_cv_pct"]
    assert transient["latency_median_ms"] == pytest.approx(3.0) and transient["rounds"] == 6
    assert noisy["latency_median_ms"] == pytest.approx(5.0)
    assert (noisy["latency_ci_low_ms"], noisy["latency_ci_high_ms"]) == pytest.approx((4.0, 6.0), rel=0.01)
    assert frame["latency_ci_level_pct"].tolist() == pytest.approx([96.875] * 4)
    assert frame["throughput_per_s"].tolist() == pytest.approx((frame["batch_size"] / frame["latency_median_ms"] * 1e3)
                                                               .tolist())
    pk.frames.SWEEP.validate(frame, strict=True)


def test_fewer_than_six_rounds_give_no_interval_rather_than_min_to_max(monkeypatch):
    frame, _ = _sweep(monkeypatch, lambda key, n: 1.0 + 0.1 * n, batch_sizes=(1,), rounds=5, max_cv_pct=100.0)
    row = _row(frame, 1)
    assert np.isnan(row["latency_ci_low_ms"]) and np.isnan(row["latency_ci_high_ms"])
    assert np.isnan(row["latency_ci_level_pct"]) and row["latency_median_ms"] == pytest.approx(1.2)
    import inspect
    assert inspect.signature(pk.sweep).parameters["rounds"].default == 6
    assert inspect.signature(pk.analysis.fusion_benefit).parameters["rounds"].default == 6


def test_equal_configurations_overlap_and_a_slower_one_does_not(monkeypatch):
    rng = np.random.default_rng(7)
    noise = 1.0 + rng.normal(0, 0.02, size=8)

    def plan(key, n):                     # fp32 and fp16 get the same round timings; batch 2 is 30% slower
        return float(noise[n] * (1.3 if key[1] == 2 else 1.0))
    frame, _ = _sweep(monkeypatch, plan, precisions=("fp32", "fp16"), rounds=8)
    a, b, slow = _row(frame, 1, "fp32"), _row(frame, 1, "fp16"), _row(frame, 2, "fp32")
    assert a["latency_ci_low_ms"] <= a["latency_median_ms"] <= a["latency_ci_high_ms"]
    assert (a["latency_ci_low_ms"], a["latency_ci_high_ms"]) == (b["latency_ci_low_ms"], b["latency_ci_high_ms"])
    assert a["latency_ci_low_ms"] < a["latency_ci_high_ms"]
    assert slow["latency_ci_low_ms"] > a["latency_ci_high_ms"]
    again, _ = _sweep(monkeypatch, plan, precisions=("fp32", "fp16"), rounds=8)
    cols = ["latency_ci_low_ms", "latency_ci_high_ms", "latency_cv_pct"]
    pd.testing.assert_frame_equal(frame[cols], again[cols])                     # exact: the same intervals


def test_a_sweep_killed_midway_resumes_without_repeating_finished_rows(monkeypatch, tmp_path):
    out = tmp_path / "sweep.parquet"
    seen = []

    def killer(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt("stopped after two rows")
    with pytest.raises(KeyboardInterrupt):
        _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1, 2, 3, 4), rounds=3, out=out, on_row=killer)
    kept = pd.read_parquet(out)
    assert sorted(kept["batch_size"]) == [1, 2]
    with pytest.raises(pk.ArgumentError, match="resume=True"):
        _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1, 2, 3, 4), out=out)
    assert len(pd.read_parquet(out)) == 2                                      # a refused call changed nothing
    frame, timer = _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1, 2, 3, 4), rounds=3, out=out, resume=True)
    assert timer.count() == {("fp32", 3): 3, ("fp32", 4): 3}                  # only the unfinished ones are timed
    assert sorted(frame["batch_size"]) == [1, 2, 3, 4]
    assert frame["run_id"].nunique() == 2 and set(kept["run_id"]) < set(frame["run_id"])
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame, check_like=False)
    done, _ = _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1, 2, 3, 4), out=out, resume=True)
    assert len(done) == 4 and _.calls == []


def test_failing_configurations_become_rows_with_their_error(monkeypatch):
    def plan(key, n):
        if key[1] == 2 and n == 1:
            raise ExecutionError("the device lost the context")
        return 1.0
    frame, timer = _sweep(monkeypatch, plan, batch_sizes=(1, 2, 10 ** 12), rounds=4)
    ok, broken, huge = _row(frame, 1), _row(frame, 2), _row(frame, 10 ** 12)
    assert ok["error"] == "" and ok["latency_median_ms"] == 1.0
    assert broken["error"] == "ExecutionError: the device lost the context" and broken["iterations"] == 0
    assert huge["error"].startswith("BuildError:") and "max_batch_size" in huge["error"]
    assert np.isnan(huge["latency_median_ms"]) and huge["device_memory_bytes"] == 0
    assert timer.count() == {("fp32", 1): 4, ("fp32", 2): 2}                  # the failed one left the rounds
    pk.frames.SWEEP.validate(frame, strict=True)


def test_each_row_records_the_host_load_and_cores(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 2.0, 1.0))
    frame, _ = _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1,))
    assert frame["host_load_1m"].tolist() == [3.5]
    assert frame["host_cpus"].tolist() == [len(os.sched_getaffinity(0))]


def test_bad_sweep_output_arguments_are_refused(tmp_path):
    net = _net()
    with pytest.raises(pk.ArgumentError, match="needs out="):
        pk.sweep(net, (1,), device="cpu", resume=True)
    with pytest.raises(pk.ArgumentError, match=r"\.parquet"):
        pk.sweep(net, (1,), device="cpu", out=tmp_path / "s.csv")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(pk.ArgumentError, match="cannot be read as parquet"):
        pk.sweep(net, (1,), device="cpu", out=junk, resume=True)
    assert junk.read_text() == "not parquet"


def test_frames_recorded_before_the_new_columns_still_validate_and_others_are_still_checked():
    sweep = pk.frames.SWEEP
    old = [c.name for c in sweep.columns if not c.optional]
    assert {"latency_ci_low_ms", "unstable", "error", "host_load_1m", "rounds"} <= set(sweep.names) - set(old)
    row = {"run_id": "r", "model": "m", "device": "cpu", "precision": "fp32", "batch_size": 1, "iterations": 3,
           "latency_mean_ms": 1.0, "latency_median_ms": 1.0, "latency_p90_ms": 1.0, "latency_min_ms": 1.0,
           "latency_max_ms": 1.0, "throughput_per_s": 1e3, "device_memory_bytes": 1, "weights_bytes": 1,
           "activation_bytes": 1, "build_time_ms": 1.0}
    frame = sweep.frame([row])                     # rows made before the optional columns existed
    assert list(frame.columns) == old
    sweep.validate(frame, strict=True)
    with pytest.raises(pk.frames.SchemaError, match="lacks columns \\['iterations'\\]"):
        sweep.validate(frame.drop(columns="iterations"))
    with pytest.raises(pk.frames.SchemaError, match="'unstable' has dtype"):
        sweep.validate(frame.assign(unstable="no"))
    with pytest.raises(pk.frames.SchemaError, match="lack columns \\['rounds'\\]"):
        sweep.frame([row, {**row, "rounds": 2}])   # once one row has an optional column, every row needs it


def test_gpu_clocks_and_throttling_seen_during_a_row_are_recorded(monkeypatch):
    readings = iter([{"sm_clock_mhz": 1980.0, "throttle_reasons": "gpu_idle"},
                     {"sm_clock_mhz": 1410.0, "throttle_reasons": "sw_thermal|sw_power_cap"},
                     {"sm_clock_mhz": 1700.0, "throttle_reasons": ""}] + [{"sm_clock_mhz": 1980.0}] * 3)
    monkeypatch.setattr(rounds_mod, "gpu_probe", lambda device: lambda: next(readings))
    frame, _ = _sweep(monkeypatch, lambda key, n: float(key[1]), batch_sizes=(1, 2), rounds=3)
    # slices run b1, b2 | b2, b1 | b1, b2 (each round starts one further): b1 reads 0, 3, 4 and b2 reads 1, 2, 5
    assert _row(frame, 1)["gpu_sm_clock_mhz"] == 1980.0 and _row(frame, 1)["gpu_throttle"] == ""   # idle is no throttle
    assert _row(frame, 2)["gpu_sm_clock_mhz"] == 1410.0 and _row(frame, 2)["gpu_throttle"] == "sw_power_cap|sw_thermal"
    pk.frames.SWEEP.validate(frame, strict=True)


def test_without_nvml_the_gpu_columns_are_missing_not_made_up(monkeypatch):
    frame, _ = _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1,))
    assert np.isnan(frame["gpu_sm_clock_mhz"].iloc[0]) and pd.isna(frame["gpu_throttle"].iloc[0])


def test_a_file_from_before_the_trust_columns_is_not_resumed(monkeypatch, tmp_path):
    old = pd.read_parquet(os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_demo_2026-11-28",
                                       "sweep.parquet"))
    out = tmp_path / "old.parquet"
    old.to_parquet(out)
    with pytest.raises(pk.ArgumentError, match="written before sweeps recorded"):
        _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1,), out=out, resume=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), old)


def test_sweep_states_its_disturbances_in_words(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 2.0, 1.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})

    def plan(key, n):
        if key[1] == 2 and n % 2:               # batch 2 stays noisy (two modes) after re-measuring
            return 6.0
        return 1.0
    frame, _ = _sweep(monkeypatch, plan, batch_sizes=(1, 2, 10 ** 12), rounds=6)
    notes = frame.attrs["disturbances"]
    assert notes == pk.bench.sweep_disturbances(frame)
    (loaded,) = [n for n in notes if "load average" in n]
    assert loaded.startswith("2 of 3 configuration(s) (tiny fp32 batch 1, tiny fp32 batch 2)")
    assert "5.0 on 2 core(s)" in loaded
    (spread,) = [n for n in notes if "varied by" in n]
    assert spread.startswith("1 of 3 configuration(s) (tiny fp32 batch 2)")
    assert notes[-1].startswith("1 configuration(s) failed")


def test_sweep_disturbances_of_a_quiet_or_recorded_frame(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    frame, _ = _sweep(monkeypatch, lambda key, n: 1.0, batch_sizes=(1, 2))
    assert frame.attrs["disturbances"] == []
    throttled = frame.assign(gpu_throttle=pd.array(["sw_thermal|gpu_idle", None], dtype="string"))
    (note,) = pk.bench.sweep_disturbances(throttled)
    assert note.startswith("1 of 2 configuration(s) (tiny fp32 batch 1)") and "sw_thermal" in note
    assert pk.bench.sweep_disturbances(frame.assign(latency_cv_pct=[4.0, 1.0]), max_cv_pct=3.0)[0].startswith("1 of 2")
    old = pd.read_parquet(os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_demo_2026-11-28",
                                       "sweep.parquet"))
    assert pk.bench.sweep_disturbances(old) == []                 # recorded before the trust columns: nothing to say


def test_one_outlying_inference_inside_a_slice_neither_moves_the_median_nor_flags_the_row(monkeypatch):
    def slice_with_outlier(context, inputs, min_time_s, min_iterations):
        return np.array([1.0, 1.01, 250.0, 0.99, 1.0])        # a 250 ms hiccup in every slice
    monkeypatch.setattr(rounds_mod, "time_slice", slice_with_outlier)
    frame = pk.sweep(_net(), (1,), device="cpu", min_time_s=0.0, min_iterations=1, rounds=4)
    row = _row(frame, 1)
    assert row["latency_median_ms"] == 1.0 and row["latency_max_ms"] == 250.0
    assert (row["unstable"], row["remeasured"], row["latency_cv_pct"]) == (False, False, 0.0)
    assert frame.attrs["disturbances"] == [] or all("varied" not in n for n in frame.attrs["disturbances"])


def test_the_host_load_is_read_before_the_timing_rounds_not_after(monkeypatch):
    load = {"now": 0.5}

    def busy_slice(context, inputs, min_time_s, min_iterations):
        load["now"] = 9.0                        # perfkit's own timing threads raise the load average
        return np.array([1.0, 1.0, 1.0])
    monkeypatch.setattr(os, "getloadavg", lambda: (load["now"], 0.0, 0.0))
    monkeypatch.setattr(rounds_mod, "time_slice", busy_slice)
    frame = pk.sweep(_net(), (1, 2), device="cpu", min_time_s=0.0, min_iterations=1, rounds=6)
    assert frame["host_load_1m"].tolist() == [0.5, 0.5]
