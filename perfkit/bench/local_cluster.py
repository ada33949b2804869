"""perfkit's own local Dask cluster for ``sweep(..., devices="all" | [...])``: its start (the measuring processes
first, :mod:`.measure_handoff`; the workers spawned, or forked from perfkit's fork server, :mod:`.worker_fork`; Dask's
worker and caller settings that would disturb the timing turned off; the caller's own settings handed back to
the measuring processes) and its close beside the sweep's last steps (:class:`_Closing`). Listens on 127.0.0.1
only. Imported by :mod:`.distributed` where such a cluster starts.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from typing import Any

from ..errors import DeviceError
from . import worker_fork
from .distributed import _import_distributed
from .distributed_host import ENV_CORES
from .sweep_trace import mark


#: Dask settings of perfkit's own workers: a worker's statistical profiler samples every thread's stack every
#: 10 ms and its event loop checks its health every 20 ms, each taking the GIL from the thread that times
#: host-bound configurations (a few tens of microseconds a call); perfkit's workers run no Dask profile.
#: Nor do they poll NVML for Dask's dashboard (its system monitor would query the GPU being timed every few
#: seconds, and initialises NVML as the worker starts): perfkit samples the GPU's clocks itself.
QUIET_WORKER = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s", "distributed.diagnostics.nvml": False}


_UNGUARDED = ("Dask starts its workers by spawning new Python processes, which run the script's top level again "
              "before they work: put the script's sweep under 'if __name__ == \"__main__\":'")


#: this process's environment when perfkit.bench.local_cluster was imported (where /proc/self/environ, the
#: environment the process started with, cannot be read)
_IMPORT_ENV = dict(os.environ)


def _startup_environ() -> dict:
    """The environment this process started with (Linux: /proc/self/environ), else as it was at import."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return _IMPORT_ENV
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


def _caller_settings(workers: list) -> str:
    """JSON for :data:`measure_process.ENV_RESTORE`: for each variable Dask's nanny sets in a worker
    (``distributed.nanny.pre-spawn-environ`` and the hash seed), the caller's own value (or null), less those
    perfkit sets itself for the worker (a CPU worker's threads). Dask also writes its values into the caller's
    environment as it spawns, so a current value equal to Dask's that differs from the one this process
    started with is Dask's, and the starting value is the caller's; any other current value is the caller's
    (set by the user, in the shell or since)."""
    import json

    import dask
    dask_values = {k: str(v) for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}).items()
                   if v is not None}
    dask_values.setdefault("PYTHONHASHSEED", "6640")      # the seed a nanny sets where none is given
    startup = _startup_environ()
    ours = set().union(*(env for _, env in workers)) if workers else set()
    restore = {}
    for name, dasks in sorted(dask_values.items()):
        if name in ours:
            continue
        now = os.environ.get(name)
        restore[name] = startup.get(name) if now == dasks and startup.get(name) != now else now
    return json.dumps(restore)


def _with_restore(workers: list) -> list:
    """``workers`` with the caller's settings (:func:`_caller_settings`) in each environment."""
    from .measure_process import ENV_RESTORE
    restore = {ENV_RESTORE: _caller_settings(workers)}
    return [(label, {**env, **restore}) for label, env in workers]


def start_local_cluster(workers: list) -> tuple:
    """A Dask cluster on 127.0.0.1: a scheduler and one single-threaded worker process per entry of
    ``workers`` ((label, environment)), each started with its environment. Returns (cluster, client)."""
    from . import measure_handoff, measure_process
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise DeviceError(_UNGUARDED + " (this process is such a worker, starting)")
    # each worker's measuring process first: its imports and device overlap this process's import of Dask and the
    # cluster's start (measure_handoff). Before Dask is imported, no nanny of this process can have written Dask's
    # worker settings into its environment: nothing to take back then (and no Dask to ask what they are)
    handoff = None
    if measure_process.ENABLED and measure_handoff.wanted(workers):
        try:
            handoff = measure_handoff.Handoff(_with_restore(workers) if "distributed" in sys.modules else workers)
            mark("measuring processes started", pids=[p.pid for p in handoff.procs])
        except OSError as exc:      # only a head start: the workers start their own children
            logging.getLogger("perfkit").warning("sweep: measuring processes not started before the cluster (%s); "
                                                 "each worker starts its own", exc)
    # the server the workers are forked from, with their modules imported, beside this process's import of Dask
    forked = worker_fork.wanted() and worker_fork.start_server()
    try:
        cluster, dashboard, workers = _start_cluster(workers, handoff, forked)
    except BaseException:
        if handoff is not None:
            handoff.close()
        raise
    try:
        client = _import_distributed("sweep(devices=...)").Client(cluster)
        mark("client connected")
    except BaseException:
        cluster.close()
        raise
    where = ", ".join(f"{label} ({env[ENV_CORES]})" if ENV_CORES in env else label for label, env in workers)
    link = f"dashboard {client.dashboard_link}" if dashboard else "no dashboard (pip install bokeh for Dask's)"
    print(f"perfkit sweep: local Dask cluster on 127.0.0.1, {len(workers)} worker(s): {where}; {link}", flush=True)
    return cluster, client


