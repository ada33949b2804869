"""ElementWise: a binary operation of two tensors of equal per-sample rank, with broadcasting.

Arithmetic (sum, prod, sub, div, max, min, pow, and ONNX's Mod as ``mod`` with Python's sign or
``fmod`` with C's) keeps the operands' dtype. Comparisons (equal, less, greater, less_equal,
greater_equal) and logical operations (and, or, xor: non-zero is true) give int32 0/1, perfkit's
stand-in for ONNX's bool tensors, which ``add_select`` reads as its condition.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, broadcast_shapes, register_op, TensorSpec
from .env import scratch_size

OPS = {"sum": "add", "prod": "multiply", "sub": "subtract", "div": "divide", "max": "maximum",
       "min": "minimum", "pow": "power", "mod": "remainder", "fmod": "fmod"}
#: operations whose result is int32 0/1 whatever the operands' dtype
PREDICATES = {"equal": "equal", "less": "less", "greater": "greater", "less_equal": "less_equal",
              "greater_equal": "greater_equal", "and": "logical_and", "or": "logical_or", "xor": "logical_xor"}


@register_op
class ElementWise(Op):
    type = "elementwise"
    short = "ew"
    min_inputs = max_inputs = 2

    def check(self, params, weights):
        if params.get("op") not in OPS and params.get("op") not in PREDICATES:
            raise NetworkDefinitionError(f"unknown element-wise op {params.get('op')!r}; available: "
                                         f"{', '.join([*OPS, *PREDICATES])}")
        return params

    def infer(self, params, inputs, weights):
        a, b = inputs
        shape = broadcast_shapes(a.shape, b.shape, f"element-wise {params['op']}")
        if params["op"] in PREDICATES:
            return [TensorSpec(shape, "int32")]
        dtype = a.dtype if not a.constant else b.dtype
        if "float" not in a.dtype or "float" not in b.dtype:
            dtype = "int32" if a.dtype == b.dtype == "int32" else "float32"
        return [TensorSpec(shape, dtype)]

    @staticmethod
    def _native(params, a: str, b: str, out: str) -> bool:
        """Whether one ufunc call in the output's dtype computes the layer: NumPy's float16 and
        bfloat16 loops compute each value in float32 and round once, as a float32 pass would."""
        return a == b == out and not (params["op"] == "pow" and "float" not in out)

    def scratch_bytes(self, params, inputs, outputs, batch):
        a, b = inputs
        o = outputs[0]
        if params["op"] in PREDICATES:      # same dtypes compare directly; mixed ones in float32 copies
            return 0 if a.dtype == b.dtype else \
                scratch_size(*[4 * t.size * (1 if t.constant else batch) for t in (a, b) if t.dtype != "float32"])
        if self._native(params, a.dtype, b.dtype, o.dtype):
            return 0
        sizes = [4 * t.size * (1 if t.constant else batch) for t in (a, b) if t.dtype != "float32"]
        return scratch_size(*sizes, 0 if o.dtype == "float32" else 4 * batch * o.size)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        a, b = ins
        out = outs[0]
        if params["op"] in PREDICATES:
            fn = getattr(xp, PREDICATES[params["op"]])
            if a.dtype == b.dtype:
                fn(a, b, out=out)
            else:
                fn(env.float32(a), env.float32(b), out=out)
            return
        fn = getattr(xp, OPS[params["op"]])
        if self._native(params, a.dtype.name, b.dtype.name, out.dtype.name):
            fn(a, b, out=out)
            return
        # mixed dtypes or an integer power: computed in float32 (operands copied to scratch)
        r = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        fn(env.float32(a), env.float32(b), out=r)
        if r is not out:
            xp.copyto(out, r, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * {"pow": 10, "mod": 4, "fmod": 4}.get(params["op"], 1)),
                    bytes=float(sum(t.nbytes for t in inputs) + outputs[0].nbytes))
