"""Sweeps spread over several GPUs or machines with Dask distributed (``pk.sweep(..., devices=...)``).

perfkit does not schedule: Dask does. Each configuration (network, precision, batch size) is one task,
submitted largest first with that order as its Dask priority (:func:`expected_cost`), so that no large
configuration ends the sweep on one worker while the others wait;
a worker measures it with the ordinary one-device sweep (:func:`perfkit.bench.sweep.sweep_local`, so the
rows are the same as a serial sweep's) in a child process of its own, away from the GIL its event loop
takes (:mod:`perfkit.bench.measure_process`: host-bound configurations ran 35% slower in the worker's
thread), writes its row into the ``out`` dataset
(:mod:`perfkit.bench.sweep_dataset`) and returns it. The caller's process only hands out tasks, draws one
progress bar, and writes the rows of workers that cannot see the dataset folder (another host without a
shared filesystem).

- A local cluster (``devices="all"`` or a list) has one worker process per device with one thread, so a
  worker never times two configurations at once. GPU workers see only their GPU (``CUDA_VISIBLE_DEVICES``,
  set in the process's environment before it starts, so before CUDA initialises); CPU workers are
  pinned to disjoint cores (``PERFKIT_WORKER_CORES``) with their BLAS threads sized to them. Scheduler and
  workers listen on 127.0.0.1 only.
- With a ``Client``, the cluster is used as it is. Workers of one host still never time on one GPU or on
  shared cores at once (a host-wide lock per GPU UUID or per core, :func:`~.distributed_host.exclusive`).
  Start one worker process per GPU (``dask worker --nworkers N`` with ``CUDA_VISIBLE_DEVICES``, or
  dask-cuda's ``LocalCUDACluster``) for every GPU to work in parallel; rows name the GPU by its NVML
  number, name and UUID. CPU workers of one host that were not given disjoint cores (the environment
  variable ``PERFKIT_WORKER_CORES``, e.g. ``0-7`` and ``8-15``) measure one after the other, since they
  would disturb each other's timings. ``out`` must then be a folder every worker can reach (a shared filesystem);
  where a worker cannot, the caller writes its rows.
- A worker that dies loses the configuration it was measuring: Dask gives it to another worker (up to
  ``distributed.scheduler.allowed-failures`` times, then it is a row whose error says so). A
  configuration's file name does not depend on its worker, and a worker looks for it before measuring,
  so a retried configuration is never written twice.

Security: Dask's protocol unpickles the messages it receives, so anyone who can reach a scheduler or a
worker can run code there. perfkit's local cluster listens on 127.0.0.1 only; a remote cluster is the
user's explicit choice, and must stay inside a trusted network, with TLS (``distributed.security``)
where its traffic leaves one.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import uuid
from typing import Any

from ..errors import ArgumentError, DeviceError, PerfkitError
from .distributed_host import ENV_CORES, ENV_DEVICE, core_ranges, split_cores, usable_cores
from .sweep_trace import mark


class ClusterDependencyError(PerfkitError, ImportError):
    """Dask distributed is not installed (``pip install 'perfkit[cluster]'``)."""


def require_dask(what: str, dataframe: bool = False) -> None:
    """Refuses ``what`` where Dask distributed (and with ``dataframe``, dask.dataframe) is not installed.
    A sweep only looks for the package: importing Dask (about a second on a first call, longer where its
    bytecode is not compiled yet) then overlaps the start of the measuring processes
    (:func:`.local_cluster.start_local_cluster`)."""
    import importlib.util
    try:
        if dataframe:
            import dask.dataframe  # noqa: F401
        if importlib.util.find_spec("distributed") is None:
            raise ImportError("No module named 'distributed'")
    except ImportError as exc:
        raise ClusterDependencyError(f"{what} needs Dask distributed ({exc}): pip install 'perfkit[cluster]'") from None


def _import_distributed(what: str) -> Any:
    """Dask distributed, imported; an installation that fails to import is the extra's error."""
    try:
        import distributed
    except ImportError as exc:
        raise ClusterDependencyError(f"{what} needs Dask distributed ({exc}): pip install 'perfkit[cluster]'") from None
    return distributed


def is_client(x: Any) -> bool:
    mod = sys.modules.get("distributed")
    return mod is not None and isinstance(x, mod.Client)


_SPEC = re.compile(r"cpu|cuda(:\d+)?")


