"""Per-layer profiling, profiling runs, tracking allocator, exports (CPU; CUDA variants carry the gpu marker)."""
import json
import time

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.frames import LAYER_TIMES, MEMORY_EVENTS, SCHEMAS
from perfkit.frames.exporters import trtexec_profile, trtexec_times
from perfkit.profiling import layer_summary

from device_helpers import to_host
from oracles import assert_close, depth, reference_forward


@pytest.fixture
def resnet(device):
    net = pk.models.resnet_small()
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4))
    return net, eng, eng.create_execution_context()


class Recorder:
    def __init__(self):
        self.calls = []

    def report_layer_time(self, layer_name, ms):
        self.calls.append((layer_name, ms))


def test_plain_profiler_called_once_per_layer_in_order(resnet):
    net, eng, ctx = resnet
    rec = Recorder()
    ctx.profiler = rec
    x = pk.models.sample_input(net, 2)
    t0 = time.perf_counter_ns()
    ctx.execute(x)
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    names = [s.name for s in eng.plan.steps]
    assert [c[0] for c in rec.calls] == names
    assert all(ms > 0 for _, ms in rec.calls)                    # every layer took time ...
    assert sum(ms for _, ms in rec.calls) <= wall_ms             # ... in ms, within the call that ran it
    ctx.profiler = None
    ctx.execute(pk.models.sample_input(net, 2))
    assert len(rec.calls) == len(names)


def test_profiling_through_enqueue_on_several_streams(resnet):
    net, eng, ctx = resnet
    dev = eng.device
    timer = pk.LayerTimer()
    ctxs = [eng.create_execution_context() for _ in range(3)]
    streams = [dev.create_stream() for _ in ctxs]
    for c in ctxs:
        c.profiler = timer
    x = dev.to_device(pk.models.sample_input(net, 4)["data"])
    for _ in range(2):
        for c, s in zip(ctxs, streams):
            c.enqueue({"data": x}, s)
    for s in streams:
        s.synchronize()
    for c in ctxs:
        c.wait_profiles()
    f = timer.frame
    LAYER_TIMES.validate(f)
    n = len(eng.plan.steps)
    assert len(f) == 6 * n and f["iteration"].nunique() == 6
    assert f["stream"].nunique() == 3 and f["context"].nunique() == 3
    for _, g in f.groupby("iteration"):
        g = g.sort_values("index")
        assert (g["end_ns"].to_numpy() >= g["start_ns"].to_numpy()).all()
        assert (g["start_ns"].to_numpy()[1:] >= g["end_ns"].to_numpy()[:-1]).all()   # layers in order
        assert list(g["layer"]) == [s.name for s in eng.plan.steps]


def test_layer_summary_arithmetic_on_known_inputs():
    rows = []
    for it, times in enumerate([(1.0, 3.0), (2.0, 5.0), (3.0, 4.0)]):
        t = 1_000_000
        for i, (name, ms) in enumerate(zip(("a", "b"), times)):
            rows.append({"run_id": "r", "iteration": it, "index": i, "layer": name, "type": "conv" if i else "fc",
                         "start_ns": t, "end_ns": t + int(ms * 1e6), "ms": ms, "stream": "s", "context": "c",
                         "batch_size": 1, "precision": "fp32", "clock": "host"})
            t += int(ms * 1e6)
    s = layer_summary(LAYER_TIMES.frame(rows)).set_index("layer")
    assert list(s.index) == ["b", "a"]                           # sorted by total
    assert s.loc["a", "count"] == 3 and s.loc["a", "total_ms"] == 6.0 and s.loc["a", "mean_ms"] == 2.0
    assert s.loc["b", "median_ms"] == 4.0 and s.loc["b", "min_ms"] == 3.0 and s.loc["b", "max_ms"] == 5.0
    assert s.loc["b", "p90_ms"] == pytest.approx(np.percentile([3, 5, 4], 90))
    assert s["pct"].sum() == pytest.approx(100) and s.loc["a", "pct"] == pytest.approx(100 * 6 / 18)
    by_type = layer_summary(LAYER_TIMES.frame(rows), by="type").set_index("layer")
    assert by_type.loc["conv", "total_ms"] == 12.0


