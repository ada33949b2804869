"""BuilderConfig(tf32=...) (issue 11): off by default; on CUDA the float32 products of fp32 layers run on TF32
Tensor Cores (cuBLAS and cuBLASLt compute type 32F_FAST_TF32), within about fp16's tolerance of the reference and
measurably different from strict fp32; the CPU ignores it and says so; engine files keep it; timing-cache keys of
strict builds are unchanged."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from oracles import assert_close, depth, reference_forward
from perfkit.builder import tactics
from perfkit.errors import BuildError
from perfkit.ops.base import TensorSpec


def _net(width=1024):
    rng = np.random.default_rng(11)
    net = pk.Network("tf32_fcs")
    x = net.add_input("x", (width,))
    h = net.add_fully_connected(x, width, rng.standard_normal((width, width)) / width ** 0.5,
                                rng.standard_normal(width) * 0.1, name="fc1")
    h = net.add_activation(h, "relu", name="act1")
    y = net.add_fully_connected(h, 16, rng.standard_normal((16, width)) / width ** 0.5, None, name="fc2")
    net.mark_output(y, "y")
    return net


def test_tf32_is_off_by_default_and_must_be_a_bool():
    assert pk.BuilderConfig().tf32 is False
    with pytest.raises(BuildError, match="tf32 must be True or False"):
        pk.BuilderConfig(tf32="yes")


def test_the_cpu_ignores_tf32_says_so_and_engine_files_keep_it(tmp_path):
    net = _net(64)
    x = pk.models.sample_input(net, 4, seed=1)
    # the same tactics in both (timed choices may differ between two builds, and so would the last bits)
    strict = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=4, tactics="default"))
    tf32 = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=4, tactics="default", tf32=True))
    np.testing.assert_array_equal(tf32.create_execution_context().execute(x)["y"],
                                  strict.create_execution_context().execute(x)["y"])
    log = tf32.build_log
    row = log[(log["phase"] == "precision") & (log["rule"] == "tf32")]
    assert len(row) == 1 and "no effect on cpu" in row["detail"].iloc[0], row
    assert not (strict.build_log["rule"] == "tf32").any()
    tf32.save(tmp_path / "e.engine")
    back = pk.load_engine(tmp_path / "e.engine")
    assert back.plan.build_config["tf32"] is True
    assert back.create_execution_context()._buffers.env.tf32 is True
    assert strict.create_execution_context()._buffers.env.tf32 is False


def test_timing_cache_keys_of_strict_builds_are_unchanged():
    dev = pk.get_device("cpu")
    args = (dev, "fp32", "fully_connected", {"num_outputs": 8}, [TensorSpec((4,), "float32")], [False],
            {"kernel": np.zeros((8, 4), np.float32)}, 2)
    assert tactics.signature_of(*args) == tactics.signature_of(*args, False)
    assert tactics.signature_of(*args, True) != tactics.signature_of(*args)


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
@pytest.mark.parametrize("fusions", ["all", "none"])      # MLP stages (cuBLASLt or cuBLAS) and plain FC layers
def test_tf32_on_cuda_is_within_tolerance_and_not_strict(fusions):
    dev = pk.get_device("cuda")
    net = _net()
    x = pk.models.sample_input(net, 64, seed=3)
    want = reference_forward(net, x)["y"]
    outs = {}
    for tf32 in (False, True):
        eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=64, tf32=tf32, fusions=fusions))
        ctx = eng.create_execution_context()
        for _ in range(3):                              # eager, capture, replay
            outs[tf32] = to_host(ctx.execute(x)["y"])
        assert ctx.graph_status.startswith("on"), ctx.graph_status
        if tf32:
            row = eng.build_log[eng.build_log["rule"] == "tf32"]["detail"].iloc[0]
            assert "run on TF32 Tensor Cores" in row and "fc1" in row, row
    assert_close(outs[False], want, "fp32", "strict fp32", depth=depth(net))
    assert_close(outs[True], want, "fp16", "tf32", depth=depth(net))   # 10-bit mantissas, as fp16's
    assert not np.array_equal(outs[True], outs[False]), "tf32 gave strict fp32's bits: TF32 was not used"
