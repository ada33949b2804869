"""Resize: ONNX ``Resize`` (and ``Upsample``) over any per-sample axes: nearest, (multi-)linear or
cubic interpolation with ONNX's coordinate transformations and nearest rounding modes.

Each resized axis is a separable pass: output position ``i`` maps to a source coordinate by the
coordinate transformation, then reads 1 (nearest), 2 (linear) or 4 (cubic) neighbours with
weights; neighbours beyond the border read the border value (or, with ``exclude_outside``, get no
weight and the others are renormalised). The neighbour indices and weights depend only on the
shapes, so the builder computes them once (the layer's one tactic, ``gather``) and stores them as
the layer's weights: int32 index tables and float32 weight tables, one pair per tap and axis. A
pass gathers along its axis with ``take`` into workspace buffers; nearest moves values in the
storage dtype, linear and cubic weigh them in float32. Axes that shrink go first, so later passes
read less.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, register_op
from .env import scratch_size

MODES = {"nearest": 1, "linear": 2, "cubic": 4}            # taps per axis
COORDINATES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn")
ROUNDING = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(mode: str, out_len: int, in_len: int, scale: float, resized: float | None = None) -> np.ndarray:
    """The source coordinate of every output position along one axis, as ONNX's reference computes it:
    ``resized`` is the unrounded output length ``scale * in_len`` (``out_len`` when sizes were given),
    which align_corners divides by and pytorch_half_pixel compares with 1."""
    i = np.arange(out_len, dtype=np.float64)
    resized = float(out_len) if resized is None else resized
    if mode == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out_len / resized
        return in_len / 2 * (1 - adjustment) + (i + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if resized != 1 else np.full(out_len, -0.5)
    if mode == "align_corners":
        return i * (in_len - 1) / (resized - 1) if resized != 1 else np.zeros(out_len)
    if mode == "asymmetric":
        return i / scale
    return (i + 0.5) / scale                                  # tf_half_pixel_for_nn (opsets 11, 12)


def _cubic(r: np.ndarray, a: float) -> list:
    """Keys' cubic convolution weights of the neighbours at -1, 0, +1, +2 for fractions ``r``."""
    def near(d):                                              # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):                                               # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return [far(r + 1), near(r), near(1 - r), far(2 - r)]


def axis_taps(params: dict, out_len: int, in_len: int, scale: float, clamp: bool = True) -> tuple:
    """(indices (taps, out_len) int32, weights (taps, out_len) float32) of one resized axis; with
    ``clamp=False`` (linear and cubic) the indices before clamping to the axis (int64)."""
    resized = None if params.get("shape") is not None else scale * in_len
    x = source_coordinates(params["coordinate_transformation"], out_len, in_len, scale, resized)
    mode = params["mode"]
    if mode == "nearest":
        rounding = params["nearest_rounding"]
        if rounding == "round_prefer_floor":
            k = np.ceil(x - 0.5)
        elif rounding == "round_prefer_ceil":
            k = np.floor(x + 0.5)
        else:
            k = np.floor(x) if rounding == "floor" else np.ceil(x)
        idx = np.clip(k, 0, in_len - 1)[None]
        w = np.ones_like(idx)
    else:
        base = np.floor(x)
        r = x - base
        offsets = (0, 1) if mode == "linear" else (-1, 0, 1, 2)
        raw = np.stack([base + o for o in offsets])
        w = np.stack([1 - r, r]) if mode == "linear" else np.stack(_cubic(r, params["cubic_coeff"]))
        if params["exclude_outside"]:
            w = np.where((raw >= 0) & (raw <= in_len - 1), w, 0.0)
            w = w / w.sum(axis=0, keepdims=True)
        if not clamp:
            return raw.astype(np.int64), w.astype(np.float32)
        idx = np.clip(raw, 0, in_len - 1)
    return idx.astype(np.int32), w.astype(np.float32)


