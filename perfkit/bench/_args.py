"""Argument checks of the timing functions, done before anything is built or run, so that a bad
argument costs nothing and leaves nothing behind."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..arguments import flag, integer, number, one_of, optional_positive_int, path, positive_int
from ..errors import ArgumentError, BatchSizeError
from ..frames.parquet_read import read_parquet

MAX_STREAMS = 64     # one execution context each; more than this is a typo, not a measurement
MAX_ROUNDS = 1000    # rounds of a sweep: each is a slice of min_time_s, so more is a typo


def context_arg(context: Any, what: str) -> Any:
    """An execution context (anything with ``execute``, as ``EngineSet`` contexts have)."""
    if not callable(getattr(context, "execute", None)):
        raise ArgumentError(f"{what}: context must be an execution context (engine.create_execution_context()), "
                            f"not {type(context).__name__}")
    return context


def inputs_arg(inputs: Any, what: str) -> dict:
    if not isinstance(inputs, dict) or not inputs:
        raise ArgumentError(f"{what}: inputs must be a non-empty dict of input name -> array "
                            f"(perfkit.models.sample_input makes one), not {type(inputs).__name__}")
    return inputs


def check_time_inference(context: Any, inputs: Any, batch_size: Any, warmup: Any, min_iterations: Any,
                         min_time_s: Any, max_iterations: Any) -> None:
    context_arg(context, "time_inference")
    inputs_arg(inputs, "time_inference")
    optional_positive_int(batch_size, "time_inference: batch_size")
    integer(warmup, "time_inference: warmup", minimum=0)
    positive_int(min_iterations, "time_inference: min_iterations")
    number(min_time_s, "time_inference: min_time_s", minimum=0)
    positive_int(max_iterations, "time_inference: max_iterations")


def latency_samples(ms: Any, what: str) -> np.ndarray:
    """Latencies in ms: a non-empty 1-D array of finite, non-negative numbers."""
    try:
        arr = np.asarray(ms, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentError(f"{what}: latencies must be an array of numbers (ms), not {type(ms).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ArgumentError(f"{what}: latencies must be a non-empty 1-D array (ms), got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ArgumentError(f"{what}: latencies must be finite and non-negative (ms); time more inferences")
    return arr


def check_measure(context: Any, batch_size: Any, inputs: Any, warmup_ms: Any, iterations: Any, duration_s: Any,
                  percentiles: Any, include_transfers: Any, streams: Any, gpu_metrics: Any) -> None:
    if not hasattr(context, "engine") or not callable(getattr(context, "enqueue", None)):
        raise ArgumentError("measure: context must be an ExecutionContext (engine.create_execution_context()), "
                            f"not {type(context).__name__}")
    batch = optional_positive_int(batch_size, "measure: batch_size")
    if batch is not None and batch > context.engine.max_batch_size:
        raise BatchSizeError(f"measure: batch_size {batch} is larger than the engine's max_batch_size "
                             f"{context.engine.max_batch_size}; build the engine for a larger batch")
    if inputs is not None:
        inputs_arg(inputs, "measure")
    number(warmup_ms, "measure: warmup_ms", minimum=0)
    positive_int(iterations, "measure: iterations")
    number(duration_s, "measure: duration_s", minimum=0)
    percentile_list(percentiles, "measure: percentiles")
    flag(include_transfers, "measure: include_transfers")
    positive_int(streams, "measure: streams", maximum=MAX_STREAMS)
    flag(gpu_metrics, "measure: gpu_metrics")


def percentile_list(percentiles: Any, what: str) -> list:
    if isinstance(percentiles, (str, bytes)) or not isinstance(percentiles, Sequence):
        raise ArgumentError(f"{what} must be a sequence of numbers between 0 and 100, such as (90, 99), "
                            f"not {percentiles!r}")
    return [number(p, what, 0, 100) for p in percentiles]


def check_sweep(networks: Any, batch_sizes: Any, precisions: Any, min_time_s: Any, min_iterations: Any,
                on_row: Any, engines: Any, rounds: Any = 6, max_cv_pct: Any = 10.0, out: Any = None,
                resume: Any = False, layers: Any = False, devices: Any = None, device: Any = None) -> list:
    """The networks as a list, after every argument of ``sweep`` was checked."""
    from ..network import PRECISIONS
    nets = [networks] if not isinstance(networks, (list, tuple)) else list(networks)
    if not nets:
        raise ArgumentError("sweep: networks must be a perfkit Network or a non-empty list of them "
                            "(perfkit.models has samples)")
    nets = [_network(n) for n in nets]
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
        raise ArgumentError(f"sweep: batch_sizes must be a non-empty sequence of positive ints, not {batch_sizes!r}")
    for b in batch_sizes:
        positive_int(b, "sweep: each batch size")
    if isinstance(precisions, (str, bytes)) or not isinstance(precisions, Sequence) or not precisions:
        raise ArgumentError(f"sweep: precisions must be a non-empty sequence such as ('fp32', 'fp16'), "
                            f"not {precisions!r}")
    for p in precisions:
        one_of(p, PRECISIONS, "sweep: each precision")
    number(min_time_s, "sweep: min_time_s", minimum=0)
    positive_int(min_iterations, "sweep: min_iterations")
    if on_row is not None and not callable(on_row):
        raise ArgumentError(f"sweep: on_row must be a function of one row (a dict) or None, not {on_row!r}")
    if engines is not None and not isinstance(engines, dict):
        raise ArgumentError(f"sweep: engines must be a dict to collect the engines in, or None, not {engines!r}")
    positive_int(rounds, "sweep: rounds", maximum=MAX_ROUNDS)
    number(max_cv_pct, "sweep: max_cv_pct (the spread of round medians, in %, above which a row is unstable)",
           minimum=0)
    resume = flag(resume, "sweep: resume")
    flag(layers, "sweep: layers (True also profiles each configuration's layers)")
    names = [n.name for n in nets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice and (out is not None or devices is not None):
        raise ArgumentError(f"sweep: two networks are named {twice[0]!r}; rows (and the files of a sweep) tell networks "
                            "apart by name: give each network its own name (Network(name=...))")
    if devices is not None:
        from .distributed import check_devices
        check_devices(devices, device)
        if engines is not None:
            raise ArgumentError("sweep: engines= collects the engines built in this process; a sweep with devices= "
                                "builds them on its workers. Leave engines=None (or sweep without devices=)")
    if out is None:
        if resume:
            raise ArgumentError("sweep: resume=True needs out=, the .parquet file or dataset folder of the sweep to "
                                "continue")
        return nets
    check_out(out, resume, devices is not None)
    return nets


def _network(n: Any) -> Any:
    """A Network; with perfkit.onnx.network_from (ONNX import), also a sample name or an .onnx path."""
    from ..network import Network
    if isinstance(n, Network):
        return n
    try:
        from ..onnx import network_from
    except ImportError:
        network_from = None
    if network_from is not None and isinstance(n, (str, os.PathLike, bytes)) and not isinstance(n, bool):
        return network_from(n)
    raise ArgumentError("sweep: networks must be a perfkit Network, a sample name, an .onnx file or a non-empty list "
                        f"of them (perfkit.models has samples), not {type(n).__name__} {n!r:.60}")


def check_out(out: Any, resume: bool, distributed: bool) -> str:
    """``out`` as a path: a ``.parquet`` file (one device) or a dataset folder (a name without suffix,
    new, empty, or a sweep dataset when resuming)."""
    from .sweep_dataset import is_sweep_dataset
    target = path(out, "sweep: out")
    parent = os.path.dirname(os.path.abspath(target))
    if target.endswith(".parquet") and distributed:
        raise ArgumentError(f"sweep: with devices=, out is a dataset folder that every worker writes into (a name "
                            f"without .parquet, e.g. {target[:-8]!r}), not one file {target!r}")
    if target.endswith(".parquet") and not os.path.isdir(parent):
        raise ArgumentError(f"sweep: the folder of out ({parent}) does not exist; create it first")
    if not target.endswith(".parquet"):      # a dataset folder is made with its missing parents, as written
        above = parent
        while not os.path.exists(above):
            above = os.path.dirname(above)
        if not os.path.isdir(above):
            raise ArgumentError(f"sweep: out {target!r} cannot be a folder: {above!r} is a file")
    if target.endswith(".parquet"):
        if os.path.isdir(target):
            raise ArgumentError(f"sweep: out {target!r} is a folder; give a .parquet file name")
        if os.path.exists(target) and not resume:
            raise ArgumentError(f"sweep: out {target!r} exists; pass resume=True to continue that sweep, "
                                "or choose another file")
        return target
    if os.path.isdir(target):
        if is_sweep_dataset(target):
            if not resume:
                raise ArgumentError(f"sweep: the sweep dataset {target!r} exists; pass resume=True to continue it, or "
                                    "choose another folder")
        elif os.listdir(target):
            raise ArgumentError(f"sweep: out {target!r} is a folder that holds other files, not a sweep dataset; give "
                                "a new folder name (or a .parquet file name)")
        return target
    if os.path.exists(target):
        raise ArgumentError(f"sweep: out {target!r} is an existing file, not a sweep: give a new folder name"
                            + ("" if distributed else " (or a .parquet file name)"))
    if os.path.splitext(target)[1]:
        raise ArgumentError(f"sweep: out must be a folder name (a partitioned dataset, no suffix)"
                            + ("" if distributed else " or a file name ending in .parquet") + f", not {target!r}")
    return target


def read_previous_sweep(out: Any) -> Any:
    """The rows already in ``out`` (None when the file does not exist yet), checked against the schema."""
    import os

    from ..frames.schemas import SWEEP, SchemaError
    target = os.fspath(out)
    if not os.path.exists(target):
        return None
    try:
        frame = read_parquet(target)
    except Exception as exc:  # pyarrow's errors for a file that is not parquet
        raise ArgumentError(f"sweep: out {target!r} cannot be read as parquet ({type(exc).__name__}: {exc}); "
                            "resume only a file an earlier sweep wrote, or choose another file") from None
    try:
        SWEEP.validate(frame)
    except SchemaError as exc:
        raise ArgumentError(f"sweep: out {target!r} is not a sweep frame ({exc}); "
                            "resume only a file an earlier sweep wrote, or choose another file") from None
    lacking = [c for c in SWEEP.names if c not in frame.columns]
    if lacking:
        raise ArgumentError(f"sweep: out {target!r} was written before sweeps recorded {lacking}; its rows cannot "
                            "be continued with those columns: choose another file")
    return frame


def check_host_inputs(engine: Any, inputs: dict, batch: int) -> None:
    """``inputs`` for ``measure``: one host array per engine input, holding at least ``batch`` samples."""
    names = list(engine.input_names)
    if sorted(inputs) != sorted(names):
        raise ArgumentError(f"measure: inputs must be given for exactly the engine's inputs {names}, got {sorted(inputs)}")
    for n in names:
        a = inputs[n]
        want = (batch,) + tuple(engine.get_binding_shape(n))
        shape = tuple(getattr(a, "shape", ()))
        if len(shape) != len(want) or shape[0] < batch or shape[1:] != want[1:]:
            raise ArgumentError(f"measure: input {n!r} must be an array of shape {want} (at least {batch} samples), "
                                f"got {shape or type(a).__name__}")
        if np.dtype(getattr(a, "dtype", None)) != np.dtype(engine.get_binding_dtype(n)):
            raise ArgumentError(f"measure: input {n!r} must be {engine.get_binding_dtype(n)}, not {a.dtype}")


def check_timing_cache(timing_cache: Any, devices: Any) -> Any:
    """``sweep``'s ``timing_cache``: None, a path (returned absolute, its file and folder checked now, so that
    a corrupt file or an unwritable folder fails before anything is built), or a TimingCache; with
    ``devices=``, a path (or a TimingCache that has one: saved now, for the workers to read; the workers'
    entries go to the file, not back into that object), since each worker process opens the file itself."""
    from ..builder.tactics import TimingCache
    if timing_cache is None:
        return None
    if isinstance(timing_cache, TimingCache):
        if devices is None:
            return timing_cache
        if not timing_cache.path:
            raise ArgumentError("sweep: with devices=, timing_cache must be a file every worker can open: give a path "
                                "(or TimingCache(path)), not an in-memory TimingCache()")
        timing_cache.save()          # what this process timed, for the workers to read
        return timing_cache.path
    p = os.path.abspath(path(timing_cache, "sweep: timing_cache (a path or a perfkit.TimingCache)"))
    folder = os.path.dirname(p)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ArgumentError(f"sweep: timing_cache {p!r} cannot be written: its folder {folder!r} is missing or not "
                            "writable; create it, or give a path in a folder you can write to")
    TimingCache(p)                   # raises TimingCacheError, naming the fix, where the file cannot be used
    return p                         # absolute: workers may start in another working directory