def test_profile_run_frames_summary_and_overview(resnet, tmp_path):
    net, eng, ctx = resnet
    x = pk.models.sample_input(net, 4)
    with pk.profile(ctx) as run:
        for _ in range(5):
            ctx.execute(x)
    for name, schema in (("layers", "layer_times"), ("memory", "memory_events"), ("queries", "queries"),
                         ("gpu", "gpu_samples"), ("kernels", "kernels")):
        SCHEMAS[schema].validate(run.frames[name])
    assert run.layers["iteration"].nunique() == 5 and len(run.queries) == 5
    o = run.overview().set_index("metric")["value"]
    assert o["iterations"] == 5 and o["layers_per_inference"] == len(eng.plan.steps)
    per_inference = run.layers.groupby("iteration")["ms"].sum().sort_index()
    assert o["layer_sum_ms"] == pytest.approx(per_inference.median())
    q = run.queries.sort_values("enqueue_start_ns")
    assert o["e2e_profiled_ms"] == pytest.approx(q["host_latency_ms"].median())
    # each inference's layers ran inside that inference: their times add up to less than its latency
    assert (per_inference.to_numpy() <= q["host_latency_ms"].to_numpy()).all()
    assert o["overhead_pct"] == pytest.approx(100 * (o["e2e_profiled_ms"] / o["e2e_unprofiled_ms"] - 1))
    assert o["predicted_device_memory_bytes"] == eng.device_memory_bytes
    assert o["measured_device_memory_bytes"] == eng.device_memory_bytes
    # the figures' arithmetic (their size at 5 inferences is host noise; benchmarks/ measures them at batch 32)
    assert o["layer_sum_pct_of_e2e"] == pytest.approx(100 * o["layer_sum_corrected_ms"] / o["e2e_unprofiled_ms"])
    assert o["gap_ms"] == pytest.approx(o["e2e_unprofiled_ms"] - o["layer_sum_corrected_ms"])
    if eng.device.kind == "cpu":                                # host clock: less each boundary's timestamp cost
        assert o["layer_sum_corrected_ms"] == pytest.approx(
            o["layer_sum_ms"] - o["event_cost_ns"] * (len(eng.plan.steps) + 1) / 1e6)
    assert o["graph_replays_pct"] == (0 if eng.device.kind == "cpu" else pytest.approx(80))   # 1st: capture
    s = run.summary()
    assert s["count"].eq(5).all() and len(s) == len(eng.plan.steps)
    assert s.attrs["iterations"] == 5
    assert ctx.profiler is None                                     # restored after the run
    run.save(tmp_path / "run")
    loaded = pk.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.layers, run.layers, check_like=True)
    assert loaded.meta["engine"] == eng.name and loaded.summary().shape == s.shape
    if eng.device.kind == "cpu":
        assert any("no GPU" in m for m in run.messages) and run.gpu.empty


def test_overview_of_an_inference_of_known_duration():
    """A layer that sleeps 20 ms: every end-to-end figure is at least that, in milliseconds (an error
    of units, 1000x, falls outside the generous upper bound)."""
    pk.register_plugin("sleep_20ms", lambda shapes, p: [shapes[0]],
                       impl=lambda xp, ins, p: [time.sleep(0.02) or ins[0] * 1], replace=True)
    net = pk.Network("sleepy")
    net.mark_output(net.add_plugin("sleep_20ms", [net.add_input("x", (3,))], name="nap").output)
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1)).create_execution_context()
    with pk.profile(ctx, memory=False, gpu_metrics=False) as run:
        for _ in range(3):
            ctx.execute({"x": np.ones((1, 3), np.float32)})
    o = run.overview().set_index("metric")["value"]
    nap = run.layers.loc[run.layers["layer"] == "nap", "ms"]
    assert len(nap) == 3 and (nap >= 20).all()
    for k in ("layer_sum_ms", "e2e_profiled_ms", "e2e_unprofiled_ms"):
        assert 20 <= o[k] < 1000, (k, o[k])


def test_load_run_rejects_other_directories(tmp_path):
    with pytest.raises(pk.profiling.RunLoadError, match="not a saved perfkit run"):
        pk.load_run(tmp_path)


