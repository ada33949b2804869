"""cuBLASLt's fully connected and MLP tactic on a GPU (issue 11): bias and ReLU in the GEMM's epilogue, fp32 (strict) and
fp16, with and without bias or ReLU, equal to the float64 reference of the unfused network, captured in a CUDA
graph, and loaded back from an engine file."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics
from perfkit.builder.passes import RULE_NAMES
from perfkit.ops.cuda_lt import TACTICS as LT_TACTICS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")]


def _net(bias: bool, relu: bool):
    rng = np.random.default_rng(5)
    net = pk.Network("fcs")
    x = net.add_input("x", (3, 8, 8))                       # flattened: 192 inputs
    h = net.add_fully_connected(x, 100, rng.standard_normal((100, 192)) * 0.1,
                                rng.standard_normal(100) if bias else None, name="fc1")
    if relu:
        h = net.add_activation(h, "relu", name="act1")
    y = net.add_fully_connected(h, 10, rng.standard_normal((10, 100)) * 0.1, rng.standard_normal(10), name="fc2")
    net.mark_output(y, "y")
    return net


@pytest.mark.parametrize("layer", ["fully_connected", "mlp"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("bias,relu", [(True, True), (True, False), (False, True), (False, False)])
def test_lt_matches_the_reference_with_its_epilogue(monkeypatch, tmp_path, layer, precision, bias, relu):
    dev = pk.get_device("cuda")
    real = tactics.measure
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        real(target, run, device, 1) * (0.01 if target.tactic.startswith("lt") else 1.0))
    net = _net(bias, relu)
    no_mlp = [r for r in RULE_NAMES if not r.startswith("mlp")] if layer == "fully_connected" else "all"
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=16, precision=precision, strict_types=True,
                                                      fusions=no_mlp))
    steps = [s for s in eng.plan.steps if s.type == layer]
    assert steps and all(s.params["tactic"] in LT_TACTICS for s in steps), [(s.type, s.params.get("tactic"))
                                                                      for s in eng.plan.steps]
    ctx = eng.create_execution_context()
    for batch in (16, 1, 5):
        x = pk.models.sample_input(net, batch, seed=batch)
        for _ in range(3):                              # eager, capture, replay
            got = to_host(ctx.execute(x)["y"])
        assert_close(got, reference_forward(net, x)["y"], precision, f"batch {batch}", depth=depth(net))
    assert ctx.graph_status.startswith("on"), ctx.graph_status
    # the engine fixed the algorithm: another context, eager, gives the same bits
    eager = eng.create_execution_context(cuda_graph=False)
    np.testing.assert_array_equal(to_host(eager.execute(x)["y"]), got)
    path = tmp_path / "lt.engine"
    eng.save(path)
    x = pk.models.sample_input(net, 16, seed=2)
    again = to_host(pk.load_engine(path, device=dev).create_execution_context().execute(x)["y"])
    np.testing.assert_array_equal(again, to_host(eng.create_execution_context().execute(x)["y"]))
