import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import reference_forward


def _register():
    def shape_fn(shapes, params):
        (c, n), = shapes
        return [(c, n), (c, 1)]

    def impl(xp, ins, params):       # normalise rows to unit L2 norm, also return the norms
        x = ins[0]
        norm = xp.sqrt((x.astype(np.float32) ** 2).sum(axis=-1, keepdims=True)) + params["eps"]
        return [(x / norm).astype(x.dtype), norm.astype(x.dtype)]
    pk.register_plugin("l2_normalize", shape_fn, impl=impl, cost_fn=lambda s, p: (3 * np.prod(s[0]), 8 * np.prod(s[0])),
                       replace=True)


def test_plugin_layer_runs_with_outputs_and_cost(device):
    _register()
    net = pk.Network("plug")
    x = net.add_input("x", (3, 5))
    layer = net.add_plugin("l2_normalize", [x], {"eps": 1e-6}, name="l2")
    assert [o.shape for o in layer.outputs] == [(3, 5), (3, 1)]
    net.mark_output(layer.get_output(0))
    net.mark_output(layer.get_output(1))
    inp = {"x": np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)}
    ref = reference_forward(net, inp)
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=2))
    out = eng.create_execution_context().execute(inp)
    for k in ref:
        np.testing.assert_allclose(to_host(out[k]), ref[k], rtol=1e-5)
    assert eng.layers.loc[0, "flops"] == 45


def test_plugin_errors():
    with pytest.raises(pk.PluginError, match="no implementation"):
        pk.register_plugin("nothing", lambda s, p: s[0])
    with pytest.raises(pk.PluginError, match="'cpu', 'cuda' or 'any'"):
        pk.register_plugin("bad", lambda s, p: s[0], impls={"tpu": lambda *a: None})
    _register()
    with pytest.raises(pk.PluginError, match="already registered"):
        pk.register_plugin("l2_normalize", lambda s, p: s[0], impl=lambda *a: None)
    net = pk.Network("p")
    x = net.add_input("x", (3,))
    with pytest.raises(pk.PluginNotRegisteredError, match="'missing' is not registered"):
        net.add_plugin("missing", [x])
    with pytest.raises(pk.PluginError, match="JSON"):
        net.add_plugin("l2_normalize", [x], {"eps": object()})


def test_plugin_without_implementation_for_device_fails_clearly():
    pk.register_plugin("cuda_only", lambda s, p: s[0], impls={"cuda": lambda xp, ins, p: ins[0]}, replace=True)
    net = pk.Network("p")
    x = net.add_input("x", (3,))
    net.mark_output(net.add_plugin("cuda_only", [x]).output)
    ctx = pk.Builder("cpu").build(net).create_execution_context()
    with pytest.raises(pk.ExecutionError, match="no implementation for the cpu device"):
        ctx.execute({"x": np.ones((1, 3), np.float32)})
