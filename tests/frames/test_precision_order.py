"""One PRECISION_ORDER (perfkit.precision): every precision once, fp32 first, then by significand bits."""
import ml_dtypes
import numpy as np

from perfkit.precision import PRECISION_ORDER, PRECISIONS, STORAGE


def test_every_precision_once_fp32_first_then_by_significand_bits():
    assert sorted(PRECISION_ORDER) == sorted(PRECISIONS) and len(set(PRECISION_ORDER)) == len(PRECISION_ORDER)
    assert PRECISION_ORDER[0] == "fp32"
    bits = [(ml_dtypes.finfo if STORAGE[p] == "bfloat16" else np.finfo)(STORAGE[p]).nmant for p in PRECISION_ORDER]
    assert bits == sorted(bits, reverse=True)
