"""Element-wise comparisons and logical operations (int32 0/1 results, ONNX's bool) and Mod/fmod, on
every device and precision, against NumPy on the inputs as each precision stores them."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check, rounded

COMPARE = {"equal": np.equal, "less": np.less, "greater": np.greater, "less_equal": np.less_equal,
           "greater_equal": np.greater_equal}
LOGIC = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}


def two_inputs(bshape, dtype="float32"):
    net = pk.Network("pred")
    return net, net.add_input("a", (3, 4)), net.add_input("b", bshape, dtype)


@pytest.mark.parametrize("op", list(COMPARE))
@pytest.mark.parametrize("bshape", [(3, 4), (1, 4)])
def test_comparisons_give_int32(device, rng, op, bshape):
    net, a, b = two_inputs(bshape)
    y = net.add_elementwise(a, b, op)
    assert y.output.dtype == "int32"
    net.mark_output(y.output)
    A = rng.integers(-2, 3, (2, 3, 4)).astype(np.float32) / 2      # many ties: equal is exercised
    B = rng.integers(-2, 3, (2,) + bshape).astype(np.float32) / 2
    A[0, 0, 0], B[0, 0, 0] = 1.0, 1.0 + 2 ** -12                  # equal in fp16/bf16 only, after rounding
    check(net, {"a": A, "b": B},
          lambda p: {y.output.name: COMPARE[op](rounded(A, p), rounded(B, p)).astype(np.int32)}, device)


def test_comparison_of_float_and_int32_and_a_constant(device, rng):
    net, a, b = two_inputs((3, 4), "int32")
    c = net.add_constant(np.array([[0.5, 1.0, 1.5, 2.0]], np.float32))
    y = net.add_elementwise(a, b, "less")
    z = net.add_elementwise(b, c.output, "greater_equal")
    net.mark_output(y.output)
    net.mark_output(z.output)
    A = rng.uniform(-3, 3, (2, 3, 4)).astype(np.float32)
    B = rng.integers(-3, 3, (2, 3, 4)).astype(np.int32)
    check(net, {"a": A, "b": B}, lambda p: {y.output.name: (rounded(A, p) < B).astype(np.int32),
                                            z.output.name: (B >= np.array([0.5, 1.0, 1.5, 2.0])).astype(np.int32)},
          device)


@pytest.mark.parametrize("op", list(LOGIC))
def test_logical_operations_read_nonzero_as_true(device, rng, op):
    net = pk.Network("logic")
    a = net.add_input("a", (6,), "int32")
    b = net.add_input("b", (6,), "int32")
    y = net.add_elementwise(a, b, op)
    net.mark_output(y.output)
    A, B = (rng.integers(-1, 2, (3, 6)).astype(np.int32) for _ in range(2))
    check(net, {"a": A, "b": B}, {y.output.name: LOGIC[op](A, B).astype(np.int32)}, device, precisions=("fp32",))


def test_a_comparison_drives_select(device, rng):
    net, a, b = two_inputs((3, 4))
    y = net.add_select(net.add_elementwise(a, b, "greater").output, a, b)      # max(a, b) the long way
    net.mark_output(y.output)
    A, B = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(2))
    check(net, {"a": A, "b": B}, {y.output.name: np.maximum(A, B).astype(np.float64)}, device, exact=True)


@pytest.mark.parametrize("op,fn", [("mod", np.mod), ("fmod", np.fmod)])
def test_mod_signs(device, rng, op, fn):
    net, a, b = two_inputs((3, 4))
    y = net.add_elementwise(a, b, op)
    net.mark_output(y.output)
    A = rng.uniform(-5, 5, (2, 3, 4)).astype(np.float32)
    B = rng.choice([-1.5, -0.75, 0.75, 2.0], (2, 3, 4)).astype(np.float32)
    check(net, {"a": A, "b": B}, lambda p: {y.output.name: fn(rounded(A, p), rounded(B, p))}, device,
          scale=4.0)        # a remainder near the divisor flips by a rounding of the input: compared on stored values


def test_int32_mod(device, rng):
    net = pk.Network("imod")
    a = net.add_input("a", (5,), "int32")
    c = net.add_constant(np.array([3, -3, 4, -4, 7], np.int32))
    y, z = net.add_elementwise(a, c.output, "mod"), net.add_elementwise(a, c.output, "fmod")
    net.mark_output(y.output)
    net.mark_output(z.output)
    A = rng.integers(-20, 20, (4, 5)).astype(np.int32)
    m = np.array([3, -3, 4, -4, 7])
    check(net, {"a": A}, {y.output.name: np.mod(A, m).astype(np.int32), z.output.name: np.fmod(A, m).astype(np.int32)},
          device, precisions=("fp32",))


def test_unknown_op_lists_the_new_ones():
    net, a, b = two_inputs((3, 4))
    with pytest.raises(pk.PerfkitError, match="greater_equal.*xor"):
        net.add_elementwise(a, b, "not_equal")
