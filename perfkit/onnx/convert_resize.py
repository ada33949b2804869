"""Resize (opset 10+) and Upsample (7-9) as one resize layer: nearest, linear and cubic, every coordinate
transformation ONNX defines except tf_crop_and_resize; antialias and keep_aspect_ratio_policy refused."""
from __future__ import annotations

import math

import numpy as np

from .registry import converter

RESIZE_ATTRS = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
                "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy")
COORD = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_half_pixel_for_nn")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@converter("Resize", "Upsample", attrs=RESIZE_ATTRS + ("scales",))
def resize(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    full = ctx.values.full_shape(x)
    mode = ctx.attr("mode", "nearest")
    mode = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("nearest", "linear", "cubic"):
        ctx.fail(f"mode {mode!r} is not a Resize mode (nearest, linear, cubic)", malformed=True)
    sizes = None
    if ctx.op_type == "Upsample":
        coord, how, coeff, exclude = "asymmetric", "floor", -0.75, False
        scales = ctx.attr("scales", None) if ctx.version < 9 else list(np.asarray(ctx.const(1, "scales")).reshape(-1))
    else:
        coord = ctx.choice("coordinate_transformation_mode", "asymmetric" if ctx.version < 11 else "half_pixel",
                           COORD, COORD + ("tf_crop_and_resize",))
        how = ctx.choice("nearest_mode", "round_prefer_floor", NEAREST, NEAREST)
        coeff, exclude = ctx.float_attr("cubic_coeff_a", -0.75), bool(ctx.int_attr("exclude_outside", 0))
        if ctx.int_attr("antialias", 0):
            ctx.fail("antialias=1 is not supported")
        ctx.choice("keep_aspect_ratio_policy", "stretch", ("stretch",), ("stretch", "not_larger", "not_smaller"))
        if ctx.version < 11:
            scales = list(np.asarray(ctx.const(1, "scales")).reshape(-1))
        else:
            scales = list(np.asarray(ctx.const(2, "scales")).reshape(-1)) if ctx.has(2) else None
            sizes = ctx.const_ints(3, "sizes") if ctx.has(3) else None
        scales = scales or None
    if (scales is None) == (sizes is None):
        ctx.fail("Resize needs exactly one of scales and sizes", malformed=True)
    axes = ctx.ints_attr("axes", None) or list(range(rank))
    given = sizes if sizes is not None else scales
    if len(given) != len(axes) or len(set(a % rank for a in axes)) != len(axes):
        ctx.fail(f"Resize needs one scale or size per axis ({len(axes)}), got {len(given)}", malformed=True)
    per_axis = {}
    for ax, v in zip(axes, given):
        if not -rank <= ax < rank:
            ctx.fail(f"axis {ax} out of range", malformed=True)
        ax %= rank
        if sizes is None and not (float(v) > 0 and math.isfinite(float(v))):
            ctx.fail(f"scale {v} must be a positive number", malformed=True)
        if ax < ctx.values.lead:
            if (sizes is not None and v not in (full[ax], ctx.values.fixed_batch)) or (sizes is None and v != 1):
                ctx.fail("resizing the batch dimension is not supported")
            continue
        per_axis[ctx.values.axis(ctx, ax, rank)] = v
    ps = list(x.shape)
    kw = dict(mode=mode, coordinate_transformation=coord, nearest_rounding=how, cubic_coeff=coeff,
              exclude_outside=exclude)
    if sizes is not None:
        shape = [int(per_axis.get(i, d)) for i, d in enumerate(ps)]
        if min(shape) < 1:
            ctx.fail(f"sizes {sizes} make an empty tensor", malformed=True)
        if shape == ps:
            ctx.output(x)
            return
        ctx.output(ctx.add("add_resize", x, shape=shape, **kw).output)
        return
    scl = [float(np.float32(per_axis.get(i, 1.0))) for i in range(len(ps))]
    if any(math.floor(d * s) < 1 for d, s in zip(ps, scl)):
        ctx.fail(f"scales {scales} make an empty tensor", malformed=True)
    if all(s == 1.0 for s in scl):
        ctx.output(x)
        return
    ctx.output(ctx.add("add_resize", x, scales=scl, **kw).output)
