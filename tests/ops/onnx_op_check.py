"""Runs a small network on a device in each precision (strict types) and compares its outputs with
expected values computed independently in the test (NumPy, float64), with the house tolerances of
tests/oracles.py; for the layers the ONNX importer needs (tests/ops/test_onnx_*.py)."""
from __future__ import annotations

import numpy as np
import pytest

import perfkit as pk
from device_helpers import STRICT, to_host
from oracles import assert_close

PRECISIONS = ("fp32", "fp16", "bf16")


def build(net, device, precision, batch):
    if STRICT and precision == "bf16" and not device.runs_bf16:
        pytest.skip(f"{device.name} cannot run bf16 layers: strict bf16 is refused (tests/builder/test_precision.py "
                    "checks the error)")
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=batch, precision=precision, **STRICT))
    layers = eng.layers[~eng.layers["layer"].str.startswith("reformat ")]
    assert (layers["precision"] == precision).all(), layers[["layer", "precision"]]
    return eng


def run(net, inputs, device, precision="fp32"):
    batch = next(iter(inputs.values())).shape[0]
    out = build(net, device, precision, batch).create_execution_context().execute(inputs)
    return {k: to_host(v) for k, v in out.items()}


def stored_in(values, precision):
    """Every value exactly representable in ``precision``'s storage format."""
    import ml_dtypes
    dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}[precision]
    v = np.asarray(values, np.float32)
    return bool(np.array_equal(v.astype(dtype).astype(np.float32), v, equal_nan=True))


def rounded(values, precision):
    """``values`` as stored in ``precision`` (float64 back): what a layer's input holds after the
    network input's reformat; oracles of discontinuous functions (comparisons, rounding) read these."""
    import ml_dtypes
    dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}[precision]
    return np.asarray(values).astype(dtype).astype(np.float64)


def check(net, inputs, expected, device, precisions=PRECISIONS, scale=1.0, exact=False):
    """``expected``: output tensor name -> float64 values, or a function of the precision returning
    that dict (for oracles that read the rounded inputs). ``exact``: values must match bit for bit
    (layers that only move values: slices, pads, selects)."""
    for precision in precisions:
        want = expected(precision) if callable(expected) else expected
        got = run(net, inputs, device, precision)
        for name, ref in want.items():
            ref = np.asarray(ref)
            assert got[name].shape == ref.shape, f"{net.name}/{name}: shape {got[name].shape} != {ref.shape}"
            if exact or ref.dtype.kind in "iub":
                np.testing.assert_array_equal(got[name], ref if ref.dtype.kind in "iub" else
                                              rounded(ref, precision), err_msg=f"{net.name}/{name} {precision}")
                continue
            assert_close(got[name], ref, precision, f"{net.name}/{name}", scale=scale)
            assert stored_in(got[name], precision), f"{net.name}/{name}: not stored in {precision}"
