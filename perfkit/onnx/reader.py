"""Reading an ONNX model safely: a path (with its external data), bytes or a ModelProto; the graph's
structure checked (every input defined, outputs unique, no cycle) before anything is converted."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..arguments import fits_in_host_memory
from ..errors import ArgumentError
from .errors import OnnxFileError, require_onnx

MAX_PATH_BYTES = 4 << 30        # refuse files this large before reading them (protobuf's own limit is 2 GiB)


def read_model(model: Any) -> tuple:
    """``(ModelProto, source)`` for a path, bytes or a ModelProto; external data is read from the model's
    folder only (locations that leave it are refused). Raises OnnxFileError for anything unreadable."""
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        _refuse_external(model, "a ModelProto given in memory")
        return model, "<ModelProto>"
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto = _parse(onnx, bytes(model), "the bytes given")
        _refuse_external(proto, "bytes given in memory")
        return proto, "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise OnnxFileError(f"no ONNX file at {path!r}" + (" (it is a folder)" if os.path.isdir(path) else ""))
        size = os.path.getsize(path)
        if size > MAX_PATH_BYTES:
            raise OnnxFileError(f"{path!r} is {size / 2**30:.1f} GiB; ONNX files hold at most 2 GiB (larger "
                                "weights live in external data files beside the model)")
        with open(path, "rb") as f:
            proto = _parse(onnx, f.read(), repr(path))
        _load_external(onnx, proto, os.path.dirname(os.path.abspath(path)), path)
        return proto, path
    raise ArgumentError(f"an ONNX model is a path, bytes or an onnx.ModelProto, not {type(model).__name__}")


def _parse(onnx: Any, data: bytes, what: str) -> Any:
    if not data:
        raise OnnxFileError(f"{what} is empty, not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:            # google.protobuf.message.DecodeError and friends
        raise OnnxFileError(f"{what} is not an ONNX model (or is truncated): protobuf could not parse it "
                            f"({type(exc).__name__}: {exc})") from None
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise OnnxFileError(f"{what} parses as protobuf but holds no ONNX graph (not an ONNX model, or truncated)")
    _check_text(proto, what)
    return proto


def _check_text(proto: Any, what: str) -> None:
    """Names that are not valid UTF-8 (protobuf hands them over as bytes) mean a corrupted file."""
    g = proto.graph
    texts = [proto.producer_name, proto.producer_version, proto.domain, g.name]
    texts += [o.domain for o in proto.opset_import]
    for n in g.node:
        texts += [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
    for vi in (*g.input, *g.output, *g.value_info):
        texts.append(vi.name)
        if vi.type.HasField("tensor_type"):
            texts += [d.dim_param for d in vi.type.tensor_type.shape.dim]
    texts += [t.name for t in g.initializer]
    if any(not isinstance(t, str) for t in texts):
        raise OnnxFileError(f"{what} holds names that are not valid UTF-8 text: the file is corrupted")


def _external_tensors(proto: Any) -> list:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data
    return [t for t in _get_all_tensors(proto) if uses_external_data(t)]


def _refuse_external(proto: Any, what: str) -> None:
    ext = _external_tensors(proto)
    if ext and any(not t.HasField("raw_data") for t in ext):
        raise OnnxFileError(f"{what} references external data ({ext[0].name!r}, ...) that cannot be found without "
                            "its folder: pass the model's path instead")


def _load_external(onnx: Any, proto: Any, base: str, path: str) -> None:
    from onnx.external_data_helper import ExternalDataInfo
    real_base = os.path.realpath(base)
    tensors = _external_tensors(proto)
    need = {id(t): _declared_bytes(onnx, t, path) for t in tensors}
    # a few bytes of model can point many initializers at one large file: the sum is checked before reading
    fits_in_host_memory(sum(need.values()), f"{path!r}: the external data of {len(tensors)} initializer(s)",
                        "the model does not fit this machine")
    for t in tensors:
        info = ExternalDataInfo(t)
        loc = info.location or ""
        full = os.path.realpath(os.path.join(base, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([real_base, full]) != real_base:
            raise OnnxFileError(f"{path!r}: initializer {t.name!r} names external data {loc!r}, outside the "
                                "model's folder; external data must lie beside the model")
        if not os.path.isfile(full):
            raise OnnxFileError(f"{path!r}: initializer {t.name!r} needs external data file {loc!r}, which is "
                                f"missing from {base!r}")
        offset, length = int(info.offset or 0), info.length
        size = os.path.getsize(full)
        if offset < 0 or offset > size or (length is not None and (length < 0 or offset + int(length) > size)):
            raise OnnxFileError(f"{path!r}: initializer {t.name!r} reads bytes {offset}..{offset + int(length or 0)}"
                                f" of {loc!r}, which has {size}")
        length = size - offset if length is None else int(length)
        if length != need[id(t)]:
            raise OnnxFileError(f"{path!r}: initializer {t.name!r} declares {need[id(t)]} bytes (its dims and type) "
                                f"but its external data holds {length}: the file or its data is corrupted")
        with open(full, "rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]


def _declared_bytes(onnx: Any, t: Any, path: str) -> int:
    """The bytes an initializer's dims and data type declare."""
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except Exception:
        raise OnnxFileError(f"{path!r}: initializer {t.name!r} has data type {t.data_type}, which cannot be stored "
                            "as external data") from None
    if any(d < 0 for d in t.dims):
        raise OnnxFileError(f"{path!r}: initializer {t.name!r} has negative dims {list(t.dims)}")
    return int(np.prod(list(t.dims), dtype=object)) * itemsize


