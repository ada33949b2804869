"""Summaries say in words when a measurement was disturbed: tested with injected numbers."""
import math

import numpy as np
import pytest

import perfkit as pk
from perfkit.frames import GPU_SAMPLES, QUERIES
from perfkit.profiling.summary import disturbances

QUIET = {"layer_sum_pct_of_e2e": 80.0, "overhead_pct": 6.0, "expected_overhead_pct": 3.0, "latency_cv_pct": 2.0,
         "gpu_throttle": "gpu_idle|sw_power_cap", "host_load_1m": 1.5, "host_cpus": 2}


def test_a_quiet_measurement_has_no_finding():
    d = disturbances(QUIET)
    pk.frames.DIAGNOSES.validate(d)
    assert d.empty
    assert disturbances({"layer_sum_pct_of_e2e": math.nan, "host_load_1m": math.nan, "host_cpus": 2}).empty


@pytest.mark.parametrize("change, finding, words", [
    ({"layer_sum_pct_of_e2e": 209.0}, "layer_sum_above_e2e", "add up to 209% of the end-to-end"),
    ({"overhead_pct": 40.0}, "overhead_beyond_calibration", "calibrated cost is 3.0%"),
    ({"overhead_pct": -88.0}, "overhead_negative", "the unprofiled baseline was slower than the profiled run"),
    ({"latency_cv_pct": 23.0}, "unstable", "varied by 23.0%"),
    ({"gpu_throttle": "hw_slowdown|gpu_idle"}, "throttled", "throttled while measuring (hw_slowdown)"),
    ({"host_load_1m": 3.5}, "host_loaded", "load average was 3.5 on 2 core(s)"),
])
def test_each_disturbance_is_found_and_said_in_words(change, finding, words):
    d = disturbances({**QUIET, **change})
    assert d["finding"].tolist() == [finding] and (d["severity"] == "warning").all()
    assert words in d["explanation"].iloc[0]


def test_a_profiled_run_states_its_disturbances_in_the_overview_and_summary():
    net = pk.models.mnist_mlp()
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    with pk.profile(ctx, memory=False, gpu_metrics=False) as run:
        for _ in range(3):
            ctx.execute(pk.models.sample_input(net, 2))
    run.meta.update(host_load_1m=0.5, host_cpus=2, e2e_unprofiled_cv_pct=1.0)
    v = run.overview_values()
    run.meta["e2e_unprofiled_ms"] = v["layer_sum_corrected_ms"] / 2.09      # the layers sum to 209% of it
    run.meta["e2e_profiled_ms"] = run.meta["e2e_unprofiled_ms"] * (1 + v["expected_overhead_pct"] / 100)
    ov = run.overview().set_index("metric")
    assert ov.loc["disturbed", "value"] == 1.0
    assert "209%" in ov.loc["disturbed: layer_sum_above_e2e", "meaning"]
    assert run.summary().attrs["disturbances"] == [ov.loc["disturbed: layer_sum_above_e2e", "meaning"]]
    run.meta.update(host_load_1m=5.0, host_other_busy_cores=float("nan"))   # busy cores unknown: the load speaks
    assert set(run.disturbances()["finding"]) == {"layer_sum_above_e2e", "host_loaded"}
    run.meta["e2e_unprofiled_ms"] = v["layer_sum_corrected_ms"] * 1.5
    run.meta["e2e_profiled_ms"] = run.meta["e2e_unprofiled_ms"] * 1.5
    run.meta["host_load_1m"] = 0.5
    ov = run.overview().set_index("metric")
    assert list(ov.filter(like="disturbed:", axis=0).index) == ["disturbed: overhead_beyond_calibration"]
    run.meta["e2e_profiled_ms"] = run.meta["e2e_unprofiled_ms"]
    ov = run.overview().set_index("metric")
    assert ov.loc["disturbed", "value"] == 0.0 and "no sign of disturbance" in ov.loc["disturbed", "meaning"]


def _queries(cv_spread=0.0):
    rows = [{"run_id": "r", "query": i, "stream": 0, "batch_size": 1, "enqueue_start_ns": i * 10_000_000,
             "enqueue_end_ns": i * 10_000_000 + 100_000, "end_ns": i * 10_000_000 + 5_000_000, "enqueue_ms": 0.1,
             "h2d_ms": 0.1, "compute_ms": 2.0 + (cv_spread if i % 2 else 0.0), "d2h_ms": 0.1,
             "latency_ms": 2.2 + (cv_spread if i % 2 else 0.0), "host_latency_ms": 5.0} for i in range(10)]
    return QUERIES.frame(rows)


