"""MLP: a stack of GEMM stages, each with an optional bias and activation, run as one layer.

Produced only by the builder's MLP fusions (guide 2.5.3). Stage ``i`` computes
``act_i(x @ w_i + b_i)`` over the last axis; intermediate results live in the layer's workspace,
never in the activation memory plan. ``flatten`` (stages made from FullyConnected layers) first
flattens each sample to a vector.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .activation import ACTIVATIONS
from .base import Cost, Op, TensorSpec, register_op
from .env import scratch_size
from .epilogue import apply_epilogue, epilogue_scratch

MAX_STAGES = 31


@register_op
class MLP(Op):
    """Tactics: ``nn`` keeps each stage's weights as (inputs, outputs); ``nt`` stores them as
    (outputs, inputs) and multiplies by the transposed view, which BLAS may run faster."""

    type = "mlp"
    short = "mlp"
    tactic_names = ("nn", "nt")

    def check(self, params, weights):
        stages = params.get("stages")
        if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
            raise NetworkDefinitionError(f"an MLP layer needs 1..{MAX_STAGES} stages")
        for i, st in enumerate(stages):
            if f"w{i}" not in weights:
                raise NetworkDefinitionError(f"MLP stage {i} has no weights w{i}")
            act = st.get("activation")
            if act is not None and act.get("kind") not in ACTIVATIONS:
                raise NetworkDefinitionError(f"MLP stage {i}: unknown activation {act!r}")
        params["flatten"] = bool(params.get("flatten", False))
        params.setdefault("tactic", "nn")
        params["widths"] = [int(weights["w0"].shape[0])] + [int(weights[f"w{i}"].shape[1]) for i in range(len(stages))]
        return params

    def prepare_tactic(self, tactic, params, weights):
        if tactic == params.get("tactic", "nn"):
            return {**params, "tactic": tactic}, weights
        flipped = {k: (np.ascontiguousarray(v.T) if k.startswith("w") else v) for k, v in weights.items()}
        return {**params, "tactic": tactic}, flipped

    def infer(self, params, inputs, weights):
        x = inputs[0]
        width = x.size if params["flatten"] else x.shape[-1]
        for i in range(len(params["stages"])):
            w = weights[f"w{i}"]
            if params.get("tactic") == "nt":
                w = w.T
            if w.shape[0] != width:
                raise ShapeError(f"MLP stage {i} expects {w.shape[0]} inputs, gets {width}")
            width = w.shape[1]
        shape = (width,) if params["flatten"] else tuple(x.shape[:-1]) + (width,)
        return [TensorSpec(shape, x.dtype)]

    def _rows(self, params, x: TensorSpec, batch: int) -> int:
        return batch * (1 if params["flatten"] else int(np.prod(x.shape[:-1])))

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        rows = self._rows(params, x, batch)
        widths = [int(w) for w in params["widths"]]
        inner = widths[1:-1] or [0]
        buffers = min(2, len(params["stages"]) - 1)     # ping-pong between stages; one suffices for two stages
        epilogue = max((scratch_size(*epilogue_scratch(st, rows * widths[i + 1], x.dtype))
                        for i, st in enumerate(params["stages"])), default=0)
        return scratch_size(*[rows * max(inner) * x.itemsize] * buffers) + epilogue

    def gemms(self, params, inputs, outputs, batch):
        x = inputs[0]
        lead = (batch,) if params["flatten"] else (batch,) + tuple(x.shape[:-1])     # as compute shapes them
        w = [int(v) for v in params["widths"]]
        return [(lead + (w[i],), (w[i], w[i + 1]), lead + (w[i + 1],), outputs[0].dtype) for i in range(len(w) - 1)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b = x.shape[0]
        h = x.reshape(b, -1) if params["flatten"] else x
        final = out.reshape(h.shape[:-1] + (out.shape[-1],))
        n = len(params["stages"])
        nt = params.get("tactic") == "nt"
        inner = max([int(w) for w in params["widths"][1:-1]] or [0])
        count = int(np.prod(h.shape[:-1]))
        pingpong = [env.scratch((count * inner,), out.dtype) for _ in range(min(2, n - 1))]
        for i, st in enumerate(params["stages"]):
            w = weights[f"w{i}"].T if nt else weights[f"w{i}"]
            shape = h.shape[:-1] + (w.shape[1],)
            dst = final if i == n - 1 else pingpong[i % 2][:count * w.shape[1]].reshape(shape)
            env.matmul(h, w, dst)
            act = st.get("activation")
            if env.device_kind == "cuda" and (act is None or act["kind"] == "relu") and (f"b{i}" in weights or act):
                from .cuda_kernels import epilogue      # bias and ReLU in one pass over the stage's output
                flat = dst.reshape(-1, dst.shape[-1])
                epilogue(flat, weights.get(f"b{i}"), None, None, bool(act))
            else:
                if f"b{i}" in weights:
                    xp.add(dst, weights[f"b{i}"], out=dst)
                if act:
                    mark = env.mark()
                    apply_epilogue(env, dst, st)
                    env.release(mark)
            h = dst

    def cost(self, params, inputs, outputs, weights):
        rows = 1 if params["flatten"] else int(np.prod(inputs[0].shape[:-1]))
        flops = 0.0
        wbytes = 0
        for i, st in enumerate(params["stages"]):
            k, n = weights[f"w{i}"].shape[::-1] if params.get("tactic") == "nt" else weights[f"w{i}"].shape
            flops += rows * (2.0 * k * n + n)
            if st.get("activation"):
                flops += rows * n * ACTIVATIONS[st["activation"]["kind"]][2]
            wbytes += (k * n + n) * outputs[0].itemsize
        return Cost(flops=flops, bytes=float(inputs[0].nbytes + outputs[0].nbytes + wbytes))
