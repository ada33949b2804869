"""Engine files: safetensors (weights as tensors) with the plan as JSON metadata.

The file is written and parsed by the ``safetensors`` library, whose parser is built for untrusted
input: nothing in a file is executed (no pickle). What the library accepts is then checked by
perfkit: the format and its version, a SHA-256 checksum over the whole file, and the plan itself,
validated as the builder would have produced it (:mod:`perfkit.runtime.plan_check`). Every way a
file can be wrong — truncated, a flipped byte anywhere, an edited header, a crafted plan with a
recomputed checksum that the builder could not have written, another device kind, a plugin not
registered here — ends in a :class:`PerfkitError` before any device memory is taken. A consistent
edit (one the builder could have written, such as other weights or another activation) is not
detectable without a signature, which engine files do not carry (see ``plan_check``).

The checksum is computed with the checksum field set to zeros and then written into that field,
which keeps the same length.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import DeviceError, EngineChecksumError, EngineDeviceError, EngineFileError, EngineVersionError
from .plan import FORMAT_VERSION, EnginePlan

MAGIC = "perfkit-engine"
_PLACEHOLDER = "0" * 64
_FIELD = b'"checksum":"'
_CODES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I32": "int32"}


def storage_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a stored dtype name (``bfloat16`` comes from ml_dtypes, imported when needed)."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def save_engine(engine: Any, path: Any) -> str:
    """Writes ``engine`` to ``path`` atomically (a temporary file in the same directory, then a rename)."""
    from safetensors.numpy import save
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise EngineFileError(f"cannot save engine to {target!r}: the directory {folder!r} does not exist; "
                              "create it first (os.makedirs) or choose another path")
    # host copies of the weights (read back from the device unless the engine kept its own)
    tensors = {key: np.ascontiguousarray(arr) for key, arr in engine.host_weights().items()}
    for key, arr in tensors.items():
        if arr.dtype.name not in _CODES.values():
            raise EngineFileError(f"weight {key!r} has dtype {arr.dtype}, which engine files do not store")
    plan_json = json.dumps(engine.plan.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    meta = {"format": MAGIC, "format_version": str(FORMAT_VERSION), "perfkit_version": __version__,
            "checksum": _PLACEHOLDER, "plan": plan_json}
    blob = bytearray(save(tensors, metadata=meta))
    (n,) = struct.unpack("<Q", blob[:8])
    start = _checksum_position(blob, n, _PLACEHOLDER)
    digest = hashlib.sha256(blob).hexdigest()
    blob[start:start + 64] = digest.encode()
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, target)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise EngineFileError(f"cannot save engine to {target!r}: {exc.strerror or exc}; check that the "
                              "directory is writable and has space") from None
    engine.plan.extra["engine_id"] = digest[:12]
    return digest[:12]


def _checksum_position(blob: bytes, n: int, value: str) -> int:
    """Offset of the checksum's 64 characters in the header (the field appears exactly once)."""
    head = bytes(blob[8:8 + n])
    needle = _FIELD + value.encode() + b'"'
    if head.count(needle) != 1:
        raise EngineChecksumError("the checksum field is damaged; the file is corrupted")
    return 8 + head.index(needle) + len(_FIELD)


