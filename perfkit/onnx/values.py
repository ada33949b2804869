"""The importer's view of ONNX values: constants (NumPy arrays known at import) and runtime tensors
(perfkit Tensors, per sample), with the rank, axis and broadcasting rules that map one onto the other.

With a batch (``lead == 1``) an ONNX value of shape (N, d1, ..., dk) is a perfkit tensor of per-sample
shape (d1, ..., dk); without (``lead == 0``) the ONNX shape is the per-sample shape. A constant that
meets a runtime tensor is right-aligned to the tensor's ONNX rank as ONNX broadcasting does; its
leading (batch) dimension must then be 1 (or the file's fixed batch size, when that is 1).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..network import Tensor


# Shape folded from a runtime tensor: the batch dimension, whose size is only known at run time, is this
# marker (a prime no real dimension equals); consumers (Reshape, Expand, ConstantOfShape) read it as "the batch"
BATCH = 1_000_003
FLOAT_MAX = float(np.finfo(np.float32).max)


def is_tensor(v: Any) -> bool:
    return isinstance(v, Tensor)


def storage_array(c: np.ndarray) -> np.ndarray:
    """A constant as perfkit stores it: float32 or int32 (bool as float32 0/1); infinities become the
    largest float32 (an attention mask of -inf works as -3.4e38)."""
    c = np.asarray(c)
    if c.dtype.kind == "f":
        c = np.nan_to_num(c.astype(np.float32), nan=np.nan, posinf=FLOAT_MAX, neginf=-FLOAT_MAX)
        if c.dtype == np.float16:
            c = c.astype(np.float32)
        return c
    if c.dtype.kind == "b":
        return c.astype(np.float32)
    if c.dtype.kind in "iu":
        if c.size and (c.max() > np.iinfo(np.int32).max or c.min() < np.iinfo(np.int32).min):
            raise ValueError("integer constant outside the int32 range")
        return c.astype(np.int32)
    raise ValueError(f"constant of dtype {c.dtype}")


class Values:
    """ONNX value name -> ndarray (constant) or Tensor (runtime), with the batch convention."""

    def __init__(self, importer: Any, lead: int, fixed_batch: int | None):
        self.imp = importer
        self.lead = lead
        self.fixed_batch = fixed_batch
        self.table: dict[str, Any] = {}
        self._const_layers: dict[tuple, Tensor] = {}
        self._names: dict[int, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.table

    def __getitem__(self, name: str) -> Any:
        return self.table[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.table[name] = value
        if isinstance(value, np.ndarray):
            self._names.setdefault(id(value), name)       # constant layers are named after their ONNX value

    # shapes -----------------------------------------------------------------------------------
    def rank(self, v: Any) -> int:
        return self.lead + len(v.shape) if is_tensor(v) else np.ndim(v)

    def full_shape(self, v: Any) -> tuple:
        """The ONNX shape; a runtime batch dimension is ``BATCH``."""
        if is_tensor(v):
            return ((BATCH,) if self.lead else ()) + tuple(v.shape)
        return tuple(np.shape(v))

    def show(self, v: Any) -> str:
        return "(" + ", ".join("N" if d == BATCH else str(d) for d in self.full_shape(v)) + ")"

    def axis(self, ctx: Any, a: Any, rank: int, what: str = "axis") -> int:
        """An ONNX axis of a value of ONNX ``rank`` as a per-sample axis; the batch axis is refused."""
        a = int(a)
        if not -rank <= a < rank:
            ctx.fail(f"{what} {a} is out of range for a rank-{rank} input", malformed=True)
        a %= rank
        if a < self.lead:
            ctx.fail(f"{what} {a} is the batch dimension; perfkit's batch is implicit and layers work per sample "
                     "(load with batch=None if the model has no batch dimension)")
        return a - self.lead

    # constants as layers ----------------------------------------------------------------------
    def per_sample_constant(self, ctx: Any, c: np.ndarray, rank: int) -> np.ndarray:
        """Constant ``c`` right-aligned to ONNX ``rank`` and stripped of the batch dimension."""
        c = np.asarray(c)
        if c.ndim > rank:
            ctx.fail(f"a constant of shape {c.shape} broadcast against a rank-{rank} runtime tensor would move the "
                     "batch dimension")
        c = c.reshape((1,) * (rank - c.ndim) + c.shape)
        if self.lead:
            if c.shape[0] != 1:
                ctx.fail(f"a constant of shape {c.shape} differs along the batch dimension; perfkit's constants are "
                         "the same for every sample")
            c = c.reshape(c.shape[1:])
        return c

    def constant_tensor(self, ctx: Any, c: np.ndarray, rank: int | None = None, dtype: str | None = None,
                        label: str = "") -> Tensor:
        """A constant layer holding ``c`` (aligned to ONNX ``rank`` if given), made once per value and named
        after the ONNX value (initializer) it holds when it is one, else ``<node>/<label>``."""
        onnx_name = self._names.get(id(c)) if not label else None
        arr = self.per_sample_constant(ctx, c, rank) if rank is not None else np.asarray(c)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        try:
            arr = storage_array(arr)
        except ValueError as exc:
            ctx.fail(f"constant {label or ''} cannot be stored: {exc}")
        if dtype == "float16" or (dtype == "float32" and arr.dtype != np.float32):
            arr = arr.astype(np.float32)
        tag = label or onnx_name or ""
        key = (tag, arr.shape, str(arr.dtype), arr.tobytes()) if arr.size <= 4096 else (tag, id(c), arr.shape)
        hit = self._const_layers.get(key)
        if hit is not None:
            return hit
        if onnx_name is not None:
            t = self.imp.add(ctx, "add_constant", arr, exact=onnx_name).output
        else:
            t = self.imp.add(ctx, "add_constant", arr, part=label or "const").output
        self._const_layers[key] = t
        return t

    # runtime tensors --------------------------------------------------------------------------
    def with_rank(self, ctx: Any, t: Tensor, rank: int) -> Tensor:
        """Runtime tensor ``t`` given leading 1-sized per-sample dims up to ONNX ``rank``."""
        have = self.lead + len(t.shape)
        if have >= rank:
            return t
        if self.lead and have == 0:
            ctx.fail("a runtime tensor without dimensions cannot be broadcast")
        shape = (1,) * (rank - have) + tuple(t.shape)
        return self.imp.add(ctx, "add_shuffle", t, reshape=list(shape), part="rank").output

    def operands(self, ctx: Any, vals: list, dtype_from: Any = None) -> list:
        """Runtime tensors of one common ONNX rank for element-wise layers (constants become layers)."""
        rank = max(self.rank(v) for v in vals)
        tensors = [v for v in vals if is_tensor(v)]
        if self.lead and any(self.rank(t) < rank for t in tensors):
            low = min(self.rank(t) for t in tensors)
            if any(not is_tensor(v) and np.ndim(v) > low for v in vals) or len(tensors) > 1:
                ctx.fail("operands of ranks " + ", ".join(str(self.rank(v)) for v in vals) + " would broadcast a "
                         "runtime tensor's batch dimension against another dimension")
        out = []
        for v in vals:
            if is_tensor(v):
                out.append(self.with_rank(ctx, v, rank))
            else:
                out.append(self.constant_tensor(ctx, v, rank))
        return out

    def runtime(self, ctx: Any, v: Any, what: str = "input") -> Tensor:
        if not is_tensor(v):
            ctx.fail(f"{what} is a constant here; perfkit needs it computed from a network input")
        return v
