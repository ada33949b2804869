"""The op tests' comparison (oracles.assert_close) can fail: elementwise tolerances per precision catch
small outputs that are wrong, however large the other outputs are."""
import numpy as np
import pytest

import perfkit as pk
from oracles import UNIT_ROUNDOFF, assert_close, reference_forward, tolerance
from test_ops import PRECISIONS, run


def _softmax_net(rng):
    net = pk.Network("sm")
    x = net.add_input("x", (3, 4, 5))
    net.mark_output(net.add_softmax(x, 0).output)
    return net, {"x": rng.uniform(-5, 5, (3, 3, 4, 5)).astype(np.float32)}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_softmax_that_drops_small_probabilities_fails(device, rng, monkeypatch, precision):
    """The defect the former max-scaled check let through in fp16: every probability below 0.02 zeroed."""
    from perfkit.ops import get_op
    op = type(get_op("softmax"))
    compute = op.compute

    def drops_small(self, env, ins, outs, params, weights):
        compute(self, env, ins, outs, params, weights)
        outs[0][outs[0] < 0.02] = 0

    net, inputs = _softmax_net(rng)
    ref = reference_forward(net, inputs)[net.outputs[0].name]
    assert_close(run(net, inputs, device, precision)[net.outputs[0].name], ref, precision)    # the sound op
    monkeypatch.setattr(op, "compute", drops_small)
    got = run(net, inputs, device, precision)[net.outputs[0].name]
    assert ((got == 0) & (ref > 0)).sum() > 10                  # the defect is there ...
    with pytest.raises(AssertionError, match=r"elements differ beyond"):
        assert_close(got, ref, precision, "softmax")            # ... and the comparison sees it


def test_small_values_are_checked_next_to_large_ones():
    expected = np.array([100.0, 0.5, 0.01])
    for precision in PRECISIONS:
        rtol, atol = tolerance(precision)
        wrong = expected.copy()
        wrong[2] += 2 * (atol + rtol * 0.01)                    # an error 1% of the largest value would hide
        with pytest.raises(AssertionError, match=r"at \(2,\): got .* expected 0\.01, error .* > allowed"):
            assert_close(wrong, expected, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_storage_rounding_alone_always_passes(rng, precision):
    """The tolerance is never tighter than the format: values rounded to it once pass, tiny ones too."""
    import ml_dtypes
    dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}[precision]
    x = rng.standard_normal(10_000) * np.exp(rng.uniform(-9, 9, 10_000))
    x = x[np.abs(x) < 6e4]                                      # inside fp16's range
    assert_close(x.astype(dtype).astype(np.float64), x, precision)
    rtol, atol = tolerance(precision)
    assert 4 * UNIT_ROUNDOFF[precision] <= atol and 8 * UNIT_ROUNDOFF[precision] <= rtol


def test_scale_widens_the_absolute_part_elementwise():
    rtol, atol = tolerance("fp16")
    expected = np.zeros(3)
    got = np.array([0.5, 0.5, 0.5]) * atol
    assert_close(got * 20, expected, "fp16", scale=np.array([20.0, 40.0, 60.0]))
    with pytest.raises(AssertionError, match=r"(?s)1 of 3 elements.*at \(0,\)"):
        assert_close(got * 50, expected, "fp16", scale=np.array([20.0, 40.0, 60.0]))


def test_nan_inf_and_shape():
    assert_close([np.nan, np.inf, -np.inf], [np.nan, np.inf, -np.inf], "fp16")
    with pytest.raises(AssertionError, match="got nan, expected 1"):
        assert_close([np.nan, 1.0], [1.0, 1.0], "fp32")
    with pytest.raises(AssertionError, match="got inf, expected 1"):
        assert_close([np.inf], [1.0], "bf16")
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones((2, 3)), np.ones(6), "fp32")


def test_depth_widens_as_the_square_root():
    assert tolerance("bf16", 9) == pytest.approx(tuple(3 * t for t in tolerance("bf16")))


def test_absolute_reference_is_the_sum_of_absolute_terms(rng):
    net = pk.Network("fc")
    x = net.add_input("x", (4,))
    w, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    y = net.add_elementwise(net.add_fully_connected(x, 3, w, b).output, net.add_constant(-np.ones((3,), np.float32))
                            .output, "sub")
    net.mark_output(y.output)
    xs = rng.standard_normal((2, 4))
    got = reference_forward(net, {"x": xs}, absolute=True)[y.output.name]
    np.testing.assert_allclose(got, np.abs(xs) @ np.abs(w).T + np.abs(b) + 1)
    net.mark_output(net.add_softmax(y.output).output)
    with pytest.raises(NotImplementedError, match="softmax"):
        reference_forward(net, {"x": xs}, absolute=True)
