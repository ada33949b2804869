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


def _setup(model="mnist_mlp", batch=4):
    """A network, its engine, a context, a stream and device inputs."""
    net, eng = _engine(model, batch)
    return net, eng, eng.create_execution_context(), eng.device.create_stream(), _x(eng, net, batch)


def _want(eng, x):
    ref = eng.create_execution_context(cuda_graph=False)
    try:
        return {k: v.get() for k, v in ref.execute(x).items()}
    finally:
        ref.close()


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_warm_enqueue_takes_the_fast_path_and_reads_new_values_in_place():
    net, eng, ctx, stream, x = _setup()
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


class _Prof:
    def __init__(self):
        self.seen = []

    def report_layer_time(self, name, ms):
        self.seen.append(name)


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_anything_different_takes_the_full_path():
    """Each gate on its own: the variant call misses, and the plain call right after still hits (the variant
    left the remembered call as it was), so only that gate stopped the variant."""
    net, eng = _engine()
    ctx, dev = eng.create_execution_context(), eng.device
    stream, other = dev.create_stream(), dev.create_stream()
    y = _x(eng, net, 4, seed=7)
    want = _want(eng, y)[eng.output_names[0]]
    hits = lambda: ctx._express_enqueue.hits  # noqa: E731

    def plain():
        got = ctx.enqueue(y, stream)[eng.output_names[0]]
        stream.synchronize()
        np.testing.assert_array_equal(got.get(), want)
    for _ in range(3):
        plain()
    assert hits() == 1
    prof = _Prof()

    def with_setting(attr, value, after):
        """An enqueue with ``ctx.attr = value`` for that call only (``after`` waits for it)."""
        def call():
            old = getattr(ctx, attr)
            setattr(ctx, attr, value)
            try:
                ctx.enqueue(y, stream)
                after()
            finally:
                setattr(ctx, attr, old)
        return call
    variants = {"batch_size": lambda: ctx.enqueue(y, stream, batch_size=4),
                "input_consumed": lambda: ctx.enqueue(y, stream, input_consumed=dev.create_event()),
                "profiler": with_setting("profiler", prof, ctx.wait_profiles),
                "cuda_graph=False": with_setting("cuda_graph", False, stream.synchronize)}
    for what, variant in variants.items():
        before = hits()
        variant()
        stream.synchronize()
        assert hits() == before, f"{what}: took the fast path"
        plain()
        assert hits() == before + 1, f"{what}: the plain call after it missed"
    assert prof.seen                                # the profiled call reported its layers
    variants = {"new addresses": _x(eng, net, 4, seed=8),
                "another batch, same addresses": {k: v[:2] for k, v in y.items()}}   # the shape alone differs
    for what, other_x in variants.items():
        before, other_want = hits(), _want(eng, other_x)[eng.output_names[0]]
        for _ in range(2):                          # eager (first sight), then captured, replayed and remembered
            got = ctx.enqueue(other_x, stream)[eng.output_names[0]]
            stream.synchronize()
            np.testing.assert_array_equal(got.get(), other_want, err_msg=what)
        assert hits() == before, f"{what}: took the fast path"
        plain()                                     # the other call is remembered now: missed, then hits
        plain()
        assert hits() == before + 1, what
    before = hits()
    ctx.enqueue(y, other)                           # another stream: missed, and remembered in place of the first
    plain()                                         # back on the first stream: missed, remembered again
    plain()
    assert hits() == before + 1


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_a_remembered_graph_evicted_by_other_calls_is_not_launched():
    from perfkit.runtime.cuda_graph import MAX_GRAPHS
    net, eng, ctx, stream, x = _setup(batch=MAX_GRAPHS + 1)
    for _ in range(3):
        ctx.enqueue(x, stream)
    stream.synchronize()
    assert ctx._express_enqueue.hits == 1
    for batch in range(1, MAX_GRAPHS + 1):          # execute's own keys, one per batch size, push enqueue's
        xi = _x(eng, net, batch, seed=100 + batch)  # graph out (equal sizes reuse one pool block: one key)
        for _ in range(2):
            ctx.execute(xi)
    assert len(ctx._graphs.graphs) == MAX_GRAPHS
    got = ctx.enqueue(x, stream)[eng.output_names[0]]
    stream.synchronize()
    np.testing.assert_array_equal(got.get(), _want(eng, x)[eng.output_names[0]])
    assert ctx._express_enqueue.hits == 1          # the full path ran it (captured anew)


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_output_slices_made_by_the_context_are_not_remembered():
    import cupy as cp
    net, eng, ctx, stream, x = _setup()
    name = eng.output_names[0]
    long = cp.empty((8,) + tuple(eng.plan.tensors[name].shape), eng.plan.tensors[name].dtype)   # longer than the batch
    for _ in range(4):
        got = ctx.enqueue({**x, name: long}, stream)
    stream.synchronize()
    assert ctx._express_enqueue.hits == 0
    np.testing.assert_array_equal(got[name].get(), _want(eng, x)[name])
    assert got[name].data.ptr == long.data.ptr and len(got[name]) == 4


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
    from perfkit.device.gpu_timing import _spin_kernel
    with stream.raw:
        _spin_kernel()((1,), (1,), (np.uint64(300_000_000),))   # 0.3 s: the work below is still queued
    for _ in range(20):
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
    assert len(errors) == 1                     # the other thread was refused, by the full path
    assert ctx._express_enqueue.hits == 22     # and never took the fast path


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_execute_reads_inputs_the_callers_stream_is_still_writing():
    """An input computed on CuPy's current stream just before ``execute`` is read once written, on the full path
    (first calls) and on the fast path (warm): the context's stream waits for the caller's."""
    import cupy as cp
    from perfkit.device.gpu_timing import _spin_kernel
    net, eng = _engine("lenet", 2)
    ctx = eng.create_execution_context()
    x = _x(eng, net, 2)
    name = next(iter(x))
    values = [pk.models.sample_input(net, 2, seed=s)[name] for s in range(6)]
    for i, v in enumerate(values):
        dv = cp.asarray(v)
        x[name].fill(0)
        cp.cuda.get_current_stream().synchronize()
        _spin_kernel()((1,), (1,), (np.uint64(20_000_000),))     # 20 ms on the current stream, then the input
        x[name][...] = dv                                            # a device copy queued behind the spin
        got = ctx.execute(x)[eng.output_names[0]].get()
        want = _want(eng, {name: cp.asarray(v)})[eng.output_names[0]]
        np.testing.assert_array_equal(got, want, err_msg=f"call {i}")
    assert ctx._express.hits >= 3


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available() or pk.device.cuda.cuda_device_count() < 2, reason="needs two GPUs")
def test_a_context_on_the_second_gpu_takes_the_fast_path_from_a_thread_on_the_first():
    """The fast path once refused any call whose thread was current on another GPU, so every call of a
    context on cuda:1 from a thread on cuda:0 took the full path: 15-20% slower on host-bound rows."""
    import cupy as cp
    why = graph_support()
    if why:
        pytest.skip(f"CUDA graphs unavailable: {why}")
    net = pk.models.lenet()
    eng = pk.Builder("cuda:1").build(net, pk.BuilderConfig(max_batch_size=2))
    ctx = eng.create_execution_context()
    x = _x(eng, net, 2)
    want = _want(eng, x)
    name = eng.output_names[0]
    cp.cuda.runtime.setDevice(0)
    results = [ctx.execute(x) for _ in range(6)]
    assert ctx._express.hits == 4
    assert cp.cuda.runtime.getDevice() == 0                 # the caller's device is given back
    for r in results:
        assert r[name].device.id == 1
        np.testing.assert_array_equal(r[name].get(), want[name])
    stream = eng.device.create_stream()
    with cp.cuda.Device(1):
        outs = {n: cp.zeros_like(r) for n, r in results[0].items()}     # the replays must fill them
    for _ in range(5):
        ctx.enqueue({**x, **outs}, stream)
    stream.synchronize()
    assert ctx._express_enqueue.hits >= 2 and cp.cuda.runtime.getDevice() == 0     # after capture and a replay
    np.testing.assert_array_equal(outs[name].get(), want[name])
    ctx.close()
