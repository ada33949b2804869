"""The raw exceptions listed in issue 8 ("Errors never escape raw"), one test each; the table in
tests/test_bad_arguments.py covers the rest of the public API."""
import ast
import os

import numpy as np
import pytest

import perfkit as pk


def _tiny():
    return pk.models.mlp((4, 3, 2), seed=1, name="tiny")


def test_add_input_with_an_unknown_dtype_is_a_network_definition_error():
    with pytest.raises(pk.NetworkDefinitionError, match="dtype must be one of float32, float16, int32"):
        pk.Network().add_input("x", (3,), dtype="banana")
    with pytest.raises(pk.NetworkDefinitionError, match="float64"):
        pk.Network().add_input("x", (3,), dtype=np.float64)
    assert pk.Network().add_input("x", (3,), dtype=np.float16).dtype == "float16"


@pytest.mark.parametrize("shape", [(2.5,), (True, 3), (2.0,), (np.float32(3),), ("3",)])
def test_non_integer_dimensions_are_refused(shape):
    net = pk.Network()
    with pytest.raises(pk.ShapeError, match="every dimension must be an int|sequence of ints"):
        net.add_input("x", shape)
    assert net.inputs == [] and net.tensors == []
    assert net.add_input("x", (np.int64(2), 3)).shape == (2, 3)


@pytest.mark.parametrize("batch", [-1, 0, 2.5, True, None])
def test_sample_input_refuses_a_bad_batch_size(batch):
    with pytest.raises(pk.ArgumentError, match="batch_size"):
        pk.models.sample_input(_tiny(), batch)


def test_sample_input_refuses_a_batch_beyond_host_memory_before_allocating():
    with pytest.raises(pk.AllocationError, match="smaller batch_size"):
        pk.models.sample_input(pk.models.mnist_mlp(), 10 ** 12)


def test_measure_refuses_a_negative_batch_size():
    eng = pk.Builder("cpu").build(_tiny(), pk.BuilderConfig(max_batch_size=2, tactics="default"))
    ctx = eng.create_execution_context()
    with pytest.raises(pk.ArgumentError, match="batch_size must be at least 1"):
        pk.bench.measure(ctx, batch_size=-1, duration_s=0.0, warmup_ms=0)
    with pytest.raises(pk.BatchSizeError, match="max_batch_size 2"):
        pk.bench.measure(ctx, batch_size=3, duration_s=0.0, warmup_ms=0)


@pytest.mark.parametrize("batch", [-3, 0, 1.5, True])
def test_engine_set_engine_for_refuses_a_non_positive_batch(batch):
    es = pk.EngineSet(_tiny(), [1, 2], pk.BuilderConfig(tactics="default"))
    with pytest.raises(pk.ArgumentError, match="engine_for: batch"):
        es.engine_for(batch)
    assert es.engine_for(2).max_batch_size == 2 and es.engine_for(1).max_batch_size == 1


def test_a_missing_kernel_is_reported_missing_not_as_nan():
    net = pk.Network()
    x = net.add_input("x", (3,))
    with pytest.raises(pk.NetworkDefinitionError, match="kernel is missing") as e:
        net.add_fully_connected(x, 2, None)
    assert "NaN" not in str(e.value)


def test_layer_summary_with_a_bad_by_is_a_perfkit_error():
    frame = pk.frames.LAYER_TIMES.frame([])
    with pytest.raises(pk.PerfkitError, match="'layer', 'type'"):
        pk.profiling.layer_summary(frame, by="nope")
    with pytest.raises(pk.PerfkitError, match="pandas DataFrame"):
        pk.profiling.layer_summary(None)


def test_plot_sweep_with_a_wrong_metric_is_a_perfkit_error():
    frame = pk.frames.SWEEP.frame([])
    with pytest.raises(pk.UnknownNameError, match="plot_sweep: metric") as e:
        pk.plots.plot_sweep(frame, "nope")
    assert "latency_median_ms" in str(e.value) and isinstance(e.value, KeyError)