#: Dask settings of the scheduler and the nannies perfkit's cluster runs in the caller's process, while it is
#: built: their system monitors would poll NVML twice a second for Dask's dashboard, on the first GPU the caller
#: sees (a worker's GPU). Dask decides about NVML once per process: where its monitoring already started in
#: this process (a cluster of the user's), it goes on.
QUIET_CALLER = {"distributed.diagnostics.nvml": False, "distributed.admin.system-monitor.interval": "5s"}


def _start_cluster(workers: list, handoff: Any, forked: bool) -> tuple:
    """(cluster, whether it has a dashboard, ``workers`` with the caller's settings) for start_local_cluster;
    ``forked``: the workers are forked from perfkit's fork server (worker_fork)."""
    import importlib.util
    distributed = _import_distributed("sweep(devices=...)")
    import dask

    from .worker_prepare import PerfkitCluster, PrepareMeasuring
    mark("Dask imported")
    workers = _with_restore(workers)      # with Dask's settings known now, for the workers' own children
    dashboard = importlib.util.find_spec("bokeh") is not None
    scheduler = {"cls": distributed.Scheduler, "options": {"host": "127.0.0.1", "dashboard": dashboard,
                                                           "dashboard_address": "127.0.0.1:0"}}
    # a forked worker starts from the fork server's environment: this process's own, as it is now, comes with it
    caller = worker_fork.worker_environ() if forked else {}
    specs = {f"perfkit-{i}-{label}": {"cls": distributed.Nanny, "options": {
        "host": "127.0.0.1", "nthreads": 1, "env": {**caller, **env, **(handoff.env[i] if handoff else {})},
        "config": QUIET_WORKER, "memory_limit": 0, "dashboard": False,
        "silence_logs": logging.ERROR, "plugins": {PrepareMeasuring()},
        "name": f"perfkit-{i}-{label}"}} for i, (label, env) in enumerate(workers)}
    try:
        with dask.config.set({**QUIET_CALLER, **(worker_fork.CONFIG if forked else {})}):
            cluster = PerfkitCluster(workers=specs, scheduler=scheduler, silence_logs=logging.ERROR,
                                     name="perfkit-sweep")
        cluster.handoff = handoff
        mark("cluster started")
    except Exception as exc:  # ports, process start-up: Dask's own error, named and explained (an interrupt goes on)
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        own = script is not None and os.path.abspath(script).startswith(os.path.abspath(sys.prefix) + os.sep)
        hint = (f"; if {os.path.basename(script)!r} calls sweep at its top level: {_UNGUARDED}"
                if script and not own and "Nanny failed to start" in str(exc) else "")
        raise DeviceError(f"sweep: the local Dask cluster did not start ({type(exc).__name__}: {exc}){hint}; pass a "
                          "dask.distributed.Client of a cluster you started, or sweep without devices=") from exc
    return cluster, dashboard, workers


class _Closing:
    """Closes perfkit's local cluster (and ``client``, connected to it) in a thread from now on; :meth:`join`
    waits for it, and says so where the close failed (its processes may then still hold their devices)."""

    def __init__(self, client: Any, cluster: Any) -> None:
        import threading
        self.client, self.cluster, self.failed = client, cluster, None
        self.thread = threading.Thread(target=self._close, name="perfkit-close-cluster", daemon=True)
        try:
            self.thread.start()
        except RuntimeError:        # no thread to be had: close here and now
            self.thread = None
            self._close()

    def _close(self) -> None:
        try:
            try:
                self.client.close()
            finally:
                self.cluster.close()
        except BaseException as exc:  # noqa: BLE001 - reported by join(), in the sweep's thread
            self.failed = exc
        mark("cluster closed", failed=repr(self.failed) if self.failed else None)

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.failed is not None:
            exc, self.failed = self.failed, None
            logging.getLogger("perfkit").warning("sweep: perfkit's local Dask cluster did not close cleanly (%s: %s); "
                                                 "its worker processes may still hold their devices",
                                                 type(exc).__name__, exc)
