"""Identity: copies its input; with a different output dtype it is a reformat (a precision cast)."""
from __future__ import annotations

from ..errors import NetworkDefinitionError
from .base import DTYPES, Op, TensorSpec, register_op

# a reformat converts to any storage dtype, bfloat16 (perfkit.precision) included
REFORMAT_DTYPES = DTYPES + ("bfloat16",)


@register_op
class Identity(Op):
    type = "identity"
    short = "identity"

    def check(self, params, weights):
        dt = params.get("dtype")
        if dt is not None and dt not in REFORMAT_DTYPES:
            raise NetworkDefinitionError(f"identity dtype must be one of {REFORMAT_DTYPES}, not {dt!r}")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        return [TensorSpec(x.shape, params.get("dtype") or x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        outs[0][...] = ins[0]
