"""Small compositions of perfkit layers shared by converters: padding any axis with any value, and
picking index ranges along an axis (Slice, Split, crops), both exact."""
from __future__ import annotations

import numpy as np


def pad_axis(ctx, t, axis: int, pre: int, post: int, value: float, part: str):
    """``t`` padded along per-sample ``axis`` with ``value`` (constants concatenated before and after)."""
    if pre == 0 and post == 0:
        return t
    parts = []
    for n in (pre, post):
        if n:
            shape = list(t.shape)
            shape[axis] = n
            dtype = np.int32 if t.dtype == "int32" else np.float32
            parts.append(ctx.values.constant_tensor(ctx, np.full(shape, value, dtype), label=f"{ctx.base}/{part}_fill"))
        else:
            parts.append(None)
    ins = [p for p in (parts[0], t, parts[1]) if p is not None]
    return ctx.add("add_concatenation", ins, axis, part=part).output


def take(ctx, t, axis: int, index: np.ndarray, part: str | None, keep_axis: bool = True):
    """Entries ``index`` of ``t`` along per-sample ``axis`` (a gather with constant int32 indices); the
    input itself where ``index`` is the whole axis in order."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    n = t.shape[axis]
    if keep_axis and index.size == n and np.array_equal(index, np.arange(n)):
        return t
    if index.size == 0:
        ctx.fail(f"selects nothing along an axis of size {n}; perfkit tensors have no empty dimensions")
    idx = ctx.values.constant_tensor(ctx, index.astype(np.int32), label=f"{ctx.base}/{part or 'take'}_index")
    out = ctx.add("add_gather", t, idx, axis, part=part if keep_axis else f"{part or 'take'}_gather").output
    if not keep_axis:
        shape = list(out.shape)
        del shape[axis]
        if not shape:
            ctx.fail("the result would have no per-sample dimensions")
        out = ctx.add("add_shuffle", out, reshape=shape, part=part).output
    return out
