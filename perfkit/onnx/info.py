"""What an import produced besides the Network: batch convention, opset, per-layer ONNX origin."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportInfo:
    """Attached to an imported Network as ``network.import_info``.

    ``max_batch_size``: the engine's maximum batch the file implies (its fixed batch, or ``batch=<int>``);
    ``None`` when the batch is symbolic (choose one when building). ``batch``: "symbolic", "fixed", "given" or
    "none" (no batch dimension). ``layer_ops``/``layer_nodes``: perfkit layer -> ONNX op type / node name.
    ``removed``: (node, op type, why) of nodes that made no layer (Dropout, Identity, constants folded).
    ``converted_from``: the file's opset when it was older than 7 and ONNX's version converter raised it.
    ``input_dtypes``/``output_dtypes``: ONNX element types of the graph inputs/outputs (perfkit keeps
    int64 as int32 and float64 as float32)."""

    source: str = ""
    producer: str = ""
    opset: int = 0
    converted_from: int | None = None
    batch: str = "symbolic"
    max_batch_size: int | None = None
    layer_ops: dict = field(default_factory=dict)
    layer_nodes: dict = field(default_factory=dict)
    removed: list = field(default_factory=list)
    input_dtypes: dict = field(default_factory=dict)
    output_dtypes: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"<ImportInfo {self.source!r} opset {self.opset}, batch {self.batch}"
                f"{f' (max {self.max_batch_size})' if self.max_batch_size else ''}, {len(self.layer_ops)} layers, "
                f"{len(self.removed)} nodes folded or removed>")
