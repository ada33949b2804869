"""MatrixMultiply: ``op(A) @ op(B)`` per sample, with optional transposes and batch broadcasting."""
from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, Op, register_op, TensorSpec


@register_op
class MatrixMultiply(Op):
    type = "matrix_multiply"
    short = "matmul"
    min_inputs = max_inputs = 2

    def check(self, params, weights):
        params["transpose_a"] = bool(params.get("transpose_a", False))
        params["transpose_b"] = bool(params.get("transpose_b", False))
        return params

    @staticmethod
    def _mk(shape, transpose):
        m, k = shape[-2], shape[-1]
        return (k, m) if transpose else (m, k)

    def infer(self, params, inputs, weights):
        a, b = inputs
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise ShapeError(f"matrix multiply needs per-sample rank >= 2, got {a.shape} and {b.shape}")
        m, k = self._mk(a.shape, params["transpose_a"])
        k2, n = self._mk(b.shape, params["transpose_b"])
        if k != k2:
            raise ShapeError(f"inner dimensions differ: op(A) is {m}x{k}, op(B) is {k2}x{n} "
                             f"(A {a.shape}, B {b.shape}, transposes {params['transpose_a']}, "
                             f"{params['transpose_b']})")
        ba, bb = a.shape[:-2], b.shape[:-2]
        rank = max(len(ba), len(bb))
        ba, bb = (1,) * (rank - len(ba)) + ba, (1,) * (rank - len(bb)) + bb
        lead = []
        for x, y in zip(ba, bb):
            if x != y and 1 not in (x, y):
                raise ShapeError(f"matrix batch dimensions {a.shape[:-2]} and {b.shape[:-2]} do not broadcast")
            lead.append(max(x, y))
        dtype = a.dtype if not a.constant else b.dtype
        return [TensorSpec(tuple(lead) + (m, n), dtype)]

    def gemms(self, params, inputs, outputs, batch):
        shapes = []
        for t, transpose in zip(inputs, (params["transpose_a"], params["transpose_b"])):
            shape = tuple(t.shape) if t.constant else (batch,) + tuple(t.shape)
            shapes.append(shape[:-2] + shape[:-3:-1] if transpose else shape)      # as compute passes them
        return [(shapes[0], shapes[1], (batch,) + tuple(outputs[0].shape), outputs[0].dtype)]

    def compute(self, env, ins, outs, params, weights):
        a, b = ins
        if params["transpose_a"]:
            a = env.xp.swapaxes(a, -1, -2)
        if params["transpose_b"]:
            b = env.xp.swapaxes(b, -1, -2)
        env.matmul(a, b, outs[0])

    def cost(self, params, inputs, outputs, weights):
        a = inputs[0]
        k = a.shape[-2] if params["transpose_a"] else a.shape[-1]
        return Cost(flops=2.0 * outputs[0].size * k,
                    bytes=float(sum(t.nbytes for t in inputs) + outputs[0].nbytes))
