"""Normalization: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` with the statistics over chosen
per-sample axes, as TensorRT's normalization layer; one layer type for ONNX LayerNormalization,
InstanceNormalization and GroupNormalization.

- layer norm: ``axes`` the trailing dims from the ONNX axis on, ``scale``/``bias`` of their shape;
- instance norm: ``axes`` every dim after the channel, ``scale``/``bias`` of shape (C, 1, 1);
- group norm: ``num_groups`` G > 1 splits the channel axis (0) in G groups, each normalised over its
  channels and ``axes``; ``scale``/``bias`` per channel, (C, 1, 1). As in TensorRT, ``num_groups=1``
  means no grouping (the axes alone decide): ONNX's GroupNormalization with one group normalises
  every channel together, which is ``axes`` 0..rank-1 with the per-channel scale and bias.

``scale`` and ``bias`` are weights (arrays) that broadcast to the per-sample shape by NumPy's rules
(missing leading dims are 1). With ``statistics`` (no groups) the layer also outputs the mean and the
inverse standard deviation ``1 / sqrt(var + epsilon)``, 1-sized on the normalised axes (ONNX
LayerNormalization's optional Mean and InvStdDev outputs). Statistics, the normalisation and the
affine step run in float32 whatever the storage precision; the variance is the mean of squared
deviations (two passes).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, as_array, norm_axis, register_op
from .env import scratch_size
from .reductions import reduce_into


@register_op
class Normalization(Op):
    type = "normalization"
    short = "norm"
    weight_names = ("scale", "bias")
    output_names = ("y", "mean", "inv_std_dev")      # suffixes of the outputs with statistics

    def check(self, params, weights):
        axes = params.get("axes")
        axes = [axes] if isinstance(axes, numbers.Integral) else axes
        if not isinstance(axes, (list, tuple)) or not axes:
            raise NetworkDefinitionError(f"normalization axes must be a non-empty list of per-sample axes, not "
                                         f"{params.get('axes')!r}")
        params["axes"] = list(axes)
        eps = params.get("epsilon", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < float(eps) < math.inf:
            raise NetworkDefinitionError(f"normalization epsilon must be a positive finite number, not {eps!r}")
        params["epsilon"] = float(eps)
        groups = params.get("num_groups", 1)
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise NetworkDefinitionError(f"num_groups must be a positive int, not {groups!r}")
        params["num_groups"] = int(groups)
        stats = params.get("statistics", False)
        if not isinstance(stats, bool):
            raise NetworkDefinitionError(f"normalization statistics must be True or False, not {stats!r}")
        if stats and groups != 1:
            raise NetworkDefinitionError("statistics outputs (mean, inverse standard deviation) are per normalised "
                                         "row; with num_groups > 1 they are not supported")
        params["statistics"] = stats
        for n in self.weight_names:
            if weights.get(n) is None:
                weights.pop(n, None)
            else:
                weights[n] = as_array(weights[n], f"normalization {n}")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if "float" not in x.dtype:
            raise ShapeError(f"normalization needs a float input, got {x.dtype}")
        rank = len(x.shape)
        axes = sorted({norm_axis(a, rank, "normalization axis") for a in params["axes"]})
        if len(axes) != len(params["axes"]):
            raise NetworkDefinitionError(f"normalization axes {params['axes']} name the same axis twice")
        params["axes"] = axes
        g = params["num_groups"]
        if g > 1:
            if 0 in axes:
                raise ShapeError(f"with num_groups={g} the groups split the channel axis 0; axes {axes} must name "
                                 "the other axes only (group norm: axes 1..rank-1)")
            if x.shape[0] % g:
                raise ShapeError(f"num_groups={g} does not divide the {x.shape[0]} channels of the input {x.shape}")
        for n, w in weights.items():
            try:
                fits = w.ndim <= rank and np.broadcast_shapes(w.shape, x.shape) == tuple(x.shape)
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(f"normalization {n} of shape {w.shape} does not broadcast to the input {x.shape} "
                                 "(NumPy rules: trailing dims equal or 1; layer norm: the normalised dims' shape; "
                                 "instance and group norm: (C, 1, 1))")
            weights[n] = w.reshape((1,) * (rank - w.ndim) + w.shape)
        if not params["statistics"]:
            return [TensorSpec(x.shape, x.dtype)]
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        return [TensorSpec(x.shape, x.dtype), TensorSpec(kept, x.dtype), TensorSpec(kept, x.dtype)]

    @staticmethod
    def _grouped(params, shape):
        """The (per-sample) shape the statistics are taken in and the axes reduced in it."""
        g = params["num_groups"]
        if g == 1:
            return tuple(shape), tuple(params["axes"])
        return (g, shape[0] // g) + tuple(shape[1:]), (1,) + tuple(a + 1 for a in params["axes"])

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        shape, axes = self._grouped(params, x.shape)
        stats = math.prod(d for i, d in enumerate(shape) if i not in axes)
        own = 0 if outputs[0].dtype == "float32" else 4 * batch * x.size
        # weights are given here only when the builder asks a layer's workspace: declare their copies always
        w = [4 * x.size] * len(self.weight_names) if x.dtype != "float32" else []
        return scratch_size(own, 4 * batch * x.size, 4 * batch * stats, *w)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b = x.shape[0]
        shape, axes = self._grouped(params, x.shape[1:])
        red = tuple(a + 1 for a in axes)
        count = math.prod(shape[a] for a in axes)
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        yv = y.reshape((b,) + shape)
        m = env.scratch((b,) + tuple(1 if i + 1 in red else d for i, d in enumerate(shape)), np.float32)
        rows = xp is np and x.dtype in (np.float32, np.float16) and red == tuple(range(len(shape) - len(red) + 1,
                                                                                        len(shape) + 1))
        if rows:
            # the reduced axes are the trailing ones (every ONNX normalization): rows of `count` values.
            # The mean is read from x itself, x - mean is written once in float32, and the sum of
            # squares is a dot product of each row with itself (no squares array): 2 passes fewer
            xr, yr, mr = x.reshape(-1, count), yv.reshape(-1, count), m.reshape(-1, 1)
            np.sum(xr, axis=1, dtype=np.float32, keepdims=True, out=mr)
            mr *= np.float32(1.0 / count)
            np.subtract(xr, mr, out=yr)
            if params.get("statistics"):
                xp.copyto(outs[1].reshape(m.shape), m, casting="unsafe")
            np.einsum("ij,ij->i", yr, yr, out=mr.reshape(-1))
        else:
            xp.copyto(y, x, casting="unsafe")
            reduce_into(xp, "sum", yv, red, m)
            m *= np.float32(1.0 / count)
            if params.get("statistics"):
                xp.copyto(outs[1].reshape(m.shape), m, casting="unsafe")
            yv -= m
            t = env.scratch(yv.shape, np.float32)
            xp.multiply(yv, yv, out=t)
            reduce_into(xp, "sum", t, red, m)
        m *= np.float32(1.0 / count)
        m += np.float32(params["epsilon"])
        xp.sqrt(m, out=m)
        yv /= m
        if params.get("statistics"):
            inv = outs[2].reshape(m.shape)
            if inv.dtype == np.float32:
                xp.reciprocal(m, out=inv)
            else:
                xp.reciprocal(m, out=m)
                xp.copyto(inv, m, casting="unsafe")
        if "scale" in weights:
            y *= env.float32(weights["scale"])
        if "bias" in weights:
            y += env.float32(weights["bias"])
        if y is not out:
            xp.copyto(out, y, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        n = outputs[0].size
        return Cost(flops=float(n * (6 + len(weights))),
                    bytes=float(inputs[0].nbytes + sum(o.nbytes for o in outputs)
                                + sum(w.size for w in weights.values()) * outputs[0].itemsize))