def test_measure_diagnoses_name_host_load_spread_and_throttling():
    from perfkit.bench.measure import _diagnose, _summary
    q = _queries()
    calm = _summary(q, 1, 100.0, (90,), threads=2, host={"host_load_1m": 1.0, "host_cpus": 2})
    assert _diagnose(q, calm, GPU_SAMPLES.frame([]), True, "cpu").empty
    busy = _summary(q, 1, 100.0, (90,), threads=2, host={"host_load_1m": 4.0, "host_cpus": 2})
    d = _diagnose(q, busy, GPU_SAMPLES.frame([]), True, "cpu").set_index("finding")
    assert list(d.index) == ["host_loaded"] and "4.0 on 2 core(s)" in d.loc["host_loaded", "explanation"]
    noisy = _queries(cv_spread=1.0)
    gpu = GPU_SAMPLES.frame([{"ts_ns": 1, "gpu": 0, "util_gpu_pct": 99.0, "util_mem_pct": 50.0, "mem_used_bytes": 1,
                              "sm_clock_mhz": 1200.0, "mem_clock_mhz": 3000.0, "power_w": 300.0,
                              "power_limit_w": 700.0, "temperature_c": 90.0, "throttle_reasons": "sw_thermal"}])
    d = _diagnose(noisy, _summary(noisy, 1, 100.0, (90,)), gpu, True, "cuda").set_index("finding")
    assert {"unstable", "throttled"} <= set(d.index) and "sw_thermal" in d.loc["throttled", "explanation"]
    assert np.isnan(_summary(q, 1, 100.0, (90,)).set_index("metric").loc["host_load_1m", "value"])


def test_a_loaded_host_with_several_blas_threads_is_told_to_use_one():
    (advice,) = disturbances({"host_load_1m": 6.1, "host_cpus": 2, "threads": 2})["explanation"]
    assert "2 BLAS threads" in advice and "threads=1" in advice
    (plain,) = disturbances({"host_load_1m": 6.1, "host_cpus": 2, "threads": 1})["explanation"]
    assert "threads=1" not in plain


def test_a_run_whose_gpu_samples_show_throttling_says_so():
    net = pk.models.mnist_mlp()
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    with pk.profile(ctx, memory=False, gpu_metrics=False, baseline=False) as run:
        ctx.execute(pk.models.sample_input(net, 2))
    run.meta.update(host_load_1m=0.1, host_cpus=2)
    assert "throttled" not in set(run.disturbances()["finding"])
    sample = {"ts_ns": 1, "gpu": 0, "util_gpu_pct": 99.0, "util_mem_pct": 50.0, "mem_used_bytes": 1,
              "sm_clock_mhz": 990.0, "mem_clock_mhz": 3000.0, "power_w": 300.0, "power_limit_w": 700.0,
              "temperature_c": 91.0}
    run.frames["gpu"] = GPU_SAMPLES.frame([{**sample, "throttle_reasons": "gpu_idle"},
                                           {**sample, "throttle_reasons": "hw_thermal|sw_power_cap"}])
    d = run.disturbances().set_index("finding")
    assert list(d.index) == ["throttled"] and "(hw_thermal)" in d.loc["throttled", "explanation"]
    assert "disturbed: throttled" in set(run.overview()["metric"])


