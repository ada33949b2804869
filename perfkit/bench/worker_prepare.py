"""The Dask worker plugin of perfkit's local cluster: each worker gets ready to measure as it starts (on GPUs,
by connecting to the measuring process the caller started for it, :mod:`.measure_handoff`); and the cluster
class that ends those processes when it closes.

A worker's first configuration used to pay, one step after the other, for perfkit's imports and the
device in the worker, then for starting its measuring child (:mod:`.measure_process`), whose imports,
CUDA context and first cuBLAS call came before the first build. Started with the worker, the child gets
its device ready while the cluster is still starting and the configurations are handed out, and the
worker's own device (used to name the GPU and to take its host-wide lock) is made in a thread beside it.
On two H200s the 40-configuration sweep took 46.0 and 52.9 s with it and 52.7 s without (benchmarks/
RESULTS.md, 2026-11-30): within the run-to-run spread, so its gain is not established; it only moves work
that every worker does anyway off the first configuration's path. Imported only where a local cluster
starts (it needs Dask distributed).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from typing import Any

from distributed import SpecCluster, WorkerPlugin

from .sweep_trace import mark

#: the process that imported this module: in a worker forked from perfkit's fork server, the server (worker_fork)
IMPORTED_BY = os.getpid()

# in a worker, as Dask's nanny hands it its spec (before the worker's environment is set): how long its imports took
if getattr(multiprocessing.current_process(), "_inheriting", False):     # a spawned process, unpickling its task
    mark("worker_prepare imported", who="worker")


class PerfkitCluster(SpecCluster):
    """perfkit's local cluster: closing it also ends the measuring processes started for its workers
    before it (:class:`~perfkit.bench.measure_handoff.Handoff`)."""

    handoff: Any = None

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
            if self.handoff is not None:
                import asyncio
                handoff, self.handoff = self.handoff, None
                await asyncio.to_thread(handoff.close)    # waits for processes to end: not on the event loop


class PrepareMeasuring(WorkerPlugin):
    name = "perfkit-prepare-measuring"

    def setup(self, worker: Any) -> None:
        from . import measure_process, worker_fork
        from .distributed import local_device_spec
        worker_fork.drop_unset()        # a forked worker: what its caller dropped since the fork server started
        mark("worker plugin setup", process_started=_started())
        spec = local_device_spec(None)
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C reaches every process of the terminal's group: the caller's interrupt closes the cluster,
            # which ends its workers; their own KeyboardInterrupt would only print Dask's tracebacks
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:            # a failure here would stop the worker from starting: the first configuration retries it
            if measure_process.ENABLED:
                measure_process.prestart(spec)
            threading.Thread(target=_device, args=(spec,), daemon=True, name="perfkit-prepare-device").start()
        except Exception:  # noqa: BLE001 - and reports it as that configuration's error
            pass

    async def teardown(self, worker: Any) -> None:
        """Closes this worker's measuring process as the worker closes (and waits for it to end): a worker
        forked from the fork server ends without running its exit handlers on Python before 3.13."""
        import asyncio

        from . import measure_process
        await asyncio.to_thread(measure_process._close)


def _device(spec: str) -> None:
    try:
        from ..device import get_device
        get_device(spec)
    except Exception:  # noqa: BLE001 - the first configuration meets the same failure and reports it
        pass
    mark("worker device ready")


def _started() -> float | None:
    """When this process started (wall clock, to a clock tick), for the trace: its start after boot from
    ``/proc/self/stat`` against the boot clock (psutil's create_time counts from a boot time rounded to the
    second)."""
    import time
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):   # not Linux: the trace does without it
        return None
