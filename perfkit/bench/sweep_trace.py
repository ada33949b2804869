"""Where a distributed sweep's time goes before its first row and after its last: a timeline of events from
every process of the sweep (the caller, the Dask workers, their measuring processes), for diagnosis.

Off unless ``PERFKIT_SWEEP_TRACE`` names a file. Each process that inherits the variable (the workers and the
measuring processes do) appends one JSON line per event to that file: the wall clock (``time.time()``, one
clock for every process of a host), the process id, its role and the event, with the event's own fields.
Appends of a line are single ``write`` calls on a file opened for appending, so on a local file system lines
of processes writing at once do not interleave (on a network file system they may: keep the file local). :func:`read` gives the lines as a frame, ordered by time.

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
    ``caller`` (a worker's task, which also runs on a user's own cluster, says ``who="worker"`` itself)."""
    if _measuring:
        return "measuring"
    from .distributed_host import ENV_DEVICE
    from .measure_handoff import ENV_ADDRESS
    return "worker" if os.environ.get(ENV_DEVICE) or os.environ.get(ENV_ADDRESS) else "caller"


_measuring = False
_warned = False


def mark(event: str, who: str | None = None, **fields: Any) -> None:
    """Appends ``event`` (with ``fields``) to the trace file, if there is one; never raises. ``who``: the
    process's role where :func:`role` cannot tell it yet (a worker before its environment is set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    global _warned
    try:
        line = json.dumps({**fields, "t": time.time(), "pid": os.getpid(), "role": who or role(), "event": event},
                          default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not disturb the sweep it watches
        if not _warned:         # but says, once per process, that it records nothing
            _warned = True
            import logging
            logging.getLogger("perfkit").warning("sweep trace: cannot write %s=%r (%s); nothing is recorded", ENV,
                                                 path, exc)


def as_measuring() -> None:
    """Names this process a measuring process in the trace."""
    global _measuring
    _measuring = True


def read(path: str) -> Any:
    """The trace at ``path`` as a frame (t, pid, role, event, and the events' fields), ordered by time, with
    ``s``: seconds since the first event; ``attrs["damaged_lines"]``: lines that were not whole events (a write
    cut short, on a full disk) and were left out."""
    import pandas as pd
    events, damaged = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                damaged += 1
                continue
            if isinstance(event, dict) and {"t", "pid", "role", "event"} <= set(event):
                events.append(event)
            else:
                damaged += 1
    frame = pd.DataFrame(events)
    if not frame.empty:
        frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
        frame.insert(0, "s", frame["t"] - frame["t"].iloc[0])
    frame.attrs["damaged_lines"] = damaged
    return frame