def test_exports(resnet, tmp_path):
    net, eng, ctx = resnet
    with pk.profile(ctx) as run:
        for _ in range(3):
            ctx.execute(pk.models.sample_input(net, 2))
    trace = json.load(open(run.export_chrome_trace(tmp_path / "t.json")))
    evs = trace["traceEvents"]
    slices = [e for e in evs if e["ph"] == "X"]
    assert all({"name", "ts", "dur", "pid", "tid"} <= set(e) for e in slices)
    assert sum(e.get("cat") == "layer" for e in slices) == 3 * len(eng.plan.steps)
    assert sum(e.get("cat") == "query" for e in slices) == 3
    assert all(e["ph"] in ("X", "M", "C") for e in evs)
    assert min(e["ts"] for e in evs if e["ph"] != "M") == 0                      # microseconds from the run's start
    layer_slices = sorted((e["ts"], e["dur"], e["name"]) for e in slices if e.get("cat") == "layer")
    rows = run.layers.sort_values("start_ns")
    start = rows["start_ns"].to_numpy()
    np.testing.assert_allclose([s[0] - layer_slices[0][0] for s in layer_slices], (start - start[0]) / 1e3)
    np.testing.assert_allclose([s[1] for s in layer_slices],
                               np.maximum((rows["end_ns"].to_numpy() - start) / 1e3, 0.001))
    assert [s[2] for s in layer_slices] == list(rows["layer"])
    prof = json.load(open(run.export_profile(tmp_path / "p.json")))
    assert prof[0] == {"count": 3} and len(prof) == 1 + len(eng.plan.steps)
    assert sum(p["percentage"] for p in prof[1:]) == pytest.approx(100)
    assert {"name", "timeMs", "averageMs", "medianMs", "percentage"} <= set(prof[1])
    times = json.load(open(run.export_times(tmp_path / "q.json")))
    assert len(times) == 3 and {"startEnqMs", "endEnqMs", "latencyMs", "computeMs", "h2dMs", "d2hMs"} <= set(times[0])
    assert trtexec_profile(LAYER_TIMES.frame([])) == [{"count": 0}] and trtexec_times(run.queries.iloc[:0]) == []


def test_tracking_allocator_accounting():
    tracker = pk.TrackingAllocator(device="cpu")
    eng = pk.Builder("cpu", allocator=tracker).build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=8))
    ctx = eng.create_execution_context()
    ctx2 = eng.create_execution_context()
    ctx2.close()
    ev = tracker.events
    MEMORY_EVENTS.validate(ev)
    live = {}
    for r in ev.itertuples():
        if r.action == "alloc":
            live[r.ptr] = r.size_bytes
        elif r.action == "free":
            live.pop(r.ptr)
        assert r.in_use_bytes == sum(live.values())             # the running total is the sum of live blocks
    assert list(ev["peak_bytes"]) == list(ev["in_use_bytes"].cummax())     # the peak is the highest total so far
    owners = tracker.live().set_index(["tag", "owner"])["bytes"]
    assert owners[("weights", eng.owner)] == eng.memory["weights"]
    assert owners[("activations", ctx.owner)] == eng.memory["activations"]
    assert tracker.in_use_bytes == eng.device_memory_bytes     # the engine's memory is fully attributed
    assert set(ev["tag"]) >= {"weights", "activations", "io", "workspace"}
    assert (ev.loc[ev["owner"] == "builder", "tag"] == "workspace").all()   # tactic timing borrowed workspace


def test_allocation_attributed_to_running_layer():
    tracker = pk.TrackingAllocator(device="cpu")
    seen = []

    def impl(xp, ins, params):
        buf = tracker.allocate(1024)
        seen.append(buf)
        tracker.free(buf)
        return ins[0]
    pk.register_plugin("allocating", lambda s, p: s[0], impl=impl, replace=True)
    net = pk.Network("a")
    x = net.add_input("x", (3,))
    net.mark_output(net.add_plugin("allocating", [x], name="alloc_layer").output)
    ctx = pk.Builder("cpu", allocator=tracker).build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    ctx.execute({"x": np.ones((1, 3), np.float32)})
    user = tracker.events.query("tag == 'user'")
    assert list(user["layer"]) == ["alloc_layer", "alloc_layer"] and list(user["action"]) == ["alloc", "free"]


class Limited:
    """An allocator with a byte limit: a device that is nearly full."""

    def __init__(self, limit):
        self.base, self.limit, self.used = pk.get_device("cpu").allocator, limit, 0

    def allocate(self, size, alignment=256, flags=0):
        if self.used + size > self.limit:
            raise MemoryError("device full")
        self.used += size
        return self.base.allocate(size, alignment, flags)

    def free(self, b):
        self.used -= b.nbytes


