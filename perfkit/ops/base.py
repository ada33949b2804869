"""The op protocol and registry: one class per layer type, registered with :func:`register_op`.

An op knows, for its layer type:
- ``check(params, weights)``: validates and normalises parameters (raises NetworkDefinitionError);
- ``infer(params, inputs, weights)``: per-sample output shapes and dtypes (raises ShapeError);
- ``compute(env, ins, outs, params, weights)``: writes the outputs, written against ``env.xp``
  (NumPy or CuPy), with a leading batch dimension on every non-constant array;
- ``cost(...)``: flops and bytes moved per sample;
- ``workspace(...)``: scratch bytes at a batch on a device: the op's own temporaries
  (``scratch_bytes``) plus the float32 copies ``env.matmul`` makes of operands the device cannot
  multiply in their storage dtype (``gemms`` lists the products). Every temporary an op's
  ``compute`` uses comes from this workspace (``env.scratch``) or is written with ``out=``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError, UnknownOpError

class TacticUnavailable(RuntimeError):
    """A tactic cannot run for this layer here (e.g. cuDNN has no plan for it): the builder drops it from the
    race and says why in the build log, rather than failing the build."""


#: per-sample (C, H, W) tensors stored channels-last: a batch is (N, H, W, C) memory seen as (N, C, H, W)
NHWC = "nhwc"


def nhwc_empty(xp: Any, shape: tuple, dtype: Any) -> Any:
    """An uninitialised (N, C, H, W) array whose memory is (N, H, W, C)."""
    n, c, h, w = shape
    return xp.empty((n, h, w, c), dtype).transpose(0, 3, 1, 2)


def nhwc_copy(xp: Any, a: Any) -> Any:
    """``a`` (N, C, H, W) copied into channels-last memory."""
    out = nhwc_empty(xp, a.shape, a.dtype)
    out[...] = a
    return out

FLOAT_DTYPES = ("float32", "float16")
DTYPES = ("float32", "float16", "int32")


@dataclass(frozen=True)
class TensorSpec:
    """Per-sample shape and dtype of a tensor; ``constant`` tensors have no batch dimension."""

    shape: tuple
    dtype: str = "float32"
    constant: bool = False

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize


@dataclass(frozen=True)
class Cost:
    flops: float = 0.0
    bytes: float = 0.0


class Op:
    type: str = ""
    short: str = ""            # prefix for generated layer names
    min_inputs: int = 1
    max_inputs: int | None = 1
    output_names: tuple = ("",)  # suffixes of output tensor names ("" = the layer's name)
    weight_names: tuple = ()
    tactic_names: tuple = ()     # implementations the builder may time; the first is the default
    device_tactics: dict = {}    # tactic -> the one device kind it runs on (others run everywhere)
    tactic_layouts: dict = {}    # tactic -> the layout ("nhwc") its data inputs and outputs must have
    tactic_needs: dict = {}      # tactic -> a function saying why a library it needs is missing (None: it is there)

    def tactic_unavailable(self, tactic: str, device_kind: str) -> str | None:
        """Why ``tactic`` cannot run on a ``device_kind`` device here, or None when it can."""
        kind = self.device_tactics.get(tactic)
        if kind is not None and kind != device_kind:
            return f"runs on {kind} devices only"
        need = self.tactic_needs.get(tactic)
        return need() if need is not None else None

    def applicable_tactics(self, params: dict, inputs: Sequence[TensorSpec]) -> tuple:
        return self.tactic_names

    def prepare_tactic(self, tactic: str, params: dict, weights: dict) -> tuple:
        """Parameters and weights (e.g. a different weight layout) for running ``tactic``."""
        return {**params, "tactic": tactic}, weights

    def check(self, params: dict, weights: dict) -> dict:
        return params

    def infer(self, params: dict, inputs: Sequence[TensorSpec], weights: dict) -> list[TensorSpec]:
        raise NotImplementedError

    def compute(self, env: Any, ins: list, outs: list, params: dict, weights: dict) -> None:
        raise NotImplementedError

    def cost(self, params: dict, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
             weights: dict) -> Cost:
        moved = sum(t.nbytes for t in inputs if not t.constant) + sum(t.nbytes for t in outputs)
        return Cost(flops=float(sum(t.size for t in outputs)), bytes=float(moved))

    def workspace(self, params: dict, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                  batch: int, device_kind: str | None = None) -> int:
        """Workspace bytes one run of this layer at ``batch`` takes on ``device_kind`` (``None``:
        the most any device needs). Override ``scratch_bytes`` and ``gemms``, not this."""
        from .env import gemm_conversion_bytes
        return int(self.scratch_bytes(params, inputs, outputs, batch)) + gemm_conversion_bytes(
            self.gemms(params, inputs, outputs, batch), device_kind)

    def scratch_bytes(self, params: dict, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                      batch: int) -> int:
        """Bytes of the scratch arrays ``compute`` carves with ``env.scratch`` at ``batch`` (use
        ``env.scratch_size`` to count each array's alignment), excluding ``env.matmul``'s copies."""
        return 0

    def gemms(self, params: dict, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
              batch: int) -> list:
        """The products ``compute`` runs through ``env.matmul``: ``(a_shape, b_shape, out_shape,
        storage dtype)`` each, with the batch dimension on operands that have one."""
        return []


_REGISTRY: dict[str, Op] = {}


def register_op(cls: type) -> type:
    """Class decorator: registers one instance of an :class:`Op` subclass under ``cls.type``."""
    if not cls.type:
        raise NetworkDefinitionError(f"{cls.__name__} has no 'type'")
    if cls.type in _REGISTRY:
        raise NetworkDefinitionError(f"an op of type {cls.type!r} is already registered")
    _REGISTRY[cls.type] = cls()
    return cls


def get_op(op_type: str) -> Op:
    try:
        return _REGISTRY[op_type]
    except KeyError:
        raise UnknownOpError(f"unknown layer type {op_type!r}; registered types: "
                             f"{', '.join(sorted(_REGISTRY))}") from None


def registered_ops() -> list[str]:
    return sorted(_REGISTRY)


# helpers shared by op files ---------------------------------------------------------------------

def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """Normalises a per-sample axis (negative counts from the end)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise NetworkDefinitionError(f"{what} must be an integer, not {axis!r}")
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} is out of range for a per-sample rank of {rank} "
                         f"(valid: {-rank}..{rank - 1}; the batch dimension is implicit)")
    return int(axis) % rank


