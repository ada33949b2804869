"""A sweep kept as a partitioned parquet dataset: one folder that many processes, on one host or many,
write into at once, one file per configuration, and that pyarrow, pandas and dask read as one table.

Layout (hive partitioning, values URI-encoded as pyarrow writes and reads them)::

    <out>/_perfkit_sweep.json                          marks the folder as a perfkit sweep (format, token)
    <out>/model=<name>/device=<spec>/<precision>-b<batch>.parquet       one sweep row
    <out>/_layers/model=<name>/device=<spec>/<precision>-b<batch>.parquet   its layers (sweep(layers=True))

A configuration's file name does not depend on the device that measured it, and a writer first looks for
the configuration under every device of the same kind (``cpu`` or ``cuda``): a configuration retried on
another worker after the first one died finds the row the first one wrote and writes nothing. Every
file is written to a temporary name and renamed into place, so a reader never sees half a file and a
writer killed mid-write leaves nothing behind. Nothing here executes what it reads (parquet and JSON).
"""
from __future__ import annotations

import glob
import json
import os
import uuid
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd

from ..errors import ArgumentError
from ..frames.parquet_read import read_parquet
from ..frames.schemas import SWEEP, SWEEP_LAYERS, SchemaError

MARKER = "_perfkit_sweep.json"
LAYERS_DIR = "_layers"
FORMAT = 1
PARTITIONS = ("model", "device")


def is_sweep_dataset(path: Any) -> bool:
    """Whether ``path`` is a folder a sweep wrote as a dataset (it holds the marker file)."""
    return isinstance(path, (str, os.PathLike)) and os.path.isfile(os.path.join(os.fspath(path), MARKER))


def dataset_token(out: str) -> str:
    """The dataset's token (from its marker): workers compare it with theirs to know they see this very
    folder (a worker on another host without a shared filesystem does not)."""
    try:
        with open(os.path.join(out, MARKER)) as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"sweep: {out!r} has an unreadable {MARKER} ({type(exc).__name__}: {exc}); it is not a "
                            "sweep dataset perfkit can continue: choose another out") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("token"), str):
        raise ArgumentError(f"sweep: {out!r} holds a {MARKER} of another format ({meta!r:.80}); "
                            "choose another out")
    return meta["token"]


def create_dataset(out: str) -> str:
    """Makes the dataset folder with its marker (if it is not one already); returns its token."""
    if is_sweep_dataset(out):
        return dataset_token(out)
    os.makedirs(out, exist_ok=True)
    token = uuid.uuid4().hex
    _atomic(os.path.join(out, MARKER), lambda tmp: _write_text(tmp, json.dumps({"format": FORMAT, "token": token,
                                                                                "schema": SWEEP.name})))
    return token


def device_kind(spec: str) -> str:
    """``cuda`` for ``cuda:N``, else the spec itself (``cpu``): configurations are one per kind."""
    return str(spec).split(":", 1)[0]


def config_file(precision: str, batch: int) -> str:
    return f"{quote(str(precision), safe='')}-b{int(batch)}.parquet"


def _part_dir(root: str, model: str, device: str) -> str:
    return os.path.join(root, f"model={quote(str(model), safe='')}", f"device={quote(str(device), safe='')}")


def find_config(out: str, model: str, kind: str, precision: str, batch: int) -> str | None:
    """The file holding this configuration's row, measured on any device of ``kind``, or None."""
    pattern = os.path.join(glob.escape(_part_dir(out, model, "X"))[:-1] + "*", config_file(precision, batch))
    for f in sorted(glob.glob(pattern)):
        if device_kind(unquote(os.path.basename(os.path.dirname(f))[len("device="):])) == kind:
            return f
    return None


def write_config(out: str, frame: pd.DataFrame, layers: pd.DataFrame | None = None) -> tuple:
    """Writes one configuration (a one-row sweep frame, its layer rows) into the dataset, unless a row
    for it (same model, precision, batch size, device kind) is there already. Returns (the rows now in
    the dataset for it, whether they are the ones given). Layers first, so a configuration in the
    dataset always has its layers."""
    row = frame.iloc[0]
    model, device = str(row["model"]), str(row["device"])
    precision, batch = str(row["precision"]), int(row["batch_size"])
    found = find_config(out, model, device_kind(device), precision, batch)
    if found is not None:
        return read_config(found), False
    name = config_file(precision, batch)
    if layers is not None and len(layers):
        _write_part(_part_dir(os.path.join(out, LAYERS_DIR), model, device), name, layers)
    _write_part(_part_dir(out, model, device), name, frame)
    return frame.to_dict("records"), True


