"""What a sweep knows of the machine it times on, and how a sweep worker keeps to its share of it.

- :func:`identity`: the columns that say where a row was timed (host, CPU, GPU name and UUID, driver,
  library versions), so rows from many machines stay comparable and distinguishable.
- :func:`pin_process`: every thread of this process onto a set of cores (``os.sched_setaffinity`` per
  thread: the call binds one thread, and BLAS pools started earlier would keep their old mask).
- :func:`exclusive`: a host-wide lock per GPU (by UUID) or per core, held while a worker measures, so two
  workers of one host never time on one GPU, or on shared cores, at the same time, whatever their
  cluster's layout (``fcntl.flock`` on files in the temporary folder; released by the kernel if the
  process dies).
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import socket
import sys
import tempfile
from typing import Any, Iterator

#: environment a worker process is started with (by perfkit's local cluster, or by the user's own)
ENV_CORES = "PERFKIT_WORKER_CORES"     # cores to pin to, as ranges: "0-3,8"
ENV_DEVICE = "PERFKIT_WORKER_DEVICE"   # the device the rows name (cuda:1 for the process that sees it as cuda:0)


def core_ranges(cores: Any) -> str:
    """``{0, 1, 2, 5}`` -> ``'0-2,5'``."""
    out: list = []
    for c in sorted(int(c) for c in cores):
        if out and c == out[-1][1] + 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in out)


def parse_cores(text: str) -> set:
    """``'0-2,5'`` -> ``{0, 1, 2, 5}``; ValueError on anything else."""
    cores: set = set()
    for part in str(text).split(","):
        a, _, b = part.strip().partition("-")
        lo, hi = int(a), int(b or a)
        if lo < 0 or hi < lo:
            raise ValueError(f"bad core range {part!r}")
        cores.update(range(lo, hi + 1))
    if not cores:
        raise ValueError("no cores")
    return cores


def usable_cores() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity; every core
        return list(range(os.cpu_count() or 1))


def split_cores(n: int, cores: Any = None) -> list:
    """``cores`` (default: those this process may use) in ``n`` disjoint, contiguous, near-equal sets."""
    cores = sorted(cores if cores is not None else usable_cores())
    size, extra = divmod(len(cores), n)
    out, i = [], 0
    for k in range(n):
        take = size + (1 if k < extra else 0)
        out.append(cores[i:i + take])
        i += take
    return out


def pin_process(cores: Any) -> None:
    """Pins every thread of this process (and so the threads it starts later) to ``cores``."""
    cores = set(cores)
    if not hasattr(os, "sched_setaffinity"):
        return
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        with contextlib.suppress(OSError):   # a thread that ended meanwhile
            os.sched_setaffinity(tid, cores)


def pin_from_env() -> set | None:
    """Pins this process to the cores named in ``PERFKIT_WORKER_CORES`` (if set and not pinned already);
    returns those cores, or None when the variable is not set."""
    text = os.environ.get(ENV_CORES)
    if not text:
        return None
    cores = parse_cores(text)
    if set(usable_cores()) != cores:
        pin_process(cores)
    return cores


@contextlib.contextmanager
def exclusive(dev: Any, uuid: str | None) -> Iterator[None]:
    """Holds the host-wide lock of the GPU ``uuid`` (CUDA), or of every core this process may run on
    (CPU, taken in order so that two workers never wait on each other in a cycle). A GPU whose UUID is
    unknown is named by ``CUDA_VISIBLE_DEVICES`` and its index (never by the cores: GPU workers would
    then wait for each other)."""
    import fcntl
    if getattr(dev, "kind", "cpu") == "cuda":   # without a UUID: the GPU as this process's environment numbers it
        names = [f"gpu-{uuid}" if uuid else
                 f"gpu-visible-{os.environ.get('CUDA_VISIBLE_DEVICES', 'all').replace(',', '_')}-{dev.index}"]
    else:
        names = [f"core-{c}" for c in usable_cores()]
    folder = os.path.join(tempfile.gettempdir(), f"perfkit-{os.getuid() if hasattr(os, 'getuid') else 'u'}-locks")
    os.makedirs(folder, exist_ok=True)
    files = []
    try:
        for n in names:
            f = open(os.path.join(folder, n + ".lock"), "a")
            files.append(f)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        for f in reversed(files):
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


def gpu_identity(dev: Any) -> dict:
    """Name, UUID, driver version and NVML index of a CUDA device (as far as CUDA and NVML tell):
    :meth:`perfkit.device.cuda.CudaDevice.identity`, or the CPU's empty identity."""
    if getattr(dev, "kind", None) == "cuda":
        return dict(dev.identity())
    return {"gpu_name": getattr(dev, "name", None), "gpu_uuid": None, "driver_version": None, "nvml_index": None}


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def library_versions(dev: Any) -> str:
    """'python 3.12.3, numpy 2.3.1, cupy 14.2.0, cuda runtime 12.9, ...' for the libraries timing used."""
    import numpy as np
    found = [("python", platform.python_version()), ("numpy", np.__version__)]
    if getattr(dev, "kind", "cpu") == "cuda":
        cp = sys.modules.get("cupy")
        if cp is not None:
            found.append(("cupy", cp.__version__))
            with contextlib.suppress(Exception):
                rt = cp.cuda.runtime.runtimeGetVersion()
                found.append(("cuda runtime", f"{rt // 1000}.{rt % 1000 // 10}"))
        for mod in ("nvmath", "cudnn"):
            m = sys.modules.get(mod)
            if m is not None and getattr(m, "__version__", None):
                found.append((mod, str(m.__version__)))
    else:
        with contextlib.suppress(Exception):
            from threadpoolctl import threadpool_info
            for lib in threadpool_info():
                if lib.get("user_api") == "blas":
                    found.append((str(lib.get("internal_api")), str(lib.get("version"))))
                    break
    return ", ".join(f"{n} {v}" for n, v in found)


def worker_label(dev: Any) -> str:
    """The device a worker's rows name: the one its local cluster gave it (``PERFKIT_WORKER_DEVICE``), else
    for a GPU its number on the host (NVML's: a process started with ``CUDA_VISIBLE_DEVICES=1`` sees its
    GPU as cuda:0), else the device's spec."""
    label = os.environ.get(ENV_DEVICE)
    if label:
        return label
    if getattr(dev, "kind", "cpu") == "cuda":
        index = gpu_identity(dev)["nvml_index"]
        if index is not None:
            return f"cuda:{index}"
    return dev.spec


def identity(dev: Any, label: str | None = None) -> dict:
    """Where rows timed on ``dev`` come from: the sweep columns (host, cpu_name, cpu_cores, gpu_name,
    gpu_uuid, driver_version, perfkit_version, library_versions), plus ``device`` (``label``, else the
    device's spec) and ``nvml_index``."""
    from .._version import __version__
    gpu = gpu_identity(dev) if getattr(dev, "kind", "cpu") == "cuda" else \
        {"gpu_name": None, "gpu_uuid": None, "driver_version": None, "nvml_index": None}
    return {"device": label or dev.spec, **gpu, "host": socket.gethostname(), "cpu_name": cpu_name(),
            "cpu_cores": core_ranges(usable_cores()), "perfkit_version": __version__,
            "library_versions": library_versions(dev)}
