"""CPU forms of convolution that keep the work in cache and copy as little as possible.

Two tactics of :class:`~perfkit.ops.convolution.Convolution` (CPU; on CUDA they run its im2col kernels):

- ``sample``: one sample at a time — its padded input, its column matrix, one GEMM and the epilogue
  (bias, power, residual, activation) while the sample's output is still in cache. The workspace is
  one sample's, not the batch's.
- ``batched``: the columns of every sample side by side, one GEMM with ``batch x`` more columns (BLAS
  runs small outputs, such as 7x7, far better that way), the epilogue writing the NCHW output.

Column matrices, by the shape of the convolution:

- ``direct`` (1x1, stride 1, no padding): the input itself, no copy.
- ``wide`` (stride 1, any kernel, padding, dilation): the padded sample, flattened, read at a fixed
  offset per kernel tap: row (c, a, t) of the columns is ``padded[c].flat[a*dh*Wp + t*dw:][:OH*Wp]``, a
  contiguous run, so the copy runs at memory speed. The product has ``Wp`` columns per output row, of
  which the first ``OW`` are the output; the epilogue's first pass drops the rest.
- ``phased`` (a stride above 1): the padded sample split into its ``sh x sw`` phases (rows ``pr::sh``,
  columns ``pc::sw``, each ``Hq x Wq``), in which every tap is again a contiguous run at a fixed offset
  (tap ``(a, t)`` reads phase ``(a*dh % sh, t*dw % sw)`` from ``(a*dh // sh) * Wq + t*dw // sw``): one
  strided pass over the input, then contiguous copies, ``Wq`` product columns per output row.
- ``exact`` (1x1 with a stride, or where the wide and phased forms would waste more than
  :data:`MAX_WASTE` of their columns): the window view of the (padded) sample, ``(C, kh, kw, OH, OW)``.

Every product runs in float32 (storage dtypes other than float32 are converted while the columns
are copied), and the epilogue's first pass writes the output, so the GEMM result is moved only once.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activation import TEMPS, activate_inplace
from .env import scratch_size

FORMS = ("sample", "batched")


class Plan(NamedTuple):
    form: str            # "direct", "wide", "phased" or "exact"
    hp: int              # height and width of one phase of the padded sample (the padded sample for "wide")
    wp: int
    n: int               # product columns per sample (OH * q)
    q: int               # columns per output row in the product (wp for "wide" and "phased", OW otherwise)
    padded: int          # float32 values of the padded sample or its phases, tail included (0: no copy)
    rows: int            # rows of the column matrix per group (C/g * kh * kw)


#: the most product columns a wide or phased form may spend on padding columns, as a share of all of
#: them (a 3x3 "same" convolution of a 7x7 image computes 9 columns per row for 7): beyond it the
#: exact window copy is cheaper than the wasted multiplications
MAX_WASTE = 0.125


def plan(params: dict, x_shape: tuple, out_shape: tuple) -> Plan:
    c, h, w = x_shape
    _, oh, ow = out_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
    hp, wp = h + 2 * ph, w + 2 * pw
    rows = c // params["groups"] * kh * kw
    exact = Plan("exact", hp, wp, oh * ow, ow, c * hp * wp if ph or pw else 0, rows)
    if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        return Plan("direct", h, w, h * w, w, 0, rows)
    if (sh, sw) == (1, 1):
        # reading past the last padded row by the last tap's column offset: zeros after the sample
        wide = Plan("wide", hp, wp, oh * wp, wp, c * hp * wp + dw * (kw - 1), rows)
        return wide if wp - ow <= MAX_WASTE * wp else exact
    hq, wq = -(-hp // sh), -(-wp // sw)
    if (kh, kw) == (1, 1) or wq - ow > MAX_WASTE * wq:
        return exact
    return Plan("phased", hq, wq, oh * wq, wq, sh * sw * c * hq * wq + dw * (kw - 1) // sw, rows)


def scratch_bytes(params: dict, x_spec, o_spec, batch: int, residual: bool = False) -> int:
    """Workspace of :func:`run` (the ``sample`` or ``batched`` tactic) at ``batch`` (``residual``: with
    a fused residual input)."""
    p = plan(params, x_spec.shape, o_spec.shape)
    k = o_spec.shape[0]
    g = params["groups"]
    f32 = x_spec.dtype == "float32"
    weights = [0, 0] if f32 else [4 * k * p.rows, 4 * k]        # float32 kernel and bias
    act = params.get("activation")
    n_temps = TEMPS.get(act["kind"], 0) if act and act["kind"] != "relu" else 0
    if params["tactic"] == "batched" and batch > 1:
        cols, acc, own = 4 * g * p.rows * p.n * batch, 4 * k * p.n * batch, 0
        temps = [4 * k * p.n * batch] * n_temps
    else:
        cols = 0 if p.form == "direct" else 4 * g * p.rows * p.n
        own = 4 * x_spec.size if p.form == "direct" and not f32 else 0        # float32 copy of a sample
        acc = 0 if p.form in ("direct", "exact") and o_spec.dtype == "float32" else 4 * k * p.n
        temps = [4 * k * p.n] * n_temps
    per = batch if params["tactic"] == "batched" and batch > 1 else 1
    into = 4 * per * o_spec.size if not f32 else 0                       # the epilogue's float32 output
    return scratch_size(*weights, 4 * p.padded, own, cols, acc, into, *temps)


def run(env, x, out, kernel, bias, params: dict, residual=None) -> None:
    """The ``sample`` or ``batched`` tactic on the CPU: writes ``out`` (B, K, OH, OW)."""
    xp = env.xp
    b, c, h, w = x.shape
    k, oh, ow = out.shape[1:]
    kh, kw = params["kernel_size"]
    g = params["groups"]
    p = plan(params, (c, h, w), (k, oh, ow))
    wmat = env.float32(kernel).reshape(g, k // g, p.rows)
    bias3 = None if bias is None else env.float32(bias).reshape(k, 1, 1)
    padded = None
    if p.padded:
        padded = env.scratch((p.padded,), np.float32)
        padded.fill(0)                      # borders (and the tail) stay zero: each sample fills the interior
    if params["tactic"] == "batched" and b > 1:
        cols = env.scratch((g, p.rows, b, p.n), np.float32)
        taps = cols.reshape((c, kh, kw, b, p.n), copy=False)
        for i in range(b):
            _columns(xp, x[i], p, params, padded, taps[:, :, :, i])
        acc = env.scratch((g, k // g, b * p.n), np.float32)
        _gemm(xp, wmat, cols.reshape(g, p.rows, b * p.n), acc)
        view = acc.reshape(k, b, oh, p.q)[..., :ow].transpose(1, 0, 2, 3)
        finish(env, view, out, params, bias3, residual, acc.reshape(k, b * p.n))
        return
    into_out = p.form in ("direct", "exact") and out.dtype == np.float32
    acc = None if into_out else env.scratch((g, k // g, p.n), np.float32)
    cols = None if p.form == "direct" else env.scratch((g, p.rows, p.n), np.float32)
    own = env.scratch((c, h * w), np.float32) if p.form == "direct" and x.dtype != np.float32 else None
    for i in range(b):
        if p.form == "direct":
            src = x[i].reshape(c, h * w)
            if own is not None:
                xp.copyto(own, src, casting="unsafe")
                src = own
            cols_i = src.reshape(g, p.rows, p.n)
        else:
            _columns(xp, x[i], p, params, padded, cols.reshape((c, kh, kw, p.n), copy=False))
            cols_i = cols
        dst = out[i].reshape((g, k // g, p.n), copy=False) if into_out else acc
        _gemm(xp, wmat, cols_i, dst)
        view = dst.reshape(k, oh, p.q)[:, :, :ow]
        finish(env, view, out[i], params, bias3, None if residual is None else residual[i], dst.reshape(k, p.n))


def _gemm(xp, wmat, cols, dst) -> None:
    if wmat.shape[0] == 1:
        xp.matmul(wmat[0], cols[0], out=dst[0])
    else:
        xp.matmul(wmat, cols, out=dst)


def _columns(xp, xi, p: Plan, params: dict, padded, dst) -> None:
    """One sample's column matrix into ``dst``, a (C, kh, kw, n) view, from ``xi`` (C, H, W)."""
    c, h, w = xi.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
    if p.form == "direct":
        xp.copyto(dst, xi.reshape(c, 1, 1, p.n), casting="unsafe")
        return
    if p.form == "phased":
        phases = padded[:sh * sw * c * p.hp * p.wp].reshape(sh, sw, c, p.hp, p.wp)
        for pr in range(sh):
            i0, r0 = _first(ph, pr, sh)
            for pc in range(sw):
                j0, c0 = _first(pw, pc, sw)
                src = xi[:, r0::sh, c0::sw]
                src = src[:, :p.hp - i0, :p.wp - j0]
                xp.copyto(phases[pr, pc, :, i0:i0 + src.shape[1], j0:j0 + src.shape[2]], src, casting="unsafe")
        flat = padded[:sh * sw * c * p.hp * p.wp + dw * (kw - 1) // sw]
        size = p.hp * p.wp
        for a in range(kh):
            for t in range(kw):
                start = (((a * dh) % sh) * sw + (t * dw) % sw) * c * size + (a * dh // sh) * p.wp + t * dw // sw
                run = xp.lib.stride_tricks.as_strided(flat[start:], shape=(c, p.n), strides=(size * 4, 4))
                xp.copyto(dst[:, a, t], run, casting="unsafe")
        return
    if padded is not None:
        img = padded[:c * p.hp * p.wp].reshape(c, p.hp, p.wp)
        xp.copyto(img[:, ph:ph + h, pw:pw + w], xi, casting="unsafe")
        src = padded
        sc, sy, sx = p.hp * p.wp * 4, p.wp * 4, 4
    else:
        src = xi
        sc, sy, sx = xi.strides
    if p.form == "wide":
        win = xp.lib.stride_tricks.as_strided(src, shape=(c, kh, kw, p.n), strides=(sc, dh * sy, dw * sx, sx))
        xp.copyto(dst, win, casting="unsafe")
    else:
        oh = p.n // p.q
        win = xp.lib.stride_tricks.as_strided(src, shape=(c, kh, kw, oh, p.q),
                                              strides=(sc, dh * sy, dw * sx, sh * sy, sw * sx))
        xp.copyto(dst.reshape((c, kh, kw, oh, p.q), copy=False), win, casting="unsafe")


def _first(pad: int, phase: int, stride: int) -> tuple:
    """(first phase row holding input, the input row it holds) of phase ``phase``: phase row ``i`` is
    padded row ``stride * i + phase``, input row ``stride * i + phase - pad``."""
    i0 = max(0, -(-(pad - phase) // stride))
    return i0, stride * i0 + phase - pad


def finish(env, acc, dst, params: dict, bias=None, residual=None, full=None) -> None:
    """``dst = epilogue(acc + bias)``: power, residual sum, activation, in that order (as
    :func:`~perfkit.ops.epilogue.apply_epilogue`). ``acc`` is a float32 view (the GEMM's result); for
    a float32 ``dst`` the first operation writes ``dst`` and the rest work there in place, else in a
    contiguous float32 scratch array that one copy stores. ``full``: the whole GEMM result as (K,
    columns), contiguous, of which ``acc`` is a view: the bias is added there, in place. (NumPy buffers
    the operands of a ufunc on strided or broadcast views, 32 KiB each, outside the workspace: each
    operation here reads at most one such operand.)"""
    xp = env.xp
    steps = bias is not None or params.get("power") is not None or residual is not None or params.get("activation")
    outer = env.mark()
    into = dst if dst.dtype == np.float32 or not steps else env.scratch(dst.shape, np.float32)
    src = acc
    if bias is not None and full is not None:
        xp.add(full, bias.reshape(-1, 1), out=full)
    elif bias is not None:
        xp.add(src, bias, out=into)
        src = into
    if into is not dst and src is not into:    # mixed dtypes ahead: from a contiguous float32 copy
        xp.copyto(into, src)
        src = into
    if params.get("power") is not None:
        xp.power(src, params["power"], out=into)
        src = into
    if residual is not None:
        xp.add(src, residual, out=into)
        src = into
    act = params.get("activation")
    if act and act["kind"] == "relu":
        xp.maximum(src, np.float32(0), out=into)
        src = into
    elif act:
        if src is not into:
            xp.copyto(into, src)
            src = into
        mark = env.mark()
        temps = [env.scratch(into.shape, np.float32) for _ in range(TEMPS.get(act["kind"], 0))]
        activate_inplace(xp, act["kind"], into, act["alpha"], act["beta"], temps)
        env.release(mark)
    if src is not dst:
        xp.copyto(dst, src, casting="unsafe")
    env.release(outer)
