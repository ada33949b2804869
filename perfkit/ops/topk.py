"""TopK: the k largest (or smallest) values along one per-sample axis, and their int32 indices."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, norm_axis, register_op
from .env import scratch_size


@register_op
class TopK(Op):
    type = "topk"
    short = "topk"
    output_names = ("values", "indices")

    def check(self, params, weights):
        if params.get("op") not in ("max", "min"):
            raise NetworkDefinitionError(f"top-k op must be 'max' or 'min', not {params.get('op')!r}")
        k = params.get("k")
        if not isinstance(k, int) or k <= 0:
            raise NetworkDefinitionError(f"k must be a positive int, not {k!r}")
        params["axis"] = params.get("axis", -1)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        axis = norm_axis(params["axis"], len(x.shape), "top-k axis")
        params["axis"] = axis
        if params["k"] > x.shape[axis]:
            raise ShapeError(f"k={params['k']} is larger than axis {axis} of the input {x.shape}")
        shape = list(x.shape)
        shape[axis] = params["k"]
        return [TensorSpec(tuple(shape), x.dtype), TensorSpec(tuple(shape), "int32")]

    def scratch_bytes(self, params, inputs, outputs, batch):
        x, k = inputs[0], outputs[0].size
        n = x.shape[params["axis"]]
        # float32 keys, packed 64-bit (key, index) words, an index ramp; for the k kept: two words, a float32
        return scratch_size(4 * batch * x.size, 8 * batch * x.size, 8 * n, 8 * batch * k, 8 * batch * k,
                            4 * batch * k)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x = ins[0]
        axis = params["axis"] + 1
        if xp is not np:
            key = -x.astype(np.float32) if params["op"] == "max" else x
            order = xp.argsort(key, axis=axis)
            idx = xp.take(order, xp.arange(params["k"]), axis=axis)
            outs[0][...] = xp.take_along_axis(x, idx, axis=axis)
            outs[1][...] = idx
            return
        _topk_sorted(env, np.moveaxis(x, axis, -1), params["k"], params["op"] == "max",
                     np.moveaxis(outs[0], axis, -1), np.moveaxis(outs[1], axis, -1))

    def cost(self, params, inputs, outputs, weights):
        n = inputs[0].size
        return Cost(flops=float(n * max(1, int(np.log2(max(2, inputs[0].shape[params["axis"]]))))),
                    bytes=float(inputs[0].nbytes + sum(o.nbytes for o in outputs)))


def _topk_sorted(env, x, k: int, largest: bool, values, indices) -> None:
    """Top-k along the last axis of ``x`` with NumPy, in workspace scratch only: each value becomes a
    32-bit key whose unsigned order is the float order (sign flipped for ``largest``), packed above
    its index into one 64-bit word; an in-place sort of the words orders by value, ties by index
    (as a stable sort would), and the first k words give the values and indices back. The order is
    IEEE's total order: -0.0 before 0.0, NaN after every number (as in NumPy's sort)."""
    n = x.shape[-1]
    key = env.scratch(x.shape, np.float32)
    np.copyto(key, x, casting="unsafe")
    if largest:
        np.negative(key, out=key)
    u = key.view(np.uint32)
    words = env.scratch(x.shape, np.uint64)
    t = words.reshape(-1).view(np.uint32)[:u.size].reshape(u.shape)    # uint32 scratch in the words' bytes
    np.bitwise_and(u, 0x7FFFFFFF, out=t)         # NaN (|bits| > 0x7F800000) loses its sign bit
    t += 0x007FFFFF
    t >>= 31
    t <<= 31
    np.subtract(0xFFFFFFFF, t, out=t)
    u &= t
    np.right_shift(u, 31, out=t)                 # sign bit: flip all bits of negatives, the sign of the rest
    t *= 0x7FFFFFFF
    t += 0x80000000
    u ^= t
    np.copyto(words, u)
    words <<= 32
    ramp = env.scratch((n,), np.uint64)
    np.cumsum(np.broadcast_to(np.uint64(1), (n,)), out=ramp)
    ramp -= 1
    words |= ramp
    words.sort(axis=-1)
    kept = words[..., :k]
    hi = env.scratch(kept.shape, np.uint64)
    mask = env.scratch(kept.shape, np.uint64)
    np.right_shift(kept, 32, out=hi)             # the key back to float bits
    np.right_shift(hi, 31, out=mask)
    mask *= 0x7FFFFFFF
    np.subtract(0xFFFFFFFF, mask, out=mask)
    hi ^= mask
    bits = env.scratch(kept.shape, np.uint32)
    np.copyto(bits, hi, casting="unsafe")
    found = bits.view(np.float32)
    if largest:
        np.negative(found, out=found)
    np.copyto(values, found, casting="unsafe")
    kept &= 0xFFFFFFFF
    np.copyto(indices, kept, casting="unsafe")
