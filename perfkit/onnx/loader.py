"""The public functions of perfkit.onnx (arguments checked here, work done by :mod:`.importer`)."""
from __future__ import annotations

import os
from typing import Any

from ..arguments import positive_int
from ..errors import ArgumentError, UnknownNameError
from ..network import Network


def _batch(batch: Any, where: str) -> Any:
    if batch is None or (isinstance(batch, str) and batch == "auto"):
        return batch
    if isinstance(batch, str):
        raise ArgumentError(f"{where}: batch must be 'auto', None (no batch dimension) or a positive int, "
                            f"not {batch!r}")
    return positive_int(batch, f"{where}: batch")


def _input_shapes(shapes: Any, where: str) -> dict | None:
    if shapes is None:
        return None
    if not isinstance(shapes, dict):
        raise ArgumentError(f"{where}: input_shapes must be a dict {{input name: per-sample shape}}, not "
                            f"{type(shapes).__name__}")
    out = {}
    for k, v in shapes.items():
        if not isinstance(k, str):
            raise ArgumentError(f"{where}: input_shapes keys are input names (str), not {k!r}")
        if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list)) or not v:
            raise ArgumentError(f"{where}: input_shapes[{k!r}] must be a non-empty tuple of positive ints, not {v!r}")
        out[k] = tuple(positive_int(d, f"{where}: input_shapes[{k!r}] dimension") for d in v)
    return out


def _name(name: Any, where: str) -> str | None:
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ArgumentError(f"{where}: name must be a non-empty string or None, not {name!r}")
    return name


def load(model: Any, batch: Any = "auto", name: str | None = None, input_shapes: dict | None = None) -> Network:
    """An ONNX model as a perfkit :class:`~perfkit.Network`.

    ``model``: a path (external data is read from its folder), bytes, or an ``onnx.ModelProto``.
    ``batch``: ``"auto"`` — the leading dimension of the inputs is perfkit's implicit batch (symbolic, or fixed:
    then ``network.import_info.max_batch_size`` is that size); ``None`` — the model has no batch dimension (its
    shapes are per sample: run it at batch 1); an int — the leading dimension is the batch, of at most that size.
    ``input_shapes``: per-sample shapes for inputs with symbolic dimensions other than the batch.
    Layer names are the ONNX node names; ``network.import_info`` (:class:`ImportInfo`) records each layer's ONNX
    op type. Raises :class:`UnsupportedOnnxError` (node, op type, opset, what is supported) or
    :class:`OnnxFileError` (unreadable or malformed), both PerfkitErrors."""
    from .importer import Importer
    batch = _batch(batch, "perfkit.onnx.load")
    return Importer(model, batch, _name(name, "perfkit.onnx.load"),
                    _input_shapes(input_shapes, "perfkit.onnx.load")).run()


def check(model: Any, batch: Any = "auto", input_shapes: dict | None = None) -> Any:
    """One row per node (frame ``onnx_check``): supported or not and why, and what it became. Nothing is
    built; unsupported nodes do not raise (an unreadable or malformed model does: :class:`OnnxFileError`)."""
    from ..frames.schemas_onnx import ONNX_CHECK
    from .importer import Importer
    imp = Importer(model, _batch(batch, "perfkit.onnx.check"), None, _input_shapes(input_shapes, "perfkit.onnx.check"),
                   check=True)
    imp.run()
    became: dict[str, list] = {}
    for layer, node in imp.info.layer_nodes.items():
        became.setdefault(node, []).append(layer)
    removed = {n: why for n, _, why in imp.info.removed}
    rows = []
    for r in imp.rows:
        what = ", ".join(became.get(r["node"], []))
        if not what and r["supported"] and r["node"] in removed:
            what = "folded" if removed[r["node"]].startswith("folded") else "removed"
        rows.append({**r, "became": what})
    return ONNX_CHECK.frame(rows, attrs={"source": imp.info.source, "opset": imp.info.opset,
                                         "batch": imp.info.batch, "max_batch_size": imp.info.max_batch_size})


def is_onnx(model: Any) -> bool:
    """Whether :func:`network_from` reads ``model`` as ONNX: a path ending in ``.onnx``, bytes, or a ModelProto
    (checked without importing onnx)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return True
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model).lower().endswith(".onnx")
    return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")


def network_from(model: Any, batch: Any = "auto") -> Network:
    """A Network from what a sweep, profile helper or the CLI is given: a Network (returned as is), the name of
    a sample in :data:`perfkit.models.SAMPLES` (built with its defaults), or an ONNX model (:func:`load`)."""
    from ..models import SAMPLES
    if isinstance(model, Network):
        return model
    if isinstance(model, str) and model in SAMPLES:
        return SAMPLES[model]()
    if is_onnx(model):
        return load(model, batch)
    if isinstance(model, (str, os.PathLike)):
        raise UnknownNameError(f"{os.fspath(model)!r} is neither a sample network ({', '.join(SAMPLES)}) nor an ONNX "
                               "file (a path ending in .onnx)")
    raise ArgumentError(f"expected a perfkit Network, a sample name ({', '.join(SAMPLES)}) or an ONNX model (path, "
                        f"bytes, onnx.ModelProto), not {type(model).__name__}")


def max_batch_size(network: Any, default: int | None = None) -> int | None:
    """The maximum batch an imported network implies (its file's fixed batch, or ``load(batch=<int>)``), else
    ``default``: for builders and the CLI choosing ``max_batch_size``."""
    if not isinstance(network, Network):
        raise ArgumentError(f"max_batch_size needs a perfkit Network, not {type(network).__name__}")
    if default is not None:
        default = positive_int(default, "max_batch_size: default")
    info = getattr(network, "import_info", None)
    return info.max_batch_size if info is not None and info.max_batch_size else default
