"""The layers added for ONNX import working together in one engine: built in every precision (forced with
strict types), with the builder's default choices, saved and loaded through the plan check, profiled by
layer name, and costed in the engine's layer table."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import STRICT, to_host


def decoder(rng):
    """A small decoder touching every new layer type: resize, deconvolution, normalization, parametric
    ReLU, slice, expand, select with a comparison, padding modes, log-softmax and the new activations."""
    net = pk.Network("decoder")
    x = net.add_input("x", (4, 6, 6))
    up = net.add_resize(x, scales=(1, 2, 2), mode="linear", name="up")
    dc = net.add_deconvolution(up.output, 6, 3, rng.standard_normal((4, 6, 3, 3)) * 0.2, rng.standard_normal(6),
                               stride=2, padding=1, output_padding=1, name="deconv")
    nm = net.add_normalization(dc.output, rng.uniform(0.5, 1.5, (6, 1, 1)), rng.standard_normal((6, 1, 1)), [1, 2],
                               name="instance_norm")
    pr = net.add_parametric_relu(nm.output, net.add_constant(np.full((6, 1, 1), 0.1, np.float32)).output,
                                 name="prelu")
    sl = net.add_slice(pr.output, [1, 0], [5, -1], [0, 2], [1, 2], name="slice")
    hs = net.add_activation(sl.output, "hard_swish", name="hswish")
    pad = net.add_padding(hs.output, (1, 2), (1, 0), mode="reflect", name="pad")
    zero = net.add_expand(net.add_constant(np.zeros((1, 1, 1), np.float32)).output, pad.output.shape, name="zeros")
    mask = net.add_elementwise(pad.output, zero.output, "greater", name="positive")
    sel = net.add_select(mask.output, pad.output, zero.output, name="relu_by_select")
    ls = net.add_softmax(sel.output, 0, log=True, name="log_softmax")
    net.mark_output(ls.output)
    return net, ls


def test_decoder_builds_in_every_precision_and_agrees(rng):
    net, out = decoder(rng)
    X = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    device = pk.get_device("cpu")
    results = {}
    for precision in ("fp32", "fp16", "bf16"):
        eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=2, precision=precision, **STRICT))
        computing = eng.layers[~eng.layers["layer"].str.startswith("reformat ")]
        assert set(computing["precision"]) == {precision}, computing[["layer", "precision"]]
        results[precision] = to_host(eng.create_execution_context().execute({"x": X})[out.name])
    assert results["fp32"].shape == (2,) + out.output.shape
    assert np.all(np.isfinite(results["fp32"]))
    # a 12-layer chain ending in log-probabilities of magnitude ~3: measured 0.002 (fp16) and 0.017 (bf16)
    for precision, tol in (("fp16", 0.01), ("bf16", 0.08)):
        np.testing.assert_allclose(results[precision], results["fp32"], atol=tol, err_msg=precision)


def test_decoder_engine_saves_loads_and_profiles_by_layer_name(rng, tmp_path):
    net, out = decoder(rng)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    layers = eng.layers
    by_type = dict(zip(layers["layer"], layers["type"]))
    for name, kind in (("up", "resize"), ("deconv", "deconvolution"), ("instance_norm", "normalization"),
                       ("prelu", "parametric_relu"), ("slice", "slice"), ("pad", "padding"),
                       ("relu_by_select", "select"), ("log_softmax", "softmax")):
        assert by_type.get(name) == kind, (name, by_type)
    assert "zeros" not in by_type                        # an expand of a constant is folded at build time
    costly = layers.set_index("layer").loc[["up", "deconv", "instance_norm", "prelu", "log_softmax"]]
    assert (costly["flops"] > 0).all() and (costly["bytes"] > 0).all(), costly[["flops", "bytes"]]
    path = str(tmp_path / "decoder.engine")
    eng.save(path)
    X = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    again = pk.load_engine(path).create_execution_context()
    np.testing.assert_array_equal(again.execute({"x": X})[out.name],
                                  eng.create_execution_context().execute({"x": X})[out.name])
    with pk.profile(again, gpu_metrics=False) as run:
        again.execute({"x": X})
    assert {"up", "deconv", "instance_norm", "log_softmax"} <= set(run.layers["layer"])


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_decoder_on_cuda_matches_the_cpu(rng):
    net, out = decoder(rng)
    X = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    got = {}
    for device in ("cpu", "cuda"):
        eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=2))
        got[device] = to_host(eng.create_execution_context().execute({"x": X})[out.name])
    np.testing.assert_allclose(got["cuda"], got["cpu"], rtol=1e-4, atol=1e-4)
