"""Slice: ONNX ``Slice`` over per-sample axes: starts, ends, axes and steps, negative ones included.

Starts and ends count from the end when negative and are clamped to the axis as NumPy (and ONNX's
reference) clamp them, so an end of ``2**63 - 1`` means "to the end"; a negative step walks backwards. The layer keeps the
resolved Python slices (``params["slices"]``), and its output is a strided view of its input copied
once. Several slices of one tensor make an ONNX ``Split``.
"""
from __future__ import annotations

from ..arguments import integer
from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, norm_axis, register_op


def _int_list(value, what: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise NetworkDefinitionError(f"{what} must be a list of ints, not {value!r}")
    return [integer(v, f"{what} entry") for v in value]


def resolve(start: int, end: int, step: int, n: int) -> tuple:
    """One axis of length ``n`` sliced as NumPy slices it, which is what ONNX's reference does:
    ``(start, stop, step, length)``, with ``stop`` None where a backwards slice runs past index 0
    (Python would read -1 as the last index). A negative start before the axis begins selects
    nothing backwards (x[-5:-7:-2] of 3 values), though ONNX's text clamps it to 0."""
    start, stop, step = slice(start, end, step).indices(n)
    return start, (None if stop < 0 else stop), step, len(range(start, stop, step))


@register_op
class Slice(Op):
    type = "slice"
    short = "slice"

    def check(self, params, weights):
        starts = _int_list(params.get("starts"), "starts")
        ends = _int_list(params.get("ends"), "ends")
        if not starts or len(starts) != len(ends):
            raise NetworkDefinitionError(f"starts {starts} and ends {ends} must be non-empty lists of equal length "
                                         "(one entry per sliced axis)")
        axes = params.get("axes")
        axes = list(range(len(starts))) if axes is None else _int_list(axes, "axes")
        steps = params.get("steps")
        steps = [1] * len(starts) if steps is None else _int_list(steps, "steps")
        if len(axes) != len(starts) or len(steps) != len(starts):
            raise NetworkDefinitionError(f"axes {axes} and steps {steps} need one entry per start ({len(starts)})")
        if 0 in steps:
            raise NetworkDefinitionError(f"steps {steps} contain 0; a step must be a non-zero int "
                                         "(negative steps slice backwards)")
        params.update(starts=starts, ends=ends, axes=axes, steps=steps)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        rank = len(x.shape)
        axes = [norm_axis(a, rank, "slice axis") for a in params["axes"]]
        if len(set(axes)) != len(axes):
            raise NetworkDefinitionError(f"slice axes {params['axes']} name the same axis twice")
        slices = [[0, d, 1] for d in x.shape]
        shape = list(x.shape)
        for a, s, e, st in zip(axes, params["starts"], params["ends"], params["steps"]):
            start, stop, step, length = resolve(s, e, st, x.shape[a])
            if length == 0:
                raise ShapeError(f"slice of axis {a} (length {x.shape[a]}) from {s} to {e} step {st} selects "
                                 "nothing; empty tensors are not supported: check starts/ends against the shape")
            slices[a] = [start, stop, step]
            shape[a] = length
        params["slices"] = slices
        return [TensorSpec(tuple(shape), x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        index = (slice(None),) + tuple(slice(*s) for s in params["slices"])
        outs[0][...] = ins[0][index]

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(2 * outputs[0].nbytes))
