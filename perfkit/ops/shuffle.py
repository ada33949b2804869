"""Shuffle: a first transpose, a reshape, then a second transpose (any of them may be absent)."""
from __future__ import annotations

import math

from ..errors import ShapeError
from .base import Cost, Op, register_op, TensorSpec
from .env import scratch_size


def _check_perm(perm, rank, what):
    if perm is None:
        return None
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"{what} {perm} is not a permutation of the {rank} per-sample axes")
    return perm


@register_op
class Shuffle(Op):
    type = "shuffle"
    short = "shuffle"

    def check(self, params, weights):
        for k in ("first_transpose", "reshape", "second_transpose"):
            if params.get(k) is not None:
                params[k] = [int(v) for v in params[k]]
            else:
                params[k] = None
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        shape = list(x.shape)
        p1 = _check_perm(params["first_transpose"], len(shape), "first_transpose")
        if p1:
            shape = [shape[p] for p in p1]
        if params["reshape"] is not None:
            dims = list(params["reshape"])
            if dims.count(-1) > 1:
                raise ShapeError(f"reshape {dims} has more than one -1")
            new = []
            for i, d in enumerate(dims):
                if d == 0:
                    if i >= len(shape):
                        raise ShapeError(f"reshape {dims}: 0 at position {i} copies a dimension the input {tuple(shape)} lacks")
                    new.append(shape[i])
                elif d == -1 or d > 0:
                    new.append(d)
                else:
                    raise ShapeError(f"reshape {dims}: dimensions must be positive, 0 (copy) or -1 (infer)")
            total = math.prod(shape)
            known = math.prod(d for d in new if d != -1)
            if -1 in new:
                if known == 0 or total % known:
                    raise ShapeError(f"cannot reshape {tuple(shape)} ({total} values) to {dims}")
                new[new.index(-1)] = total // known
            if math.prod(new) != total:
                raise ShapeError(f"cannot reshape {tuple(shape)} ({total} values) to {tuple(new)} ({math.prod(new)} values)")
            shape = new
            params["resolved_reshape"] = list(new)
        p2 = _check_perm(params["second_transpose"], len(shape), "second_transpose")
        if p2:
            shape = [shape[p] for p in p2]
        return [TensorSpec(tuple(shape), x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        # a transposed input is staged contiguously before a reshape that a second transpose reads
        staged = params["first_transpose"] and params["reshape"] is not None and params["second_transpose"]
        return scratch_size(batch * inputs[0].nbytes) if staged else 0

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        if params["first_transpose"]:
            x = x.transpose([0] + [p + 1 for p in params["first_transpose"]])
        if params["reshape"] is not None:
            if not params["second_transpose"] and out.flags.c_contiguous:
                # the reshape of a transposed view would be a copy: write the values straight into
                # the output, whose C order is the reshape's
                out.reshape(x.shape)[...] = x
                return
            if params["first_transpose"]:
                staged = env.scratch(x.shape, x.dtype)
                staged[...] = x
                x = staged
            x = x.reshape((x.shape[0],) + tuple(params["resolved_reshape"]))
        if params["second_transpose"]:
            x = x.transpose([0] + [p + 1 for p in params["second_transpose"]])
        out[...] = x

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(inputs[0].nbytes + outputs[0].nbytes))

