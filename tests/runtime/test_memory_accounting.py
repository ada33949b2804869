"""Every byte counts: ``engine.device_memory_bytes`` equals what one engine and one context take,
measured, over the sample networks x precisions x devices; nothing else is allocated while running.

On the CPU two things are measured around warm ``execute``/``enqueue`` calls: the allocator's own
events (the plan's buffers) and, with ``tracemalloc`` (NumPy reports its data buffers to it), every
host allocation outside the allocator. What a call legitimately hands back (``execute``'s output
copies) is subtracted; what remains may not exceed ``NOISE`` bytes: the Python objects of a call
(dicts of views, frames, a stream closure) and NumPy's per-call cast buffers, at most
``np.getbufsize()`` = 8192 elements per operand. Neither grows with the batch or the tensors, while
a temporary outside the plan does: the fp16 MLP of the issue allocated 1.5 MiB per call at batch 4.
"""
import dataclasses
import gc
import tracemalloc
import warnings

import numpy as np
import pytest

import perfkit as pk
from perfkit.ops import env as env_mod
from perfkit.ops import get_op
from perfkit.ops.base import TensorSpec

MODELS = ["mnist_mlp", "mlp", "lenet", "resnet_small", "transformer_encoder"]
PRECISIONS = ["fp32", "fp16", "bf16"]
NOISE = 64 * 1024
BATCH = 8
# a precision only *allows* fp16/bf16 unless types are strict: strict types make the reduced storage run
STRICT = {"strict_types": True} if "strict_types" in {f.name for f in dataclasses.fields(pk.BuilderConfig)} else {}


@pytest.fixture
def strict_workspace(monkeypatch):
    """An op asking for more scratch than it declared raises instead of allocating outside the plan."""
    monkeypatch.setattr(env_mod.Env, "strict", True, raising=False)


def _config(precision, batch=BATCH, **kw):
    return pk.BuilderConfig(max_batch_size=batch, precision=precision, **STRICT, **kw)