def read_engine_file(path: Any) -> tuple[EnginePlan, dict, str]:
    """Parses and verifies an engine file; returns (plan, host weights, checksum).

    Raises :class:`EngineFileError` (or a subclass) for every fault of the file.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise EngineFileError(f"cannot read engine file {where!r}: {exc.strerror or exc}") from None
    try:
        return _parse(blob, where)
    except EngineFileError as exc:
        if where in str(exc):
            raise
        raise type(exc)(f"{where!r}: {exc}") from None


def _parse(blob: bytes, where: str) -> tuple[EnginePlan, dict, str]:
    from safetensors import deserialize
    bad = lambda why: EngineFileError(f"{where!r} is not a valid perfkit engine file: {why}")  # noqa: E731
    if len(blob) < 8:
        raise bad(f"only {len(blob)} bytes; the file is truncated or empty")
    try:
        entries = deserialize(blob)      # the library's strict parser: header, offsets, sizes
    except Exception as exc:             # SafetensorError and whatever else the parser raises
        raise bad(f"safetensors refused it ({type(exc).__name__}: {exc}); the file is truncated, corrupted, "
                  "or not an engine file") from None
    (n,) = struct.unpack("<Q", blob[:8])
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"the header is not valid JSON ({type(exc).__name__}); the file is corrupted") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise bad("it has no safetensors metadata; was it written by perfkit's Engine.save()?")
    if meta.get("format") != MAGIC:
        raise bad(f"its metadata names format {meta.get('format')!r}, not {MAGIC!r}")
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise EngineVersionError(f"{where!r} uses engine format version {version!r}; this perfkit "
                                 f"({__version__}) reads version {FORMAT_VERSION}. Rebuild the engine from its "
                                 "network with this version")
    checksum = meta.get("checksum")
    if not isinstance(checksum, str) or len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
        raise EngineChecksumError(f"{where!r} has no valid checksum; the file is corrupted")
    zeroed = bytearray(blob)
    pos = _checksum_position(blob, n, checksum)
    zeroed[pos:pos + 64] = _PLACEHOLDER.encode()
    actual = hashlib.sha256(zeroed).hexdigest()
    if actual != checksum:
        raise EngineChecksumError(f"{where!r} does not match its checksum (stored {checksum[:12]}…, computed "
                                  f"{actual[:12]}…): the file was corrupted or edited. Rebuild or re-copy it")
    if not isinstance(meta.get("plan"), str):
        raise bad("the metadata holds no plan")
    try:
        plan_doc = json.loads(meta["plan"])
    except (ValueError, RecursionError) as exc:
        raise bad(f"the plan is not valid JSON ({type(exc).__name__})") from None
    plan = EnginePlan.from_json(plan_doc)
    weights = {}
    for key, info in entries:
        code = info.get("dtype")
        if code not in _CODES:
            raise bad(f"tensor {key!r} has dtype {code!r}; engine files hold {', '.join(sorted(_CODES))}")
        dtype = storage_dtype(_CODES[code])
        weights[key] = np.frombuffer(bytes(info["data"]), dtype=dtype).reshape(info["shape"])
    from .plan_check import check_plan
    check_plan(plan, weights)
    plan.extra["engine_id"] = checksum[:12]
    return plan, weights, checksum


def load_engine(path: Any, device: Any = None, allocator: Any = None) -> Any:
    """Loads an engine saved with :meth:`Engine.save` onto ``device`` (default: the kind it was built for).

    Loading is cheap next to building: no optimisation or timing runs again (guide 2.4). The plan
    is validated before any memory is taken (see :func:`read_engine_file`).
    """
    from ..arguments import path as as_path
    from ..device import get_device
    from .engine import Engine
    path = as_path(path, "load_engine: path")
    if allocator is not None and not (callable(getattr(allocator, "allocate", None))
                                      and callable(getattr(allocator, "free", None))):
        raise EngineFileError(f"load_engine: allocator must have allocate() and free() methods, not "
                              f"{type(allocator).__name__}; pass None for the device's tracking allocator")
    plan, weights, _ = read_engine_file(path)
    if device is None:
        try:
            dev = get_device(plan.device_kind if plan.device_kind == "cpu" else "cuda")
        except DeviceError as exc:
            raise EngineDeviceError(f"{os.fspath(path)!r} was built for {plan.device_kind} ({plan.device_name}) "
                                    f"but that device is not available here: {exc}") from None
    else:
        dev = get_device(device)
        if dev.kind != plan.device_kind:
            raise EngineDeviceError(f"{os.fspath(path)!r} was built for {plan.device_kind} ({plan.device_name}) and "
                                    f"cannot run on {dev.spec}; rebuild it with Builder(device={dev.spec!r})")
    plan.extra["loaded_on"] = dev.name
    with dev.activate():                        # the weights go to that GPU, whatever the thread's current one
        return Engine(plan, weights, dev, allocator if allocator is not None else dev.tracking_allocator)
