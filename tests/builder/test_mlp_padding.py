"""Tensor-Core padding of a fused MLP's inner widths (guide chapter 3: fp16 GEMM dimensions in multiples of 8):
the nn+pad8 / nt+pad8 tactics give the unpadded result, survive saving and loading, and are offered only where
they can help (a reduced precision, an inner width off the multiple; never timed on the CPU)."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics
from perfkit.ops.mlp import MLP


def _built(device, monkeypatch, want, precision="fp16"):
    # the CPU has no Tensor Cores and does not time the padded tactics: here it is made to, and to keep ``want``
    monkeypatch.setattr(MLP, "cpu_losers", lambda self, params, inputs: ())
    monkeypatch.setattr(tactics, "measure", lambda target, run, dev, iterations:
                        0.5 if target.tactic == want else 1.0)
    # inner widths 20 and 12, not multiples of 8; no softmax at the end, which would hide a constant added to
    # every output
    net = pk.models.mlp((32, 20, 12, 5), seed=4, name="odd_widths")
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4, precision=precision, strict_types=True))
    return net, eng


@pytest.mark.parametrize("tactic", ["nn+pad8", "nt+pad8"])
def test_a_padded_mlp_gives_the_unpadded_result_and_loads_back(device, monkeypatch, tmp_path, tactic):
    net, eng = _built(device, monkeypatch, tactic)
    (step,) = [s for s in eng.plan.steps if s.type == "mlp"]
    assert step.params["tactic"] == tactic
    assert step.params["widths"] == [32, 24, 16, 5] and step.params["net_widths"] == [32, 20, 12, 5]
    log = eng.build_log
    chosen = log[(log["phase"] == "tactic") & (log["outcome"] == "chosen")]
    assert tactic in set(chosen["rule"]), chosen.to_string()                  # the build log says so
    x = pk.models.sample_input(net, 3, seed=7)
    got = to_host(eng.create_execution_context().execute(x)["output"])
    assert_close(got, reference_forward(net, x)["output"], "fp16", depth=depth(net))
    path = tmp_path / "padded.engine"
    eng.save(path)
    again = pk.load_engine(path, device=device)              # the engine-file check undoes and redoes the padding
    np.testing.assert_array_equal(to_host(again.create_execution_context().execute(x)["output"]), got)


def test_padding_is_offered_only_where_it_can_help():
    from perfkit.ops.base import TensorSpec
    op = MLP()
    params = {"stages": [{"activation": None}, {"activation": None}], "flatten": False, "widths": [16, 20, 3]}
    half, single = [TensorSpec((16,), np.float16)], [TensorSpec((16,), np.float32)]
    assert op.applicable_tactics(params, half) == ("nn", "nt", "nn+pad8", "nt+pad8")
    assert op.applicable_tactics(params, single) == ("nn", "nt")                  # no Tensor Cores for fp32 here
    assert op.applicable_tactics({**params, "widths": [16, 24, 3]}, half) == ("nn", "nt")   # already a multiple
    assert op.cpu_losers(params, half) == ("nn+pad8", "nt+pad8")


@pytest.mark.parametrize("strict", [True, False])
def test_the_cpu_does_not_time_padded_tactics(monkeypatch, strict):
    # neither the tactic choice nor the precision choice (which times each layer in both precisions) times them
    timed = []
    real = tactics.time_layer

    def spy(layer, op, params, weights, ins, outs, consts, names, *a, **kw):
        timed.append(tuple(names))
        return real(layer, op, params, weights, ins, outs, consts, names, *a, **kw)
    monkeypatch.setattr(tactics, "time_layer", spy)
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, precision="fp16", strict_types=strict))
    assert timed and not any("pad8" in n for names in timed for n in names), timed
    (step,) = [s for s in eng.plan.steps if s.type == "mlp"]
    assert "net_widths" not in step.params and step.params["widths"] == [784, 500, 10]


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_a_gpu_fp16_build_times_the_padded_tactics_and_says_which_won():
    net = pk.models.mnist_mlp()                          # 500 hidden units: padded to 504
    eng = pk.Builder("cuda").build(net, pk.BuilderConfig(max_batch_size=32, precision="fp16", strict_types=True))
    log = eng.build_log
    timed = log[(log["phase"] == "tactic") & log["matched"].str.contains("MLP")]
    assert {"nn+pad8", "nt+pad8"} <= set(timed["rule"]), timed.to_string()
    x = pk.models.sample_input(net, 32, seed=3)
    out = to_host(eng.create_execution_context().execute(x)["prob"])
    assert_close(out, reference_forward(net, x)["prob"], "fp16", depth=depth(net))
