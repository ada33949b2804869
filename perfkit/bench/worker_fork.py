"""perfkit's local Dask workers, forked from a server process that has already imported what a worker needs.

Dask's nanny spawns each worker as a fresh interpreter, which then imports Python's and Dask's modules and
perfkit (pandas, pyarrow, NumPy) before it can register: on two H200s, 2.0-2.9 s from a worker process's
start to its plugin, the largest part of a distributed sweep's start once its measuring processes were
started before the cluster (benchmarks/RESULTS.md, 2026-11-30 10:03-10:22). With Python's ``forkserver``
start method, one server process imports those modules once, and each worker is a fork of it. perfkit starts
that server as the sweep begins, beside the measuring processes, so its imports overlap this process's own
import of Dask; the server stays for the process's life, so later sweeps fork their workers from it at once
(on the 2-core dev machine, a second sweep's first row came after 0.89-0.91 s instead of 1.58-1.60 s).

The server is a fresh interpreter, not a fork of this process: a CUDA context or threads of the caller never
reach the workers; and it imports nothing that starts CUDA (``import perfkit`` loads no GPU library), so each
worker still picks its GPU (``CUDA_VISIBLE_DEVICES``) before any CUDA library loads. A forked worker starts
from the server's environment: its nanny hands it this process's current environment, and the names this
process has dropped since the server started are dropped in the worker as it sets up (:data:`ENV_UNSET`).

**Off by default** (:data:`ENABLED`): on two H200s (``benchmarks/RESULTS.md``, 2026-11-30 12:20 and 12:44) forked
workers brought the last GPU's first row earlier (4.05 against 4.91 s, then 3.60 against 3.78 s after the call) but
not the end of the sweep (39.8 against 39.4 s, then 36.9 against 36.0 s), which the work sets; the server is one
more process to keep. The server keeps the perfkit it imported:
where perfkit's modules changed since (an edited or reinstalled perfkit in a notebook), the next sweep starts
the server afresh. Before Python 3.12.8 the server imports from its own path, not from this process's
``sys.path`` (cpython gh-117378): a perfkit found only through a ``sys.path`` entry added at run time is not
the one the workers import. It is used only on Linux, from Python 3.10.9 (an older fork server's socket was open
to other local users), where this process has not started a fork server of its own for something else
(one without perfkit's modules, perhaps with the caller's script run in it). A restarted worker is spawned.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys

#: False (the default): Dask's nanny spawns its workers; True: perfkit's local cluster forks them from the
#: server where it can (:func:`wanted`); tests and benchmarks/multi_gpu_sweep.py --fork-control set it
ENABLED: bool = False

#: what the server imports before it forks a worker: the worker's plugin module brings Dask distributed,
#: NumPy, pandas and perfkit
PRELOAD = ["perfkit.bench.worker_prepare"]

#: the Dask setting under which perfkit's nannies fork their workers from the server
CONFIG = {"distributed.worker.multiprocessing-method": "forkserver"}

#: the variable naming (JSON) what the worker drops from the environment it inherited from the server
ENV_UNSET = "PERFKIT_WORKER_UNSET"

_server_pid: int | None = None        # the fork server perfkit started in this process
_server_environ: dict = {}            # this process's environment as that server started with it
_server_code: tuple = ()              # perfkit's code as that server imported it (_fingerprint)


def wanted() -> bool:
    """Whether perfkit's local cluster forks its workers from the server (starting it if it is not running)."""
    if not ENABLED or not sys.platform.startswith("linux") or sys.version_info < (3, 10, 9):
        return False
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    running = _running_pid()
    return running is None or running == _server_pid


def _running_pid() -> int | None:
    from multiprocessing import forkserver
    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def _fingerprint() -> tuple:
    """perfkit's package folder and the newest modification time of its modules: what the server imported."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))       # perfkit/, holding bench/
    newest = 0.0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                try:
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
                except OSError:
                    pass
    return root, newest


def start_server() -> bool:
    """Starts the fork server with the workers' modules to import. A server perfkit started is kept while
    perfkit's code is the one it imported; where that code changed (an edited or reinstalled perfkit in a
    notebook), the server is started afresh. False where it could not: the nanny then spawns the workers."""
    global _server_pid, _server_environ, _server_code
    from multiprocessing import forkserver
    code = _fingerprint()
    if _server_pid is not None and _running_pid() == _server_pid:
        if code == _server_code:
            return True
        stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
        if stop is None:
            logging.getLogger("perfkit").warning("sweep: perfkit changed since its fork server started; Dask's nanny "
                                                 "spawns the workers (restart the kernel to fork them again)")
            return False
        logging.getLogger("perfkit").info("sweep: perfkit changed since its fork server started: starting it afresh")
        try:
            stop()
        except Exception:  # noqa: BLE001 - ensure_running below starts another, or says why not
            pass
    try:
        multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
        environ = dict(os.environ)
        forkserver.ensure_running()         # starts the server (its imports run in it, after this returns)
    except Exception as exc:  # noqa: BLE001 - the workers are spawned instead
        logging.getLogger("perfkit").warning("sweep: no fork server for the workers (%s: %s); Dask's nanny spawns "
                                             "them", type(exc).__name__, exc)
        return False
    _server_pid, _server_environ, _server_code = _running_pid(), environ, code
    return _server_pid is not None


def worker_environ() -> dict:
    """What each forked worker's nanny hands it: this process's current environment, and the names dropped
    from it since the server started (:data:`ENV_UNSET`)."""
    import json
    gone = sorted(set(_server_environ) - set(os.environ))
    return {**os.environ, ENV_UNSET: json.dumps(gone)}


def drop_unset() -> None:
    """In a forked worker: drops what its caller no longer has (:func:`worker_environ`)."""
    import json
    try:
        names = json.loads(os.environ.pop(ENV_UNSET, "[]"))
    except ValueError:
        return
    for name in names if isinstance(names, list) else ():
        os.environ.pop(str(name), None)
