"""CUDA device specifics (skipped without a GPU)."""
import time

import numpy as np
import pytest

import perfkit as pk
from device_helpers import HAS_CUDA
from oracles import assert_close, depth, reference_forward

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU/CuPy")]


def test_pinned_buffers_are_page_locked():
    import cupy
    dev = pk.get_device("cuda")
    a = dev.pinned_empty((1024,), np.float32)
    attrs = cupy.cuda.runtime.pointerGetAttributes(a.ctypes.data)
    assert attrs.type == cupy.cuda.runtime.memoryTypeHost


def test_streams_events_and_copies():
    import cupy
    dev = pk.get_device("cuda")
    s = dev.create_stream()
    start, end = dev.create_event(), dev.create_event()
    host = np.arange(1 << 20, dtype=np.float32)
    t0 = time.perf_counter_ns()
    start.record(s)
    d = dev.to_device(host, stream=s)
    end.record(s)
    back = dev.to_host(d, stream=s)
    s.synchronize()
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    assert 0 < dev.elapsed_ms(start, end) <= wall_ms          # the 4 MiB copy took time, in ms, within the wall time
    np.testing.assert_array_equal(back, host)
    name = cupy.cuda.runtime.getDeviceProperties(dev.index)["name"]
    assert dev.info()["device_name"] == (name.decode() if isinstance(name, bytes) else name)


def test_execute_with_host_inputs_uses_pinned_staging():
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=8))
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 5)
    out = ctx.execute(x)["prob"]
    assert isinstance(out, np.ndarray)
    assert_close(out, reference_forward(net, x)["prob"], "fp32", depth=depth(net))
    dev_out = ctx.execute({"data": eng.device.to_device(x["data"])})["prob"]
    np.testing.assert_array_equal(out, dev_out.get())


def test_cpu_engine_rejects_cupy_arrays():
    import cupy
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    with pytest.raises(pk.BindingError, match="CuPy array"):
        eng.create_execution_context().execute({"data": cupy.zeros((1, 1, 28, 28), np.float32)})


@pytest.mark.skipif(not HAS_CUDA or pk.device.cuda.cuda_device_count() < 2, reason="needs two GPUs")
def test_a_second_gpu_builds_loads_and_runs_from_any_thread(tmp_path):
    """cuda:1 used from a thread whose current GPU is cuda:0 (CUDA's default): the build times, the weights
    land and every kernel runs on cuda:1, and the thread's current GPU is left as it was. Before the device
    was made current for these calls, the build's first kernel read cuda:1's arrays from cuda:0 and failed
    with an illegal memory access."""
    import threading

    import cupy
    net = pk.models.lenet()
    x = pk.models.sample_input(net, 4)
    want = reference_forward(net, x)["prob"]
    cupy.cuda.Device(0).use()
    eng = pk.Builder("cuda:1").build(net, pk.BuilderConfig(max_batch_size=4, precision="fp16"))
    assert cupy.cuda.runtime.getDevice() == 0
    path = tmp_path / "lenet.engine"
    eng.save(path)
    loaded = pk.load_engine(path, device="cuda:1")
    for engine in (eng, loaded):
        ctx = engine.create_execution_context()
        outs = [ctx.execute(x)["prob"] for _ in range(3)]           # eager, capture, replay
        assert ctx.graph_status.startswith("on"), ctx.graph_status
        dev_out = ctx.execute({"data": engine.device.to_device(x["data"])})["prob"]
        assert dev_out.device.id == 1
        got = {}
        t = threading.Thread(target=lambda: got.update(out=ctx.execute(x)["prob"]))
        t.start()
        t.join()
        for out in outs + [dev_out.get(), got["out"]]:
            assert_close(out, want, "fp16", depth=depth(net))
        assert cupy.cuda.runtime.getDevice() == 0
    rows = pk.sweep([net], batch_sizes=[2], precisions=["fp32"], device="cuda:1", min_time_s=0.0,
                    min_iterations=2, progress=False)
    assert rows["error"].tolist() == [""] and rows["device"].tolist() == ["cuda:1"]
    m = pk.bench.measure(eng.create_execution_context(), 4, warmup_ms=5, iterations=5, duration_s=0.05, streams=2)
    assert len(m.queries) >= 5 and (m.queries["compute_ms"] > 0).all()      # its buffers and copies on cuda:1
    assert (pk.bench.transfers("cuda:1", sizes_bytes=[1 << 20], repeats=2)["bandwidth_gb_s"] > 0).all()
    assert cupy.cuda.runtime.getDevice() == 0
