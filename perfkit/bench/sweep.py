"""Sweeps: one engine per (network, precision, max batch size), timed in interleaved rounds, into the
``sweep`` frame, each row with its confidence interval, spread, host load, and error if it failed."""
from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..builder import Builder, BuilderConfig
from ..builder.tactics import as_cache
from ..builder.tactics_progress import progress_bar, progress_wanted
from ..device import get_device
from ..errors import PerfkitError
from ..frames.schemas import SWEEP, SWEEP_LAYERS
from ..models import sample_input
from . import rounds as _rounds
from . import sweep_dataset as _data
from . import sweep_layers as _layers
from ._args import check_sweep, check_timing_cache, read_previous_sweep
from .distributed_host import identity
from .latency import latency_stats


@dataclass
class _Slot:
    net: Any
    precision: str
    batch: int
    engine: Any = None
    context: Any = None
    inputs: Any = None
    samples: list = field(default_factory=list)
    error: str | None = None
    remeasured: bool = False
    gpu: list = field(default_factory=list)
    host: dict = field(default_factory=dict)       # host load read just before the timing rounds
    host_cpu: list = field(default_factory=list)   # (before, after) CPU snapshots around each timing slice
    layers_error: str = ""


def sweep(networks: Any, batch_sizes: Sequence[int] = (1, 8, 32), precisions: Sequence[str] = ("fp32",),
          device: Any = None, min_time_s: float = 0.2, min_iterations: int = 5,
          on_row: Callable[[dict], None] | None = None, engines: dict | None = None, rounds: int = 6,
          max_cv_pct: float = 10.0, out: Any = None, resume: bool = False, layers: bool = False,
          progress: bool | None = None, devices: Any = None, timing_cache: Any = None) -> Any:
    """Builds each network for each precision and batch size, times it, returns the ``sweep`` frame.

    Each batch size gets its own engine built for exactly that batch (guide 2.1). On CUDA the inputs
    are copied to the device first, so the figures are those of the network itself (the guide's
    "from input already on the GPU").

    The configurations of one network are built first (one context each), then timed in ``rounds``
    interleaved rounds, each giving every configuration a slice of ``min_time_s / rounds`` seconds
    (and at least ``min_iterations / rounds`` inferences): ``min_time_s`` stays the timing of one
    configuration in all. A row's median is the median of its round medians, with the
    distribution-free order-statistic interval of that median (``latency_ci_low_ms``/``_high_ms``,
    at least 95% coverage, the coverage reached in ``latency_ci_level_pct``: 96.9% at the default 6
    rounds; NaN, unknown, below 6 rounds) and the robust spread of the round medians
    (``latency_cv_pct``, :func:`perfkit.frames.stats.spread_pct`); a configuration whose round medians
    spread by more than ``max_cv_pct`` is timed once more (``remeasured``) and stays ``unstable`` if it
    still does. The host's load average read just before the configuration's timing rounds (so
    perfkit's own timing threads are not in it) is recorded per row beside the cores it has, and the
    cores other processes kept busy during the row's slices (``host_other_busy_cores``, from /proc/stat
    less this process's CPU time: unlike the load average it does not count perfkit's own threads); on CUDA
    with NVML, also the lowest SM clock seen while the row was timed and the throttle reasons met.

    A configuration that fails (a build error, out of memory, a device that cannot run it) becomes a
    row whose ``error`` says why, and the sweep goes on. ``out`` (a ``.parquet`` path) receives the
    rows as each network's configurations finish; with ``resume=True`` an existing ``out`` is read
    and its configurations (including failed ones: delete a row to retry it) are not measured again;
    the frame returned holds the old rows and the new. ``engines``, if given, collects the engines
    built, keyed by (network name, precision, batch size). ``on_row`` is called with each new row.

    ``layers=True`` also profiles each configuration after it was timed (a few inferences, layer
    times only) and returns ``(sweep_frame, layers_frame)``: the second a ``sweep_layers`` frame with
    each layer's median time and its 95% interval, its share of the sum of the layer medians, its
    precision and its flops and bytes per sample. With ``out``, those rows go to
    ``<out stem>_layers.parquet`` beside it (resumed alike); an ``on_row`` with an ``add_layers``
    attribute (such as a ``SweepExplorer``) gets each configuration's layer frame before its row, and
    one with a ``finish`` method has it called after each network's rows (a sink that draws does so
    there, between timings, not while a configuration is timed). A configuration timed but whose
    profiled pass failed keeps its timing; its ``layers_error`` says why it has no layer rows
    (``error`` is only for configurations without timing).
    ``frame.attrs["disturbances"]`` says in words where the measurement was disturbed (see
    :func:`~perfkit.bench.sweep_disturbances`). ``progress``: a ``tqdm`` bar per timing slice (None:
    on in notebooks and terminals, off when output is not a terminal and under pytest). On the CPU
    each row records the BLAS ``threads`` it was timed with (``get_device("cpu", threads=N)``).

    ``out`` may also be a folder (a name without suffix, new or written by an earlier sweep): the rows
    then go into a partitioned parquet dataset there, one file per configuration under
    ``model=<name>/device=<spec>/`` (read it with :func:`perfkit.load_sweep`, pyarrow, pandas or dask),
    and a configuration counts as done for ``resume`` on any device of the same kind (``cuda`` or ``cpu``).

    ``devices`` spreads the configurations over several devices or machines through Dask distributed
    (``perfkit[cluster]``), each configuration measured once, by one worker, which writes its row into
    the ``out`` dataset as soon as it is done: ``"all"`` (every GPU of this host, one worker process per
    GPU, pinned with ``CUDA_VISIBLE_DEVICES`` before CUDA starts; without a GPU one CPU worker per core,
    each pinned to its own core), a list such as ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]`` (the
    cores split evenly among the CPU workers, BLAS threads sized to them), or a
    ``dask.distributed.Client``, whose cluster is used as it is (each worker times on ``device``,
    default its first GPU, else its CPU). A local cluster is started on 127.0.0.1 only, its dashboard
    link printed, and closed at the end (and not started at all when ``resume=True`` leaves nothing to
    measure); in a script, call ``sweep`` under ``if __name__ == "__main__":`` (Dask spawns its workers, which
    run the script's top level again). Configurations go out largest first (reduced precision, large batch,
    many layers), so that none ends the sweep alone. A worker that dies loses only the configuration it was
    measuring, which another worker measures; a configuration that fails is a row with its error; one
    stopped by an interrupt (Ctrl-C) or a shutdown is not written, so that ``resume=True`` measures it.
    Dask's transport unpickles what it receives: keep a cluster inside a trusted network, and use TLS
    where its traffic leaves one. See :mod:`perfkit.bench.distributed`.

    ``timing_cache`` (a path or a :class:`~perfkit.TimingCache`) is handed to every build, as
    ``BuilderConfig(timing_cache=...)``: a layer timed once is not timed again, so a second sweep builds
    in a fraction of the time and takes each layer's tactic from the cache. Without it each build times
    its tactics afresh and may choose differently where two tactics run within noise of each other, so
    rows of two runs can differ by more than their intervals because they ran different engines; each
    row's ``tactics_id`` says which engine it timed. The cache holds the layers' tactic times and the
    layout reformats' times, so a build from a warm cache makes every choice again without timing; it
    is keyed by the GPU model, so it makes builds alike on one model only. With ``devices=``, give a path
    every worker can reach: workers merge their entries into it (under a file lock), and where two timed
    the same layer the first entry written stands.
    """
    nets = check_sweep(networks, batch_sizes, precisions, min_time_s, min_iterations, on_row, engines,
                       rounds, max_cv_pct, out, resume, layers, devices, device)
    timing_cache = check_timing_cache(timing_cache, devices)
    show = progress_wanted(progress, "sweep")
    if devices is not None:
        from .distributed import sweep_distributed
        return sweep_distributed(nets, list(batch_sizes), list(precisions), devices, device, out, resume, layers,
                                 show, on_row, {"min_time_s": float(min_time_s), "min_iterations": int(min_iterations),
                                                "rounds": int(rounds), "max_cv_pct": float(max_cv_pct),
                                                "timing_cache": timing_cache})
    return sweep_local(nets, batch_sizes, precisions, get_device(device), min_time_s, min_iterations, on_row,
                       engines, rounds, max_cv_pct, out, resume, layers, show, timing_cache=timing_cache)


