"""Host<->device copy bandwidth from pageable and from pinned (page-locked) host memory (guide chapter 5).

A copy from pageable memory goes through a driver staging buffer and cannot overlap other work; a copy
from pinned memory is a direct DMA transfer, asynchronous on its stream. ``transfers`` times both, for
each size and direction, on the device's own events around the copy, alternating pageable and pinned
copies so that both see the same machine state; the frame holds the median time with its interval
and the bandwidth it means.

On the CPU device there is no link to cross: "device" arrays are host arrays and pinned buffers are
ordinary memory, so both rows measure a host memory copy (``np.copyto`` on a CPU stream). They should
agree; the frame's ``attrs["note"]`` says so, and the plot repeats it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..arguments import fits_in_host_memory, positive_int
from ..errors import ArgumentError
from ..frames.schemas_load import TRANSFERS
from ..frames.stats import median_ci
from ..log import get_logger
from ._load_args import int_list

_log = get_logger("bench.transfers")
DEFAULT_SIZES = tuple(4 ** k * 1024 for k in range(1, 10, 1))          # 4 KiB .. 256 MiB
CPU_DEFAULT_SIZES = tuple(4 ** k * 1024 for k in range(1, 8, 1))      # 4 KiB .. 16 MiB
DIRECTIONS = ("h2d", "d2h")
MAX_SIZE = 1 << 34
CPU_NOTE = ("CPU device: no host-device link; both rows time a host memory copy (np.copyto on a CPU stream) and "
            "'pinned' is ordinary memory, so they measure host memory bandwidth, not PCIe")
CUDA_NOTE = ("CUDA device: pageable copies go through the driver's staging buffer; pinned copies are direct DMA "
             "(cupyx.empty_pinned)")


def transfers(device: Any = "cpu", sizes_bytes: Sequence[int] | None = None, repeats: int = 20,
              directions: Sequence[str] = DIRECTIONS) -> pd.DataFrame:
    """Times copies of each size in ``sizes_bytes`` (default 4 KiB to 256 MiB by factors of 4; to 16 MiB on
    the CPU) in each direction (``"h2d"``, ``"d2h"``), ``repeats`` times from pageable and from pinned
    host memory, alternating. Returns the ``transfers`` frame (one row per direction, memory and size)."""
    from ..device import get_device
    dev = device if hasattr(device, "create_stream") and hasattr(device, "pinned_empty") else get_device(device)
    sizes = list(CPU_DEFAULT_SIZES if dev.kind == "cpu" else DEFAULT_SIZES) if sizes_bytes is None else \
        int_list(sizes_bytes, "transfers: sizes_bytes", maximum=MAX_SIZE)
    repeats = positive_int(repeats, "transfers: repeats", maximum=100_000)
    if isinstance(directions, str) or not isinstance(directions, Sequence) or not directions or \
            any(d not in DIRECTIONS for d in directions) or len(set(directions)) != len(directions):
        raise ArgumentError(f"transfers: directions must be a non-empty sequence of distinct names from {DIRECTIONS}, "
                            f"not {directions!r:.60}")
    fits_in_host_memory(3 * max(sizes), "transfers: the largest size (a pageable and a pinned buffer, and on the "
                        "CPU the 'device' buffer)", "pass smaller sizes_bytes")
    stream = dev.create_stream()
    start, end = dev.create_event(), dev.create_event()
    rows = []
    try:
        for size in sizes:
            buffers = {"pageable": np.ones(size, np.uint8), "pinned": dev.pinned_empty((size,), np.uint8)}
            buffers["pinned"][...] = 1
            with dev.activate():                # on the device measured, whatever the thread's current GPU
                on_device = dev.xp.zeros(size, np.uint8)
            for direction in directions:
                times = {m: [] for m in buffers}
                for r in range(repeats + 1):                      # the first round warms up, untimed
                    for memory in (("pageable", "pinned") if r % 2 else ("pinned", "pageable")):
                        ms = _copy_ms(dev, stream, start, end, direction, buffers[memory], on_device)
                        if r:
                            times[memory].append(ms)
                for memory, t in times.items():
                    rows.append(_row(dev.spec, direction, memory, size, np.asarray(t)))
            del buffers, on_device
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    note = CPU_NOTE if dev.kind == "cpu" else CUDA_NOTE
    frame = TRANSFERS.frame(rows, {"device": dev.spec, "device_name": dev.name, "note": note})
    _log.info("transfers on %s: %d sizes x %d direction(s), %d repeats", dev.spec, len(sizes), len(directions), repeats)
    return frame


def _copy_ms(dev: Any, stream: Any, start: Any, end: Any, direction: str, host: np.ndarray, on_device: Any) -> float:
    start.record(stream)
    if direction == "h2d":
        dev.to_device(host, stream=stream, out=on_device)
    else:
        dev.to_host(on_device, stream=stream, out=host)
    end.record(stream)
    end.synchronize()
    return float(dev.elapsed_ms(start, end))


def _row(spec: str, direction: str, memory: str, size: int, t: np.ndarray) -> dict:
    med = float(np.median(t))
    lo, hi = median_ci(t)

    def gbs(ms: float) -> float:
        return size / (ms / 1e3) / 1e9 if ms > 0 else float("nan")
    return {"device": spec, "direction": direction, "memory": memory, "size_bytes": size, "repeats": len(t),
            "time_median_ms": med, "time_ci_low_ms": lo, "time_ci_high_ms": hi, "bandwidth_gb_s": gbs(med),
            "bandwidth_ci_low_gb_s": gbs(hi), "bandwidth_ci_high_gb_s": gbs(lo)}
