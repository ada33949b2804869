"""A layer's source op (the op type in the model it was imported from) reaches the engine's layers,
survives a save and load, and a file that carries a malformed one is refused."""
import numpy as np
import pytest

import perfkit as pk


def imported_like_net():
    net = pk.Network("imported")
    x = net.add_input("x", (8,))
    fc = net.add_fully_connected(x, 8, np.eye(8, dtype=np.float32), np.zeros(8, np.float32), name="gemm_0")
    fc.source_op = "Gemm"
    act = net.add_activation(fc.output, "relu", name="relu_0")
    act.source_op = "Relu"
    net.mark_output(net.add_softmax(act.output, name="softmax_0").output)   # written with the API: no source op
    return net


def test_source_ops_of_fused_layers_are_joined_and_saved(tmp_path):
    eng = pk.Builder("cpu").build(imported_like_net(), pk.BuilderConfig(max_batch_size=2))
    layers = eng.layers.set_index("layer")
    fused = [n for n in layers.index if "gemm_0" in n]
    assert layers.loc[fused[0], "source_op"] == ("Gemm, Relu" if "relu_0" in fused[0] else "Gemm")
    assert layers.loc[[n for n in layers.index if "softmax_0" in n][0], "source_op"] == ""
    path = tmp_path / "e.engine"
    eng.save(path)
    assert pk.load_engine(path).layers["source_op"].tolist() == eng.layers["source_op"].tolist()


def test_api_networks_have_empty_source_ops():
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=1))
    assert set(eng.layers["source_op"]) == {""}


@pytest.mark.parametrize("bad", [["Gemm"], {"gemm_0": 3}, "Gemm"])
def test_a_file_with_a_malformed_source_op_table_is_refused(tmp_path, bad):
    import engine_craft as craft
    path = tmp_path / "e.engine"
    pk.Builder("cpu").build(imported_like_net(), pk.BuilderConfig(max_batch_size=2)).save(path)
    meta, plan, tensors = craft.read(path)
    plan["extra"]["source_ops"] = bad
    craft.write(path, meta, plan, tensors)
    with pytest.raises(pk.EngineFileError, match="source_ops"):
        pk.load_engine(path)


def test_a_step_whose_tactic_was_removed_is_refused(tmp_path):
    # parameters an op gained later may be missing from older files (their defaults apply), but never the
    # tactic: it decides the weights' layout, so a default could compute something else
    import engine_craft as craft
    path = tmp_path / "e.engine"
    pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2)).save(path)
    meta, plan, tensors = craft.read(path)
    steps = [s for s in plan["steps"] if "tactic" in s["params"]]
    assert steps
    del steps[0]["params"]["tactic"]
    craft.write(path, meta, plan, tensors)
    with pytest.raises(pk.EngineFileError, match="params"):
        pk.load_engine(path)


@pytest.mark.parametrize("tactic", ["lt1", "cudnn"])
def test_a_cpu_file_naming_a_gpu_tactic_is_refused(tmp_path, tactic):
    # cuBLASLt's and cuDNN's tactics run on CUDA only: a CPU engine that names one would fail at its first execute
    import engine_craft as craft
    path = tmp_path / "e.engine"
    pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2)).save(path)
    meta, plan, tensors = craft.read(path)
    layer = "mlp" if tactic == "lt1" else "convolution"              # lenet's fully connected layers fuse into an MLP
    step = next(s for s in plan["steps"] if s["type"] == layer)
    step["params"]["tactic"] = tactic
    craft.write(path, meta, plan, tensors)
    with pytest.raises(pk.EngineFileError, match="runs on cuda devices only"):
        pk.load_engine(path)


def test_only_channels_last_tensors_carry_a_layout_in_the_file():
    plan = pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2)).plan.to_json()
    assert not any("layout" in t for t in plan["tensors"].values())     # older perfkit reads CPU files as before