def check_devices(devices: Any, device: Any) -> None:
    """Checks ``sweep``'s ``devices`` (and ``device`` beside it) before anything starts."""
    if is_client(devices):
        if device is not None and not (isinstance(device, str) and
                                       (_SPEC.fullmatch(device.strip().lower()) or device.strip().lower() == "auto")):
            raise ArgumentError(f"sweep: with a Client, device names the device each worker times on ('cpu', 'cuda', "
                                f"'cuda:N' or None for its first GPU, else its CPU), not {device!r}")
        return
    resolve_devices(devices)
    if device is not None:
        raise ArgumentError("sweep: device= names the device of a one-process sweep; with devices= each worker has "
                            "its own device. Leave device=None")
    require_dask("sweep(devices=...)")


def resolve_devices(devices: Any) -> list:
    """The local cluster's workers for ``"all"`` or a list of specs: [(label, environment)], one per worker."""
    from ..device.cuda import cuda_device_count
    bad = ArgumentError(f"sweep: devices must be 'all', a non-empty list of device specs such as ['cuda:0', "
                        f"'cuda:1'] or ['cpu', 'cpu'], or a dask.distributed.Client, not {devices!r:.80}")
    if isinstance(devices, str):
        if devices.strip().lower() != "all":
            raise bad
        gpus = cuda_device_count()
        specs = [f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"] * len(usable_cores())
    elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, str) for d in devices):
        specs = [d.strip().lower() for d in devices]
        specs = ["cuda:0" if s == "cuda" else s for s in specs]
        if not all(_SPEC.fullmatch(s) for s in specs):
            raise bad
    else:
        raise bad
    kinds = {s.split(":")[0] for s in specs}
    if len(kinds) > 1:
        raise ArgumentError(f"sweep: devices mixes GPUs and the CPU ({specs}); a sweep measures each configuration "
                            "once, on one kind of device: sweep each kind separately and compare them")
    if kinds == {"cuda"}:
        if len(set(specs)) != len(specs):
            raise ArgumentError(f"sweep: devices names a GPU twice ({specs}); one worker per GPU, so that no two "
                                "measurements share a GPU")
        gpus = cuda_device_count()
        missing = [s for s in specs if int(s.split(":")[1]) >= gpus]
        if missing and not gpus:
            raise DeviceError(f"sweep: devices {missing} do not exist: this machine has no visible GPU (CuPy finds "
                              "none: on a GPU machine install the extra matching its driver, perfkit[cuda12] or "
                              "perfkit[cuda13]); on the CPU use devices='all' or a list such as ['cpu', 'cpu']")
        if missing:
            raise DeviceError(f"sweep: devices {missing} do not exist: this machine has {gpus} visible GPU(s); "
                              f"use devices='all' or cuda:0 .. cuda:{gpus - 1}")
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        return [(s, {"CUDA_VISIBLE_DEVICES": visible[int(s[5:])] if visible else s[5:], ENV_DEVICE: s})
                for s in specs]
    cores = usable_cores()
    if len(specs) > len(cores):
        raise ArgumentError(f"sweep: devices asks for {len(specs)} CPU workers but this process may use {len(cores)} "
                            "core(s); at most one worker per core")
    out = []
    for part in split_cores(len(specs), cores):
        n = str(len(part))
        out.append(("cpu", {ENV_CORES: core_ranges(part), ENV_DEVICE: "cpu", "OMP_NUM_THREADS": n,
                            "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "BLIS_NUM_THREADS": n}))
    return out


#: times a configuration whose measuring process was stopped by an interrupt or a shutdown (its worker
#: preempted or scaled down) is tried again; a task raises only then (every other failure is its row)
INTERRUPT_RETRIES = 2

def sweep_distributed(nets: list, batch_sizes: list, precisions: list, devices: Any, device: Any, out: Any,
                      resume: bool, layers: bool, show: bool, on_row: Any, opts: dict) -> Any:
    """``sweep(..., devices=...)`` (arguments checked): see the module's description."""
    from ..frames.schemas import SWEEP, SWEEP_LAYERS
    from . import sweep_dataset as data
    from .rounds import sweep_disturbances
    from .local_cluster import _Closing, start_local_cluster
    from .sweep import _combined
    require_dask("sweep(devices=...)")
    mark("sweep called")
    target = os.fspath(out) if out is not None else None
    previous = prev_layers = None
    if resume and target is not None and data.is_sweep_dataset(target):
        previous = data.read_dataset(target)
        prev_layers = data.read_dataset(target, SWEEP_LAYERS) if layers else None
    run_id = uuid.uuid4().hex[:8]

    def remaining(kind: str) -> list:
        done = set() if previous is None else {(m, data.device_kind(d), p, int(b)) for m, d, p, b in zip(
            previous["model"], previous["device"], previous["precision"], previous["batch_size"])}
        return [(i, p, int(b)) for i, net in enumerate(nets) for p in precisions for b in batch_sizes
                if (net.name, kind, p, int(b)) not in done]
    workers = None if is_client(devices) else resolve_devices(devices)
    cluster = client = None
    todo: list = []
    if workers is None:
        client = devices
    else:           # perfkit's own cluster: started only when something is left to measure
        kind = "cuda" if workers[0][0].startswith("cuda") else "cpu"
        todo = remaining(kind)
        if todo:
            cluster, client = start_local_cluster(workers)
    rows: list = []
    layer_rows: list = []
    futures: dict = {}
    order: dict = {}
    collected = False
    try:
        if workers is None:
            kind = _cluster_kind(client, device)
            todo = remaining(kind)
        # after the cluster's start: a start that fails leaves no dataset behind to block the next attempt
        token = data.create_dataset(target) if target is not None else None
        if not todo:
            print(f"perfkit sweep: nothing to measure: every configuration asked for is in {target!r} already",
                  flush=True)
        order = {(nets[i].name, p, b): n for n, (i, p, b) in enumerate(todo)}
        shipped = [client.scatter(net, broadcast=True, hash=False) for net in nets] if todo else []
        mark("networks scattered")
        for rank, (i, p, b) in enumerate(largest_first(nets, todo)):
            f = client.submit(run_config, shipped[i], p, b, opts, target, token, run_id, device, layers, pure=False,
                              key=f"perfkit-sweep-{run_id}-{i}-{p}-b{b}", priority=len(todo) - rank,
                              retries=INTERRUPT_RETRIES)
            futures[f] = (nets[i].name, p, b)
        mark("tasks submitted", n=len(futures))
        try:
            if futures:
                _collect(client, futures, target, run_id, kind, show, on_row, layers, rows, layer_rows,
                         opts["rounds"])
        except KeyboardInterrupt:
            where = f"are in {target!r}: run the same sweep with resume=True to measure the rest" if target else \
                "were measured (no out=, so nothing was kept)"
            print(f"perfkit sweep interrupted: at least {len(rows)} of {len(futures)} configurations {where}",
                  file=sys.stderr, flush=True)
            raise
        collected = True
    finally:
        mark("collection ended", complete=collected)
        try:
            for f in futures:
                f.release()
        finally:
            # perfkit's own cluster closes (its processes end, the GPUs are free) while the frame is assembled;
            # where the sweep failed, before the error goes on
            closing = _Closing(client, cluster) if cluster is not None else None
            if closing is not None and not collected:
                closing.join()
    try:
        rows.sort(key=lambda r: order.get((r["model"], r["precision"], int(r["batch_size"])), len(order)))
        attrs = {"run_id": run_id, "device": kind, "device_name": kind, "max_cv_pct": opts["max_cv_pct"],
                 "devices": "client" if workers is None else "local cluster"}
        frame = _combined(SWEEP, previous, rows, attrs)
        attrs.update(data.devices_named(frame))             # GPU or CPU names, as load_sweep gives them
        frame.attrs.update(attrs)
        frame.attrs["disturbances"] = sweep_disturbances(frame, opts["max_cv_pct"])
        result = (frame, _combined(SWEEP_LAYERS, prev_layers, layer_rows, attrs)) if layers else frame
    finally:
        if closing is not None:
            closing.join()
    mark("sweep returns")
    return result


def _cluster_kind(client: Any, device: Any) -> str:
    """The kind of device the cluster's workers time on (``cuda`` or ``cpu``), asked of the workers
    where ``device`` does not say; a cluster of both kinds is refused."""
    spec = str(device or "auto").strip().lower()
    if spec != "auto":
        return spec.split(":")[0]
    try:
        kinds = set(client.run(_worker_kind).values())
    except Exception as exc:  # a worker without perfkit (or a dead scheduler): say what the workers need
        raise DeviceError(f"sweep: the cluster's workers could not run perfkit ({type(exc).__name__}: {exc}); every "
                          "worker needs perfkit installed (pip install 'perfkit[cluster]') and the scheduler must "
                          "be reachable") from None
    if not kinds:
        raise DeviceError("sweep: the Dask cluster has no workers; start some (or wait for them) and sweep again")
    if len(kinds) > 1:
        raise DeviceError("sweep: some of the cluster's workers have a GPU and some do not; pass device='cuda' or "
                          "device='cpu' so that every configuration is timed on one kind of device")
    return kinds.pop()


def _worker_kind() -> str:
    label = os.environ.get(ENV_DEVICE)
    if label:
        return label.split(":")[0]
    from ..device import cuda_available
    return "cuda" if cuda_available() else "cpu"


def expected_cost(net: Any, precision: str, batch: int) -> float:
    """A configuration's expected share of a sweep's time, to hand out the largest first (only the order
    counts). Measured on an H200 (benchmarks/RESULTS.md, 2026-11-30), a configuration's time is mostly its
    build, whose tactic timing grows with the layers and the batch, and which times every layer twice when
    a reduced precision is allowed (at batch 256, fp16 builds of the 50-layer samples took 0.6-2.9 s and
    fp32 ones 0.1-0.7 s; 12-14 s and 0.1-0.7 s while timing inputs were drawn on the host), plus the fixed
    timing slices."""
    return len(net.layers) * (int(batch) + 8) * (1 if precision == "fp32" else 8)


def largest_first(nets: list, todo: list) -> list:
    """``todo`` ((network index, precision, batch) each) by :func:`expected_cost`, largest first (a stable
    sort: equal costs keep the sweep's order). Submitted in the sweep's order, the largest configurations
    came last and ended a sweep on one of two H200s 6.3 s after the other; sorted, the sweep took 44.8-52.9 s
    of an 85 s one-GPU sweep in four runs (benchmarks/RESULTS.md, 2026-11-30)."""
    return sorted(todo, key=lambda t: expected_cost(nets[t[0]], t[1], t[2]), reverse=True)


def _collect(client: Any, futures: dict, target: str | None, run_id: str, kind: str, show: bool, on_row: Any,
             layers: bool, rows: list, layer_rows: list, rounds: int) -> None:
    """Takes each configuration's result as it comes, writes what its worker could not, and hands the rows
    to ``on_row``. One progress bar for the cluster, a step per timing slice: workers report their slices
    as Dask events (topic ``perfkit-sweep-<run_id>``); a configuration's steps are topped up when its
    result comes, and a retried one does not count its slices twice."""
    import threading

    from ..builder.tactics_progress import progress_bar
    add_layers = getattr(on_row, "add_layers", None) if layers else None
    flush = getattr(on_row, "finish", None)
    steps: dict = {}
    lock = threading.Lock()

    def advance(key: tuple, n: int | None) -> None:       # n None: the configuration is done
        with lock:
            had = steps.get(key, 0)
            steps[key] = rounds if n is None else min(rounds, had + n)
            bar.update(steps[key] - had)

    def on_event(event: Any) -> None:
        try:
            model, p, b = event[1]
            advance((str(model), str(p), int(b)), 1)
        except Exception:  # noqa: BLE001 - a malformed event must not break the client's event loop
            pass
    topic = f"perfkit-sweep-{run_id}"
    with progress_bar(len(futures) * rounds, "sweep", show) as bar:
        if show:
            client.subscribe_topic(topic, on_event)
        try:
            _each_result(futures, target, run_id, kind, on_row, rows, layer_rows, bar, advance, add_layers, flush)
        finally:
            if show:
                client.unsubscribe_topic(topic)


def _each_result(futures: dict, target: str | None, run_id: str, kind: str, on_row: Any, rows: list,
                 layer_rows: list, bar: Any, advance: Any, add_layers: Any, flush: Any) -> None:
    """Each configuration's result as it completes: rows written where the worker could not, handed on."""
    import pandas as pd
    from distributed import as_completed

    from ..frames.schemas import SWEEP, SWEEP_LAYERS
    from . import sweep_dataset as data
    from .sweep import failed_row
    for f in as_completed(list(futures)):
        model, p, b = futures[f]
        keep = True
        try:
            res = f.result()
        except Exception as exc:   # the configuration killed its workers, or the cluster lost it
            why = f"{type(exc).__name__}: {exc}"
            if type(exc).__name__ == "KilledWorker":
                why = (f"{why} (the worker measuring it died each time it was tried; see its worker's log, "
                       "e.g. out of host memory)")
            keep = not getattr(exc, "interrupted", False)      # interrupted: in the frame, not in the dataset
            res = {"rows": [failed_row(model, p, b, kind, why, run_id, here=False)], "layers": [], "written": False}
        if keep and not res["written"] and target is not None:
            res["rows"], mine = data.write_config(target, SWEEP.frame(res["rows"]),
                                                  SWEEP_LAYERS.frame(res["layers"]) if res["layers"] else None)
            res["layers"] = res["layers"] if mine else []
        layer_rows.extend(res["layers"])
        if add_layers is not None:
            add_layers(SWEEP_LAYERS.frame(res["layers"]))
        for row in res["rows"]:
            rows.append(row)
            if on_row:
                on_row({k: (None if v is pd.NA else v) for k, v in row.items()})
        if callable(flush):
            flush()
        advance((model, p, b), None)
        bar.set_postfix_str(f"{model} {p} batch {b} on {res['rows'][0]['device']}")


def _reporter(run_id: str, key: list) -> Any:
    """A function telling the caller's progress bar that this worker timed one more slice of ``key`` (a
    Dask event, sent between slices, batched with the worker's other messages); None outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    topic = f"perfkit-sweep-{run_id}"
    return lambda: worker.log_event(topic, key)


@functools.lru_cache(maxsize=None)
def _gpu_uuid(spec: str) -> str | None:
    from ..device import get_device
    from .distributed_host import gpu_identity
    return gpu_identity(get_device(spec))["gpu_uuid"]


def local_device_spec(device: Any) -> Any:
    """The device this worker measures on: its own GPU (``cuda:0``, the only one it sees) or the CPU in
    perfkit's local cluster, else ``device`` as the sweep was given it."""
    label = os.environ.get(ENV_DEVICE)
    return ("cuda:0" if label.startswith("cuda") else "cpu") if label else device


def run_config(net: Any, precision: str, batch: int, opts: dict, out: str | None, token: str | None, run_id: str,
               device: Any, layers: bool) -> dict:
    """A worker's task: one configuration measured on this worker's device, written into the dataset
    ``out`` when this worker sees it (its token matches), and returned: {"rows", "layers", "written"}.
    Anything that goes wrong is the configuration's row, with its error."""
    from ..device import get_device
    from ..frames.schemas import SWEEP
    from . import measure_process
    from . import sweep_dataset as data
    from .distributed_host import exclusive, pin_from_env, worker_label
    from .sweep import failed_row, sweep_local
    mark("task started", who="worker", config=f"{net.name} {precision} b{batch}")
    label = os.environ.get(ENV_DEVICE)
    local = local_device_spec(device)
    visible = out is not None and data.is_sweep_dataset(out) and data.dataset_token(out) == token
    try:
        cores = pin_from_env()
        dev = get_device(local)
        label = worker_label(dev)
        if dev.kind == "cpu" and cores and dev.threads != len(cores):
            dev.threads = len(cores)
        if visible:
            found = data.find_config(out, net.name, dev.kind, precision, batch)
            if found is not None:     # a worker that died after writing it: the row (and its layers) stand
                return {"rows": data.read_config(found),
                        "layers": data.read_config_layers(out, found) if layers else [], "written": True}
        uuid_ = _gpu_uuid(dev.spec) if dev.kind == "cuda" else None
        report = _reporter(run_id, [net.name, precision, int(batch)])
        payload = {"net": net, "batch": int(batch), "precision": precision, "device": local, "opts": opts,
                   "layers": layers, "run_id": run_id, "label": label}
        with exclusive(dev, uuid_):
            if report is not None and measure_process.ENABLED:   # in a Dask worker: in its child, away from its loop
                got = measure_process.measure(payload, report)
                mark("configuration measured", who="worker")
            else:
                got = sweep_local([net], [batch], [precision], dev, opts["min_time_s"], opts["min_iterations"], None,
                                  None, opts["rounds"], opts["max_cv_pct"], None, False, layers, False, run_id, label,
                                  timing_cache=opts.get("timing_cache"))
        frame, lay = got if layers else (got, None)
    except Exception as exc:  # noqa: BLE001 - a worker returns every failure as the configuration's row
        if getattr(exc, "interrupted", False):
            raise           # an interrupt or a shutdown: no row in the dataset, so that resume measures it
        why = exc.text if isinstance(exc, measure_process.MeasureProcessError) else f"{type(exc).__name__}: {exc}"
        frame = SWEEP.frame([failed_row(net.name, precision, batch, label or str(device or "?"), why, run_id,
                                        here=True)])
        lay = None
    if not visible:
        return {"rows": frame.to_dict("records"), "layers": [] if lay is None else lay.to_dict("records"),
                "written": False}
    rows, mine = data.write_config(out, frame, lay)
    mark("row written", who="worker")
    if mine or not layers:
        return {"rows": rows, "layers": lay.to_dict("records") if mine and lay is not None else [], "written": True}
    found = data.find_config(out, net.name, data.device_kind(str(rows[0]["device"])), precision, batch)
    return {"rows": rows, "layers": data.read_config_layers(out, found) if found else [], "written": True}
