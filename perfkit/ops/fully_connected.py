"""FullyConnected: every per-sample input value feeds every output, ``y = W·flatten(x) + b``."""
from __future__ import annotations

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, as_array, register_op, TensorSpec


@register_op
class FullyConnected(Op):
    type = "fully_connected"
    short = "fc"
    weight_names = ("kernel", "bias")

    def check(self, params, weights):
        k = params.get("num_outputs")
        if not isinstance(k, int) or k <= 0:
            raise NetworkDefinitionError(f"num_outputs must be a positive int, not {k!r}")
        w = as_array(weights["kernel"], "kernel")
        if w.ndim != 2 or w.shape[0] != k:
            raise ShapeError(f"kernel must have shape (num_outputs={k}, inputs), got {w.shape}")
        weights["kernel"] = w
        if weights.get("bias") is not None:
            b = as_array(weights["bias"], "bias")
            if b.shape != (k,):
                raise ShapeError(f"bias must have shape ({k},), got {b.shape}")
            weights["bias"] = b
        else:
            weights.pop("bias", None)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if weights["kernel"].shape[1] != x.size:
            raise ShapeError(f"input has {x.size} values per sample (shape {x.shape}) but the kernel "
                             f"expects {weights['kernel'].shape[1]}")
        return [TensorSpec((params["num_outputs"],), x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        env.matmul(x.reshape(x.shape[0], -1), weights["kernel"].T, out)
        if "bias" in weights:
            env.xp.add(out, weights["bias"], out=out)

    def cost(self, params, inputs, outputs, weights):
        k, n = weights["kernel"].shape
        it = outputs[0].itemsize
        return Cost(flops=2.0 * k * n + (k if "bias" in weights else 0),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes + (k * n + k) * it))