def sweep_local(nets: list, batch_sizes: Sequence[int], precisions: Sequence[str], dev: Any, min_time_s: float,
                min_iterations: int, on_row: Any, engines: dict | None, rounds: int, max_cv_pct: float, out: Any,
                resume: bool, layers: bool, show: bool, run_id: str | None = None, label: str | None = None,
                on_slice: Callable[[], None] | None = None, timing_cache: Any = None) -> Any:
    """The sweep on one device in this process (arguments checked). ``label``: the device the rows name
    (a worker's GPU by its host-wide number); ``run_id``: the distributed sweep's; ``on_slice``: called
    after each timing slice (a worker's progress, reported to the caller's bar); ``timing_cache``: a path
    or TimingCache every build uses."""
    if dev.kind == "cpu":
        dev.apply_threads()
    dataset = out is not None and not os.fspath(out).endswith(".parquet")
    where = identity(dev, label)
    spec = where["device"]
    previous = (_data.read_dataset(os.fspath(out)) if dataset else read_previous_sweep(out)) if resume else None
    if dataset and previous is not None and not len(previous):
        previous = None
    done = set() if previous is None else {_key(*k, dataset) for k in zip(
        previous["model"], previous["device"], previous["precision"], previous["batch_size"].astype(int))}
    prev_layers = None
    if layers and resume:
        prev_layers = _data.read_dataset(os.fspath(out), SWEEP_LAYERS) if dataset else \
            _layers.read_previous_layers(out, done)
    if dataset:
        _data.create_dataset(os.fspath(out))
    builder = Builder(dev)
    cache = as_cache(timing_cache)      # read once here; each build that timed something merges it back
    nvml = where.get("nvml_index")
    if nvml is None and dev.kind == "cuda" and os.environ.get("CUDA_VISIBLE_DEVICES"):
        probe = None        # NVML numbers GPUs its own way: without knowing this one's number, read no clocks
    else:
        probe = _rounds.gpu_probe(dev) if nvml is None or nvml == dev.index else _rounds.gpu_probe(dev, nvml)
    run_id = run_id or uuid.uuid4().hex[:8]
    extra = {k: where[k] for k in where if k in SWEEP.names and k != "device"}
    attrs = {"run_id": run_id, "device": spec, "device_name": dev.name, "max_cv_pct": float(max_cv_pct),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    rows: list = []
    layer_rows: list = []
    add_layers = getattr(on_row, "add_layers", None) if layers else None
    flush = getattr(on_row, "finish", None)     # a sink that draws (a SweepExplorer) draws in the sweep's gaps

    def finish(s: _Slot) -> None:
        row = {**_row(s, run_id, dev, max_cv_pct), "device": spec, **extra}
        mine = _profiled_layers(s, row) if layers else []
        layer_rows.extend(mine)
        rows.append(row)
        if dataset:
            _data.write_config(os.fspath(out), SWEEP.frame([row], attrs), SWEEP_LAYERS.frame(mine, attrs))
        elif out is not None:
            if layers:      # the layers first: a configuration in the sweep file always has its layers
                _write(_layers.sweep_layers_path(out), _combined(SWEEP_LAYERS, prev_layers, layer_rows, attrs))
            _write(os.fspath(out), _combined(SWEEP, previous, rows, attrs))
        if add_layers is not None:
            add_layers(SWEEP_LAYERS.frame(mine, attrs))
        if on_row:
            on_row(row)

    todo = [[_Slot(net, p, int(b)) for p in precisions for b in batch_sizes
             if _key(net.name, spec, p, int(b), dataset) not in done] for net in nets]
    with progress_bar(sum(map(len, todo)) * rounds, "sweep", show) as bar:
        for slots in todo:
            try:
                for s in slots:
                    bar.set_postfix_str(f"building {s.net.name} {s.precision} batch {s.batch}")
                    _build(builder, dev, s, engines, cache)
                live = [s for s in slots if s.error is None]
                bar.update(rounds * (len(slots) - len(live)))
                _host_before(live)
                _rounds.run_rounds(live, rounds, min_time_s, min_iterations, _fail, probe, _ticker(bar, on_slice))
                again = [s for s in live if s.error is None and _summary(s)["latency_cv_pct"] > max_cv_pct]
                for s in again:
                    s.samples, s.gpu, s.host_cpu, s.remeasured = [], [], [], True
                _host_before(again)
                if again:
                    bar.total += rounds * len(again)
                    bar.set_postfix_str(f"re-measuring {len(again)} unstable configuration(s)")
                _rounds.run_rounds(again, rounds, min_time_s, min_iterations, _fail, probe, _ticker(bar, on_slice))
                for s in slots:
                    finish(s)
            finally:
                for s in slots:
                    _release(s, engines)
            if callable(flush):
                flush()
    frame = _combined(SWEEP, previous, rows, attrs)
    frame.attrs["disturbances"] = _rounds.sweep_disturbances(frame, max_cv_pct)
    if layers:
        return frame, _combined(SWEEP_LAYERS, prev_layers, layer_rows, attrs)
    return frame


def _key(model: str, device: str, precision: str, batch: int, dataset: bool) -> tuple:
    """What makes a configuration done for ``resume``: its device in a file, its device's kind in a dataset."""
    return (model, _data.device_kind(device) if dataset else device, precision, int(batch))


def failed_row(model: str, precision: str, batch: int, device: str, error: str, run_id: str, here: bool) -> dict:
    """The row of a configuration that failed before any engine existed (a worker lost, a crash);
    ``here``: it failed in this process (so this host names it), else where is unknown."""
    from types import SimpleNamespace
    s = _Slot(SimpleNamespace(name=model), precision, int(batch), error=error)
    row = _row(s, run_id, SimpleNamespace(kind="none", spec=device), 0.0)
    where = identity(SimpleNamespace(kind="none", spec=device), device) if here else {}
    unknown = {"gpu_name": None, "gpu_uuid": None, "driver_version": None}
    return {**row, **{k: where.get(k, unknown.get(k, "")) for k in _IDENTITY if k in SWEEP.names}}


#: the sweep columns that say where a row was timed (filled when the schema declares them)
_IDENTITY = ("host", "cpu_name", "cpu_cores", "gpu_name", "gpu_uuid", "driver_version", "perfkit_version",
             "library_versions")


def _ticker(bar: Any, on_slice: Callable[[], None] | None = None) -> Callable[[Any], None]:
    def tick(slot: Any) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{slot.net.name} {slot.precision} batch {slot.batch}")
        if on_slice is not None:
            on_slice()
    return tick


def _profiled_layers(s: _Slot, row: dict) -> list:
    """The configuration's ``sweep_layers`` rows (none when it failed). A profiling failure goes into the
    row's ``layers_error``: the configuration's timing stands, only its layer times are missing."""
    if s.error is not None:
        return []
    key = {k: row[k] for k in ("run_id", "model", "device", "precision", "batch_size")}
    try:
        times = _layers.profile_layers(s.context, s.inputs, s.batch)
    except (PerfkitError, MemoryError) as exc:
        row["layers_error"] = f"profiling the layers: {type(exc).__name__}: {exc}"
        return []
    return _layers.layer_rows(times, s.engine.layers, key)


def _fail(slot: _Slot, exc: BaseException) -> None:
    slot.error = f"{type(exc).__name__}: {exc}"


def _build(builder: Builder, dev: Any, s: _Slot, engines: dict | None, cache: Any = None) -> None:
    try:
        s.engine = builder.build(s.net, BuilderConfig(max_batch_size=s.batch, precision=s.precision,
                                                      timing_cache=cache))
        if engines is not None:
            engines[(s.net.name, s.precision, s.batch)] = s.engine
        s.context = s.engine.create_execution_context()
        inputs = sample_input(s.net, s.batch)
        s.inputs = {k: dev.to_device(v) for k, v in inputs.items()} if dev.kind != "cpu" else inputs
        s.context.execute(s.inputs, s.batch)     # first run (lazy set-up) outside every round
    except (PerfkitError, MemoryError) as exc:
        _fail(s, exc)


def _release(s: _Slot, engines: dict | None) -> None:
    if s.context is not None:
        s.context.close()
        s.context = None
    if s.engine is not None and engines is None:
        s.engine.close()                          # frees its device memory now, not at garbage collection
    s.engine = s.inputs = None


def _host_before(slots: list) -> None:
    """Reads the host load once, before the slots' timing rounds, into each slot."""
    if slots:
        host = _rounds.host_load()
        for s in slots:
            s.host = host


def _summary(s: _Slot) -> dict:
    return _rounds.round_summary([float(np.median(a)) for a in s.samples])


def _row(s: _Slot, run_id: str, dev: Any, max_cv_pct: float) -> dict:
    mem = s.engine.memory if s.engine is not None else {"weights": 0, "activations": 0}
    row = {"run_id": run_id, "model": s.net.name, "device": dev.spec, "precision": s.precision,
           "batch_size": s.batch, "device_memory_bytes": s.engine.device_memory_bytes if s.engine is not None else 0,
           "weights_bytes": mem["weights"], "activation_bytes": mem["activations"],
           "build_time_ms": s.engine.build_time_ms if s.engine is not None else math.nan,
           "remeasured": s.remeasured, "threads": dev.threads if dev.kind == "cpu" else 0,
           **(s.host or _rounds.host_load()), **_rounds.host_contention(s.host_cpu), **_rounds.gpu_columns(s.gpu),
           "layers_error": "", "tactics_id": s.engine.tactics_id if s.engine is not None else ""}
    if s.error is not None:
        nan = math.nan
        row.update({"iterations": 0, "latency_mean_ms": nan, "latency_median_ms": nan, "latency_p90_ms": nan,
                    "latency_min_ms": nan, "latency_max_ms": nan, "throughput_per_s": nan, "rounds": 0,
                    "latency_ci_low_ms": nan, "latency_ci_high_ms": nan, "latency_ci_level_pct": nan,
                    "latency_cv_pct": nan,
                    "unstable": False, "error": s.error})
        return row
    pooled = latency_stats(np.concatenate(s.samples), s.batch)
    summary = _summary(s)
    median = summary["latency_median_ms"]
    row.update(pooled)
    row.update(summary)
    row.update({"throughput_per_s": s.batch / median * 1e3 if median > 0 else 0.0,
                "unstable": summary["latency_cv_pct"] > max_cv_pct, "error": ""})
    return row


def _combined(schema: Any, previous: pd.DataFrame | None, rows: list, attrs: dict) -> pd.DataFrame:
    """The rows of this call after those of an earlier one (``resume``), as a ``schema`` frame."""
    frame = schema.frame(rows, attrs)
    if previous is not None and len(previous):
        frame = pd.concat([previous, frame] if len(frame) else [previous], ignore_index=True)
        frame.attrs.update(attrs)
        frame.attrs["schema"] = schema.name
    return frame


def _write(path: str, frame: pd.DataFrame) -> None:
    """The whole frame to ``path`` through a temporary file: an interrupted write leaves the old file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        frame.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
