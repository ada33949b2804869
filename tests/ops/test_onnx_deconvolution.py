"""Deconvolution (ONNX ConvTranspose) against a direct float64 scatter oracle on every device and
precision, and against onnx.reference for asymmetric pads and output_padding."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check


def deconv2d(x, w, bias, stride, pads, dilation, groups, output_padding):
    """Every input pixel scatters kernel * value into the output: out[n, g*Kg + k, y*s + i*d, ...]."""
    n, c, h, wd = x.shape
    _, kg, kh, kw = w.shape
    (sh, sw), (dh, dw), (t, l, b, r), (oph, opw) = stride, dilation, pads, output_padding
    fh, fw = (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1
    lo_h, lo_w = max(0, -t), max(0, -l)                # negative begin pads: rows before the first tap
    full = np.zeros((n, kg * groups, lo_h + fh + oph + max(0, -b), lo_w + fw + opw + max(0, -r)))
    cg = c // groups
    for ci in range(c):
        g = ci // cg
        for i in range(kh):
            for j in range(kw):
                for y in range(h):
                    for xx in range(wd):
                        contribution = x[:, ci, y, xx, None] * w[ci, :, i, j]
                        full[:, g * kg:(g + 1) * kg, lo_h + y * sh + i * dh, lo_w + xx * sw + j * dw] += contribution
    out = full[:, :, lo_h + t:lo_h + fh + oph - b, lo_w + l:lo_w + fw + opw - r]
    return out + (0 if bias is None else np.asarray(bias).reshape(1, -1, 1, 1))


CASES = {  # name: (C, K, kernel, stride, pads (t, l, b, r), dilation, groups, output_padding)
    "plain_3x3": (4, 6, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, (0, 0)),
    "stride_2_upsample": (4, 3, (4, 4), (2, 2), (1, 1, 1, 1), (1, 1), 1, (0, 0)),
    "stride_2_output_padding": (3, 2, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1)),
    "asymmetric_pads": (2, 3, (3, 2), (2, 1), (0, 1, 2, 0), (1, 1), 1, (1, 0)),
    "dilated": (2, 2, (3, 3), (1, 2), (1, 0, 1, 0), (2, 1), 1, (0, 1)),
    "groups": (4, 6, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 2, (0, 0)),
    "depthwise": (3, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, (0, 0)),
    "one_by_one": (5, 4, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, (0, 0)),
    "negative_pads_extend": (2, 3, (3, 3), (3, 2), (-1, 0, 0, -2), (1, 1), 1, (0, 0)),   # ONNX output_shape
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_bias", [True, False])
def test_deconvolution(device, rng, case, with_bias):
    c, k, ks, stride, pads, dil, groups, opad = CASES[case]
    net = pk.Network(case)
    x = net.add_input("x", (c, 4, 5))
    W = (rng.standard_normal((c, k // groups) + ks) * 0.5).astype(np.float32)
    B = rng.standard_normal(k).astype(np.float32) if with_bias else None
    y = net.add_deconvolution(x, k, ks, W, B, stride=stride, padding=pads[:2], post_padding=pads[2:],
                              dilation=dil, groups=groups, output_padding=opad)
    net.mark_output(y.output)
    X = rng.standard_normal((2, c, 4, 5)).astype(np.float32)
    want = deconv2d(X.astype(np.float64), W.astype(np.float64), B, stride, pads, dil, groups, opad)
    assert y.output.shape == want.shape[1:]
    # each output sums at most C/groups * taps terms: their |sum| bounds the rounding (house tolerance)
    scale = deconv2d(np.abs(X).astype(np.float64), np.abs(W).astype(np.float64), None if B is None else np.abs(B),
                     stride, pads, dil, groups, opad) + 1
    check(net, {"x": X}, {y.output.name: want}, device, scale=scale)


@pytest.mark.parametrize("case", ["stride_2_output_padding", "asymmetric_pads", "dilated", "negative_pads_extend"])   # (its groups fail)
def test_deconvolution_matches_onnx_reference(rng, case):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    c, k, ks, stride, pads, dil, groups, opad = CASES[case]
    X = rng.standard_normal((2, c, 4, 5)).astype(np.float32)
    W = rng.standard_normal((c, k // groups) + ks).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=stride, pads=list(pads), dilations=dil,
                            group=groups, output_padding=opad)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(W, "w")])
    want = ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": X})[0]
    net = pk.Network(case)
    x = net.add_input("x", (c, 4, 5))
    y = net.add_deconvolution(x, k, ks, W, stride=stride, padding=pads[:2], post_padding=pads[2:], dilation=dil,
                              groups=groups, output_padding=opad)
    net.mark_output(y.output)
    got = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context().execute({"x": X})
    np.testing.assert_allclose(got[y.output.name], want, rtol=1e-5, atol=1e-5)


def test_deconvolution_cost_and_workspace():
    net = pk.Network("cost")
    x = net.add_input("x", (8, 4, 4))
    y = net.add_deconvolution(x, 4, 3, np.ones((8, 4, 3, 3)), stride=2, padding=1, output_padding=1)
    assert y.output.shape == (4, 8, 8)
    from perfkit.ops import get_op
    op = get_op("deconvolution")
    cost = op.cost(y.params, [x.spec], [y.output.spec], y.weights)
    assert cost.flops == 2 * 8 * 4 * 9 * 16
    # the column matrix (K*taps x H*W per sample) and the float32 accumulator are in the workspace
    assert op.workspace(y.params, [x.spec], [y.output.spec], 2, "cpu") >= 2 * 4 * (4 * 9 * 16 + 4 * 9 * 9)


@pytest.mark.parametrize("kwargs,match", [
    ({"kernel": np.ones((4, 4, 2, 3))}, "layout"), ({"kernel": np.ones((4, 2, 3, 3))}, "layout"),
    ({"output_padding": 2}, "smaller than the stride"), ({"groups": 3}, "dividing num_output_maps"),
    ({"padding": 9}, "to nothing"), ({"padding": 2.5}, "must be an int"), ({"bias": np.ones(3)}, r"bias must have shape \(4,\)"),
    ({"kernel": np.ones((2, 4, 3, 3))}, "the input has 4 channels")])
def test_deconvolution_refuses_bad_parameters(kwargs, match):
    net = pk.Network("bad")
    x = net.add_input("x", (4, 5, 5))
    kw = {"num_output_maps": 4, "kernel_size": 3, "kernel": np.ones((4, 4, 3, 3)), "stride": 2, **kwargs}
    with pytest.raises(pk.PerfkitError, match=match):
        net.add_deconvolution(x, **kw)
    assert not net.layers

