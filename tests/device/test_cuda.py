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
