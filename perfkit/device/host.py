"""The host the CPU device computes on: its cores, load average, the cores other processes keep busy
(from /proc/stat, less this process's own CPU time), and the process's BLAS thread pools.

:class:`~perfkit.device.cpu.CpuDevice` sizes its BLAS threads from these; sweeps, ``measure()`` and
profile runs record them, so a figure says whether other work shared the machine while it was taken.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any, NamedTuple


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    import os
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: environment variables that set BLAS threads, in the order the libraries prefer them (OpenBLAS, MKL and
#: BLIS read their own before the OpenMP one)
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS")


def env_threads() -> int | None:
    """The BLAS threads the user asked for in the environment (the first of :data:`THREAD_ENV` holding
    a positive count; OMP_NUM_THREADS's nested form ``4,2`` gives 4), None when none is set."""
    import os
    for name in THREAD_ENV:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def host_load() -> dict:
    """The 1-minute load average (NaN where the OS has none) and the CPU cores this process may use."""
    import math
    import os
    try:
        load = float(os.getloadavg()[0])
    except (AttributeError, OSError):
        load = math.nan
    return {"host_load_1m": load, "host_cpus": available_cores()}


class CpuSnapshot(NamedTuple):
    """Where the CPU time stood at one moment (:func:`cpu_snapshot`): ``wall_s`` (``perf_counter``),
    ``machine_busy_s`` (CPU seconds every process spent on the cores this process may run on, from
    /proc/stat: total less idle and iowait; NaN where there is no /proc/stat) and ``own_s`` (this
    process's user + system CPU seconds, all its threads, children excluded)."""

    wall_s: float
    machine_busy_s: float
    own_s: float


def _cpu_ticks(cores: frozenset) -> float:
    """Busy clock ticks of ``cores`` summed from /proc/stat's per-core lines (NaN without /proc/stat)."""
    busy = 0
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if not line.startswith(b"cpu"):
                    break
                name, *fields = line.split()
                if name[3:].isdigit() and int(name[3:]) in cores:
                    ticks = [int(x) for x in fields[:8]]    # user nice system idle iowait irq softirq steal
                    busy += sum(ticks) - ticks[3] - ticks[4]
    except (OSError, ValueError, IndexError):
        return math.nan
    return float(busy)


#: the shortest span (in clock ticks) over which other processes' busy cores are told
MIN_SPAN_TICKS = 5
_TICK_S: list = []


def _tick_s() -> float:
    """Seconds per /proc/stat clock tick (``SC_CLK_TCK``; 0.01 where the OS does not say)."""
    if not _TICK_S:
        import os
        try:
            _TICK_S.append(1.0 / os.sysconf("SC_CLK_TCK"))
        except (AttributeError, ValueError, OSError):
            _TICK_S.append(0.01)
    return _TICK_S[0]


def cpu_snapshot() -> CpuSnapshot:
    """A :class:`CpuSnapshot` of now (about 17 µs on a 2-core Linux machine: one pass over /proc/stat).
    Two of them give :func:`other_busy_cores`."""
    import os
    try:
        cores = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = frozenset(range(available_cores()))
    wall, own = time.perf_counter(), time.process_time()
    return CpuSnapshot(wall, _cpu_ticks(cores) * _tick_s(), own)


def other_busy_cores(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Cores that OTHER processes kept busy, on average, between snapshots ``a`` and ``b`` (the machine's
    busy CPU time on this process's cores less this process's own, over the wall time between them; never
    below 0). NaN where unknown (no /proc/stat, or no time between them). The 1-minute load average
    cannot tell this: it counts perfkit's own threads too."""
    return other_busy_cores_over([(a, b)])


def other_busy_cores_over(intervals: Any) -> float:
    """:func:`other_busy_cores` over several ``(a, b)`` snapshot pairs (a row's timing slices), weighted
    by their wall time; NaN when there are none, /proc/stat is absent, or they span less than
    ``MIN_SPAN_TICKS`` clock ticks in all (/proc/stat counts whole ticks, 10 ms each on most Linux
    systems: a shorter span would read one tick as many busy cores)."""
    other = wall = 0.0
    for a, b in intervals:
        other += (b.machine_busy_s - a.machine_busy_s) - (b.own_s - a.own_s)
        wall += b.wall_s - a.wall_s
    if not wall >= MIN_SPAN_TICKS * _tick_s() or math.isnan(other):
        return math.nan
    return max(0.0, other / wall)


#: how long the default-thread probe watches the machine (s), and how long its answer is reused (s)
PROBE_S = 0.1
PROBE_REUSE_S = 10.0
_probe_cache: list = []         # [(perf_counter when taken, other busy cores)]


def probe_other_busy_cores(seconds: float = PROBE_S) -> float:
    """Cores other processes keep busy now: two snapshots ``seconds`` apart, this thread asleep between
    them (NaN where /proc/stat is absent). An answer younger than ``PROBE_REUSE_S`` is reused."""
    now = time.perf_counter()
    if _probe_cache and now - _probe_cache[0][0] < PROBE_REUSE_S:
        return _probe_cache[0][1]
    a = cpu_snapshot()
    time.sleep(seconds)
    value = other_busy_cores(a, cpu_snapshot())
    _probe_cache[:] = [(time.perf_counter(), value)]
    return value


def default_threads() -> int:
    """BLAS threads when the user set none: one per available core, less the cores other processes keep
    busy now (:func:`probe_other_busy_cores`, rounded), at least one; all cores where that is unknown."""
    cores = available_cores()
    other = probe_other_busy_cores()
    if math.isnan(other):
        return cores
    return max(1, cores - round(other))


class _Blas:
    """The process's BLAS thread pools (OpenBLAS, MKL, BLIS, found through threadpoolctl). Their thread
    count is process-wide. :meth:`apply` looks for the loaded libraries again each time (under 1 ms; the
    timing functions call it once before and once after a measurement), so a library that arrived after
    the last look, with an import (SciPy's or PyTorch's own OpenBLAS) or loaded through ctypes, is sized
    too; it sets a library's count only where it differs. (A ``threadpool_limits`` block around each
    inference would cost about 250 µs, half of a small MLP's inference; see benchmarks/RESULTS.md, the
    threadpool_limits_per_call rows.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._libs: Any = None
        self._modules = -1

    def libs(self, fresh: bool = False) -> list:
        """The BLAS libraries loaded that can be sized: looked for again when ``fresh`` (what :meth:`apply`
        asks), or for :meth:`current` when the number of imported modules changed since the last look (a
        check of about 0.1 µs)."""
        with self._lock:
            modules = len(sys.modules)
            if fresh or self._libs is None or modules != self._modules:
                from threadpoolctl import ThreadpoolController
                found = ThreadpoolController().select(user_api="blas").lib_controllers
                # a BLAS built without threads (Debian's serial OpenBLAS, a reference BLAS) cannot be sized
                self._libs = [lib for lib in found if getattr(lib, "threading_layer", None) != "disabled"]
                self._modules = modules
            return self._libs

    def apply(self, threads: int) -> None:
        for lib in self.libs(fresh=True):
            if lib.get_num_threads() != threads:
                lib.set_num_threads(threads)

    def current(self) -> int | None:
        """The BLAS threads in force now: NumPy's own BLAS's (the one the CPU engine computes with; else the
        first library's), None without one."""
        libs = self.libs()
        if not libs:
            return None
        own = [lib for lib in libs if "numpy" in str(getattr(lib, "filepath", ""))]
        return int((own or libs)[0].get_num_threads())


_BLAS = _Blas()