def periodic_pattern(params: dict, out_len: int, in_len: int, scale: float) -> dict | None:
    """A linear or cubic pass that upsamples by an integer ``r`` with taps that repeat every ``r``
    outputs, one input further each time (half_pixel, asymmetric, ... at integer scales): output
    ``i * r + j`` is ``sum_k w[j][k] * x[i + offset[j][k]]`` with the input edge-extended by ``lo``
    before and ``hi`` after. ``{"r", "lo", "hi", "phases": [[[offset, weight], ...] per phase j]}``,
    or None (other scales, align_corners, exclude_outside, nearest)."""
    if params["mode"] == "nearest" or params["exclude_outside"] or out_len % in_len:
        return None
    r = out_len // in_len
    raw, w = axis_taps(params, out_len, in_len, scale, clamp=False)
    if not (np.array_equal(raw[:, r:], raw[:, :-r] + 1) and np.array_equal(w[:, r:], w[:, :-r])):
        return None
    phases = [[[int(raw[k, j]), float(w[k, j])] for k in range(raw.shape[0])] for j in range(r)]
    return {"r": r, "lo": max(0, -int(raw.min())), "hi": max(0, int(raw.max()) - in_len + 1), "phases": phases}


def _is_identity(idx: np.ndarray, w: np.ndarray, n: int) -> bool:
    """Whether the taps of an axis of unchanged length ``n`` copy every position to itself: the weights
    on a position's own index sum to 1 and every other tap weighs 0."""
    if idx.shape[1] != n:
        return False
    own = idx == np.arange(n)
    return bool(np.all(np.where(own, w, 0).sum(axis=0) == 1) and np.all(np.where(own, 0, w) == 0))


def _plan(params: dict, in_shape: tuple) -> list:
    """The passes: (axis, output length, scale) of every axis that changes, shrinking ones first."""
    passes = []
    for a, (n, m, s) in enumerate(zip(in_shape, params["out_shape"], params["axis_scales"])):
        if not _is_identity(*axis_taps(params, m, n, s), n):
            passes.append((a, m, s))
    return sorted(passes, key=lambda p: (p[1] / in_shape[p[0]], p[0]))


