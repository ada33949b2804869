"""BuilderConfig: what the builder optimises for."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import BuildError
from ..network import PRECISIONS


@dataclass
class BuilderConfig:
    """Build settings. ``None`` means the default everywhere.

    - ``max_batch_size``: the engine runs any batch from 1 to this; buffers are sized for it.
    - ``precision``: ``"fp32"``, ``"fp16"`` or ``"bf16"`` storage for weights and activations
      (accumulation stays float32). ``bf16`` is emulated on every device: values are rounded to
      bfloat16 and stored in float32.
    - ``layer_precisions``: per-layer overrides by network layer name, e.g. ``{"prob": "fp32"}``
      (the same as setting ``layer.precision``).
    - ``max_workspace_bytes``: refuse to build when a layer needs more scratch memory than this.
    """

    max_batch_size: int = 1
    precision: str = "fp32"
    layer_precisions: dict = field(default_factory=dict)
    max_workspace_bytes: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "BuilderConfig":
        if not isinstance(self.max_batch_size, int) or isinstance(self.max_batch_size, bool) or self.max_batch_size < 1:
            raise BuildError(f"max_batch_size must be a positive int, not {self.max_batch_size!r}")
        if self.precision not in PRECISIONS:
            raise BuildError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        bad = {k: v for k, v in (self.layer_precisions or {}).items() if v not in PRECISIONS}
        if bad:
            raise BuildError(f"layer_precisions values must be one of {PRECISIONS}: {bad}")
        if self.max_workspace_bytes is not None and self.max_workspace_bytes < 0:
            raise BuildError("max_workspace_bytes must be >= 0 or None")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