@pytest.mark.parametrize("fails_at", ["activations", "workspace", "io"])
def test_oom_is_recorded_leaves_nothing_behind_and_the_engine_stays_usable(fails_at):
    """A second context does not fit; its creation fails at its first, second or third buffer (in the
    order activations, workspace, io) and must give back whatever it took."""
    net = pk.models.mnist_mlp()
    probe = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=4, tactics="default"))
    m = probe.memory
    fits = {"activations": 0, "workspace": m["activations"], "io": m["activations"] + m["workspace"]}[fails_at]
    tracker = pk.TrackingAllocator(Limited(probe.device_memory_bytes + fits + 100))
    eng = pk.Builder("cpu", allocator=tracker).build(net, pk.BuilderConfig(max_batch_size=4, tactics="default"))
    ctx = eng.create_execution_context()
    held = tracker.in_use_bytes
    with pytest.raises(pk.AllocationError,
                       match=rf"out of memory: context:.* asked for {m[fails_at]} bytes of {fails_at}.* held"):
        eng.create_execution_context()
    ev = tracker.events
    assert (ev["action"] == "oom").sum() == 1
    x = pk.models.sample_input(net, 2)
    fresh = probe.create_execution_context().execute(x)["prob"]
    np.testing.assert_array_equal(ctx.execute(x)["prob"], fresh)    # the surviving context computes as before
    assert tracker.in_use_bytes == held, tracker.live()             # the failed context gave back what it took


@pytest.mark.skipif(pk.cuda_available(), reason="checks the machine without a GPU")
def test_nvml_sampler_without_a_gpu_is_quiet():
    s = pk.NvmlSampler()
    with s:
        pass
    assert s.frame.empty and "NVML could not be used" in s.message and "nvidia-ml-py" in s.message
    assert s.frame.attrs["message"] == s.message


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_nvml_sampler_on_a_gpu_samples_at_start_and_stop():
    pynvml = pytest.importorskip("pynvml", reason="GPU metrics need nvidia-ml-py (the cuda extras)")
    s = pk.NvmlSampler(interval_ms=5)
    with s:
        time.sleep(0.1)
    f = s.frame
    SCHEMAS["gpu_samples"].validate(f)
    assert s.message == "" and len(f) >= 3                      # one at start, the thread's, one at stop
    assert f["ts_ns"].is_monotonic_increasing and (f["gpu"] == 0).all()
    total = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).total
    assert ((f["mem_used_bytes"] > 0) & (f["mem_used_bytes"] <= total)).all()
    assert (f["sm_clock_mhz"] > 0).all() and (f["power_w"] <= f["power_limit_w"] * 1.2).all()


def test_measure_cpu_summary_and_diagnoses():
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8))
    m = pk.bench.measure(eng.create_execution_context(), 8, iterations=20, duration_s=0.2, warmup_ms=20)
    SCHEMAS["queries"].validate(m.queries)
    SCHEMAS["diagnoses"].validate(m.diagnoses)
    q = m.queries
    assert len(q) >= 20 and list(q["query"]) == list(range(len(q)))
    assert np.allclose(q["latency_ms"], q["h2d_ms"] + q["compute_ms"] + q["d2h_ms"])
    assert np.allclose(q["host_latency_ms"], (q["end_ns"] - q["enqueue_start_ns"]) / 1e6)
    assert np.allclose(q["enqueue_ms"], (q["enqueue_end_ns"] - q["enqueue_start_ns"]) / 1e6)
    assert ((q["compute_ms"] > 0) & (q["latency_ms"] <= q["host_latency_ms"])).all()   # device time inside host time
    assert m.value("latency_median_ms") == pytest.approx(q["latency_ms"].median())
    assert m.value("latency_min_ms") <= m.value("latency_median_ms") <= m.value("latency_max_ms")
    assert m.value("throughput_per_s") == pytest.approx(len(q) * 8 / (m.value("total_host_wall_ms") / 1e3))
    m2 = pk.bench.measure(eng.create_execution_context(), 4, iterations=10, duration_s=0.1, warmup_ms=10, streams=2)
    assert set(m2.queries["stream"]) == {0, 1}


