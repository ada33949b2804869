import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward


@pytest.fixture
def mnist(device):
    eng = pk.Builder(device).build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=8))
    return eng, eng.create_execution_context()


def test_execute_any_batch_up_to_max(mnist, rng):
    eng, ctx = mnist
    net = pk.models.mnist_mlp()
    for b in (1, 3, 8):
        x = {"data": rng.standard_normal((b, 1, 28, 28)).astype(np.float32)}
        assert_close(to_host(ctx.execute(x)["prob"]), reference_forward(net, x)["prob"], "fp32", depth=depth(net))


def test_batch_size_argument_uses_first_rows(mnist, rng):
    eng, ctx = mnist
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    full = to_host(ctx.execute({"data": x})["prob"])
    part = to_host(ctx.execute({"data": x}, batch_size=3)["prob"])
    np.testing.assert_allclose(part, full[:3], rtol=1e-6, atol=1e-7)   # BLAS may block differently per batch


BAD = [
    ({"data": np.zeros((9, 1, 28, 28), np.float32)}, pk.BatchSizeError, "larger than this engine's max_batch_size"),
    ({}, pk.BindingError, r"missing input\(s\) \['data'\]"),
    ({"data": np.zeros((2, 1, 28, 28), np.float32), "extra": np.zeros(2)}, pk.BindingError, r"unknown name\(s\) \['extra'\]"),
    ({"data": np.zeros((2, 784), np.float32)}, pk.BindingError, r"per-sample shape \(1, 28, 28\)"),
    ({"data": np.zeros((2, 1, 28, 28), np.complex64)}, pk.BindingError, "dtype complex64"),
    ({"data": np.zeros((0, 1, 28, 28), np.float32)}, pk.BatchSizeError, "positive"),
    ([np.zeros((2, 1, 28, 28))], pk.BindingError, "must be a dict"),
]


@pytest.mark.parametrize("inputs,exc,msg", BAD)
def test_bad_input_is_rejected_and_the_context_still_runs(mnist, rng, inputs, exc, msg):
    eng, ctx = mnist
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    before = to_host(ctx.execute({"data": x})["prob"])
    with pytest.raises(exc, match=msg):
        ctx.execute(inputs)
    np.testing.assert_array_equal(to_host(ctx.execute({"data": x})["prob"]), before)


def test_float64_input_is_converted(mnist, rng):
    eng, ctx = mnist
    x = rng.standard_normal((2, 1, 28, 28))
    np.testing.assert_allclose(to_host(ctx.execute({"data": x})["prob"]),
                               to_host(ctx.execute({"data": x.astype(np.float32)})["prob"]), rtol=1e-6)


def test_enqueue_on_streams_matches_execute(device, rng):
    eng = pk.Builder(device).build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=4))
    ctxs = [eng.create_execution_context() for _ in range(3)]
    streams = [device.create_stream() for _ in range(3)]
    xs = [rng.standard_normal((4, 1, 28, 28)).astype(np.float32) for _ in range(3)]
    expected = [to_host(ctxs[0].execute({"data": x})["prob"]) for x in xs]
    outs = []
    for ctx, s, x in zip(ctxs, streams, xs):
        outs.append(ctx.enqueue({"data": device.to_device(x)}, s))
    for s in streams:
        s.synchronize()
    for o, e in zip(outs, expected):
        np.testing.assert_array_equal(to_host(o["prob"]), e)


def test_enqueue_output_binding_and_input_consumed(device, rng):
    eng = pk.Builder(device).build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=4))
    ctx = eng.create_execution_context()
    s = device.create_stream()
    consumed, done = device.create_event(), device.create_event()
    x = device.to_device(rng.standard_normal((4, 1, 28, 28)).astype(np.float32))
    out = device.xp.zeros((4, 10), np.float32)
    res = ctx.enqueue({"data": x, "prob": out}, s, input_consumed=consumed)
    done.record(s)
    consumed.synchronize()
    done.synchronize()
    np.testing.assert_array_equal(to_host(res["prob"]), to_host(out))     # the result is the bound output
    assert device.elapsed_ms(consumed, done) > 0        # inputs were free before the outputs were ready
    np.testing.assert_allclose(to_host(out).sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(to_host(out), to_host(ctx.execute({"data": x})["prob"]))
    assert res["prob"] is out                 # a binding of exactly the batch is used as it is, not re-sliced
    bigger = device.xp.zeros((6, 10), np.float32)
    res = ctx.enqueue({"data": x, "prob": bigger}, s, batch_size=4)
    s.synchronize()
    assert res["prob"].shape == (4, 10) and res["prob"] is not bigger
    np.testing.assert_array_equal(to_host(bigger)[:4], to_host(out))


def test_enqueue_rejects_host_arrays_and_foreign_streams(device, rng):
    eng = pk.Builder(device).build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=4))
    ctx = eng.create_execution_context()
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    if device.kind != "cpu":
        with pytest.raises(pk.BindingError, match="enqueue needs arrays on the"):
            ctx.enqueue({"data": x}, device.create_stream())
    with pytest.raises(pk.BindingError, match="stream"):
        ctx.enqueue({"data": device.to_device(x)}, stream="not a stream")
    with pytest.raises(pk.BindingError, match="dtype float64"):
        ctx.enqueue({"data": device.to_device(x.astype(np.float64))}, device.create_stream())


