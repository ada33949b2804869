"""The process a Dask worker measures in: timings taken away from the worker's event loop.

A Dask worker runs a task in a thread beside its event loop, and the loop wants the GIL for a share of
every second (heartbeats to the scheduler and their serialisation; with Dask's default settings also
its statistical profiler and its memory monitor). While it waits for the GIL, each release of the GIL by
the timed thread (a NumPy pass over more than 500 values, a BLAS or CUDA library call) hands over, and
the timed thread waits to take it back: every call is slower, not a few. Measured on the 2-core dev
machine (benchmarks/worker_overhead.py, benchmarks/RESULTS.md 2026-11-29): the MNIST MLP at batch 1 took
97 µs a call in a plain process, 131-135 µs in the task thread of a worker with Dask's default settings
(a user's own cluster), and 94-99 µs in a child process of that worker. perfkit's own workers (no
profiler, no memory monitor, slow ticks) time their first configuration at full speed and later ones up
to 1.4x slower; in tests/bench/test_distributed.py rows timed in a worker's thread came out 60-100% above
the serial sweep's in 4 of 15 runs. GPU configurations small enough to be host-bound ran 10-47% slower
in workers on two H200s.

So a worker measures in a child process of its own: a plain Python process with no event loop, started
from the worker's thread with the worker's environment (its GPU, its cores, its BLAS threads), kept for
the configurations that follow (imports, the device's context and the BLAS warm-up are paid once), and
connected by a socket pair. The worker sends a configuration, passes each timing slice the child reports
on to the caller's progress bar, and receives the frames. A child that dies ends only the configuration it
was measuring, whose row says so, and the next configuration starts a new child; a child whose worker
died ends within a fraction of a second (it watches its parent). Messages are pickled: both ends are
this process tree, as trusted as Dask's own messages between the worker and its nanny.

Known: on the 2-core dev machine, a child pinned to one core with its worker times a ~40 µs configuration
1-2 µs (3-7%) above a serial sweep in the caller's process, whose cores are otherwise idle; the cause is not
established (the worker's own event loop shares that core).
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Callable

import numpy as np

from ..errors import PerfkitError
from .sweep_trace import as_measuring, mark

#: seconds between a child's checks that the worker that started it is still there
WATCH_S = 0.2

#: seconds a closing worker waits for its child to end before killing it
CLOSE_S = 3

#: False: a worker measures in its task thread, beside its event loop (for comparisons: see
#: benchmarks/worker_overhead.py, which sets it in the workers with ``client.run``)
ENABLED = True


#: the environment variables Dask's nanny set in a worker that perfkit's measuring processes take back from
#: the sweep's caller: JSON {name: the caller's value, or null where it had none}
ENV_RESTORE = "PERFKIT_MEASURE_RESTORE"


def measuring_environ(env: dict) -> dict:
    """``env`` with the variables named in its :data:`ENV_RESTORE` set back to the caller's values.

    Dask's nanny starts each worker with its own settings for dataframe work (``distributed.nanny.
    pre-spawn-environ``: one BLAS/OpenMP thread, ``MALLOC_TRIM_THRESHOLD_=65536``, a fixed hash seed), and
    applies them to the caller's own environment as it spawns. A measuring process that inherited them
    would time builds and host-bound inferences under other threads and another allocator policy than the
    one-process sweep it is compared with; perfkit's own settings (a CPU worker's cores and BLAS threads)
    are not in the map and stay. Only perfkit's local cluster hands the map to its workers: on a user's
    own cluster, the workers' settings are the user's to choose."""
    import json
    out = dict(env)
    try:
        restore = json.loads(out.get(ENV_RESTORE) or "{}")
    except ValueError:
        return out
    for name, value in restore.items() if isinstance(restore, dict) else ():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = str(value)
    return out


class MeasureProcessError(PerfkitError, RuntimeError):
    """The measurement failed in the measuring process (``text``: its own error, type and message), or the
    process ended while measuring. ``interrupted``: it was stopped by an interrupt or a shutdown (SIGINT,
    SIGTERM, SIGHUP), which says nothing of the configuration: it is not a row to keep."""

    def __init__(self, text: str, interrupted: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.interrupted = interrupted

    def __reduce__(self) -> tuple:       # keeps ``interrupted`` through Dask's pickling of task errors
        return (type(self), (self.text, self.interrupted))


#: signals that stop a measuring process without saying anything about the configuration it measured
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Child:
    """One measuring process and the worker's end of its socket."""

    def __init__(self) -> None:
        from multiprocessing.connection import Connection
        mine, theirs = socket.socketpair()
        try:
            # the child imports what this process can (perfkit, and the modules a pickled network refers to), in
            # the caller's environment where Dask's nanny changed it (measuring_environ)
            env = measuring_environ({**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
            self.proc = subprocess.Popen([sys.executable, "-m", "perfkit.bench.measure_process", str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, close_fds=True, env=env)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def measure(self, payload: dict, on_slice: Callable[[], None] | None) -> Any:
        """Sends one configuration; relays its slices to ``on_slice``; returns what the child measured."""
        try:
            self.conn.send(("measure", payload))
            while True:
                kind, value = self.conn.recv()
                if kind == "slice":
                    if on_slice is not None:
                        on_slice()
                elif kind == "done":
                    return value
                else:
                    raise MeasureProcessError(str(value))
        except (EOFError, OSError) as exc:
            self.close()
            raise self._ended(exc) from None

    def _ended(self, exc: BaseException) -> "MeasureProcessError":
        """Why the process ended, from its exit status."""
        code = self.proc.returncode
        if code is not None and -code in STOP_SIGNALS:
            return _stopped(self.proc.pid, signal.Signals(-code).name)
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return _died(self.proc.pid, how, exc)

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        try:            # it ends on the closed socket, after a preparation in progress (seconds at most)
            self.proc.wait(timeout=CLOSE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stopped(pid: int, name: str) -> MeasureProcessError:
    return MeasureProcessError(
        f"the worker's measuring process (pid {pid}) was stopped by {name} (an interrupt or a shutdown): not "
        "measured, and not written; resume=True measures it", interrupted=True)


def _died(pid: int, how: str, exc: BaseException) -> MeasureProcessError:
    return MeasureProcessError(
        f"the worker's measuring process (pid {pid}) {how} while getting ready or measuring "
        f"({type(exc).__name__}); out of host or GPU memory is the usual cause: see the system log")


_lock = threading.Lock()
_child: Child | None = None
_adopting: threading.Thread | None = None


def measure(payload: dict, on_slice: Callable[[], None] | None = None) -> Any:
    """:func:`run` of ``payload`` in this process's measuring child (started on first use, or again after one
    ended). One configuration at a time per worker process."""
    global _child, _adopting
    adopting = _adopting
    if adopting is not None:
        from .measure_handoff import CONNECT_S
        adopting.join(CONNECT_S + 5)    # connecting to the process the caller started for this worker
        _adopting = None                # done, or given up: a late connection is closed (_adopt)
    with _lock:
        if _child is None or not _child.alive():
            _child = Child()
        mark("configuration sent", who="worker")
        return _child.measure(payload, on_slice)


def prestart(device: str) -> None:
    """Gets this worker's measuring process ready before its first configuration. Where the sweep's caller
    started one for this worker before the cluster (:mod:`.measure_handoff`), connects to it in a thread
    (it prepared ``device`` on its own); else starts a child now and has it get ``device`` ready (imports,
    the CUDA context, the BLAS warm-up) while the cluster is still starting."""
    global _adopting
    from . import measure_handoff
    offer = measure_handoff.offered()
    if offer is not None:
        _adopting = threading.Thread(target=_adopt, args=(offer, device), daemon=True, name="perfkit-adopt-child")
        _adopting.start()
        return
    _start(device)


def _start(device: str) -> None:
    global _child
    with _lock:
        if _child is None or not _child.alive():
            _child = Child()
        try:
            _child.conn.send(("prepare", device))
        except OSError:     # a child that died at once: the first configuration starts another and says why
            pass


def _adopt(offer: Any, device: str) -> None:
    """Connects to the offered process; where that fails (it is gone, or another worker process of this
    slot took it before a restart), starts a child of this worker instead."""
    global _child
    from . import measure_handoff
    me = threading.current_thread()
    try:
        got = measure_handoff.connect(offer)
    except Exception:  # noqa: BLE001 - whatever went wrong, the worker's own child measures instead
        got = None
    if got is None:
        mark("measuring process not adopted")
        if _adopting is me:
            _start(device)
        return
    with _lock:
        if _adopting is me and (_child is None or not _child.alive()):
            _child = measure_handoff.Adopted(*got, offer.folder)
            mark("measuring process adopted", measuring_pid=got[1])
            return
    got[0].close()                      # measure() gave up waiting, or a child exists: this one ends


@atexit.register
def _close() -> None:
    global _child
    if _child is not None:
        _child.close()
        _child = None


def run(payload: dict, on_slice: Callable[[], None] | None = None) -> Any:
    """Measures one configuration on this process's device: what ``sweep_local`` returns for it."""
    from ..device import get_device
    from .distributed_host import pin_from_env
    from .sweep import sweep_local
    cores = pin_from_env()
    dev = get_device(payload["device"])
    if dev.kind == "cpu" and cores and dev.threads != len(cores):
        dev.threads = len(cores)
    opts = payload["opts"]
    return sweep_local([payload["net"]], [payload["batch"]], [payload["precision"]], dev, opts["min_time_s"],
                       opts["min_iterations"], None, None, opts["rounds"], opts["max_cv_pct"], None, False,
                       payload["layers"], False, payload["run_id"], payload["label"], on_slice,
                       timing_cache=opts.get("timing_cache"))


def prepare(device: str) -> None:
    """What the first configuration would pay before its build: the measuring modules, the device (its CUDA
    context, or the CPU's BLAS threads), a first small product (cuBLAS's handle) and, on a GPU, the libraries
    the builder's tactics call (:func:`load_gpu_libraries`)."""
    from ..builder import builder  # noqa: F401
    from ..device import get_device
    from . import sweep  # noqa: F401
    from .distributed_host import pin_from_env
    pin_from_env()
    dev = get_device(device)
    xp = dev.xp
    with dev.activate():
        a = xp.ones((64, 64), dtype=np.float32)
        float((a @ a).sum())
        if dev.kind == "cuda":
            load_gpu_libraries()


def load_gpu_libraries() -> None:
    """Loads what a first build on a GPU loads on its way (nvmath's cuBLAS and cuBLASLt, cuDNN's frontend and
    this thread's cuDNN handle, which the builder's convolution tactics reuse): shared libraries of hundreds
    of megabytes, loaded once per process. A library that is missing is left to the build, which leaves its
    tactics out and says so; one that fails to load does not stop the others."""
    from ..ops import cuda_cudnn, cuda_gemm, cuda_lt

    def blas() -> None:
        lib = cuda_gemm._nvmath_cublas()
        if lib is not None:
            lib.destroy(lib.create())

    def cudnn_handle() -> None:
        if cuda_cudnn.unavailable_reason() is None:
            import cudnn
            cuda_cudnn._handle(cudnn)
    for load in (blas, cuda_lt.unavailable_reason, cudnn_handle):
        try:
            load()
        except Exception:  # noqa: BLE001 - the build meets the same failure, drops those tactics and says why
            pass


def _watch_parent(parent: int) -> None:
    import time
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(3)          # the worker is gone: stop measuring at once (nobody will read the result)


class _Lost(Exception):
    """The worker's end of the socket is gone."""


def main(fd: int) -> None:
    """The child: measures each configuration it receives until the worker closes the socket."""
    from multiprocessing.connection import Connection
    # Ctrl-C in a terminal reaches the whole process group: the worker's shutdown ends this process (the closed
    # socket, or the parent watch), so an interrupt here would only add a traceback and fail the configuration
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    as_measuring()
    mark("measuring process running", started_by="worker")
    conn = Connection(fd)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="perfkit-watch-parent").start()
    serve(conn)


def serve(conn: Any) -> None:
    """Measures each configuration ``conn`` sends until its other end closes."""

    def send(kind: str, value: Any) -> None:
        try:
            conn.send((kind, value))
        except (OSError, ValueError) as exc:
            raise _Lost from exc

    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "prepare":
            try:
                prepare(payload)
            except Exception:  # noqa: BLE001 - the first configuration meets the same failure and reports it
                pass
            mark("prepared")
            continue
        try:
            if kind != "measure":
                send("error", f"ProtocolError: unknown request {kind!r}")
                continue
            try:
                mark("configuration received")
                result = run(payload, lambda: send("slice", None))
                mark("configuration done")
            except _Lost:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure goes back as the configuration's error
                send("error", f"{type(exc).__name__}: {exc}")
                continue
            send("done", result)
        except _Lost:
            return


if __name__ == "__main__":
    if sys.argv[1] == "--listen":
        from .measure_handoff import listen_main
        listen_main(sys.argv[2])
    else:
        main(int(sys.argv[1]))
    mark("measuring process exits")
