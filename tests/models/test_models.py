"""Sample networks: engines match the unfused NumPy reference per precision, on each device."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import STRICT, to_host
from oracles import assert_close, depth, reference_forward


def test_mnist_is_the_guides_network():
    net = pk.models.mnist_mlp()
    assert [(l.name, l.type) for l in net.layers] == [("ip1", "fully_connected"), ("relu1", "activation"),
                                                      ("ip2", "fully_connected"), ("prob", "softmax")]
    assert net.get_layer("ip1").weights["kernel"].shape == (500, 784)
    assert net.get_layer("ip2").weights["kernel"].shape == (10, 500)
    assert int(np.prod(net.inputs[0].shape)) == 784


def test_deterministic_weights():
    a, b, c = pk.models.resnet_small(seed=1), pk.models.resnet_small(seed=1), pk.models.resnet_small(seed=2)
    wa, wb, wc = (n.get_layer("stem_conv").weights["kernel"] for n in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


_REF = {}


def _reference(model):
    if model not in _REF:
        net = pk.models.SAMPLES[model]()
        x = pk.models.sample_input(net, 3, seed=5)
        _REF[model] = net, x, reference_forward(net, x)
    return _REF[model]


@pytest.mark.parametrize("model", ["mnist_mlp", "lenet", "resnet_small", "transformer_encoder", "mlp"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_engine_matches_reference(device, model, precision):
    net, x, ref = _reference(model)
    strict = STRICT if precision != "fp32" else {}            # the layers really store fp16/bf16
    if strict and precision == "bf16" and not device.runs_bf16:
        pytest.skip(f"{device.name} cannot run bf16 layers: strict bf16 is refused")
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4, precision=precision, **strict))
    got = eng.create_execution_context().execute(x)
    for name, r in ref.items():
        assert_close(to_host(got[name]), r, precision, f"{model}/{name}", depth=depth(net))


def test_mlp_validation():
    with pytest.raises(pk.NetworkDefinitionError, match="widths"):
        pk.models.mlp([10])
    net = pk.models.mlp([8, 16, 4])
    assert [l.name for l in net.layers] == ["fc1", "act1", "fc2"]
