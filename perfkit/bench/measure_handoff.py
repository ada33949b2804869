"""Measuring processes started by the sweep's caller before its local cluster, each handed to its worker.

A worker's first configuration waited for the worker to start, then for the worker to start its measuring
child (:mod:`.measure_process`), then for the child's imports and device (on two H200s, each GPU's first row
came 5-9.5 s after the call; the child was born 1-2.4 s into its worker's life and took 2.1-2.9 s more to be
ready, benchmarks/RESULTS.md 2026-11-30). perfkit's own cluster therefore starts one measuring process per
worker first, with that worker's environment (its GPU, its cores), so that its imports and device overlap
the start of the scheduler and the workers. Each listens on a Unix socket in a private folder (mode 0700)
and accepts one connection that authenticates with a random key (HMAC, before anything is unpickled); the
worker learns the address, the key and the process id from its environment (readable by the same user
only, as the processes themselves are) and connects as it starts (:func:`measure_process.prestart`). A
process runs in the caller's environment with its worker's settings, without Dask's own worker settings
(:func:`measure_process.measuring_environ`), as a worker's own child does.

A worker that cannot connect (the process is gone, or a worker restarted by its nanny finds it taken)
starts a child of its own, as before. The process is not the worker's child, so the worker cannot read
its exit status: a stop signal (SIGTERM, SIGHUP) leaves a mark in the folder, which keeps an interrupted
configuration out of the dataset as an exit status does for a worker's own child. A process ends when
its worker closes the connection, when the caller ends, or when no worker came within
:data:`ADOPT_WAIT_S`; the caller ends those still running when it closes the cluster.

Used for GPU workers on Linux (:data:`ENABLED`; the liveness checks read ``/proc``): there the measuring
process's start is long (perfkit and CuPy, the CUDA context, cuBLAS, cuBLASLt and cuDNN) and the hosts have
cores to spare. CPU workers start their own
child as before: on the 2-core dev machine, starting the measuring processes beside the scheduler and the
workers delayed a 2-worker CPU sweep's first row (median of 8: 1.83 s against 1.62 s, 2026-11-30).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, NamedTuple

from .measure_process import CLOSE_S, WATCH_S, Child, MeasureProcessError, _died, _stopped
from .sweep_trace import as_measuring, mark

#: None: for GPU workers only; True or False: for every local cluster or none (tests, and A/B comparisons in
#: benchmarks/multi_gpu_sweep.py --handoff-control)
ENABLED: bool | None = None

ENV_ADDRESS = "PERFKIT_MEASURE_ADDRESS"
ENV_KEY = "PERFKIT_MEASURE_KEY"
ENV_PID = "PERFKIT_MEASURE_PID"

#: seconds a process started by the caller waits for its worker before it ends
ADOPT_WAIT_S = 300.0
#: seconds a worker keeps trying to connect while the process is alive but not listening yet (importing)
CONNECT_S = 60.0
#: the file a process writes in its folder once a worker connected (a second worker does not wait for it)
ADOPTED_MARK = "adopted"
#: the file a process writes in its folder when a stop signal ends it
STOPPED_MARK = "stopped"


class Adopted(Child):
    """A measuring process the sweep's caller started before the cluster (this module's), which this
    worker connected to: its imports and device were ready, or getting ready, before the worker was. Not
    this process's child, so its exit status is not ours to read: a stop signal leaves a mark in the
    hand-off's private folder instead."""

    def __init__(self, conn: Any, pid: int, folder: str) -> None:   # noqa: D107 - no Popen: see Child
        self.conn, self._pid, self.folder = conn, pid, folder
        self._closed = False

    @property
    def pid(self) -> int:
        return self._pid

    def alive(self) -> bool:
        return not self._closed and not _gone(self.pid)

    def _ended(self, exc: BaseException) -> MeasureProcessError:
        try:
            with open(os.path.join(self.folder, STOPPED_MARK)) as f:
                return _stopped(self.pid, f.read().strip() or "a signal")
        except OSError:
            return _died(self.pid, "ended", exc)

    def close(self) -> None:
        self._closed = True
        try:
            self.conn.close()
        except OSError:
            pass
        deadline = time.monotonic() + CLOSE_S      # it ends on the closed socket
        while time.monotonic() < deadline and not _gone(self.pid):
            time.sleep(0.02)
        if not _gone(self.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


class Offer(NamedTuple):
    address: str
    key: bytes
    pid: int
    folder: str


def offered() -> Offer | None:
    """The process the caller started for this worker, from the worker's environment (None: none)."""
    try:
        address, key, pid = os.environ[ENV_ADDRESS], bytes.fromhex(os.environ[ENV_KEY]), int(os.environ[ENV_PID])
    except (KeyError, ValueError):
        return None
    return Offer(address, key, pid, os.path.dirname(address))


def connect(offer: Offer, timeout: float = CONNECT_S) -> tuple | None:
    """(connection, pid) of the offered process, or None where it is gone, taken, or does not answer."""
    from multiprocessing.connection import AuthenticationError, Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(offer.pid) or os.path.exists(os.path.join(offer.folder, ADOPTED_MARK)):
            return None
        try:
            conn = Client(offer.address, family="AF_UNIX", authkey=offer.key)
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.02)            # not listening yet: still importing
            continue
        except (AuthenticationError, OSError, EOFError):
            return None
        try:
            conn.send(("worker", os.getpid()))
            kind, pid = conn.recv()                 # the process says who it is
        except (OSError, EOFError, ValueError, TypeError):
            conn.close()
            return None
        if kind != "measuring" or pid != offer.pid:
            conn.close()
            return None
        return conn, pid
    return None