def _baseline_with_planted_times(monkeypatch, sample_ms):
    """A real run whose unprofiled baseline reads a fake nanosecond clock: the i-th baseline sample lasts
    sample_ms(i) ms."""
    import itertools
    import time
    import types

    from perfkit.profiling import run as run_mod
    net = pk.models.mnist_mlp()
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    with pk.profile(ctx, memory=False, gpu_metrics=False, baseline=False) as run:
        ctx.execute(pk.models.sample_input(net, 2))
    clock, calls = [0], itertools.count()

    def fake_ns():
        k = next(calls)
        clock[0] += int(sample_ms(k // 2) * 1e6) if k % 2 else 1000
        return clock[0]
    monkeypatch.setattr(run_mod, "time", types.SimpleNamespace(perf_counter=time.perf_counter, perf_counter_ns=fake_ns))
    run._measure_baseline()
    return run


def test_one_outlying_baseline_inference_does_not_make_a_run_unstable(monkeypatch):
    run = _baseline_with_planted_times(monkeypatch, lambda i: 40.0 if i == 7 else 1.0 + 0.001 * (i % 3))
    assert run.meta["e2e_unprofiled_cv_pct"] < 1.0
    run.meta.update(host_load_1m=0.1, host_cpus=2)
    assert "unstable" not in set(run.disturbances()["finding"])


def test_a_baseline_with_two_modes_makes_a_run_unstable(monkeypatch):
    run = _baseline_with_planted_times(monkeypatch, lambda i: 1.5 if i % 2 else 1.0)
    assert run.meta["e2e_unprofiled_cv_pct"] > 20.0
    assert "unstable" in set(run.disturbances()["finding"])


def test_measure_reads_the_host_load_before_timing_and_advises_one_thread(monkeypatch):
    import importlib
    import os
    measure_mod = importlib.import_module("perfkit.bench.measure")     # the module, not the function
    load = {"now": 5.0}
    real = measure_mod._timed

    def timed(*a):
        out = real(*a)
        load["now"] = 50.0                     # perfkit's own threads, after timing
        return out
    monkeypatch.setattr(measure_mod, "_timed", timed)
    monkeypatch.setattr(os, "getloadavg", lambda: (load["now"], 0.0, 0.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(measure_mod, "other_busy_cores", lambda a, b: float("nan"))   # unknown: the load decides
    dev = pk.get_device("cpu", threads=2)
    try:
        net = pk.models.mnist_mlp()
        ctx = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
        m = pk.bench.measure(ctx, iterations=5, duration_s=0.0, warmup_ms=0)
    finally:
        dev.threads = None
    assert m.meta["host_load_1m"] == 5.0 and m.value("host_load_1m") == 5.0
    (advice,) = m.diagnoses.loc[m.diagnoses["finding"] == "host_loaded", "explanation"]
    assert "2 BLAS threads" in advice and "threads=1" in advice


def test_a_run_reads_the_host_load_when_it_starts_not_after_its_own_inferences(monkeypatch):
    import os
    load = {"now": 0.5}
    monkeypatch.setattr(os, "getloadavg", lambda: (load["now"], 0.0, 0.0))
    net = pk.models.mnist_mlp()
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    with pk.profile(ctx, memory=False, gpu_metrics=False, baseline=False) as run:
        ctx.execute(pk.models.sample_input(net, 2))
        load["now"] = 9.0                        # the run's own work raised it
    assert run.meta["host_load_1m"] == 0.5


def test_a_negative_overhead_within_noise_is_no_finding_and_beyond_it_is():
    """Profiling cannot speed an inference up: -88 % (unprofiled 283.98 ms, profiled 34.07 ms, seen under
    load) means the baseline was disturbed; -4 % with a 3 % calibrated cost is noise."""
    assert disturbances({**QUIET, "overhead_pct": -4.0}).empty
    assert disturbances({**QUIET, "overhead_pct": -7.9}).empty            # within -(3 + 5)
    d = disturbances({**QUIET, "overhead_pct": 100.0 * (34.07 - 283.98) / 283.98})
    assert list(d["finding"]) == ["overhead_negative"]
    assert d["threshold"].iloc[0] == -8.0 and "-88%" in d["explanation"].iloc[0]


def test_measured_busy_cores_decide_over_the_machine_wide_load_average():
    # a sweep worker pinned to one core: the load average counts the other worker too, the measured busy cores
    # of its own core do not
    pinned = {"host_load_1m": 1.5, "host_cpus": 1, "threads": 1}
    assert disturbances({**pinned, "host_other_busy_cores": 0.05}).empty
    assert disturbances(pinned)["finding"].tolist() == ["host_loaded"]          # unknown: the load average
    (said,) = disturbances({**pinned, "host_other_busy_cores": 0.9})["explanation"]
    assert "one BLAS thread" in said and "threads=1" not in said                  # no advice it already follows
    (said,) = disturbances({"host_cpus": 2, "threads": 2, "host_other_busy_cores": 1.5})["explanation"]
    assert "threads=1" in said


def test_gpu_rows_keep_the_load_average_finding():
    # CUDA rows have no 'contended' rule (their threads are 0): their measured busy cores do not silence the load
    (said,) = disturbances({"host_load_1m": 40.0, "host_cpus": 16, "threads": 0, "device": "cuda:0",
                            "host_other_busy_cores": 14.0})["finding"]
    assert said == "host_loaded"


def test_a_lopsided_interval_is_named_even_when_the_robust_spread_is_small():
    from perfkit.profiling.summary import disturbances
    # the new user's lenet row: 0.2848 ms (0.281-0.4717), spread 1.3%: one round far slower than the rest
    row = {"latency_median_ms": 0.2848, "latency_ci_low_ms": 0.281, "latency_ci_high_ms": 0.4717,
           "latency_cv_pct": 1.3}
    d = disturbances(row)
    (said,) = d[d["finding"] == "wide_interval"]["explanation"]
    assert "67% of the median" in said and "robust spread is only 1.3%" in said
    tight = {**row, "latency_ci_high_ms": 0.30}
    assert "wide_interval" not in set(disturbances(tight)["finding"])