def to_array(tensor: Any, where: str) -> np.ndarray:
    """A TensorProto's values as a NumPy array (int64/float64 kept; converted when a layer takes them)."""
    from onnx import numpy_helper
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as exc:
        raise OnnxFileError(f"{where}: tensor {tensor.name!r} cannot be read ({type(exc).__name__}: {exc}); its "
                            "data does not match its type and dims (truncated or corrupted)") from None
    if arr.dtype.kind not in "biuf":
        raise OnnxFileError(f"{where}: tensor {tensor.name!r} has dtype {arr.dtype}; perfkit imports numeric and "
                            "boolean tensors only")
    return np.array(arr)


def ordered_nodes(graph: Any, known: set) -> list:
    """The graph's nodes in an order where every input is defined first; refuses undefined inputs, outputs
    produced twice and cycles, naming the nodes involved."""
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                other = "an earlier node" if out in producer else "a graph input or initializer"
                raise OnnxFileError(f"node {node_label(node, i)} writes value {out!r}, already written by {other}; "
                                    "ONNX values are written once")
            producer[out] = i
    deps: list[set] = []
    users: dict[int, list[int]] = {i: [] for i in range(len(graph.node))}
    for i, node in enumerate(graph.node):
        d = set()
        for name in node.input:
            if not name or name in known:
                continue
            if name not in producer:
                raise OnnxFileError(f"node {node_label(node, i)} ({node.op_type}) reads value {name!r}, which no "
                                    "node, graph input or initializer defines (a missing initializer?)")
            d.add(producer[name])
        deps.append(d)
        for j in d:
            users[j].append(i)
    import heapq
    order, ready = [], [i for i, d in enumerate(deps) if not d]     # a heap: the file's order where it is valid
    heapq.heapify(ready)
    left = [len(d) for d in deps]
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users[i]:
            left[j] -= 1
            if left[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(graph.node):
        stuck = [node_label(graph.node[i], i) for i in range(len(graph.node)) if left[i] > 0]
        raise OnnxFileError(f"the graph has a cycle: nodes {', '.join(stuck[:6])}{' ...' if len(stuck) > 6 else ''} "
                            "depend on each other's outputs; ONNX graphs are acyclic")
    return [graph.node[i] for i in order]


def node_label(node: Any, index: int) -> str:
    return repr(node.name) if node.name else f"#{index} (output {node.output[0]!r})" if node.output else f"#{index}"


def check_structure(onnx: Any, proto: Any) -> Any:
    """ONNX's type and shape inference (types checked), then its checker (attributes against the operator schemas) on
    the inferred model (so graph outputs declared without a shape pass, as onnxruntime accepts them); errors
    as OnnxFileError. Returns the inferred model."""
    inferred = None
    for what in ("type and shape inference", "checker"):
        try:
            if inferred is None:
                # types checked; shape errors are left to the importer (ONNX's strict mode also rejects valid
                # models, e.g. MeanVarianceNormalization's function body)
                inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False)
            else:
                onnx.checker.check_model(inferred)
        except Exception as exc:
            msg = str(exc).strip().splitlines()
            raise OnnxFileError(f"the model fails ONNX's {what}: " + " ".join(m.strip() for m in msg[:6])[:800]) \
                from None
    return inferred