def read_config_layers(out: str, file: str) -> list:
    """The layer rows (dicts) written beside the configuration file ``file`` of dataset ``out`` ([] when none)."""
    twin = os.path.join(out, LAYERS_DIR, os.path.relpath(file, out))
    return _read_file(twin, SWEEP_LAYERS).to_dict("records") if os.path.isfile(twin) else []


def read_config(file: str) -> list:
    """The rows (dicts) of one configuration's file."""
    return _read_file(file, SWEEP).to_dict("records")


def _write_part(folder: str, name: str, frame: pd.DataFrame) -> None:
    os.makedirs(folder, exist_ok=True)
    body = frame.drop(columns=list(PARTITIONS)).reset_index(drop=True)
    body.attrs = {}
    _atomic(os.path.join(folder, name), lambda tmp: body.to_parquet(tmp, index=False))


def _atomic(target: str, write: Any) -> None:
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def part_files(root: str) -> list:
    """The dataset's row files (``model=*/device=*/*.parquet``), sorted; temporary files left out."""
    return sorted(glob.glob(os.path.join(glob.escape(root), "model=*", "device=*", "*.parquet")))


def _files(root: str, schema: Any) -> list:
    """The row files of a dataset, or its layer files (``SWEEP_LAYERS``) of configurations that have their
    row: layers written by a worker that died before its row are left out (the configuration was measured
    again, perhaps on another device, whose layers are the ones kept)."""
    if schema is not SWEEP_LAYERS:
        return part_files(root)
    base = os.path.join(root, LAYERS_DIR)
    return [f for f in part_files(base) if os.path.exists(os.path.join(root, os.path.relpath(f, base)))]


def _partition_values(file: str) -> dict:
    device_dir = os.path.dirname(file)
    model_dir = os.path.dirname(device_dir)
    return {"model": unquote(os.path.basename(model_dir)[len("model="):]),
            "device": unquote(os.path.basename(device_dir)[len("device="):])}


def _read_file(file: str, schema: Any) -> pd.DataFrame:
    """One part file as a ``schema`` frame, its model and device taken from its folders."""
    try:
        body = read_parquet(file)
    except Exception as exc:  # pyarrow raises many types for a foreign or damaged file
        raise ArgumentError(f"load_sweep: cannot read {file!r} as parquet ({type(exc).__name__}: {exc}); remove "
                            "it if it is not a row a sweep wrote") from None
    for k, v in _partition_values(file).items():
        body[k] = pd.Series([v] * len(body), dtype="string")
    return _conform(body, schema, file)


def _conform(frame: pd.DataFrame, schema: Any, where: str) -> pd.DataFrame:
    """Columns in the schema's order (optional ones absent from every file left out), dtypes declared."""
    cols = [c for c in schema.columns if c.name in frame.columns]
    try:
        out = pd.DataFrame({c.name: frame[c.name].astype(c.dtype) for c in cols})
        schema.validate(out)
    except (SchemaError, ValueError, TypeError) as exc:
        raise ArgumentError(f"load_sweep: {where} is not a {schema.name!r} dataset ({exc}); pass a folder a sweep "
                            "wrote (pk.sweep(..., out=FOLDER))") from None
    return out


def read_dataset(root: str, schema: Any = SWEEP) -> pd.DataFrame:
    """Every row of a dataset folder (or its ``_layers`` folder with ``SWEEP_LAYERS``) as one frame."""
    parts = [_read_file(f, schema) for f in _files(root, schema)]
    if not parts:
        return schema.frame([])
    frame = _conform(pd.concat(parts, ignore_index=True, sort=False), schema, root)
    order = [c for c in ("model", "device", "precision", "batch_size", "index") if c in frame.columns]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return _one_per_configuration(frame, schema)


