"""The mapping of ``out = a @ b`` onto one column-major strided-batched cuBLAS call (ops/cuda_gemm.py),
checked on the CPU: the planned call is executed by a NumPy emulation of cuBLAS's indexing rules on
the operands' raw memory and compared with ``np.matmul``."""
import numpy as np
import pytest

from perfkit.ops.cuda_gemm import _OP_N, plan_gemm

rng = np.random.default_rng(0)


def _base(shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _flat(view, base):
    off = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // base.itemsize
    return base.reshape(-1), off


def _emulate(call, a, abase, b, bbase, out, obase):
    """What cuBLAS computes for the planned call: C' (n x m) = op(B') (n x k) @ op(A') (k x m)."""
    ta, tb, m, n, k, lda, sa, ldb, sb, ldc, sc, batch = call
    af, oa = _flat(a, abase)
    bf, ob = _flat(b, bbase)
    of, oo = _flat(out, obase)
    i, l_, j = np.arange(n)[:, None], np.arange(k)[None, :], np.arange(m)[None, :]
    for p in range(batch):
        x = bf[ob + p * sb + (i + l_ * ldb if tb == _OP_N else l_ + i * ldb)].astype(np.float64)   # (n, k)
        lk = np.arange(k)[:, None]
        y = af[oa + p * sa + (lk + j * lda if ta == _OP_N else j + lk * lda)].astype(np.float64)   # (k, m)
        c = x @ y                                                                                      # (n, m)
        ii, jj = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
        of[oo + p * sc + ii + jj * ldc] = c


def _check(a, abase, b, bbase, dtype=np.float32, tol=1e-4):
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    obase = np.zeros(want.shape, dtype)
    out = obase
    call = plan_gemm(a, b, out)
    assert isinstance(call, tuple), call
    _emulate(call, a, abase, b, bbase, out, obase)
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
    return call


def test_plain_row_major():
    a, b = _base((5, 7)), _base((7, 3))
    call = _check(a, a, b, b)
    assert call[:2] == (_OP_N, _OP_N) and call[-1] == 1


def test_transposed_weight_view_needs_no_copy():         # fully connected, tactic "nt"
    x, w = _base((4, 6)), _base((9, 6))
    call = _check(x, x, w.T, w)
    assert call[1] != _OP_N


def test_weight_shared_across_batch_has_stride_zero():   # convolution after im2col
    w, cols = _base((8, 12)), _base((3, 12, 10))
    call = _check(w, w, cols, cols)
    assert call[6] == 0 and call[-1] == 3


def test_attention_products_with_two_batch_dims():
    q, kk = _base((2, 3, 5, 4)), _base((2, 3, 5, 4))
    _check(q, q, kk.swapaxes(-1, -2), kk)                 # q @ k^T
    s, v = _base((2, 3, 5, 5)), _base((2, 3, 5, 4))
    assert _check(s, s, v, v)[-1] == 6


def test_row_slices_use_the_leading_dimension():
    big = _base((6, 11))
    a = big[:, 2:9]                                       # lda = 11, offset 2
    b = _base((7, 4))
    call = _check(a, big, b, b)
    assert call[5] == 11


def test_float16():
    a, b = _base((4, 8), np.float16), _base((8, 5), np.float16)
    _check(a, a, b, b, np.float16, tol=2e-2)


def test_cases_one_call_cannot_express_fall_back():
    a = _base((2, 4, 3, 5))[:, :3]                        # batch dims (2, 3) not collapsible into one stride
    b = _base((5, 2))
    assert plan_gemm(a, b, np.zeros((2, 3, 3, 2), np.float32)) is None
    a, b = _base((3, 5)), _base((5, 2))
    assert plan_gemm(a, b, np.zeros((2, 3), np.float32).T) is None         # column-major output
    assert plan_gemm(a.astype(np.float64), b.astype(np.float64), np.zeros((3, 2))) is None
    assert plan_gemm(a, b.astype(np.float16), np.zeros((3, 2), np.float32)) is None
    assert plan_gemm(a, _base((4, 2)), np.zeros((3, 2), np.float32)) is None  # K mismatch


@pytest.mark.parametrize("shape_a,shape_b,expect", [((3, 0), (0, 2), "zero"), ((0, 4), (4, 2), "empty"),
                                                    ((2, 0, 4), (4, 3), "empty")])
def test_degenerate_sizes(shape_a, shape_b, expect):
    a, b = np.zeros(shape_a, np.float32), np.zeros(shape_b, np.float32)
    out = np.zeros(np.broadcast_shapes(shape_a[:-2], shape_b[:-2]) + (shape_a[-2], shape_b[-1]), np.float32)
    assert plan_gemm(a, b, out) == expect
