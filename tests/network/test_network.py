import numpy as np
import pytest

import perfkit as pk


def test_layer_names_generated_and_unique():
    net = pk.Network("n")
    x = net.add_input("x", (4,))
    a = net.add_activation(x, "relu")
    b = net.add_activation(a, "tanh")
    assert a.name == "act_1" and b.name == "act_2"
    assert a.type == "activation" and a.output.name == "act_1"
    with pytest.raises(pk.NetworkDefinitionError, match="already exists"):
        net.add_activation(b, "relu", name="act_1")


def test_shape_error_names_layer_and_shapes():
    net = pk.Network("n")
    a = net.add_input("a", (3, 4))
    b = net.add_input("b", (3, 5))
    with pytest.raises(pk.ShapeError, match=r"'bad'.*a\(3, 4\).*b\(3, 5\).*do not broadcast"):
        net.add_elementwise(a, b, "sum", name="bad")
    with pytest.raises(pk.ShapeError, match="inner dimensions"):
        net.add_matrix_multiply(a, b)
    with pytest.raises(pk.ShapeError, match="out of range"):
        net.add_reduce(a, "sum", axes=(2,))
    with pytest.raises(pk.ShapeError, match="reshape"):
        net.add_shuffle(a, reshape=(5, -1))
    with pytest.raises(pk.ShapeError, match="permutation"):
        net.add_shuffle(a, first_transpose=(0, 0))
    # a failed add leaves the network unchanged
    assert len(net.layers) == 0


def test_bad_parameters_are_clear():
    net = pk.Network("n")
    x = net.add_input("x", (2, 8, 8))
    with pytest.raises(pk.NetworkDefinitionError, match="unknown activation 'swish'.*available"):
        net.add_activation(x, "swish")
    with pytest.raises(pk.NetworkDefinitionError, match="groups"):
        net.add_convolution(x, 3, 3, np.zeros((3, 1, 3, 3)), groups=2)
    with pytest.raises(pk.ShapeError, match="kernel"):
        net.add_convolution(x, 4, 3, np.zeros((4, 3, 3, 3)))
    with pytest.raises(pk.ShapeError, match="does not fit"):
        net.add_convolution(x, 4, 9, np.zeros((4, 2, 9, 9)))
    with pytest.raises(pk.UnknownOpError, match="registered types"):
        net.add_layer("rnn", [x])
    with pytest.raises(pk.ShapeError, match="batch dimension is implicit"):
        net.add_input("y", (0, 3))
    with pytest.raises(pk.NetworkDefinitionError, match="NaN"):
        net.add_fully_connected(x, 2, np.full((2, 128), np.nan))


def test_tensors_from_another_network_rejected():
    a, b = pk.Network("a"), pk.Network("b")
    x = a.add_input("x", (2,))
    with pytest.raises(pk.NetworkDefinitionError, match="belongs to network 'a'"):
        b.add_activation(x)


def test_outputs_and_summary():
    net = pk.models.mnist_mlp()
    assert [t.name for t in net.inputs] == ["data"] and [t.name for t in net.outputs] == ["prob"]
    s = net.summary()
    assert list(s["layer"]) == ["ip1", "relu1", "ip2", "prob"]
    assert s.loc[0, "parameters"] == 784 * 500 + 500
    with pytest.raises(pk.NetworkDefinitionError, match="already marked"):
        net.mark_output(net.get_tensor("prob"))
    c = net.add_constant(np.ones(3))
    with pytest.raises(pk.NetworkDefinitionError, match="constant"):
        net.mark_output(c.output)


def test_multi_output_layer_names():
    net = pk.Network("t")
    x = net.add_input("x", (8,))
    t = net.add_topk(x, "max", 2, name="top")
    assert [o.name for o in t.outputs] == ["top.values", "top.indices"]
    assert t.outputs[1].dtype == "int32"
    with pytest.raises(pk.NetworkDefinitionError, match="get_output"):
        t.output
