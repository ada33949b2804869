import threading
import time

import numpy as np
import pytest

import perfkit as pk
from perfkit.builder.memory_plan import plan_arena

from oracles import assert_close, depth, reference_forward


def test_build_log_and_layers_frames():
    t0 = time.perf_counter_ns()
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=4, fusions="none"))
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    log = eng.build_log
    assert list(log["phase"])[:2] == ["validate", "dead_layers"]
    assert {"memory_plan", "weights", "precision"} <= set(log["phase"])
    assert log.attrs["schema"] == "build_log" and (log["time_ms"] > 0).all()
    assert log.groupby("phase")["time_ms"].max().sum() <= wall_ms        # ms, phases one after another
    layers = eng.layers
    assert list(layers["layer"]) == ["ip1", "relu1", "ip2", "prob"]
    assert layers.loc[0, "flops"] == 2 * 784 * 500 + 500
    assert eng.input_names == ["data"] and eng.output_names == ["prob"]


def test_dead_layers_removed_and_logged():
    net = pk.Network("d")
    x = net.add_input("x", (4,))
    net.add_activation(x, "tanh", name="unused")
    net.mark_output(net.add_activation(x, "relu", name="used").output)
    eng = pk.Builder("cpu").build(net)
    assert list(eng.layers["layer"]) == ["used"]
    row = eng.build_log.query("phase == 'dead_layers'").iloc[0]
    assert row["matched"] == "unused" and row["layers_before"] == 2 and row["layers_after"] == 1


def test_fp16_reformats_and_override():
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, precision="fp16", strict_types=True,
                                                        layer_precisions={"prob": "fp32"}))
    layers = eng.layers.set_index("layer")
    assert layers.loc["2-layer MLP (ip1 + relu1 + ip2)", "precision"] == "fp16" and layers.loc["prob", "precision"] == "fp32"
    reformats = eng.build_log.query("phase == 'reformat'")
    assert len(reformats) >= 2      # data -> fp16, ip2 -> fp32 for prob
    assert eng.get_binding_dtype("data") == np.float32 and eng.get_binding_dtype("prob") == np.float32
    with pytest.raises(pk.BuildError, match="not in network"):
        pk.Builder("cpu").build(net, pk.BuilderConfig(layer_precisions={"nope": "fp16"}))


def test_config_validation():
    with pytest.raises(pk.BuildError, match="max_batch_size"):
        pk.BuilderConfig(max_batch_size=0)
    with pytest.raises(pk.BuildError, match="precision"):
        pk.BuilderConfig(precision="int8")
    net = pk.Network("empty")
    with pytest.raises(pk.BuildError, match="no inputs"):
        pk.Builder("cpu").build(net)
    net.add_input("x", (2,))
    with pytest.raises(pk.BuildError, match="no outputs"):
        pk.Builder("cpu").build(net)


def test_workspace_limit():
    net = pk.models.lenet()
    with pytest.raises(pk.BuildError, match="workspace"):
        pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8, max_workspace_bytes=1024))


def test_builder_refuses_two_threads():
    b = pk.Builder("cpu")
    net = pk.models.mnist_mlp()
    b._lock.acquire()         # another thread is building
    try:
        errors = []
        t = threading.Thread(target=lambda: errors.append(pytest.raises(pk.BuilderBusyError, b.build, net)))
        t.start()
        t.join()
        assert errors and "one Builder per thread" in str(errors[0].value)
    finally:
        b._lock.release()
    x = pk.models.sample_input(net, 1)                  # the builder still builds correct engines
    got = b.build(net).create_execution_context().execute(x)["prob"]
    assert_close(got, reference_forward(net, x)["prob"], "fp32", depth=depth(net))


def test_memory_plan_reuses_and_never_overlaps_live_tensors():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 20))
        life = {}
        for i in range(n):
            a = int(rng.integers(0, 30))
            life[f"t{i}"] = (a, a + int(rng.integers(0, 6)))
        sizes = {k: int(rng.integers(1, 5000)) for k in life}
        offsets, arena = plan_arena(life, sizes)
        for a in life:
            assert offsets[a] + sizes[a] <= arena
            for b in life:
                if a < b and not (life[a][1] < life[b][0] or life[b][1] < life[a][0]):
                    assert offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a], (a, b)


def test_chain_reuses_memory():
    net = pk.models.mlp((256,) + (256,) * 8)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8))
    naive = sum(t.shape[0] for t in net.tensors if t not in net.inputs and t not in net.outputs) * 8 * 4
    assert eng.memory["activations"] <= naive / 3
