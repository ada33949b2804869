"""perfkit's matrix-vector kernel (ops/cuda_gemv.py), the ``gemv`` tactic of fully connected layers and
``nt-gemv`` of MLP layers (issue 11): equal to the float64 reference of the unfused network in fp32 and fp16, with
and without bias or ReLU, at batches below, at and above one 8-row slice, on the 16-byte path and the one-value
path, captured in a CUDA graph and loaded back from an engine file."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics
from perfkit.builder.passes import RULE_NAMES

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")]

GEMV = {"fully_connected": "gemv", "mlp": "nt-gemv"}


def _net(bias: bool, relu: bool):
    rng = np.random.default_rng(7)
    net = pk.Network("fcs")
    x = net.add_input("x", (3, 8, 8))                       # 192 inputs: 16-byte pieces in fp32 and fp16
    h = net.add_fully_connected(x, 100, rng.standard_normal((100, 192)) * 0.1,
                                rng.standard_normal(100) if bias else None, name="fc1")
    if relu:
        h = net.add_activation(h, "relu", name="act1")
    # 100 inputs: 400 bytes a row in fp32 (16-byte pieces), 200 in fp16 (one value per lane)
    y = net.add_fully_connected(h, 10, rng.standard_normal((10, 100)) * 0.1, rng.standard_normal(10), name="fc2")
    net.mark_output(y, "y")
    return net


@pytest.mark.parametrize("layer", ["fully_connected", "mlp"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("bias,relu", [(True, True), (False, False), (False, True)])
def test_gemv_matches_the_reference(monkeypatch, tmp_path, layer, precision, bias, relu):
    dev = pk.get_device("cuda")
    real = tactics.measure
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        real(target, run, device, 1) * (0.01 if target.tactic == GEMV[layer] else 1.0))
    net = _net(bias, relu)
    no_mlp = [r for r in RULE_NAMES if not r.startswith("mlp")] if layer == "fully_connected" else "all"
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=16, precision=precision, strict_types=True,
                                                      fusions=no_mlp))
    steps = [s for s in eng.plan.steps if s.type == layer]
    assert steps and all(s.params["tactic"] == GEMV[layer] for s in steps), \
        [(s.type, s.params.get("tactic")) for s in eng.plan.steps]
    ctx = eng.create_execution_context()
    for batch in (16, 1, 5, 11):
        x = pk.models.sample_input(net, batch, seed=batch)
        for _ in range(3):                              # eager, capture, replay
            got = to_host(ctx.execute(x)["y"])
        assert_close(got, reference_forward(net, x)["y"], precision, f"batch {batch}", depth=depth(net))
    assert ctx.graph_status.startswith("on"), ctx.graph_status
    path = tmp_path / "gemv.engine"
    eng.save(path)
    x = pk.models.sample_input(net, 16, seed=2)
    again = to_host(pk.load_engine(path, device=dev).create_execution_context().execute(x)["y"])
    np.testing.assert_array_equal(again, to_host(eng.create_execution_context().execute(x)["y"]))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_kernel_on_misaligned_and_wide_operands(dtype):
    import cupy as cp
    from perfkit.ops.cuda_gemv import gemv
    rng = np.random.default_rng(1)
    k, n = 300, 4104                                    # more rows than one block; n not a multiple of 32 lanes x 8
    w = rng.standard_normal((k, n)).astype(dtype) * 0.05
    b = rng.standard_normal(k).astype(dtype)
    x_all = rng.standard_normal((20 * n + 1,)).astype(dtype)
    for batch, offset in ((1, 0), (3, 1), (17, 0), (9, 1)):   # offset 1: addresses not 16-byte aligned
        x = cp.asarray(x_all)[offset:offset + batch * n].reshape(batch, n)
        out = cp.empty((batch, k), dtype)
        gemv(x, cp.asarray(w), cp.asarray(b), out, True)
        ref = np.maximum(x.get().astype(np.float64) @ w.astype(np.float64).T + b, 0)
        tol = 2e-3 if dtype == "float16" else 1e-5
        np.testing.assert_allclose(out.get().astype(np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())
