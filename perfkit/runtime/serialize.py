"""Engine files: safetensors (weights as tensors) with the plan as JSON metadata.

The layout is standard safetensors, so any safetensors reader can list the weights. perfkit
reads it with its own strict parser: nothing in a file is executed (no pickle), and every way a
file can be wrong — truncated, a flipped byte anywhere, an edited header, another format
version, another device kind, a plugin not registered here — ends in a :class:`PerfkitError`.

A SHA-256 checksum covers the whole file: it is computed with the checksum field set to zeros
and then written into that field, which keeps the same length.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import (DeviceError, EngineChecksumError, EngineDeviceError, EngineFileError, EngineVersionError,
                      PerfkitError)
from .plan import FORMAT_VERSION, EnginePlan

MAGIC = "perfkit-engine"
_DTYPES = {"float32": "F32", "float16": "F16", "int32": "I32"}
_FROM_ST = {v: k for k, v in _DTYPES.items()}
_PLACEHOLDER = "0" * 64
MAX_HEADER = 256 * 2**20


def save_engine(engine: Any, path: Any) -> str:
    plan = engine.plan
    weights = engine._host_weights
    tensors, offset, chunks = {}, 0, []
    for key in sorted(weights):
        arr = np.ascontiguousarray(weights[key])
        tensors[key] = {"dtype": _DTYPES[str(arr.dtype)], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    plan_json = json.dumps(plan.to_json(), sort_keys=True, separators=(",", ":"))
    meta = {"format": MAGIC, "format_version": str(FORMAT_VERSION), "perfkit_version": __version__,
            "checksum": _PLACEHOLDER, "plan": plan_json}
    header = dict(tensors)
    header["__metadata__"] = meta
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    blob = bytearray(struct.pack("<Q", len(hbytes)) + hbytes + b"".join(chunks))
    digest = hashlib.sha256(blob).hexdigest()
    start = blob.index(f'"checksum":"{_PLACEHOLDER}"'.encode()) + len('"checksum":"')
    blob[start:start + 64] = digest.encode()
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    engine.plan.extra["engine_id"] = digest[:12]
    return digest[:12]


def read_engine_file(path: Any) -> tuple[EnginePlan, dict, str]:
    """Parses and verifies an engine file; returns (plan, host weights, checksum)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise EngineFileError(f"cannot read engine file {os.fspath(path)!r}: {exc.strerror or exc}") from None
    try:
        return _parse(blob, os.fspath(path))
    except PerfkitError:
        raise
    except Exception as exc:  # the safety net: never leak another exception type
        raise EngineFileError(f"{os.fspath(path)!r} is not a valid perfkit engine ({type(exc).__name__}: {exc})") from None


def _parse(blob: bytes, where: str) -> tuple[EnginePlan, dict, str]:
    bad = lambda why: EngineFileError(f"{where!r} is not a valid perfkit engine file: {why}")  # noqa: E731
    if len(blob) < 8:
        raise bad(f"only {len(blob)} bytes; the file is truncated or empty")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > min(len(blob) - 8, MAX_HEADER):
        raise bad(f"its header claims {n} bytes but the file has {len(blob) - 8} after the length; "
                  "the file is truncated or corrupted")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"the header is not valid JSON ({exc}); the file is corrupted") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise bad("it has no safetensors metadata; was it written by perfkit's Engine.save()?")
    meta = header.pop("__metadata__")
    if meta.get("format") != MAGIC:
        raise bad(f"its metadata names format {meta.get('format')!r}, not {MAGIC!r}")
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise EngineVersionError(f"{where!r} uses engine format version {version!r}; this perfkit "
                                 f"({__version__}) reads version {FORMAT_VERSION}. Rebuild the engine from its "
                                 "network with this version")
    checksum = meta.get("checksum")
    if not isinstance(checksum, str) or len(checksum) != 64:
        raise EngineChecksumError(f"{where!r} has no valid checksum; the file is corrupted")
    needle = f'"checksum":"{checksum}"'.encode()
    head = blob[:8 + n]
    if head.count(needle) != 1:
        raise EngineChecksumError(f"{where!r}: the checksum field is damaged; the file is corrupted")
    zeroed = bytearray(blob)
    pos = head.index(needle) + len('"checksum":"')
    zeroed[pos:pos + 64] = _PLACEHOLDER.encode()
    actual = hashlib.sha256(zeroed).hexdigest()
    if actual != checksum:
        raise EngineChecksumError(f"{where!r} does not match its checksum (stored {checksum[:12]}…, computed "
                                  f"{actual[:12]}…): the file was corrupted or edited. Rebuild or re-copy it")
    if not isinstance(meta.get("plan"), str):
        raise bad("the metadata holds no plan")
    plan = EnginePlan.from_json(json.loads(meta["plan"]))
    data = memoryview(blob)[8 + n:]
    weights = {}
    for key, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in _FROM_ST:
            raise bad(f"tensor {key!r} has an unsupported description {info!r}")
        shape, (lo, hi) = info["shape"], info["data_offsets"]
        if not all(isinstance(d, int) and d >= 0 for d in shape) or not (0 <= lo <= hi <= len(data)):
            raise bad(f"tensor {key!r} has an invalid shape or offsets")
        dtype = np.dtype(_FROM_ST[info["dtype"]])
        if (hi - lo) != math.prod(shape) * dtype.itemsize:
            raise bad(f"tensor {key!r}: {hi - lo} bytes do not hold shape {shape} of {dtype}")
        weights[key] = np.frombuffer(data[lo:hi], dtype=dtype).reshape(shape).copy()
    for key, w in plan.weights.items():
        if key not in weights or list(weights[key].shape) != list(w.shape) or str(weights[key].dtype) != w.dtype:
            raise bad(f"weight {key!r} of the plan is missing or differs from the stored tensor")
    plan.extra["engine_id"] = checksum[:12]
    return plan, weights, checksum


def load_engine(path: Any, device: Any = None, allocator: Any = None) -> Any:
    """Loads an engine saved with :meth:`Engine.save` onto ``device`` (default: the kind it was built for).

    Loading is cheap next to building: no optimisation or timing runs again (guide 2.4).
    """
    from ..device import get_device
    from .engine import Engine
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
    return Engine(plan, weights, dev, allocator if allocator is not None else dev.tracking_allocator)
