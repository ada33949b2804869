"""Where a distributed sweep's time goes before its first row and after its last: a timeline of events from
every process of the sweep (the caller, the Dask workers, their measuring processes), for diagnosis.

Off unless ``PERFKIT_SWEEP_TRACE`` names a file. Each process that inherits the variable (the workers and the
measuring processes do) appends one JSON line per event to that file: the wall clock (``time.time()``, one
clock for every process of a host), the process id, its role and the event, with the event's own fields.
Appends of a line are single ``write`` calls on a file opened for appending, so lines of processes writing
at once do not interleave. :func:`read` gives the lines as a frame, ordered by time.

``benchmarks/multi_gpu_sweep.py --trace`` prints such a timeline for a two-GPU sweep.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

#: the environment variable naming the trace file (unset: nothing is recorded)
ENV = "PERFKIT_SWEEP_TRACE"


def role() -> str:
    """``measuring`` in a measuring process, ``worker`` in a Dask worker of perfkit's cluster, else
    ``caller``."""
    from .distributed_host import ENV_DEVICE
    from .measure_handoff import ENV_ADDRESS
    if _measuring:
        return "measuring"
    return "worker" if os.environ.get(ENV_DEVICE) or os.environ.get(ENV_ADDRESS) else "caller"


_measuring = False


def mark(event: str, who: str | None = None, **fields: Any) -> None:
    """Appends ``event`` (with ``fields``) to the trace file, if there is one; never raises. ``who``: the
    process's role where :func:`role` cannot tell it yet (a worker before its environment is set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "role": who or role(), "event": event, **fields},
                          default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except Exception:  # noqa: BLE001 - a diagnosis must not disturb the sweep it watches
        pass


def as_measuring() -> None:
    """Names this process a measuring process in the trace."""
    global _measuring
    _measuring = True


def read(path: str) -> Any:
    """The trace at ``path`` as a frame (t, pid, role, event, and the events' fields), ordered by time, with
    ``s``: seconds since the first event."""
    import pandas as pd
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    frame = pd.DataFrame(events)
    if frame.empty:
        return frame
    frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    frame.insert(0, "s", frame["t"] - frame["t"].iloc[0])
    return frame
