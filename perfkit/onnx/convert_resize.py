"""Resize (opset 10+) and Upsample (7-9), nearest and linear: each resized axis becomes gathers with
index maps computed at import (nearest: one gather; linear: two gathers blended by constant weights)."""
from __future__ import annotations

import math

import numpy as np

from .compose import take
from .registry import converter

RESIZE_ATTRS = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
                "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy")
COORD = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(mode: str, n: int, o: int, scale: float) -> np.ndarray:
    """Source coordinate of each output index, as ONNX defines them (the unrounded output length
    ``scale * n`` where the definitions use it)."""
    x = np.arange(o, dtype=np.float64)
    length = scale * n
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = n / 2 * (1 - o / length)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length != 1 else np.full(o, -0.5)
    if mode == "align_corners":
        return x * (n - 1) / (length - 1) if length != 1 else np.zeros(o)
    return x / scale


def nearest_index(c: np.ndarray, how: str, n: int, scale: float) -> np.ndarray:
    if how == "round_prefer_floor":
        i = np.where(c == np.floor(c) + 0.5, np.floor(c), np.round(c))
    elif how == "round_prefer_ceil":
        i = np.where(c == np.floor(c) + 0.5, np.ceil(c), np.round(c))
    elif how == "floor":
        i = np.floor(c)
    else:
        i = np.ceil(c)
    return np.clip(i, 0, n - 1).astype(np.int64)


def _resize_axis(ctx, x, a, o, scale, mode, coord, how, last):
    n = x.shape[a]
    c = source_coords(coord, n, o, scale)
    if mode == "nearest":
        return take(ctx, x, a, nearest_index(c, how, n, scale), None if last else f"axis{a}")
    c = np.clip(c, 0, n - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w1 = (c - i0).astype(np.float32)
    shape = [1] * len(x.shape)
    shape[a] = o
    lo = take(ctx, x, a, i0, f"axis{a}_lo")
    hi = take(ctx, x, a, i1, f"axis{a}_hi")
    wl = ctx.values.constant_tensor(ctx, (1 - w1).reshape(shape), label=f"{ctx.base}/axis{a}_wlo")
    wh = ctx.values.constant_tensor(ctx, w1.reshape(shape), label=f"{ctx.base}/axis{a}_whi")
    lo = ctx.add("add_elementwise", lo, wl, "prod", part=f"axis{a}_lo_w").output
    hi = ctx.add("add_elementwise", hi, wh, "prod", part=f"axis{a}_hi_w").output
    return ctx.add("add_elementwise", lo, hi, "sum", part=None if last else f"axis{a}").output


@converter("Resize", "Upsample", attrs=RESIZE_ATTRS + ("scales",))
def resize(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    full = ctx.values.full_shape(x)
    upsample = ctx.op_type == "Upsample"
    mode = ctx.attr("mode", "nearest")
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        ctx.fail(f"mode {mode!r} is not supported; supported: nearest, linear")
    if upsample:
        coord, how = "asymmetric", "floor"
        scales = ctx.attr("scales", None) if ctx.version < 9 else list(np.asarray(ctx.const(1, "scales")).reshape(-1))
        sizes = None
    else:
        coord = ctx.choice("coordinate_transformation_mode", "asymmetric" if ctx.version < 11 else "half_pixel",
                           COORD, COORD + ("tf_crop_and_resize", "tf_half_pixel_for_nn"))
        how = ctx.choice("nearest_mode", "round_prefer_floor", NEAREST, NEAREST)
        if ctx.int_attr("antialias", 0):
            ctx.fail("antialias=1 is not supported")
        if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            ctx.fail("keep_aspect_ratio_policy other than 'stretch' is not supported")
        if ctx.version < 11:
            scales, sizes = list(np.asarray(ctx.const(1, "scales")).reshape(-1)), None
        else:
            scales = list(np.asarray(ctx.const(2, "scales")).reshape(-1)) if ctx.has(2) else None
            sizes = ctx.const_ints(3, "sizes") if ctx.has(3) else None
        if not scales:
            scales = None
    axes = ctx.ints_attr("axes", None) or list(range(rank))
    count = len(sizes) if sizes is not None else len(scales or [])
    if count != len(axes):
        ctx.fail(f"Resize needs one scale or size per axis ({len(axes)}), got {count}", malformed=True)
    todo = []
    for i, ax in enumerate(axes):
        if not -rank <= ax < rank:
            ctx.fail(f"axis {ax} out of range", malformed=True)
        ax %= rank
        n = full[ax]
        if sizes is not None:
            o = int(sizes[i])
            s = o / n
        else:
            s = float(scales[i])
            if not (s > 0 and math.isfinite(s)):
                ctx.fail(f"scale {s} must be positive", malformed=True)
            o = int(math.floor(n * s))
        if ax < ctx.values.lead:
            if (sizes is not None and o not in (n, ctx.values.fixed_batch)) or (sizes is None and s != 1):
                ctx.fail("resizing the batch dimension is not supported")
            continue
        if o < 1:
            ctx.fail(f"axis {ax} would have {o} values", malformed=True)
        if o != n or s != 1:
            todo.append((ctx.values.axis(ctx, ax, rank), o, s))
    for k, (a, o, s) in enumerate(todo):
        x = _resize_axis(ctx, x, a, o, s, mode, coord, how, k == len(todo) - 1)
    ctx.output(x)
