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
from .cuda_lt import TACTICS as LT_TACTICS
from .cuda_lt import fits as lt_fits
from .cuda_lt import unavailable_reason as lt_unavailable
from .env import scratch_size
from .epilogue import apply_epilogue, epilogue_scratch

MAX_STAGES = 31


#: the multiple Tensor Cores want every GEMM dimension of a float16/bfloat16 product to be (guide chapter 3)
TENSOR_CORE_MULTIPLE = 8
PAD = "+pad8"


def padded_width(n: int) -> int:
    return -(-int(n) // TENSOR_CORE_MULTIPLE) * TENSOR_CORE_MULTIPLE


def _transposed(params: dict) -> bool:
    """Whether the stages' weights are stored as (outputs, inputs): the ``nt`` tactics."""
    return str(params.get("tactic")).startswith("nt")


@register_op
class MLP(Op):
    """Tactics: ``nn`` keeps each stage's weights as (inputs, outputs); ``nt`` stores them as
    (outputs, inputs) and multiplies by the transposed view, which BLAS may run faster. ``nn+pad8`` and
    ``nt+pad8`` (reduced precisions, when a width between stages is not a multiple of 8) widen those inner
    widths to the next multiple of 8 with zero weights and biases, the N of one product and the K of the next
    (guide chapter 3: Tensor Core kernels want M, K and N multiples of 8; the input width, the output width
    and the batch are the network's and stay as they are); the padded outputs meet zero weights in the next
    stage, so the result is unchanged and the layer's output width stays. The builder times them against
    the unpadded ones on a GPU; the CPU has no Tensor Cores and does not time them. ``lt`` (CUDA; ReLU or no
    activation) keeps the ``nn`` weights and runs each stage as one cuBLASLt matmul with its bias and ReLU in the
    epilogue (``cuda_lt.py``)."""

    type = "mlp"
    short = "mlp"
    tactic_names = ("nn", "nt", "nn" + PAD, "nt" + PAD) + LT_TACTICS
    device_tactics = {t: "cuda" for t in LT_TACTICS}
    tactic_needs = {t: lt_unavailable for t in LT_TACTICS}

    def applicable_tactics(self, params, inputs):
        inner = [int(w) for w in params["widths"][1:-1]]
        reduced = np.dtype(inputs[0].dtype).itemsize == 2
        names = self.tactic_names[:4] if reduced and any(w % TENSOR_CORE_MULTIPLE for w in inner) \
            else self.tactic_names[:2]
        return names + (LT_TACTICS if lt_fits(inputs[0], params["stages"]) else ())

    def cpu_losers(self, params, inputs) -> tuple:
        """No Tensor Cores on the CPU: padding only adds work there."""
        return self.tactic_names[2:4]

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
        """The weights and parameters of ``tactic`` from those of ``params["tactic"]`` (any of them: the
        engine-file check also undoes a tactic's layout). A padded tactic keeps the network's widths in
        ``net_widths`` and the padded ones in ``widths``."""
        source = params.get("tactic", "nn")
        if tactic == source:
            return {**params, "tactic": tactic}, weights
        if tactic not in self.tactic_names or source not in self.tactic_names:
            raise ValueError(f"unknown MLP tactic {tactic if tactic not in self.tactic_names else source!r}")
        n = len(params["stages"])
        w = {k: (np.ascontiguousarray(v.T) if source.startswith("nt") and k.startswith("w") else v)
             for k, v in weights.items()}
        net = [int(x) for x in (params["net_widths"] if source.endswith(PAD) else params["widths"])]
        if source.endswith(PAD):                # back to the network's widths
            for i in range(n):
                w[f"w{i}"] = np.ascontiguousarray(w[f"w{i}"][:net[i], :net[i + 1]])
                if f"b{i}" in w:
                    w[f"b{i}"] = np.ascontiguousarray(w[f"b{i}"][:net[i + 1]])
        out = {k: v for k, v in params.items() if k != "net_widths"}
        widths = net
        if tactic.endswith(PAD):
            widths = [net[0]] + [padded_width(x) for x in net[1:-1]] + [net[-1]]
            for i in range(n):
                grown = np.zeros((widths[i], widths[i + 1]), w[f"w{i}"].dtype)
                grown[:net[i], :net[i + 1]] = w[f"w{i}"]
                w[f"w{i}"] = grown
                if f"b{i}" in w:
                    w[f"b{i}"] = np.concatenate([w[f"b{i}"], np.zeros(widths[i + 1] - net[i + 1], w[f"b{i}"].dtype)])
            out["net_widths"] = net
        if tactic.startswith("nt"):
            w = {k: (np.ascontiguousarray(v.T) if k.startswith("w") else v) for k, v in w.items()}
        out.update(tactic=tactic, widths=widths)
        return out, w

    def infer(self, params, inputs, weights):
        x = inputs[0]
        width = x.size if params["flatten"] else x.shape[-1]
        for i in range(len(params["stages"])):
            w = weights[f"w{i}"]
            if _transposed(params):
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
        if params.get("tactic") in LT_TACTICS:
            return []                   # cuBLASLt multiplies the storage dtype itself
        return [(lead + (w[i],), (w[i], w[i + 1]), lead + (w[i + 1],), outputs[0].dtype) for i in range(len(w) - 1)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b = x.shape[0]
        h = x.reshape(b, -1) if params["flatten"] else x
        final = out.reshape(h.shape[:-1] + (out.shape[-1],))
        n = len(params["stages"])
        nt = _transposed(params)
        inner = max([int(w) for w in params["widths"][1:-1]] or [0])
        count = int(np.prod(h.shape[:-1]))
        pingpong = [env.scratch((count * inner,), out.dtype) for _ in range(min(2, n - 1))]
        lt = LT_TACTICS.index(params["tactic"]) if params["tactic"] in LT_TACTICS else None
        for i, st in enumerate(params["stages"]):
            if lt is not None:      # one cuBLASLt matmul per stage, bias and ReLU in its epilogue ("nn" weights)
                w = weights[f"w{i}"]
                dst = final if i == n - 1 else pingpong[i % 2][:count * w.shape[1]].reshape(h.shape[:-1] + (w.shape[1],))
                env.lt.linear(h.reshape(count, -1), w, weights.get(f"b{i}"), dst.reshape(count, -1),
                              st.get("activation") is not None, True, lt)
                h = dst
                continue
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
        """The network's flops (a padded tactic's zero lanes are not counted: achieved FLOP/s stay comparable
        between tactics) and the bytes the stored, possibly padded, weights take."""
        rows = 1 if params["flatten"] else int(np.prod(inputs[0].shape[:-1]))
        net = [int(x) for x in params.get("net_widths", params["widths"])]
        flops = 0.0
        wbytes = 0
        for i, st in enumerate(params["stages"]):
            k, n = net[i], net[i + 1]
            flops += rows * (2.0 * k * n + n)
            if st.get("activation"):
                flops += rows * n * ACTIVATIONS[st["activation"]["kind"]][2]
            wbytes += (weights[f"w{i}"].size + int(params["widths"][i + 1])) * outputs[0].itemsize   # as stored
        return Cost(flops=flops, bytes=float(inputs[0].nbytes + outputs[0].nbytes + wbytes))
