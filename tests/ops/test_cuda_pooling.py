"""Pooling in one CUDA launch (issue 11): the ``kernel`` and ``kernel_nhwc`` tactics give the NumPy reference's
values in both layouts and precisions (max exactly, NaN included; averages with and without the padding
counted), write only their output's elements, and let a pooling layer between cuDNN's NHWC convolutions run
without reformat layers around it."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from op_harness import run_op
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics

def gpu(test):
    return pytest.mark.gpu(pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")(test))

CASES = [  # (pool, window, stride, padding, exclude_padding)
    ("max", 3, 2, 1, True),                 # a ResNet's stem
    ("max", 2, 2, 0, True),
    ("max", (5, 3), (2, 1), (2, 1), True),
    ("avg", 3, 1, 1, True),
    ("avg", 3, 2, 1, False),
    ("avg", (7, 7), 1, 0, True),            # global average of a 7x7 map
]


def _run_cuda(tactic, x, params, out_shape, dtype, out=None):
    import cupy

    from perfkit.ops import Env, get_op
    from perfkit.ops.base import nhwc_copy, nhwc_empty
    op = get_op("pooling")
    xd = cupy.asarray(x.astype(dtype))
    if tactic == "kernel_nhwc":
        xd = nhwc_copy(cupy, xd)
        assert xd.strides[1] == xd.itemsize
    if out is None:                                 # NaN where nothing was written
        out = nhwc_empty(cupy, out_shape, dtype) if tactic == "kernel_nhwc" else cupy.empty(out_shape, dtype)
        out.fill(np.nan)
    op.compute(Env(cupy, "cuda"), [xd], [out], {**params, "tactic": tactic}, {})
    return out


@gpu
@pytest.mark.parametrize("tactic", ["kernel", "kernel_nhwc"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{c[1]}s{c[2]}p{c[3]}{'' if c[4] else 'incl'}")
def test_the_kernel_gives_the_references_values(tactic, precision, case):
    from perfkit.ops import get_op
    from perfkit.ops.base import TensorSpec
    pool, window, stride, padding, exclude = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 13, 11)).astype(np.float32)
    if pool == "max":
        x[1, 2, 4, 5] = np.nan                      # max propagates NaN, as NumPy's maximum does
    params = {"pool": pool, "window": window, "stride": stride, "padding": padding, "exclude_padding": exclude}
    want = run_op("pooling", "taps", precision, [x], params)
    p = get_op("pooling").check(dict(params), {})
    (spec,) = get_op("pooling").infer(p, [TensorSpec(x.shape[1:])], {})
    dtype = np.float32 if precision == "fp32" else np.float16
    got = to_host(_run_cuda(tactic, x, p, (3,) + spec.shape, dtype))
    if pool == "max":
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[1, 2]).any()
    else:
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=1e-6 if precision == "fp32" else 1e-3, atol=0)


@gpu
def test_an_output_that_is_a_slice_of_a_larger_buffer_gets_only_its_own_elements():
    """A pooling layer writing into its part of a concatenation: the channels around it stay as they were."""
    import cupy

    from perfkit.ops import get_op
    x = np.random.default_rng(2).standard_normal((2, 4, 9, 9)).astype(np.float32)
    params = get_op("pooling").check({"pool": "max", "window": 3, "stride": 2, "padding": 1}, {})
    big = cupy.full((2, 10, 5, 5), 7.0, np.float32)
    _run_cuda("kernel", x, params, None, np.float32, out=big[:, 3:7])
    host = to_host(big)
    np.testing.assert_array_equal(host[:, 3:7], run_op("pooling", "taps", "fp32", [x], params))
    assert (host[:, :3] == 7.0).all() and (host[:, 7:] == 7.0).all()


@gpu
def test_a_pooling_layer_between_nhwc_convolutions_needs_no_reformat(monkeypatch):
    from perfkit.ops.cuda_cudnn import unavailable_reason
    if unavailable_reason():
        pytest.skip(unavailable_reason())
    real = tactics.measure
    # convolutions off cuDNN and pooling off the channels-last kernel 100x slower: the layout is then NHWC
    # from the first convolution to the last, the pooling layer included
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations: real(target, run, device, 1) * (
        100.0 if (target.type == "convolution" and target.tactic != "cudnn")
        or (target.type == "pooling" and target.tactic != "kernel_nhwc") else 1.0))
    rng = np.random.default_rng(4)
    w = lambda *s: (rng.standard_normal(s) * (2.0 / np.prod(s[1:])) ** 0.5).astype(np.float32)  # noqa: E731
    net = pk.Network("stem")
    x = net.add_input("x", (3, 32, 32))
    a = net.add_convolution(x, 16, 3, w(16, 3, 3, 3), w(16), stride=2, padding=1, name="stem")
    a = net.add_activation(a, "relu", name="stem_relu")
    p = net.add_pooling(a, "max", 3, 2, 1, name="maxpool")
    c = net.add_convolution(p, 8, 3, w(8, 16, 3, 3), w(8), padding=1, name="conv")
    net.mark_output(c, "y")
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=4, precision="fp16", strict_types=True))
    steps = {s.name: s for s in eng.plan.steps}
    assert steps["maxpool"].params["tactic"] == "kernel_nhwc"
    assert {eng.plan.tensors[t].layout for t in steps["maxpool"].inputs + steps["maxpool"].outputs} == {"nhwc"}
    layouts = [s.name for s in eng.plan.steps if s.name.startswith("reformat") and s.name.endswith(("nhwc", "nchw"))]
    assert len(layouts) == 2, layouts               # the network's input and its output only (beside the
    #                                                 precision reformats of its float32 input and output)
    ctx = eng.create_execution_context()
    xs = pk.models.sample_input(net, 4, seed=1)
    want = reference_forward(net, xs)
    for _ in range(3):                              # eager, capture, replay
        got = ctx.execute(xs)
    assert_close(to_host(got["y"]), want["y"], "fp16", "y", depth=depth(net))
    assert ctx.graph_status.startswith("on"), ctx.graph_status


def test_the_kernels_are_offered_for_float16_and_float32_only():
    from perfkit.ops import get_op
    from perfkit.ops.base import TensorSpec
    op = get_op("pooling")
    p = op.check({"pool": "max", "window": 2}, {})
    for dtype in ("float16", "float32"):
        assert {"kernel", "kernel_nhwc"} <= set(op.applicable_tactics(p, [TensorSpec((2, 4, 4), dtype)]))
    for dtype in ("bfloat16", "int32", "float64"):
        assert op.applicable_tactics(p, [TensorSpec((2, 4, 4), dtype)]) == ("strided", "taps", "rows")


def test_other_dtypes_make_the_kernel_unavailable_not_a_failed_build():
    """Reached only by a direct call (the op does not offer the kernels for these dtypes): TacticUnavailable,
    which the builder's race turns into a dropped candidate with a build-log row."""
    from perfkit.ops.base import TacticUnavailable
    from perfkit.ops.cuda_kernels import pool
    x = np.zeros((1, 2, 4, 4), np.float64)
    with pytest.raises(TacticUnavailable, match="float16 and float32 tensors, not float64"):
        pool(x, np.zeros((1, 2, 2, 2), np.float64), "max", (2, 2), (2, 2), (0, 0), True)
    with pytest.raises(TacticUnavailable, match="not float32 into float16"):
        pool(x.astype(np.float32), np.zeros((1, 2, 2, 2), np.float16), "max", (2, 2), (2, 2), (0, 0), True)
