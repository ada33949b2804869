"""Select: ONNX ``Where``, ``then`` where the condition is non-zero, else ``else``.

The three inputs have equal per-sample ranks and broadcast over 1-sized dimensions (as element-wise
layers do); any of them may be a constant. The condition is int32 (0/1, as comparisons produce) or
a float tensor (non-zero is true).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .base import Cost, Op, TensorSpec, broadcast_shapes, register_op
from .env import scratch_size


@register_op
class Select(Op):
    type = "select"
    short = "select"
    min_inputs = max_inputs = 3

    def infer(self, params, inputs, weights):
        cond, a, b = inputs
        shape = broadcast_shapes(broadcast_shapes(cond.shape, a.shape, "select"), b.shape, "select")
        floats = ["float" in t.dtype for t in (a, b)]
        if all(floats) or not any(floats):
            dtype = a.dtype if not a.constant else b.dtype
        else:
            raise ShapeError(f"select's then and else inputs have dtypes {a.dtype} and {b.dtype}; give both the "
                             "same kind (cast the int32 one with add_identity(dtype=...))")
        return [TensorSpec(shape, dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        cond = inputs[0]
        return scratch_size(cond.size * (1 if cond.constant else batch))       # the condition as a bool mask

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        cond, a, b = ins
        out = outs[0]
        mask = env.scratch(cond.shape, np.bool_)
        xp.not_equal(cond, 0, out=mask)
        xp.copyto(out, b, casting="unsafe")
        xp.copyto(out, a, casting="unsafe", where=mask)

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size),
                    bytes=float(sum(t.nbytes for t in inputs if not t.constant) + outputs[0].nbytes))