def test_diagnoses_from_known_figures():
    from perfkit.bench.measure import _diagnose, _summary
    from perfkit.frames import GPU_SAMPLES, QUERIES
    rows = [{"run_id": "r", "query": i, "stream": 0, "batch_size": 1, "enqueue_start_ns": i * 10_000_000,
             "enqueue_end_ns": i * 10_000_000 + 1_200_000, "end_ns": i * 10_000_000 + 5_000_000,
             "enqueue_ms": 1.2, "h2d_ms": 2.0, "compute_ms": 1.0 + (0.5 if i % 2 else 0.0), "d2h_ms": 0.1,
             "latency_ms": 3.1 + (0.5 if i % 2 else 0.0), "host_latency_ms": 5.0} for i in range(10)]
    q = QUERIES.frame(rows)
    gpu = GPU_SAMPLES.frame([{"ts_ns": 1, "gpu": 0, "util_gpu_pct": 99.0, "util_mem_pct": 50.0, "mem_used_bytes": 1,
                              "sm_clock_mhz": 1500.0, "mem_clock_mhz": 3000.0, "power_w": 699.0,
                              "power_limit_w": 700.0, "temperature_c": 80.0, "throttle_reasons": "sw_power_cap"}])
    d = _diagnose(q, _summary(q, 1, 100.0, (90,)), gpu, True, "cuda").set_index("finding")
    assert {"enqueue_bound", "h2d_bound", "unstable", "power_capped"} <= set(d.index)
    assert "d2h_bound" not in d.index and "throttled" not in d.index
    assert "page-locked" in d.loc["h2d_bound", "explanation"]


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_cuda_kernels_nvtx_and_gpu_metrics():
    pytest.importorskip("cupti", reason="kernel tracing needs cupti-python (the cuda extras)")
    pytest.importorskip("nvtx", reason="NVTX ranges need the nvtx package (the cuda extras)")
    net = pk.models.lenet()
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=8))
    ctx = eng.create_execution_context()
    x = {"data": eng.device.to_device(pk.models.sample_input(net, 8)["data"])}
    with pk.profile(ctx, kernels=True, nvtx=True, interval_ms=1, memory="all") as run:
        for _ in range(5):
            ctx.execute(x)
    assert not [m for m in run.messages if m.startswith(("kernels", "nvtx", "gpu"))], run.messages
    k = run.kernels
    assert len(k) and set(k["layer"]) - {""} <= set(s.name for s in eng.plan.steps)
    assert (k["layer"] != "").mean() > 0.9 and set(k["iteration"]) - {-1} == set(range(5))
    lay = run.layers
    first = lay[lay["iteration"] == 0].sort_values("index")
    kk = k[(k["iteration"] == 0) & (k["layer"] == first["layer"].iloc[0])]
    assert kk["start_ns"].min() >= first["start_ns"].iloc[0] - 200_000        # same timeline, within 0.2 ms
    assert len(run.gpu) >= 1 and (run.gpu["sm_clock_mhz"] > 0).all()
    assert (run.memory["tag"] == "user").any()             # CuPy temporaries seen through the allocator hook


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_measure_on_cuda_with_transfers_and_streams():
    net = pk.models.resnet_small()
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=8))
    ctx = eng.create_execution_context()
    m = pk.bench.measure(ctx, 8, iterations=20, duration_s=0.3, warmup_ms=50, streams=2)
    q = m.queries
    assert len(q) >= 20 and set(q["stream"]) == {0, 1}
    assert (q["h2d_ms"] > 0).all() and (q["d2h_ms"] > 0).all() and (q["compute_ms"] > 0).all()
    assert np.allclose(q["latency_ms"], q["h2d_ms"] + q["compute_ms"] + q["d2h_ms"])
    assert len(m.gpu) >= 1
    x = pk.models.sample_input(net, 8)
    assert_close(to_host(ctx.execute(x)["prob"]), reference_forward(net, x)["prob"], "fp32", depth=depth(net))


def test_layer_times_with_a_mocked_clock(monkeypatch):
    """With a clock that advances 1 ms per reading, each CPU layer lasts exactly 1 ms and starts 1 ms
    after the previous one ended; the summary and the trtexec export follow exactly."""
    import itertools

    from perfkit.runtime import profiled
    net = pk.models.lenet()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, tactics="default"))
    ctx = eng.create_execution_context()
    ticks = itertools.count(0, 1_000_000)
    monkeypatch.setattr(profiled.time, "perf_counter_ns", lambda: next(ticks))
    timer = pk.LayerTimer()
    ctx.profiler = timer
    for _ in range(3):
        ctx.execute(pk.models.sample_input(net, 2))
    f = timer.frame
    n = len(eng.plan.steps)
    assert (f["ms"] == 1.0).all() and len(f) == 3 * n
    g = f[f["iteration"] == 1].sort_values("index")
    assert list(np.diff(g["start_ns"])) == [2_000_000] * (n - 1)
    s = layer_summary(f)
    assert (s["count"] == 3).all() and (s["total_ms"] == 3.0).all() and s["pct"].sum() == pytest.approx(100)
    prof = trtexec_profile(f)
    assert prof[0] == {"count": 3} and all(p["averageMs"] == 1.0 for p in prof[1:])
