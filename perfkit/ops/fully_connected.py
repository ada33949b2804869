"""FullyConnected: every per-sample input value feeds every output, ``y = W·flatten(x) + b``.

Tactics: ``nt`` multiplies by the kernel as stored, (outputs, inputs), transposed on the fly;
``nn`` stores the kernel pre-transposed, (inputs, outputs), contiguous; ``wx`` computes the transposed
product ``W @ x^T`` (outputs, batch) with the kernel as stored, in workspace, and the epilogue's first
pass writes it back transposed: at small batches BLAS runs it 20-50% faster than the other two (measured
on OpenBLAS: batch 8, 2048x2048, 1.64 ms against 2.09 for nn and 3.17 for nt). ``lt`` (CUDA, float16 or
float32, no activation or ReLU) is one cuBLASLt matmul with the bias and ReLU in its epilogue
(``cuda_lt.py``), the kernel as stored. A fused activation otherwise runs as an epilogue (``ip1 + relu1``).
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import as_array, check_bias, Cost, Op, register_op, TensorSpec
from .cuda_lt import TACTICS as LT_TACTICS
from .cuda_lt import fits as lt_fits
from .cuda_lt import unavailable_reason as lt_unavailable
from .env import scratch_size
from .epilogue import apply_epilogue, check_epilogue, epilogue_flops, epilogue_scratch


@register_op
class FullyConnected(Op):
    type = "fully_connected"
    short = "fc"
    weight_names = ("kernel", "bias")
    tactic_names = ("nt", "nn", "wx") + LT_TACTICS
    device_tactics = {t: "cuda" for t in LT_TACTICS}
    tactic_needs = {t: lt_unavailable for t in LT_TACTICS}

    def applicable_tactics(self, params, inputs):
        return self.tactic_names if lt_fits(inputs[0], [params]) else self.tactic_names[:3]

    def check(self, params, weights):
        k = params.get("num_outputs")
        if not isinstance(k, int) or k <= 0:
            raise NetworkDefinitionError(f"num_outputs must be a positive int, not {k!r}")
        w = as_array(weights["kernel"], "kernel")
        if w.ndim != 2 or w.shape[0] != k:
            raise ShapeError(f"kernel must have shape (num_outputs={k}, inputs), got {w.shape}")
        weights["kernel"] = w
        check_bias(weights, k)
        params.setdefault("tactic", "nt")
        return check_epilogue(params)

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if weights["kernel"].shape[1] != x.size:
            raise ShapeError(f"input has {x.size} values per sample (shape {x.shape}) but the kernel "
                             f"expects {weights['kernel'].shape[1]}")
        return [TensorSpec((params["num_outputs"],), x.dtype)]

    def prepare_tactic(self, tactic, params, weights):
        params = {**params, "tactic": tactic}
        if tactic == "nn":
            weights = {**weights, "kernel": np.ascontiguousarray(weights["kernel"].T)}
        return params, weights

    def scratch_bytes(self, params, inputs, outputs, batch):
        transposed = 4 * batch * outputs[0].size if params.get("tactic") == "wx" else 0    # float32 (k, batch)
        return scratch_size(transposed, *epilogue_scratch(params, batch * outputs[0].size, outputs[0].dtype))

    def gemms(self, params, inputs, outputs, batch):
        n, k = inputs[0].size, outputs[0].size
        if params.get("tactic") in LT_TACTICS:
            return []                   # cuBLASLt multiplies the storage dtype itself
        if params.get("tactic") == "wx":
            return [((k, n), (n, batch), (k, batch), "float32" if inputs[0].dtype == "float32" else inputs[0].dtype)]
        return [((batch, n), (n, k), (batch, k), outputs[0].dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        w = weights["kernel"]
        if params["tactic"] in LT_TACTICS:
            act = params.get("activation")
            env.lt.linear(x.reshape(x.shape[0], -1), w, weights.get("bias"), out, act is not None, False,
                          LT_TACTICS.index(params["tactic"]))
            return
        if params["tactic"] == "wx" and env.device_kind == "cpu":
            self._wx(env, x, out, w, weights.get("bias"), params)
            return
        env.matmul(x.reshape(x.shape[0], -1), w if params["tactic"] == "nn" else w.T, out)
        act = params.get("activation")
        if env.device_kind == "cuda" and (act is None or act["kind"] == "relu") and ("bias" in weights or act):
            from .cuda_kernels import epilogue
            epilogue(out, weights.get("bias"), None, None, bool(act))       # bias and ReLU in one pass
            return
        if "bias" in weights:
            env.xp.add(out, weights["bias"], out=out)
        apply_epilogue(env, out, params)

    @staticmethod
    def _wx(env, x, out, w, bias, params) -> None:
        """out = epilogue((W @ x^T)^T + b): the product (outputs, batch) in float32 scratch, copied back
        transposed (batch x outputs values: small next to the kernel the product reads)."""
        xp = env.xp
        b = x.shape[0]
        t = env.scratch((w.shape[0], b), np.float32)
        mark = env.mark()
        env.matmul(w, x.reshape(b, -1).T, t)
        env.release(mark)
        xp.copyto(out, t.T, casting="unsafe")            # then in place: no buffered strided + broadcast pair
        if bias is not None:
            xp.add(out, bias, out=out)
        apply_epilogue(env, out, params)

    def cost(self, params, inputs, outputs, weights):
        k, n = outputs[0].size, inputs[0].size
        it = outputs[0].itemsize
        return Cost(flops=2.0 * k * n + (k if "bias" in weights else 0) + epilogue_flops(params, k),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes + (k * n + k) * it))
