"""perfkit's local Dask workers, forked from a server process that has already imported what a worker needs.

Dask's nanny spawns each worker as a fresh interpreter, which then imports Python's and Dask's modules and
perfkit (pandas, pyarrow, NumPy) before it can register: on two H200s, 2.0-2.9 s from a worker process's
start to its plugin, the largest part of a distributed sweep's start once its measuring processes were
started before the cluster (benchmarks/RESULTS.md, 2026-11-30 10:03-10:22). With Python's ``forkserver``
start method, one server process imports those modules once, and each worker is a fork of it. perfkit starts
that server in a thread as the sweep begins, beside the measuring processes, so its imports overlap this
process's own import of Dask; the server stays for the process's life, so a notebook's later sweeps fork
their workers from it at once.

The server is a fresh interpreter, not a fork of this process: a CUDA context or threads of the caller never
reach the workers; and it imports nothing that starts CUDA (``import perfkit`` loads no GPU library), so each
worker still picks its GPU (``CUDA_VISIBLE_DEVICES``) before any CUDA library loads. Forked workers start from
the server's environment, so each gets this process's current environment from its nanny, as a spawned
worker inherits it.

Linux only (``ENABLED``: None, on Linux; True or False forces it, for tests and A/B runs).
"""
from __future__ import annotations

import multiprocessing
import sys
import threading

#: None: on Linux; True or False: always or never (tests, benchmarks/multi_gpu_sweep.py --fork-control)
ENABLED: bool | None = None

#: what the server imports before it forks a worker: the worker's plugin module brings Dask distributed,
#: NumPy, pandas and perfkit
PRELOAD = ["perfkit.bench.worker_prepare"]


def wanted() -> bool:
    """Whether perfkit's local cluster forks its workers from the server."""
    return ENABLED if ENABLED is not None else sys.platform.startswith("linux")


def start_server() -> threading.Thread:
    """Starts the fork server (once per process; a running one is kept) in a thread, and returns the thread."""
    def start() -> None:
        try:
            from multiprocessing import forkserver
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            forkserver.ensure_running()
        except Exception:  # noqa: BLE001 - the nanny meets the same failure as it starts its worker, and says it
            pass
    thread = threading.Thread(target=start, daemon=True, name="perfkit-fork-server")
    thread.start()
    return thread


#: the Dask setting under which perfkit's nannies fork their workers from the server
CONFIG = {"distributed.worker.multiprocessing-method": "forkserver"}