def wanted(workers: list) -> bool:
    """Whether perfkit's local cluster of ``workers`` ((label, environment)) starts their measuring processes."""
    if not workers or not sys.platform.startswith("linux"):
        return False
    return ENABLED if ENABLED is not None else workers[0][0].startswith("cuda")


class Handoff:
    """The measuring processes of one local cluster, started before it: ``env[i]`` is what worker ``i``'s
    environment gets; :meth:`close` ends what is left of them and removes their folders."""

    def __init__(self, workers: list) -> None:
        self.procs: list = []
        self.folders: list = []
        self.env: list = []
        from multiprocessing.spawn import get_executable

        from .measure_process import measuring_environ
        path = os.pathsep.join(p for p in sys.path if p)  # what this process imports, as a worker's child gets
        try:
            for _label, env in workers:
                folder = tempfile.mkdtemp(prefix="perfkit-measure-")      # 0700: this user's only
                self.folders.append(folder)
                address, key = os.path.join(folder, "s"), os.urandom(32)
                child_env = measuring_environ({**os.environ, **env, "PYTHONPATH": path, ENV_KEY: key.hex()})
                # the interpreter Dask starts its workers with (multiprocessing's), so both import alike
                proc = subprocess.Popen([get_executable(), "-m", "perfkit.bench.measure_process", "--listen", address],
                                        env=child_env, stdin=subprocess.DEVNULL, close_fds=True)
                self.procs.append(proc)
                self.env.append({ENV_ADDRESS: address, ENV_KEY: key.hex(), ENV_PID: str(proc.pid)})
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def close(self) -> None:
        """Ends the processes no worker took at once, waits for the others (they end on their worker's
        closed connection), and removes the folders."""
        for proc, folder in zip(self.procs, self.folders):
            if proc.poll() is None and not os.path.exists(os.path.join(folder, ADOPTED_MARK)):
                proc.kill()
        deadline = time.monotonic() + CLOSE_S
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.procs, self.folders = [], []
        atexit.unregister(self.close)


def listen_main(address: str) -> None:
    """The process the caller started: gets its device ready while it waits for its worker, then measures
    what the worker sends until the worker closes the connection."""
    from multiprocessing.connection import Listener

    from .distributed_host import ENV_DEVICE
    from .measure_process import prepare, serve
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # as a worker's own child: its worker's shutdown ends it
    as_measuring()
    mark("measuring process running", started_by="caller")
    folder = os.path.dirname(address)
    key = bytes.fromhex(os.environ.pop(ENV_KEY))

    def stopped(signum: int, frame: Any) -> None:     # the worker cannot read our exit status: say it here
        try:
            with open(os.path.join(folder, STOPPED_MARK), "w") as f:
                f.write(signal.Signals(signum).name)
        finally:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stopped)
    caller = os.getppid()

    def watch_caller() -> None:
        while os.getppid() == caller:
            time.sleep(WATCH_S)
        shutil.rmtree(folder, ignore_errors=True)     # the caller is gone (killed): nobody else removes it
        os._exit(3)
    threading.Thread(target=watch_caller, daemon=True, name="perfkit-watch-caller").start()
    listener = Listener(address, family="AF_UNIX", authkey=key)
    got: dict = {}

    def accept() -> None:
        try:
            got["conn"] = listener.accept()
            mark("worker connected")
            open(os.path.join(folder, ADOPTED_MARK), "w").close()
        except Exception:  # noqa: BLE001 - a failed handshake: the worker starts a child of its own
            pass
        finally:
            listener.close()          # removes the socket: nobody else connects to this process
    waiting = threading.Thread(target=accept, daemon=True, name="perfkit-await-worker")
    waiting.start()
    try:
        prepare("cuda:0" if os.environ.get(ENV_DEVICE, "").startswith("cuda") else "cpu")
    except Exception:  # noqa: BLE001 - the first configuration meets the same failure and reports it
        pass
    mark("prepared")
    waiting.join(ADOPT_WAIT_S)
    conn = got.get("conn")
    if conn is None:
        return
    try:
        kind, worker = conn.recv()
    except (EOFError, OSError, ValueError, TypeError):
        return
    if kind != "worker":
        return
    try:
        conn.send(("measuring", os.getpid()))
    except OSError:
        return
    threading.Thread(target=_watch_worker, args=(int(worker),), daemon=True, name="perfkit-watch-worker").start()
    serve(conn)


def _watch_worker(pid: int) -> None:
    while not _gone(pid):
        time.sleep(WATCH_S)
    os._exit(3)          # the worker is gone: stop measuring at once (nobody will read the result)