def _host_peak(fn):
    """(result, peak bytes allocated on the host while ``fn`` ran, beyond what was held before)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - before


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", MODELS)
def test_cpu_memory_equals_plan(model, precision, strict_workspace):
    tracker = pk.TrackingAllocator(device="cpu")
    net = pk.models.SAMPLES[model]()
    eng = pk.Builder("cpu", allocator=tracker).build(net, _config(precision))
    if STRICT and precision != "fp32":
        layers = eng.layers[~eng.layers["layer"].str.startswith("reformat ")]
        assert (layers["precision"] == precision).all()
    assert tracker.in_use_bytes == eng.memory["weights"]
    tracker.reset_peak()
    ctx = eng.create_execution_context()
    assert tracker.in_use_bytes == eng.device_memory_bytes
    x = pk.models.sample_input(net, BATCH)
    for _ in range(2):                                   # warm: lazily made streams, caches of views
        ctx.execute(x)
    mark = tracker.mark()
    out, extra = _host_peak(lambda: ctx.execute(x))
    returned = sum(v.nbytes for v in out.values())
    assert extra - returned <= NOISE, f"execute allocated {extra - returned} bytes outside the plan"

    stream = eng.device.create_stream()
    bindings = {n: np.ascontiguousarray(a, dtype=eng.get_binding_dtype(n)) for n, a in x.items()}
    ctx.enqueue(bindings, stream)
    stream.synchronize()

    def enqueue():
        ctx.enqueue(bindings, stream)
        stream.synchronize()
    _, extra = _host_peak(enqueue)
    assert extra <= NOISE, f"enqueue allocated {extra} bytes outside the plan"
    # the allocator gave nothing more while running, and its peak is the plan
    assert len(tracker.events_since(mark)) == 0
    assert tracker.peak_bytes == eng.device_memory_bytes
    ctx.close()
    eng.close()
    assert tracker.in_use_bytes == 0


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", MODELS)
def test_cuda_memory_equals_plan(model, precision, graph, strict_workspace):
    """On CUDA every CuPy allocation of the process goes through the tracker while running
    (``CupyAllocationHook``, what ``profile(memory="all")`` installs): a temporary from CuPy's pool
    shows up as a ``user`` event; a replayed graph keeps no memory of its own."""
    import cupy

    from perfkit.device import CupyAllocationHook
    device = pk.get_device("cuda")
    if precision == "bf16" and not device.runs_bf16:
        pytest.skip(f"{device.spec} cannot run bf16 layers ({device.bf16_limitation}); strict bf16 is refused")
    tracker = pk.TrackingAllocator(device="cuda")
    net = pk.models.SAMPLES[model]()
    eng = pk.Builder(device, allocator=tracker).build(net, _config(precision))
    ctx = eng.create_execution_context(cuda_graph=graph)
    assert tracker.in_use_bytes == eng.device_memory_bytes
    x = {n: cupy.asarray(a, dtype=eng.get_binding_dtype(n)) for n, a in pk.models.sample_input(net, BATCH).items()}
    outs = {n: cupy.empty((BATCH,) + eng.get_binding_shape(n), eng.get_binding_dtype(n)) for n in eng.output_names}
    stream = device.create_stream()
    for _ in range(3):                                   # the second call captures, the third replays
        ctx.enqueue({**x, **outs}, stream)
        ctx.execute(x)
    stream.synchronize()
    with CupyAllocationHook(tracker):
        mark = tracker.mark()
        ctx.enqueue({**x, **outs}, stream)
        stream.synchronize()
        enqueued = tracker.events_since(mark)
        mark = tracker.mark()
        result = ctx.execute(x)
        executed = tracker.events_since(mark)
    assert enqueued[enqueued["action"] == "alloc"]["size_bytes"].sum() == 0, enqueued
    returned = sum((v.nbytes + 511) // 512 * 512 for v in result.values())    # CuPy rounds blocks to 512 bytes
    assert executed[executed["action"] == "alloc"]["size_bytes"].sum() <= returned, executed
    assert ctx.graph_memory_bytes == 0
    del result                                           # the copies execute() handed back are the caller's
    gc.collect()
    assert tracker.in_use_bytes == eng.device_memory_bytes


def test_under_declared_scratch_is_visible(monkeypatch):
    """An op that asks for more scratch than it declared: recorded and warned about, and an error
    when strict (the test suite's setting), never silently allocated outside the plan."""
    monkeypatch.setattr(env_mod.Env, "strict", False)
    env = env_mod.Env(np, "cpu", np.zeros(1024, np.uint8))
    env.scratch((64,), np.float32)                       # 256 bytes: fits
    monkeypatch.setattr(env_mod, "OVERFLOWS", {})
    with pytest.warns(ResourceWarning, match="more than its op declared"):
        arr = env.scratch((1024,), np.float32)
    assert arr.shape == (1024,)
    assert env_mod.OVERFLOWS == {"?": (1, 4096, 4096 + 256 - 1024)}     # no layer running: "?"
    monkeypatch.setattr(env_mod.Env, "strict", True)
    with pytest.raises(pk.ExecutionError, match="more than its op declared"):
        env.scratch((1024,), np.float32)


def _run_op(op_type, tactic, params, weights, in_specs, batch, dtype, rng):
    """Runs one op with ``tactic`` on random inputs with a workspace of exactly its declared size;
    returns the outputs (float64) and the host bytes allocated while it computed."""
    op = get_op(op_type)
    ins = [TensorSpec(s, dtype.name) for s in in_specs]
    params = op.check(dict(params), weights)
    weights = {k: np.asarray(v, dtype) for k, v in weights.items()}        # the storage, as the builder converts
    outs = op.infer(params, ins, weights)
    params, weights = op.prepare_tactic(tactic, params, weights)
    ws = np.zeros(max(op.workspace(params, ins, outs, batch, "cpu"), 1), np.uint8)
    env = env_mod.Env(np, "cpu", ws)
    x = [rng.uniform(-1, 1, (batch,) + tuple(s)).astype(dtype) for s in in_specs]
    y = [np.empty((batch,) + tuple(o.shape), o.dtype) for o in outs]
    _, extra = _host_peak(lambda: op.compute(env, x, y, params, weights))
    return [a.astype(np.float64) for a in y], extra


GELU = {"kind": "gelu", "alpha": 0.0, "beta": 0.0}
OP_CASES = {
    "convolution": (dict(num_output_maps=6, kernel_size=3, padding=1, groups=2, activation=GELU),
                    lambda r: {"kernel": r.standard_normal((6, 2, 3, 3)), "bias": r.standard_normal(6)}, [(4, 9, 9)]),
    "pooling": (dict(pool="avg", window=3, stride=2, padding=1), lambda r: {}, [(4, 9, 9)]),
    "fully_connected": (dict(num_outputs=7, activation={"kind": "elu"}),
                        lambda r: {"kernel": r.standard_normal((7, 60)), "bias": r.standard_normal(7)}, [(3, 4, 5)]),
    "mlp": (dict(stages=[{"activation": GELU}, {"activation": {"kind": "relu", "alpha": 0, "beta": 0}},
                         {"activation": None}], flatten=False),
            lambda r: {"w0": r.standard_normal((5, 16)), "w1": r.standard_normal((16, 12)),
                       "w2": r.standard_normal((12, 3)), "b0": r.standard_normal(16)}, [(4, 5)]),
}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("op_type", sorted(OP_CASES))
def test_every_tactic_runs_in_its_declared_workspace(op_type, dtype, strict_workspace):
    """Each tactic of the ops with temporaries computes inside exactly the workspace it declares
    (strict: one byte short would raise), allocates nothing else, and agrees with the others."""
    np_dtype = np.dtype(dtype)
    params, make_weights, specs = OP_CASES[op_type]
    op = get_op(op_type)
    results = {}
    for tactic in op.tactic_names:
        if op.tactic_unavailable(tactic, "cpu"):        # cuDNN's: tests/builder/test_cudnn.py on a GPU
            continue
        rng = np.random.default_rng(7)
        results[tactic], extra = _run_op(op_type, tactic, params, make_weights(rng), specs, 64, np_dtype, rng)
        assert extra <= NOISE, f"{op_type}/{tactic} in {dtype} allocated {extra} bytes outside its workspace"
    first = results[op.tactic_names[0]]
    for tactic, got in results.items():
        for a, b in zip(got, first):
            np.testing.assert_allclose(a, b, rtol=5e-2 if dtype != "float32" else 1e-4,
                                       atol=5e-2 if dtype != "float32" else 1e-4, err_msg=tactic)


def test_engine_keeps_no_host_copy_of_its_weights(strict_workspace):
    """Once on the device, the weights are held once (the CPU's device memory is host memory): when
    the network is gone, the engine retains its weight buffer and no second copy."""
    expected = {f"{layer.name}/{k}": np.array(w, np.float32) for layer in pk.models.mlp().layers
                for k, w in layer.weights.items() if w is not None}
    alloc = pk.CountingAllocator(pk.get_device("cpu").allocator)

    def build():
        net = pk.models.mlp()
        return pk.Builder("cpu", allocator=alloc).build(net, pk.BuilderConfig(tactics="default", fusions="none"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        eng = build()
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    weights = eng.memory["weights"]
    assert weights > 4 * 2**20
    assert retained < weights + weights // 8, f"{retained} bytes retained for {weights} bytes of weights"
    # the weights are read back from the device when asked (saving does)
    host = eng.host_weights()
    assert sorted(host) == sorted(expected)
    for key, w in expected.items():
        np.testing.assert_array_equal(host[key], w)
    host["fc1/kernel"][...] = 0                        # copies: the engine is unchanged
    np.testing.assert_array_equal(eng.host_weights()["fc1/kernel"], expected["fc1/kernel"])
    eng.close()
    with pytest.raises(pk.ExecutionError, match="closed"):
        eng.host_weights()


@pytest.mark.parametrize("model", ["mnist_mlp", "transformer_encoder"])
def test_max_batch_beyond_device_memory_is_refused_before_allocating(model):
    """max_batch_size=10**9 needs terabytes: refused at build, before tactic timing or any
    allocation, with the bytes needed, the device's memory and the fix."""
    calls = []

    class Counting:
        def allocate(self, size, alignment=256, flags=0):
            calls.append(size)
            return pk.get_device("cpu").allocator.allocate(size, alignment, flags)

        def free(self, buffer):
            pass
    net = pk.models.SAMPLES[model]()
    builder = pk.Builder("cpu", allocator=Counting())

    def build():
        with pytest.raises(pk.BuildError) as info:
            builder.build(net, pk.BuilderConfig(max_batch_size=10**9))
        return info.value
    err, peak = _host_peak(build)
    msg = str(err)
    assert "max_batch_size=1000000000" in msg and "TiB" in msg and "available" in msg, msg
    suggested = int(msg.split("build with max_batch_size=")[1].split()[0])
    assert 1 <= suggested < 10**9
    assert calls == [] and peak < 16 * 2**20, (calls, peak)
    # the suggested batch builds (lower it further if the machine is busy: memory moves)
    small = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=min(suggested, 4), tactics="default"))
    assert small.max_batch_size == min(suggested, 4)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", MODELS)
def test_memory_estimate_is_a_lower_bound_of_the_plan(model, precision, monkeypatch):
    """The check's estimate never exceeds what the built engine takes (a refused plan can never
    fit); in fp32 the weights, activations and I/O are exact."""
    from perfkit.builder import builder as builder_mod
    from perfkit.builder import memory_check
    seen = []
    monkeypatch.setattr(builder_mod, "check_memory", lambda g, d, c: seen.append(memory_check.check_memory(g, d, c)))
    eng = pk.Builder("cpu").build(pk.models.SAMPLES[model](), _config(precision, batch=4))
    (need,) = seen
    assert need["total"] <= eng.device_memory_bytes
    assert need["io"] == eng.memory["io"]
    if precision == "fp32":
        for part in ("weights", "activations"):
            assert need[part] == eng.memory[part], part
    available, total = memory_check.device_memory(pk.get_device("cpu"))
    assert 0 < available <= total


def test_memory_estimate_counts_only_the_tactics_the_device_can_run(monkeypatch):
    """A CPU build's workspace bound is the least any CPU tactic needs, not the zero of a CUDA-only one (the
    pooling kernels need no scratch; the CPU's pooling tactics all do when the window is padded)."""
    from perfkit.builder import builder as builder_mod
    from perfkit.builder import memory_check
    seen = []
    monkeypatch.setattr(builder_mod, "check_memory", lambda g, d, c: seen.append(memory_check.check_memory(g, d, c)))
    net = pk.Network("padded_pool")
    net.mark_output(net.add_pooling(net.add_input("x", (4, 9, 9)), "avg", 3, 2, 1).output)
    pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    (need,) = seen
    assert need["workspace"] > 0


def test_constant_folding_runs_ops_in_their_declared_workspace(strict_workspace):
    """Layers of constants computed at build time get the scratch their ops declare (strict: an op
    left without it would raise) and the engine computes with the folded values."""
    net = pk.Network("folded")
    x = net.add_input("x", (4,))
    table = net.add_constant(np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    net.mark_output(net.add_elementwise(x, net.add_softmax(table.output, axis=0).output, "sum").output)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig())
    assert "1 layer(s) folded" in set(eng.build_log["detail"])
    e = np.exp(np.arange(1.0, 5.0))
    out = eng.create_execution_context().execute({"x": np.ones((1, 4), np.float32)})
    np.testing.assert_allclose(next(iter(out.values()))[0], 1 + e / e.sum(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("a_shape,b_shape", [((8, 784), (784, 500)),          # weights b, a column block at a time
                                             ((3, 700, 300), (300, 9)),       # product wider than the weights: whole
                                             ((900, 300), (4, 300, 7)),       # weights a, a row block at a time
                                             ((2, 3, 40), (2, 40, 5))])       # batched operands: whole
def test_reduced_precision_gemm_converts_in_declared_blocks(a_shape, b_shape, dtype, strict_workspace):
    """CPU GEMMs of float16/bfloat16 storage multiply float32 copies made in the workspace, a block
    at a time for a large 2-D operand (a weight matrix is never copied whole), within exactly the
    bytes declared for them, and agree with a float64 product."""
    rng = np.random.default_rng(3)
    dt = np.dtype(dtype)
    a, b = rng.uniform(-1, 1, a_shape).astype(dt), rng.uniform(-1, 1, b_shape).astype(dt)
    out = np.empty(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1]), dt)
    declared = env_mod.gemm_conversion_bytes([(a_shape, b_shape, out.shape, dtype)], "cpu")
    kind = env_mod.conversion_plan(a_shape, b_shape, out.shape)[0]
    assert declared < 4 * (a.size + b.size + out.size) or kind == "full"
    env = env_mod.Env(np, "cpu", np.zeros(declared, np.uint8))
    _, extra = _host_peak(lambda: env.matmul(a, b, out))
    assert extra <= NOISE
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=2e-2 if dtype == "float16" else 1e-2, atol=0.25)
    assert env.mark() == 0                                 # the copies were given back
    assert env_mod.gemm_conversion_bytes([(a_shape, b_shape, out.shape, dtype)], "cuda") == \
        (declared if dtype == "bfloat16" else 0)          # cuBLAS multiplies float16 as stored