def pair(value: Any, what: str, minimum: int = 0) -> tuple:
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    try:
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in value):
            raise TypeError("not ints")           # 2.5 or True must not become 2 or 1 silently
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise NetworkDefinitionError(f"{what} must be an int or a pair of ints, not {value!r}") from None
    if a < minimum or b < minimum:
        raise NetworkDefinitionError(f"{what} must be >= {minimum}, got {(a, b)}")
    return (a, b)


def broadcast_shapes(a: tuple, b: tuple, where: str) -> tuple:
    if len(a) != len(b):
        raise ShapeError(f"{where}: inputs have per-sample shapes {a} and {b} of different ranks; "
                         "element-wise layers need equal ranks (insert a shuffle to add 1-sized dims)")
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"{where}: shapes {a} and {b} do not broadcast (dimension {x} vs {y})")
        out.append(max(x, y))
    return tuple(out)


def check_bias(weights: dict, k: int) -> None:
    """A layer's optional ``bias`` weight: one value per output map (``(k,)``) as a float32 array, or absent."""
    if weights.get("bias") is not None:
        b = as_array(weights["bias"], "bias")
        if b.shape != (k,):
            raise ShapeError(f"bias must have shape ({k},), got {b.shape}")
        weights["bias"] = b
    else:
        weights.pop("bias", None)


def as_array(value: Any, what: str, dtype: Any = np.float32) -> np.ndarray:
    if value is None:
        raise NetworkDefinitionError(f"{what} is missing (None): pass an array of numbers")
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise NetworkDefinitionError(f"{what} must be numeric: {exc}") from None
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise NetworkDefinitionError(f"{what} contains NaN or infinity")
    return arr