def strided_pattern(idx: np.ndarray, n: int) -> list | None:
    """A nearest pass that strided copies can do instead of a gather: ``["pick", start, step]`` when
    output ``o`` reads ``start + o * step`` (downsampling by an integer), ``["repeat", start, r]`` when
    it reads ``start + o // r`` (upsampling by an integer); None otherwise."""
    m = idx.size
    o = np.arange(m)
    if m > 1 and idx[1] > idx[0] and np.array_equal(idx, idx[0] + o * (idx[1] - idx[0])):
        return ["pick", int(idx[0]), int(idx[1] - idx[0])]
    for r in range(2, m + 1):
        if m % r == 0 and np.array_equal(idx, idx[0] + o // r):
            return ["repeat", int(idx[0]), r] if idx[0] + m // r <= n else None
        if idx[r - 1] != idx[0]:
            break
    return None


@register_op
class Resize(Op):
    type = "resize"
    short = "resize"
    tactic_names = ("gather",)

    def check(self, params, weights):
        shape, scales = params.get("shape"), params.get("scales")
        if (shape is None) == (scales is None):
            raise NetworkDefinitionError("resize needs exactly one of shape (the per-sample output shape) and "
                                         f"scales (one factor per per-sample axis); got shape={shape!r}, "
                                         f"scales={scales!r}")
        given = shape if shape is not None else scales
        if isinstance(given, (str, bytes)) or not isinstance(given, (list, tuple)) or not given:
            raise NetworkDefinitionError(f"resize {'shape' if shape is not None else 'scales'} must be a non-empty "
                                         f"list with one entry per per-sample axis, not {given!r}")
        if shape is not None:
            if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
                raise NetworkDefinitionError(f"resize shape {shape} must hold positive ints")
            params["shape"] = [int(d) for d in shape]
        else:
            if any(isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 < float(s) < math.inf
                   for s in scales):
                raise NetworkDefinitionError(f"resize scales {scales} must be positive finite numbers")
            params["scales"] = [float(s) for s in scales]
        for key, choices, default in (("mode", MODES, "nearest"), ("coordinate_transformation", COORDINATES,
                                                                      "half_pixel"),
                                      ("nearest_rounding", ROUNDING, "round_prefer_floor")):
            value = params.get(key, default)
            if value not in choices:
                raise NetworkDefinitionError(f"resize {key} must be one of {', '.join(choices)}, not {value!r}")
            params[key] = value
        a = params.get("cubic_coeff", -0.75)
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a):
            raise NetworkDefinitionError(f"resize cubic_coeff must be a finite number, not {a!r}")
        params["cubic_coeff"] = float(a)
        if not isinstance(params.get("exclude_outside", False), bool):
            raise NetworkDefinitionError(f"resize exclude_outside must be True or False, not "
                                         f"{params.get('exclude_outside')!r}")
        params["exclude_outside"] = params.get("exclude_outside", False)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        given = params["shape"] if params.get("shape") is not None else params["scales"]
        if len(given) != len(x.shape):
            raise ShapeError(f"resize {'shape' if params.get('shape') is not None else 'scales'} {given} needs one "
                             f"entry per per-sample axis of the input {x.shape} (no batch entry)")
        if params.get("shape") is not None:
            out = list(params["shape"])
            scales = [m / n for m, n in zip(out, x.shape)]
        else:
            scales = list(params["scales"])
            out = [int(math.floor(n * s)) for n, s in zip(x.shape, scales)]
            if min(out) < 1:
                raise ShapeError(f"resize scales {scales} shrink the input {x.shape} to {tuple(out)}: every output "
                                 "dimension must be at least 1")
        if params["mode"] != "nearest" and "float" not in x.dtype:
            raise ShapeError(f"{params['mode']} resize needs a float input, got {x.dtype} (nearest moves any dtype)")
        params["in_shape"], params["out_shape"], params["axis_scales"] = list(x.shape), out, scales
        return [TensorSpec(tuple(out), x.dtype)]

    def prepare_tactic(self, tactic, params, weights):
        tables = self._tables(params)
        strided = {}
        if params["mode"] == "nearest":
            for key, idx in tables.items():
                if key.startswith("index_"):
                    how = strided_pattern(idx[0], params["in_shape"][int(key[6:])])
                    if how:
                        strided[key[6:]] = how
        passes = [[a, m, sc] for a, m, sc in _plan(params, tuple(params["in_shape"]))]
        periodic = {str(a): how for a, m, sc in passes
                    if (how := periodic_pattern(params, m, params["in_shape"][a], sc)) is not None}
        return ({**params, "tactic": tactic, "strided": strided, "passes": passes, "periodic": periodic},
                {**weights, **tables})

    @staticmethod
    def _tables(params):
        """The index and weight tables of every pass, from the shapes alone."""
        tables = {}
        for a, m, s in _plan(params, tuple(params["in_shape"])):
            tables[f"index_{a}"], tables[f"weight_{a}"] = axis_taps(params, m, params["in_shape"][a], s)
        return tables

    def _buffers(self, params, in_shape, itemsize, batch):
        """Bytes of each pass's result and the largest of them (per axis in pass order)."""
        shape, sizes = list(in_shape), []
        passes = params.get("passes")
        for a, m, _ in (_plan(params, tuple(in_shape)) if passes is None else passes):
            shape[a] = m
            sizes.append(batch * math.prod(shape) * itemsize)
        return sizes

    @staticmethod
    def _padded(params, in_shape, batch):
        """Values of the edge-extended input of the largest periodic pass (0 when none)."""
        shape, most = list(in_shape), 0
        passes = params.get("passes")
        for a, m, sc in (_plan(params, tuple(in_shape)) if passes is None else passes):
            how = periodic_pattern(params, m, shape[a], sc)
            if how:
                most = max(most, batch * math.prod(shape) // shape[a] * (shape[a] + how["lo"] + how["hi"]))
            shape[a] = m
        return most

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        if params["mode"] == "nearest":
            sizes = self._buffers(params, x.shape, x.itemsize, batch)[:-1]     # the last pass writes the output
            return scratch_size(*([max(sizes)] * min(2, len(sizes)) if sizes else []))
        sizes = self._buffers(params, x.shape, 4, batch)
        if not sizes:
            return 0
        own = 0 if x.dtype == "float32" else 4 * batch * x.size
        return scratch_size(own, *[max(sizes)] * 3, 4 * self._padded(params, x.shape, batch))

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        passes = params.get("passes")                  # from the tactic; computed here only when folding
        passes = _plan(params, tuple(x.shape[1:])) if passes is None else passes
        if not passes:
            out[...] = x
            return
        tables = weights if f"index_{passes[0][0]}" in weights else \
            {k: xp.asarray(v) for k, v in self._tables(params).items()}   # before tactics (constant folding)
        nearest = params["mode"] == "nearest"
        cur = x if nearest else env.float32(x)
        shape = list(x.shape)
        counts = self._buffers(params, x.shape[1:], 1, x.shape[0])
        if nearest:                                # the last pass writes the output
            bufs = [env.scratch((max(counts[:-1]),), x.dtype) for _ in range(min(2, len(passes) - 1))] \
                if len(passes) > 1 else []
        else:
            bufs = [env.scratch((max(counts),), np.float32) for _ in range(2)]
        tmp = None if nearest else env.scratch((max(counts),), np.float32)
        periodic = params.get("periodic", {})
        padded = env.scratch((self._padded(params, x.shape[1:], x.shape[0]),), np.float32) if periodic else None
        for step, (a, m, _) in enumerate(passes):
            shape[a + 1] = m
            n = math.prod(shape)
            last = step == len(passes) - 1
            dest = out if last and (nearest or out.dtype == np.float32) else bufs[step % 2][:n].reshape(shape)
            idx, w = tables[f"index_{a}"], tables[f"weight_{a}"]
            how = params.get("strided", {}).get(str(a))
            if how:                                            # strided copies instead of a gather
                def along(s_, ax=a + 1):
                    index = [slice(None)] * len(shape)
                    index[ax] = s_
                    return tuple(index)
                kind, start, k = how
                if kind == "pick":
                    dest[...] = cur[along(slice(start, start + k * (m - 1) + 1, k))]
                else:
                    for j in range(k):
                        dest[along(slice(j, None, k))] = cur[along(slice(start, start + m // k))]
            elif nearest:
                xp.take(cur, idx[0], axis=a + 1, out=dest)
            elif str(a) in periodic:                          # phases of shifted slices, no gather
                self._periodic(xp, cur, dest, a + 1, periodic[str(a)], padded, tmp)
            else:
                along = (-1,) + (1,) * (len(shape) - a - 2)
                t = tmp[:n].reshape(shape)
                for k in range(idx.shape[0]):
                    target = dest if k == 0 else t
                    xp.take(cur, idx[k], axis=a + 1, out=target)
                    target *= w[k].reshape(along)
                    if k:
                        dest += t
            cur = dest
        if cur is not out:
            xp.copyto(out, cur, casting="unsafe")

    @staticmethod
    def _periodic(xp, cur, dest, ax, how, padded, tmp):
        """dest = one periodic pass of ``cur`` along ``ax`` (see :func:`periodic_pattern`): the input
        edge-extended into ``padded``, then per phase j, dest[j::r] = sum of weight * shifted slices."""
        n, r, lo, hi = cur.shape[ax], how["r"], how["lo"], how["hi"]

        def along(arr, s_):
            index = [slice(None)] * arr.ndim
            index[ax] = s_
            return arr[tuple(index)]
        shape = list(cur.shape)
        shape[ax] = n + lo + hi
        ext = padded[:math.prod(shape)].reshape(shape)
        along(ext, slice(lo, lo + n))[...] = cur
        if lo:
            along(ext, slice(0, lo))[...] = along(cur, slice(0, 1))
        if hi:
            along(ext, slice(lo + n, None))[...] = along(cur, slice(n - 1, n))
        for j, taps in enumerate(how["phases"]):
            dj = along(dest, slice(j, None, r))
            tj = tmp[:dj.size].reshape(dj.shape)
            for k, (off, w) in enumerate(taps):
                src = along(ext, slice(lo + off, lo + off + n))
                if k == 0:
                    xp.multiply(src, np.float32(w), out=dj)
                else:
                    xp.multiply(src, np.float32(w), out=tj)
                    dj += tj

    def cost(self, params, inputs, outputs, weights):
        taps = MODES[params["mode"]]
        n = outputs[0].size
        return Cost(flops=float(0 if taps == 1 else 2 * taps * n),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes))
