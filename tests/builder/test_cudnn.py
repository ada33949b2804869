"""cuDNN's convolution tactic on a GPU (issue 11): NHWC regions with reformat layers, results equal to the float64
reference of the unfused network within fp16's tolerance, the epilogue paths (bias + ReLU fused in cuDNN; residual
sum, other activations and dilation after it), CUDA-graph capture, and engine files that load back."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")]


def _cudnn_or_skip(dev):
    from perfkit.ops.cuda_cudnn import unavailable_reason
    why = unavailable_reason()
    if why:
        pytest.skip(why)


def _prefer_cudnn(monkeypatch):
    real = tactics.measure
    # the other convolution tactics 100x slower: with GPU timing a reformat costs about what a small
    # convolution does, and the layout choice would rightly keep a last 1x1 on im2col to save one
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        real(target, run, device, 1) * (100.0 if target.type == "convolution"
                                                        and target.tactic != "cudnn" else 1.0))


def _odd_net():
    """A 7x7 stride-2 stem on 3 channels, a dilated 3x3 with a residual sum and a sigmoid, a 1x1 without bias."""
    rng = np.random.default_rng(3)
    w = lambda *s: (rng.standard_normal(s) * (2.0 / np.prod(s[1:])) ** 0.5).astype(np.float32)  # noqa: E731
    net = pk.Network("odd_convs")
    x = net.add_input("x", (3, 23, 23))
    a = net.add_convolution(x, 16, 7, w(16, 3, 7, 7), w(16), stride=2, padding=3, name="stem")
    a = net.add_activation(a, "relu", name="stem_relu")
    b = net.add_convolution(a, 16, 3, w(16, 16, 3, 3), w(16), padding=2, dilation=2, name="dilated")
    s = net.add_elementwise(b, a, "sum", name="residual")
    s = net.add_activation(s, "sigmoid", name="sig")
    c = net.add_convolution(s, 8, 1, w(8, 16, 1, 1), None, name="pointwise")
    net.mark_output(c, "y")
    return net


@pytest.mark.parametrize("model", ["odd", "resnet_small"])
def test_cudnn_convolutions_run_nhwc_and_match_the_reference(monkeypatch, tmp_path, model):
    dev = pk.get_device("cuda")
    _cudnn_or_skip(dev)
    _prefer_cudnn(monkeypatch)
    net = _odd_net() if model == "odd" else pk.models.resnet_small()
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=8, precision="fp16", strict_types=True))
    convs = [s for s in eng.plan.steps if s.type == "convolution"]
    assert convs and all(s.params["tactic"] == "cudnn" for s in convs), [s.params["tactic"] for s in convs]
    for s in convs:
        assert {eng.plan.tensors[t].layout for t in s.inputs + s.outputs} == {"nhwc"}, s.name
    log = eng.build_log
    assert (log["phase"] == "layout").any() and (log["phase"] == "reformat").any()
    assert all(eng.plan.tensors[t].layout == "" for t in eng.plan.inputs + eng.plan.outputs)
    ctx = eng.create_execution_context()
    for batch in (8, 3):
        x = pk.models.sample_input(net, batch, seed=batch)
        want = reference_forward(net, x)
        for _ in range(3):                          # eager, capture, replay
            got = ctx.execute(x)
        for k in want:
            if k in got:
                assert_close(to_host(got[k]), want[k], "fp16", k, depth=depth(net))
    assert ctx.graph_status.startswith("on"), ctx.graph_status
    path = tmp_path / "cudnn.engine"
    eng.save(path)
    again = pk.load_engine(path, device=dev)
    x = pk.models.sample_input(net, 8, seed=1)
    first = {k: to_host(v) for k, v in eng.create_execution_context().execute(x).items()}
    loaded = {k: to_host(v) for k, v in again.create_execution_context().execute(x).items()}
    for k in first:
        np.testing.assert_array_equal(loaded[k], first[k])


def test_fp32_engines_do_not_offer_cudnn():
    dev = pk.get_device("cuda")
    eng = pk.Builder(dev).build(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=4))
    assert all(s.params.get("tactic") != "cudnn" for s in eng.plan.steps)
    assert {t.layout for t in eng.plan.tensors.values()} == {""}