def test_async_failure_surfaces_and_context_recovers(rng):
    """A layer that fails on the stream's worker reports at synchronize; the context then runs normally."""
    def shape_fn(shapes, params):
        return shapes[0]

    def impl(xp, ins, params):
        if float(ins[0].ravel()[0]) > 100:
            raise ValueError("value too large for this plugin")
        return ins[0] * 2
    pk.register_plugin("fragile_double", shape_fn, impl=impl, replace=True)
    net = pk.Network("p")
    x = net.add_input("x", (3,))
    net.mark_output(net.add_plugin("fragile_double", [x]).output)
    dev = pk.get_device("cpu")
    ctx = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    s = dev.create_stream()
    ctx.enqueue({"x": np.full((2, 3), 1000, np.float32)}, s)
    with pytest.raises(pk.ExecutionError, match="fragile_double.*too large"):
        s.synchronize()
    out = ctx.execute({"x": np.ones((1, 3), np.float32)})[ctx.engine.output_names[0]]
    np.testing.assert_array_equal(out, np.full((1, 3), 2, np.float32))


def test_context_busy_from_two_threads():
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    ctx = eng.create_execution_context()
    ctx._busy_lock.acquire()
    try:
        with pytest.raises(pk.ContextBusyError, match="one execution context per thread"):
            ctx.execute({"data": np.zeros((1, 1, 28, 28), np.float32)})
    finally:
        ctx._busy_lock.release()


def test_integer_inputs_checked_for_range():
    net = pk.Network("ids")
    ids = net.add_input("ids", (3,), "int32")
    table = net.add_constant(np.arange(8, dtype=np.float32).reshape(4, 2))
    net.mark_output(net.add_gather(table.output, ids).output)
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    np.testing.assert_array_equal(ctx.execute({"ids": np.array([[0, 1, 3]], np.int64)})[ctx.engine.output_names[0]][0],
                                  [[0, 1], [2, 3], [6, 7]])
    with pytest.raises(pk.BindingError, match="outside the int32 range"):
        ctx.execute({"ids": np.array([[0, 1, 2**40]], np.int64)})
    with pytest.raises(pk.ExecutionError, match="gather"):
        ctx.execute({"ids": np.array([[0, 1, 9]], np.int32)})       # index out of range: named layer error
    np.testing.assert_array_equal(ctx.execute({"ids": np.array([[3, 2, 1]], np.int32)})[ctx.engine.output_names[0]],
                                  [[[6, 7], [4, 5], [2, 3]]])              # still usable after the errors


def test_launch_paths_use_the_context_interface_not_its_private_attributes():
    """profiled.py, cuda_graph.py and the profiling package work through the parts the context hands
    them (launch.Call, StepLoop, ContextBuffers, Profiling), never through its private attributes."""
    import ast
    import pathlib
    root = pathlib.Path(pk.__file__).parent
    files = [root / "runtime" / "profiled.py", root / "runtime" / "cuda_graph.py",
             *sorted((root / "profiling").glob("*.py"))]
    found = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
                if name in ("ctx", "context"):
                    found.append(f"{f.name}:{node.lineno} {name}.{node.attr}")
    assert found == []


def test_input_consumed_fires_even_when_the_inference_fails():
    """A CPU inference that fails before its last input reader still releases its inputs: whoever
    waits on input_consumed is not left waiting forever; the failure surfaces at synchronize."""
    def impl(xp, ins, params):
        raise ValueError("this plugin always fails")
    pk.register_plugin("always_fails", lambda shapes, params: shapes[0], impl=impl, replace=True)
    net = pk.Network("f")
    x = net.add_input("x", (3,))
    net.mark_output(net.add_plugin("always_fails", [x]).output)
    dev = pk.get_device("cpu")
    ctx = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    s, consumed = dev.create_stream(), dev.create_event()
    ctx.enqueue({"x": np.ones((2, 3), np.float32)}, s, input_consumed=consumed)
    consumed.synchronize(timeout=10)
    assert consumed.query()
    with pytest.raises(pk.ExecutionError, match="always_fails.*always fails"):
        s.synchronize()
