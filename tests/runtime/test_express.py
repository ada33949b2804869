"""The warm replay path (runtime/express.py): a call that repeats the last replayed one skips validation
and goes straight to the graph launch; anything that differs takes the full path. GPU tests, plus a CPU
test of the signature."""
import threading

import numpy as np
import pytest

import perfkit as pk
from perfkit.errors import ContextBusyError, ExecutionError
from perfkit.runtime.cuda_graph import graph_support
from perfkit.runtime.express import signature


def test_signature_needs_a_dict_of_device_arrays():
    assert signature({"x": np.zeros((2, 3), np.float32)}) is None      # a NumPy array has no device address
    assert signature([("x", 1)]) is None
    assert signature({}) == ()


def _engine(model="mnist_mlp", batch=4):
    why = graph_support()
    if why:
        pytest.skip(f"CUDA graphs unavailable: {why}")
    net = getattr(pk.models, model)()
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=batch))
    return net, eng


def _x(eng, net, batch, seed=0):
    return {k: eng.device.to_device(v) for k, v in pk.models.sample_input(net, batch, seed).items()}


def _want(eng, x):
    ref = eng.create_execution_context(cuda_graph=False)
    try:
        return {k: v.get() for k, v in ref.execute(x).items()}
    finally:
        ref.close()


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_warm_enqueue_takes_the_fast_path_and_reads_new_values_in_place():
    net, eng = _engine()
    ctx, dev = eng.create_execution_context(), eng.device
    stream = dev.create_stream()
    x = _x(eng, net, 4)
    import cupy as cp
    outs = {n: cp.empty((4,) + tuple(eng.plan.tensors[n].shape), eng.plan.tensors[n].dtype)
            for n in eng.output_names}
    for _ in range(2):                          # eager, capture and replay (remembered)
        ctx.enqueue({**x, **outs}, stream)
    assert ctx._express_enqueue.hits == 0
    replays = ctx._graphs.replays
    for seed in range(1, 4):                    # same addresses, new values: the graph reads them
        fresh = pk.models.sample_input(net, 4, seed)
        for k, v in fresh.items():
            x[k].set(v)
        stream.synchronize()
        got = ctx.enqueue({**x, **outs}, stream)
        stream.synchronize()
        assert set(got) == set(eng.output_names) and all(got[n] is outs[n] for n in got)
        want = _want(eng, x)
        for n in want:
            np.testing.assert_array_equal(got[n].get(), want[n])
    assert ctx._express_enqueue.hits == 3
    assert ctx._graphs.replays == replays + 3
    assert ctx.graph_status.endswith(f"{replays + 3} replays")


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_anything_different_takes_the_full_path():
    net, eng = _engine()
    ctx, dev = eng.create_execution_context(), eng.device
    stream, other = dev.create_stream(), dev.create_stream()
    x = _x(eng, net, 4)
    for _ in range(4):
        ctx.enqueue(x, stream)
    hits = ctx._express_enqueue.hits
    assert hits == 2                            # eager, capture and replay, then two fast
    y = _x(eng, net, 4, seed=7)                 # new addresses
    got = ctx.enqueue(y, stream)
    stream.synchronize()
    np.testing.assert_array_equal(got[eng.output_names[0]].get(), _want(eng, y)[eng.output_names[0]])
    ctx.enqueue(y, other)                       # another stream (ordered after the first)
    ctx.enqueue(y, stream, batch_size=4)        # a batch size asked for
    ctx.enqueue(y, stream, input_consumed=dev.create_event())
    assert ctx._express_enqueue.hits == hits
    seen = []

    class Prof:
        def report_layer_time(self, name, ms):
            seen.append(name)

    ctx.profiler = Prof()                       # a profiler must see every call
    ctx.enqueue(y, stream)
    ctx.wait_profiles()
    assert seen and ctx._express_enqueue.hits == hits
    ctx.profiler = None
    ctx.cuda_graph = False                      # graphs off: eager launches
    ctx.enqueue(y, stream)
    stream.synchronize()
    assert ctx._express_enqueue.hits == hits


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_warm_execute_returns_fresh_copies_and_counts_queries():
    net, eng = _engine("lenet", 2)
    ctx = eng.create_execution_context()
    x = _x(eng, net, 2)
    want = _want(eng, x)
    results = [ctx.execute(x) for _ in range(6)]
    assert ctx._express.hits == 4              # eager, capture and replay (remembered), then four fast
    name = eng.output_names[0]
    first = results[-2][name]
    for r in results:
        np.testing.assert_array_equal(r[name].get(), want[name])
    first[...] = 0                              # a copy: the next call's result is untouched
    np.testing.assert_array_equal(results[-1][name].get(), want[name])
    assert results[-1][name].data.ptr != results[-2][name].data.ptr
    ctx.close()
    with pytest.raises(ExecutionError, match="was closed"):
        ctx.execute(x)


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_another_thread_is_refused_while_work_is_in_flight():
    net, eng = _engine("resnet_small", 8)
    ctx, dev = eng.create_execution_context(), eng.device
    stream = dev.create_stream()
    x = _x(eng, net, 8)
    for _ in range(4):
        ctx.enqueue(x, stream)
    stream.synchronize()
    assert ctx._express_enqueue.hits == 2
    for _ in range(20):                         # enough queued work to still be running
        ctx.enqueue(x, stream)
    errors = []

    def other():
        try:
            ctx.enqueue(x, stream)
        except ContextBusyError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    stream.synchronize()
    assert ctx._express_enqueue.hits == 22     # the other thread never took the fast path