def _one_per_configuration(frame: pd.DataFrame, schema: Any) -> pd.DataFrame:
    """One measurement per configuration and device kind, as the dataset promises. Two can be there only when a
    task ran twice at once (Dask re-ran it while a worker it had given up on was still measuring): the first
    device's is kept (with its layers), and ``attrs['duplicates_dropped']`` counts what was left out."""
    key = ["model", "precision", "batch_size"]
    kinds = frame["device"].astype(str).map(device_kind)
    configs = frame[key].assign(kind=kinds)
    if schema is SWEEP:
        dup = configs.duplicated(keep="first")
    else:                                    # layer rows: keep those of each configuration's first device
        first = configs.assign(device=frame["device"]).drop_duplicates(key + ["kind"], keep="first")
        kept = set(map(tuple, first[key + ["kind", "device"]].astype(str).to_numpy()))
        dup = ~configs.assign(device=frame["device"]).astype(str).apply(tuple, axis=1).isin(kept)
    if dup.any():
        frame = frame[~dup].reset_index(drop=True)
        frame.attrs["duplicates_dropped"] = int(dup.sum())
    return frame


def load_sweep(path: Any, dask: bool = False, layers: bool = False) -> Any:
    """The ``sweep`` frame of a sweep saved at ``path``: a dataset folder (``pk.sweep(..., out=FOLDER)``,
    one file per configuration, written by every worker of a distributed sweep) or a ``.parquet`` file.

    ``dask=True`` returns a lazy ``dask.dataframe`` instead (one partition per configuration file; needs
    ``perfkit[cluster]``), for datasets too large to read at once. ``layers=True`` returns the
    ``sweep_layers`` rows instead (``sweep(..., layers=True)``). Rows come in the dataset's order:
    by model, device, precision and batch size. The frame's ``attrs`` name the source and, for sweep rows,
    carry ``disturbances`` as ``sweep()``'s frame does (:func:`~perfkit.bench.sweep_disturbances`, its spread
    limit the default 10%)."""
    from ..arguments import flag
    from ..arguments import path as check_path
    target = check_path(path, "load_sweep: path")
    flag(dask, "load_sweep: dask")
    flag(layers, "load_sweep: layers")
    schema = SWEEP_LAYERS if layers else SWEEP
    if os.path.isfile(target):
        if dask:
            raise ArgumentError(f"load_sweep: dask=True reads a dataset folder; {target!r} is one file: read it "
                                "with dask=False")
        if layers:
            from .sweep_layers import sweep_layers_path
            target = sweep_layers_path(target)
        frame = _conform(_read_single(target), schema, target)
    elif is_sweep_dataset(target):
        frame = _lazy(target, schema) if dask else read_dataset(target, schema)
    else:
        raise ArgumentError(f"load_sweep: {target!r} is neither a sweep file nor a sweep dataset folder (a folder "
                            f"with {MARKER}); pass what pk.sweep(..., out=...) wrote")
    if not dask:
        frame.attrs.update({"schema": schema.name, "source": target, **devices_named(frame)})
        if not layers:
            from .rounds import sweep_disturbances
            frame.attrs["disturbances"] = sweep_disturbances(frame)
    return frame


def devices_named(frame: pd.DataFrame) -> dict:
    """attrs naming the devices the rows were timed on (as a one-device sweep's frame has them)."""
    if not len(frame) or "device" not in frame.columns:
        return {}
    named: set = set()
    if "gpu_name" in frame.columns:
        named |= set(frame["gpu_name"].dropna().astype(str))
    if "cpu_name" in frame.columns:
        named |= set(frame.loc[frame["device"] == "cpu", "cpu_name"].dropna().astype(str))
    named = sorted(named)
    return {"device": ",".join(sorted(frame["device"].astype(str).unique())),
            **({"device_name": ", ".join(named)} if named else {})}


def _read_single(file: str) -> pd.DataFrame:
    try:
        return read_parquet(file)
    except Exception as exc:
        raise ArgumentError(f"load_sweep: cannot read {file!r} as parquet ({type(exc).__name__}: {exc}); pass "
                            "what pk.sweep(..., out=...) wrote") from None


def _lazy(root: str, schema: Any) -> Any:
    from .distributed import require_dask
    require_dask("load_sweep(dask=True)", dataframe=True)
    import dask.dataframe as dd
    files = _files(root, schema)
    if not files:
        return dd.from_pandas(schema.frame([]), npartitions=1)
    meta = _read_file(files[0], schema).iloc[:0]
    return dd.from_map(_read_file, files, schema=schema, meta=meta, enforce_metadata=False)
