"""BuilderConfig: what the builder optimises for."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import BuildError
from ..precision import PRECISIONS


@dataclass
class BuilderConfig:
    """Build settings. ``None`` means the default everywhere.

    - ``max_batch_size``: the engine runs any batch from 1 to this; buffers are sized for it.
    - ``precision``: ``"fp32"``, ``"fp16"`` or ``"bf16"``: the storage precision *allowed* for
      weights and activations (accumulation stays float32). As in TensorRT, ``fp16``/``bf16`` allow
      the reduced precision without imposing it: the builder times each layer in fp32 and in the
      reduced precision (with its tactics and the reformats a switch needs), alternately in several
      rounds, and takes the reduced precision only where it is faster beyond noise in a clear majority
      of them; the build log has a ``precision`` row per layer saying what was chosen and why.
      ``bf16`` is stored as real two-byte bfloat16 (``ml_dtypes`` on the CPU).
    - ``strict_types``: ``True`` forces the requested precision on every layer (no timing between
      precisions); weights outside its range are then refused instead of keeping their layer in fp32.
    - ``tf32``: ``True`` lets the float32 matrix products of fp32 layers (fully connected, MLP, matrix
      multiply, im2col convolutions) run on TF32 Tensor Cores on CUDA: their inputs are rounded to 10-bit
      mantissas, accumulation stays float32 (about fp16's relative error, fp32's range). Off by default, as in
      PyTorch; the CPU has no TF32 and ignores it (the build log says so, and names the layers it reaches on a
      GPU; a product CuPy's own matmul runs, such as the convolution's ``sample``/``batched`` forms, stays strict).
    - ``layer_precisions``: per-layer precisions by network layer name, e.g. ``{"prob": "fp32"}``
      (the same as setting ``layer.precision``); these are always forced.
    - ``max_workspace_bytes``: refuse to build when a layer needs more scratch memory than this.
    - ``fusions``: ``"all"``, ``"none"`` or a set of rule names (``perfkit.builder.passes.RULE_NAMES``).
    - ``mlp_max_width_product``: the largest K x N of one MLP stage's weights (stands for the shared
      memory an MLP kernel keeps its weights in).
    - ``tactics``: ``"time"`` (time every candidate implementation, keep the fastest) or ``"default"``
      (the first candidate, no timing). ``timing_cache``: a path or :class:`TimingCache` that lets a
      rebuild skip timing already done on this device. ``tactic_iterations``: timed runs per candidate
      (in the precision choice, about twice this many, warm-ups included, spread over its rounds).
    """

    max_batch_size: int = 1
    precision: str = "fp32"
    layer_precisions: dict = field(default_factory=dict)
    max_workspace_bytes: int | None = None
    fusions: Any = "all"
    mlp_max_width_product: int = 1 << 20
    tactics: str = "time"
    timing_cache: Any = None
    tactic_iterations: int = 5
    strict_types: bool = False
    tf32: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "BuilderConfig":
        if not isinstance(self.max_batch_size, int) or isinstance(self.max_batch_size, bool) or self.max_batch_size < 1:
            raise BuildError(f"max_batch_size must be a positive int, not {self.max_batch_size!r}")
        if self.precision not in PRECISIONS:
            raise BuildError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if not isinstance(self.strict_types, bool):
            raise BuildError(f"strict_types must be True or False, not {self.strict_types!r}")
        if not isinstance(self.tf32, bool):
            raise BuildError(f"tf32 must be True or False, not {self.tf32!r}")
        if not isinstance(self.layer_precisions or {}, dict):
            raise BuildError(f"layer_precisions must be a dict of layer name -> precision, "
                             f"not {type(self.layer_precisions).__name__}")
        bad = {k: v for k, v in (self.layer_precisions or {}).items() if not isinstance(v, str) or v not in PRECISIONS}
        if bad:
            raise BuildError(f"layer_precisions values must be one of {PRECISIONS}: {bad}; fix or remove those entries")
        if self.max_workspace_bytes is not None and (not isinstance(self.max_workspace_bytes, int) or
                                                     isinstance(self.max_workspace_bytes, bool) or
                                                     self.max_workspace_bytes < 0):
            raise BuildError(f"max_workspace_bytes must be an int >= 0 or None, not {self.max_workspace_bytes!r}")
        from .tactics import TimingCache
        if self.timing_cache is not None and not isinstance(self.timing_cache, (str, os.PathLike, TimingCache)):
            raise BuildError(f"timing_cache must be a path, a TimingCache or None, not {self.timing_cache!r}")
        from .passes import resolve_fusions
        self.enabled_fusions = resolve_fusions(self.fusions)
        if self.tactics not in ("time", "default"):
            raise BuildError(f"tactics must be 'time' or 'default', not {self.tactics!r}")
        if not isinstance(self.tactic_iterations, int) or isinstance(self.tactic_iterations, bool) or \
                self.tactic_iterations < 1:
            raise BuildError("tactic_iterations must be a positive int")
        if not isinstance(self.mlp_max_width_product, int) or isinstance(self.mlp_max_width_product, bool) or \
                self.mlp_max_width_product < 1:
            raise BuildError("mlp_max_width_product must be a positive int")
        return self

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["layer_precisions"] = dict(self.layer_precisions or {})
        d["fusions"] = sorted(self.enabled_fusions)
        d["timing_cache"] = None if self.timing_cache is None else str(getattr(self.timing_cache, "path", self.timing_cache))
        return d
