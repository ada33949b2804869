"""``input_consumed`` fires once the last layer reading an input is done: from then on the caller may
reuse its input buffers while later layers still run (CPU: a plugin layer holds the stream there)."""
import threading

import numpy as np
import pytest

import perfkit as pk


@pytest.fixture
def gated_net():
    """x -> fc (the only reader of x) -> gate (waits for the test) -> y."""
    gate, entered = threading.Event(), threading.Event()

    def impl(xp, ins, params):
        entered.set()
        if not gate.wait(10):
            raise RuntimeError("the test never opened the gate")
        return [ins[0] * 2]
    pk.register_plugin("test_gate", lambda shapes, p: [shapes[0]], impl=impl, replace=True)
    net = pk.Network("gated")
    x = net.add_input("x", (6,))
    fc = net.add_fully_connected(x, 4, np.arange(24, dtype=np.float32).reshape(4, 6) / 10, name="fc")
    net.mark_output(net.add_plugin("test_gate", [fc.output], name="gate").output)
    yield net, gate, entered
    gate.set()


def test_inputs_may_be_reused_once_input_consumed_fired(gated_net):
    net, gate, entered = gated_net
    dev = pk.get_device("cpu")
    ctx = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=2, tactics="default")).create_execution_context()
    x = np.random.default_rng(3).standard_normal((2, 6)).astype(np.float32)
    gate.set()
    want = ctx.execute({"x": x})["gate"].copy()
    np.testing.assert_allclose(want, 2 * x @ (np.arange(24).reshape(4, 6) / 10).T, rtol=1e-5)
    gate.clear()
    entered.clear()
    stream, consumed = dev.create_stream(), dev.create_event()
    buf = x.copy()
    out = ctx.enqueue({"x": buf}, stream, input_consumed=consumed)
    assert entered.wait(10)                     # the stream is inside the layer after the input's last reader
    assert consumed.query()                     # ... and input_consumed has fired already
    assert not stream.query()                   # the inference is not over
    buf[...] = np.nan                           # the caller reuses its input buffer
    gate.set()
    stream.synchronize()
    np.testing.assert_array_equal(out["gate"], want)
