"""Expand: ONNX ``Expand``, a broadcast of the input to a per-sample shape.

The broadcast is bidirectional, as in NumPy: the target may have more dimensions than the input
(1-sized ones are added in front of the input's, after the implicit batch), a 1 in the input takes
the target's size, and a 1 in the target keeps the input's.
"""
from __future__ import annotations

from ..arguments import integer
from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, register_op


@register_op
class Expand(Op):
    type = "expand"
    short = "expand"

    def check(self, params, weights):
        shape = params.get("shape")
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (list, tuple)) or not shape:
            raise NetworkDefinitionError(f"expand shape must be a non-empty list of positive ints, not {shape!r}")
        params["shape"] = [integer(d, f"expand shape {tuple(shape)}: every dimension (a positive int)", 1)
                           for d in shape]
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        target = params["shape"]
        if len(target) < len(x.shape):
            raise ShapeError(f"expand shape {tuple(target)} has fewer dimensions than the input {x.shape}; give "
                             f"at least {len(x.shape)} (per sample, no batch dimension)")
        padded = (1,) * (len(target) - len(x.shape)) + tuple(x.shape)
        out = []
        for have, want in zip(padded, target):
            if have != want and 1 not in (have, want):
                raise ShapeError(f"input {x.shape} does not broadcast to {tuple(target)}: a dimension of {have} can "
                                 f"only be expanded from 1 or kept with a 1 (got {want})")
            out.append(max(have, want))
        params["padded"] = list(padded)
        return [TensorSpec(tuple(out), x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        out[...] = x.reshape((x.shape[0],) + tuple(params["padded"]))     # (a constant input is folded)

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(inputs[0].nbytes + outputs[0].nbytes))
