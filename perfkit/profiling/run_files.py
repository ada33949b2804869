"""Saved runs on disk: one parquet file per frame and ``run.json`` (metadata, messages, a SHA-256 per file).

Loading trusts nothing it reads. ``run.json`` must have the documented structure and carry a
checksum of its own content; every frame file must match its recorded checksum, and every frame is
validated against its schema (columns, dtypes, missing values only where a column is nullable, no
infinite floats, no undeclared columns). A checksum proves a file intact, not its origin: a run
edited with recomputed checksums still loads only when every value fits its schema, so whatever
loads can be summarised and exported. Every fault ends in :class:`RunLoadError` or
:class:`SchemaError`, both :class:`PerfkitError`.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from typing import Any

import numpy as np

from ..errors import PerfkitError
from ..frames.parquet_read import read_parquet
from ..frames.schemas import SCHEMAS, SchemaError

FORMAT = "perfkit-run"
VERSION = 2
#: attribute of RunData -> schema name; each is saved as <attribute>.parquet
FRAMES = {"layers": "layer_times", "memory": "memory_events", "queries": "queries", "gpu": "gpu_samples",
          "kernels": "kernels"}
#: frames of the engine that ran, saved when the run holds them (runs saved before issue 9 lack them):
#: its layers (FLOPs, bytes, precision, fused members) and its build log (the tactics chosen)
ENGINE_FRAMES = {"engine_layers": "engine_layers", "build_log": "build_log"}
#: metadata the summaries compute with: numbers (never bools), finite and not negative
NUMERIC_META = ("e2e_profiled_ms", "e2e_unprofiled_ms", "event_cost_ns", "predicted_device_memory_bytes",
                "measured_device_memory_bytes", "started_ns", "stopped_ns", "user_alloc_events",
                "e2e_unprofiled_cv_pct", "threads", "host_load_1m", "host_cpus", "host_other_busy_cores")
_FIX = "re-record the run, or copy the whole directory again"


class RunLoadError(PerfkitError, ValueError):
    """A saved run could not be loaded: missing, corrupted, edited, or not a perfkit run."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _content_checksum(info: dict) -> str:
    """SHA-256 of run.json's content without its own checksum field (canonical JSON)."""
    body = {k: v for k, v in info.items() if k != "checksum"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())


def jsonable_meta(meta: dict) -> dict:
    """Metadata as JSON scalars: NumPy numbers become Python numbers, anything else its ``str``;
    non-finite floats are left out (JSON has no NaN: a figure that was not measured is absent)."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        if isinstance(v, float) and not math.isfinite(v):
            continue
        out[str(k)] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
    return out


def save_run(frames: dict, meta: dict, messages: list, directory: Any) -> str:
    """Writes the frames (validated first), then run.json with their checksums; returns the directory."""
    d = os.fspath(directory)
    names = saved_frames(frames)
    for name, schema in names.items():
        SCHEMAS[schema].validate(frames[name])
    os.makedirs(d, exist_ok=True)
    files = {}
    for name in names:
        buf = io.BytesIO()
        frames[name].to_parquet(buf)
        data = buf.getvalue()
        with open(os.path.join(d, f"{name}.parquet"), "wb") as f:
            f.write(data)
        files[name] = {"file": f"{name}.parquet", "sha256": _sha256(data), "rows": int(len(frames[name]))}
    info = {"format": FORMAT, "version": VERSION, "meta": jsonable_meta(meta),
            "messages": [str(m) for m in messages], "files": files}
    info["checksum"] = _content_checksum(info)
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump(info, f, indent=1, allow_nan=False)
    return d


def load_run_files(directory: Any) -> tuple[dict, dict, list]:
    """(frames, meta, messages) of a saved run, every part checked (see the module docstring)."""
    d = os.fspath(directory)
    bad = lambda why: RunLoadError(f"{d!r} is not a saved perfkit run that can be trusted: {why}; {_FIX}")  # noqa: E731
    try:
        with open(os.path.join(d, "run.json"), "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise RunLoadError(f"{d!r} is not a saved perfkit run: cannot read its run.json ({exc.strerror or exc}); "
                           "pass a directory written by run.save()") from None
    try:
        info = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"run.json is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise bad(f"run.json does not name the format {FORMAT!r}")
    if info.get("version") != VERSION or type(info.get("version")) is not int:
        raise bad(f"run.json has version {info.get('version')!r}; this perfkit reads version {VERSION} "
                  "(runs saved by older versions carry no checksums)")
    if sorted(info) != ["checksum", "files", "format", "messages", "meta", "version"]:
        raise bad(f"run.json has the keys {sorted(info)}")
    if not isinstance(info["checksum"], str) or info["checksum"] != _content_checksum(info):
        raise bad("run.json does not match its checksum: it was corrupted or edited")
    meta, messages, files = info["meta"], info["messages"], info["files"]
    _check_meta(meta, bad)
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        raise bad("run.json 'messages' must be a list of strings")
    if not isinstance(files, dict) or not set(FRAMES) <= set(files) <= set(FRAMES) | set(ENGINE_FRAMES):
        raise bad(f"run.json 'files' must list the frames {sorted(FRAMES)}, and may list {sorted(ENGINE_FRAMES)}")
    frames = {}
    for name, schema in saved_frames(files).items():
        entry = files[name]
        if not isinstance(entry, dict) or entry.get("file") != f"{name}.parquet" or \
                not isinstance(entry.get("sha256"), str) or type(entry.get("rows")) is not int:
            raise bad(f"run.json 'files' entry for {name!r} is malformed: {entry!r}")
        path = os.path.join(d, entry["file"])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise bad(f"cannot read {entry['file']} ({exc.strerror or exc})") from None
        if _sha256(data) != entry["sha256"]:
            raise bad(f"{entry['file']} does not match its checksum in run.json: it was corrupted or edited")
        try:
            frame = read_parquet(data)
        except Exception as exc:        # pyarrow raises many types for a damaged file
            raise bad(f"{entry['file']} is not a readable parquet file ({type(exc).__name__})") from None
        try:
            frames[name] = SCHEMAS[schema].validate(frame, strict=True)
        except SchemaError as exc:
            raise SchemaError(f"{path!r}: {exc}; {_FIX}") from None
        if len(frame) != entry["rows"]:
            raise bad(f"{entry['file']} has {len(frame)} rows, run.json records {entry['rows']}")
    return frames, meta, list(messages)


def saved_frames(frames: dict) -> dict:
    """Name -> schema of the frames a run saves: every one of FRAMES, and those of ENGINE_FRAMES it holds."""
    return {**FRAMES, **{k: v for k, v in ENGINE_FRAMES.items() if k in frames}}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_meta(meta: Any, bad: Any) -> None:
    if not isinstance(meta, dict):
        raise bad("run.json 'meta' must be an object")
    for k, v in meta.items():
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise bad(f"run.json meta {k!r} is {type(v).__name__}; metadata values are strings, numbers, "
                      "booleans or null")
    for k in NUMERIC_META:
        if k in meta:
            v = meta[k]
            if type(v) not in (int, float) or not math.isfinite(v) or v < 0:
                raise bad(f"run.json meta {k!r} is {v!r}; expected a finite number >= 0")
