"""Padding modes (constant with a value, reflect, edge, wrap) on any number of trailing dims, against
numpy.pad on every device and precision: the values only move, so they must match bit for bit."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check


def one_input(rng, shape, batch=2):
    net = pk.Network("op")
    x = net.add_input("x", shape)
    return net, x, rng.standard_normal((batch,) + tuple(shape)).astype(np.float32)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
@pytest.mark.parametrize("pre,post", [((1, 2), (2, 1)), ((0, 1, 2), (1, 0, 3)), ((2,), (0,))])
def test_padding_modes_match_numpy_pad(device, rng, mode, pre, post):
    net, x, X = one_input(rng, (3, 4, 5))
    y = net.add_padding(x, pre, post, mode=mode)
    net.mark_output(y.output)
    widths = [(0, 0)] * (4 - len(pre)) + list(zip(pre, post))
    check(net, {"x": X}, {y.output.name: np.pad(X, widths, mode=mode).astype(np.float64)}, device, exact=True)


def test_padding_constant_value_and_crop_on_three_dims(device, rng):
    net, x, X = one_input(rng, (3, 4, 5))
    y = net.add_padding(x, (1, -1, 2), (0, 2, -1), value=-2.5)
    net.mark_output(y.output)
    want = np.pad(X, [(0, 0), (1, 0), (0, 2), (2, 0)], constant_values=-2.5)[:, :, 1:, :-1]
    check(net, {"x": X}, {y.output.name: want.astype(np.float64)}, device, exact=True)


def test_padding_int_amount_pads_every_listed_dim(device, rng):
    net, x, X = one_input(rng, (3, 4, 5))
    y = net.add_padding(x, 1, (0, 2, 1), mode="edge")
    net.mark_output(y.output)
    want = np.pad(X, [(0, 0), (1, 0), (1, 2), (1, 1)], mode="edge")
    check(net, {"x": X}, {y.output.name: want.astype(np.float64)}, device, precisions=("fp32",), exact=True)


@pytest.mark.parametrize("kwargs,match", [
    ({"pre_padding": (4, 0), "post_padding": 0, "mode": "reflect"}, "smaller than the dim"),
    ({"pre_padding": (0, 6), "post_padding": 0, "mode": "wrap"}, "at most the dim"),
    ({"pre_padding": (-1, 0), "post_padding": 0, "mode": "edge"}, "cannot crop"),
    ({"pre_padding": (1, 0), "post_padding": (1, 0, 0), "mode": "constant"}, "different numbers of dims"),
    ({"pre_padding": 1, "post_padding": 1, "mode": "edge", "value": 2.0}, "mode 'constant' only"),
    ({"pre_padding": 1, "post_padding": 1, "mode": "symmetric"}, "constant, reflect, edge, wrap")])
def test_padding_refuses_bad_modes_at_add_time(kwargs, match):
    net = pk.Network("bad")
    x = net.add_input("x", (3, 4, 5))
    with pytest.raises(pk.PerfkitError, match=match):
        net.add_padding(x, **kwargs)
    assert not net.layers


def test_padding_cost_counts_the_bytes_moved():
    net = pk.Network("cost")
    x = net.add_input("x", (4, 8, 8))
    layer = net.add_padding(x, 1, 1, mode="reflect")
    from perfkit.ops import get_op
    cost = get_op("padding").cost(layer.params, [x.spec], [layer.output.spec], {})
    assert cost.flops == 0.0 and cost.bytes == x.spec.nbytes + layer.output.spec.nbytes