def _chain():
    net = pk.Network("chain")
    x = net.add_input("x", (4,))
    a = net.add_activation(x, "relu", name="a")
    b = net.add_activation(a.output, "tanh", name="b")
    c = net.add_activation(b.output, "sigmoid", name="c")
    net.mark_output(c.output)
    return net, x, a, b, c


def test_a_cycle_made_by_editing_layer_inputs_is_refused_naming_its_layers():
    net, x, a, b, c = _chain()
    a.inputs = [c.output]
    with pytest.raises(pk.BuildError, match=r"has a cycle: a -> b -> c -> a"):
        pk.Builder("cpu").build(net)


def test_inputs_edited_to_read_a_later_layer_build_in_data_flow_order():
    net = pk.Network("reordered")
    x = net.add_input("x", (4,))
    a = net.add_activation(x, "relu", name="a")          # will read b's output
    b = net.add_scale(x, "uniform", shift=np.array([-0.5], np.float32), name="b")
    net.mark_output(a.output)
    a.inputs = [b.output]
    xin = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}
    out = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context().execute(xin)
    np.testing.assert_array_equal(out["a"], np.maximum(xin["x"] - 0.5, 0))


def test_inputs_edited_to_a_tensor_the_layer_cannot_take_are_refused():
    net, x, a, b, c = _chain()
    other = net.add_input("wide", (7,))
    b.inputs = [other]
    with pytest.raises(pk.BuildError, match=r"layer 'b' .* now produces \[\(\(7,\), 'float32'\)\]"):
        pk.Builder("cpu").build(net)
    b.inputs = [pk.Network("elsewhere").add_input("x", (4,))]
    with pytest.raises(pk.BuildError, match="neither a network input nor the output of a layer"):
        pk.Builder("cpu").build(net)


def test_runtime_does_not_import_the_builder_and_engine_set_stays_public():
    root = os.path.join(os.path.dirname(pk.__file__), "runtime")
    upward = []
    for fname in sorted(os.listdir(root)):
        if fname.endswith(".py"):
            tree = ast.parse(open(os.path.join(root, fname)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("perfkit.builder") or
                                                         (node.level == 2 and (node.module or "").startswith("builder"))):
                    upward.append(f"{fname}: from {'.' * node.level}{node.module}")
    assert upward == []
    assert pk.EngineSet is pk.builder.EngineSet and issubclass(pk.EngineSet, pk.runtime.EngineDispatch)


def test_engine_dispatch_runs_each_batch_on_the_smallest_engine_from_engines_given():
    net = _tiny()
    b = pk.Builder("cpu")
    engines = [b.build(net, pk.BuilderConfig(max_batch_size=m, tactics="default")) for m in (4, 1)]
    d = pk.runtime.EngineDispatch(engines)
    assert d.batch_sizes == [1, 4] and d.engine_for(3) is engines[0]
    out = d.create_execution_context().execute(pk.models.sample_input(net, 3))
    assert out["output"].shape == (3, 2)
    with pytest.raises(pk.ArgumentError, match="distinct max batch sizes"):
        pk.runtime.EngineDispatch(engines + [engines[0]])
    with pytest.raises(pk.ArgumentError, match="non-empty list of Engines"):
        pk.runtime.EngineDispatch([])


@pytest.mark.parametrize("params", [{"stride": 2.5}, {"stride": True}, {"window": (2, 2.0)}, {"padding": (True, 0)}])
def test_add_layer_refuses_non_integer_window_stride_and_padding(params):
    net = pk.Network()
    x = net.add_input("x", (2, 6, 6))
    with pytest.raises(pk.NetworkDefinitionError, match="must be an int or a pair of ints"):
        net.add_layer("pooling", [x], {"pool": "max", "window": 2, **params})
    assert net.layers == []
