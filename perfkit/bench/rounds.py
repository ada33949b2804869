"""Interleaved timing rounds for sweeps, and the numbers that say how far to trust them.

Each configuration is timed in ``rounds`` short slices; one round times every configuration once
(starting at a different one each round), so a burst of host load spreads over all of them instead
of landing on one. A row's median is the median of its round medians, its interval the
distribution-free order-statistic interval of that median (at least 95% coverage, the coverage
reached recorded beside it; none below 6 rounds), its spread the robust coefficient of variation
(``frames.stats.spread_pct``) of the round medians.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..device import cpu_snapshot, other_busy_cores_over
from ..device import host_load  # noqa: F401  (re-exported: rows record it)
from ..frames.stats import median_ci, median_ci_level, spread_pct
from .latency import time_inference



def time_slice(context: Any, inputs: dict, min_time_s: float, min_iterations: int) -> np.ndarray:
    """One round's slice of one configuration: latencies in ms (one untimed warm-up inference first,
    since the other configurations ran in between). Tests replace this function to inject timings."""
    return time_inference(context, inputs, warmup=1, min_iterations=min_iterations, min_time_s=min_time_s)


def round_summary(round_medians: Sequence[float]) -> dict:
    """Median of the round medians, its 95% order-statistic interval (NaN below 6 rounds), the
    coverage that interval reaches (%), and the robust spread of the round medians (%)."""
    m = np.asarray(round_medians, dtype=np.float64)
    lo, hi = median_ci(m)
    return {"latency_median_ms": float(np.median(m)), "latency_ci_low_ms": lo, "latency_ci_high_ms": hi,
            "latency_ci_level_pct": 100.0 * median_ci_level(m.size), "latency_cv_pct": spread_pct(m),
            "rounds": int(m.size)}


def run_rounds(slots: list, rounds: int, min_time_s: float, min_iterations: int,
               on_error: Callable[[Any, BaseException], None], probe: Callable[[], dict] | None = None,
               on_slice: Callable[[Any], None] | None = None) -> None:
    """Times every slot (an object with ``context``, ``inputs`` and a ``samples`` list, one array
    appended per round) in ``rounds`` interleaved rounds; a slot with a ``host_cpu`` list gets a pair of
    :func:`~perfkit.device.cpu_snapshot` around each of its slices (see :func:`host_contention`).
    A slot whose timing raises a perfkit error or runs out of memory is handed to ``on_error`` and
    leaves the rounds. ``probe``, if given, is
    read after each slice into the slot's ``gpu`` list (GPU clocks and throttling); ``on_slice``, if
    given, is called with the slot after each of its slices (progress), and for each round a failed
    slot no longer takes."""
    from ..errors import PerfkitError
    per_time = min_time_s / rounds
    per_iter = max(1, math.ceil(min_iterations / rounds))
    live = list(slots)
    for r in range(rounds):
        if not live:
            return
        k = r % len(live)
        for slot in live[k:] + live[:k]:
            try:
                before = cpu_snapshot()
                slot.samples.append(np.asarray(time_slice(slot.context, slot.inputs, per_time, per_iter),
                                               dtype=np.float64))
                if hasattr(slot, "host_cpu"):
                    slot.host_cpu.append((before, cpu_snapshot()))
            except (PerfkitError, MemoryError) as exc:
                on_error(slot, exc)
                if on_slice is not None:
                    for _ in range(rounds - r):
                        on_slice(slot)
                continue
            if probe is not None:
                try:
                    slot.gpu.append(probe())
                except Exception:  # NVML went away mid-sweep: the row says what it has, the timing stands
                    pass
            if on_slice is not None:
                on_slice(slot)
        live = [s for s in live if s.error is None]


def host_contention(intervals: Sequence) -> dict:
    """``host_other_busy_cores``: the cores other processes kept busy during a row's timing slices
    (``(before, after)`` snapshot pairs), weighted by the slices' wall time; NaN where unknown."""
    return {"host_other_busy_cores": other_busy_cores_over(intervals)}


def gpu_probe(device: Any, nvml_index: int | None = None) -> Callable[[], dict] | None:
    """A function reading the GPU's clocks and throttle reasons through NVML (a few microseconds a
    call), or None off CUDA or where NVML cannot be used. ``nvml_index``: the GPU's NVML number when it
    differs from CUDA's (a process pinned with CUDA_VISIBLE_DEVICES sees its GPU as cuda:0; NVML does
    not renumber)."""
    if getattr(device, "kind", None) != "cuda":
        return None
    from ..profiling.nvml import NvmlSampler
    sampler = NvmlSampler(device.nvml_index if nvml_index is None else int(nvml_index))
    try:
        sampler.sample()
    except Exception:  # no driver, no nvidia-ml-py: the rows leave the GPU columns empty
        return None
    return sampler.sample


def gpu_columns(samples: Sequence[dict]) -> dict:
    """The lowest SM clock seen during a row's slices and every throttle reason met (``gpu_idle``
    left out: the GPU idles between slices by design); missing values without samples."""
    clocks = [float(s["sm_clock_mhz"]) for s in samples if "sm_clock_mhz" in s]
    reasons = {r for s in samples for r in str(s.get("throttle_reasons", "")).split("|") if r and r != "gpu_idle"}
    return {"gpu_sm_clock_mhz": min(clocks) if clocks else math.nan,
            "gpu_throttle": "|".join(sorted(reasons)) if samples else None}


def sweep_disturbances(frame: Any, max_cv_pct: float | None = None) -> list:
    """Sentences saying where a ``sweep`` frame's measurements were disturbed: per kind of disturbance
    (spread of the round medians above ``max_cv_pct`` — default the sweep's own, else 10% — host
    load above the cores, other processes' busy cores plus the BLAS threads above the cores (``contended``),
    throttled GPU clocks), how many configurations met it, which, and what it
    means; configurations one sweep timed on several devices of one host at once (:func:`concurrent_devices`);
    how many configurations failed, and how many were timed without their layers. Empty when nothing was disturbed
    and the sweep ran on one device. Works on loaded
    frames (recorded ones lacking a column simply say nothing about it)."""
    from ..arguments import frame as check_frame
    from ..arguments import number
    from ..profiling.summary import disturbances
    check_frame(frame, "sweep_disturbances: frame (a sweep frame)", ("model", "precision", "batch_size"))
    limit = float(frame.attrs.get("max_cv_pct", 10.0)) if max_cv_pct is None else \
        number(max_cv_pct, "sweep_disturbances: max_cv_pct", minimum=0)
    failed = frame["error"].fillna("").astype(bool) if "error" in frame.columns else None
    found: dict = {}
    for i, row in enumerate(frame.to_dict("records")):
        if failed is not None and failed.iloc[i]:
            continue
        for f in disturbances(row, max_cv_pct=limit).itertuples():
            found.setdefault(f.finding, []).append((f.value, f"{row['model']} {row['precision']} batch "
                                                              f"{row['batch_size']}", f.explanation))
    out = []
    for finding, hits in found.items():
        names = [n for _, n, _ in hits]
        worst = max(hits, key=lambda h: h[0])
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        out.append(f"{len(hits)} of {len(frame)} configuration(s) ({shown}), worst {worst[1]}: {worst[2]}")
    out += concurrent_devices(frame if failed is None else frame[~failed.to_numpy()], total=len(frame))
    if failed is not None and failed.any():
        out.append(f"{int(failed.sum())} configuration(s) failed and have no timing; their 'error' column says why.")
    no_layers = frame["layers_error"].fillna("").astype(bool) if "layers_error" in frame.columns else None
    if no_layers is not None and no_layers.any():
        out.append(f"{int(no_layers.sum())} configuration(s) were timed but their layers could not be profiled; "
                   "their 'layers_error' column says why (the timing stands).")
    return out


def concurrent_devices(frame: Any, total: int | None = None) -> list:
    """One sentence per host where one sweep (one ``run_id``) timed configurations on more than one device of
    that host at once, as a distributed sweep (``devices=``) does: their measuring processes share the host's
    cores, caches and power. On a two-H200 virtual machine (32 vCPUs), a pure-Python loop ran 1.17x slower beside
    one other busy process (median of pairs of cores), and two mnist_mlp configurations read 1.12-1.16x slower
    while the other GPU measured, other small configurations 0.96-1.02x (``benchmarks/host_interference.py``,
    ``benchmarks/RESULTS.md`` 2026-11-30). CPU workers of one host, each on its own cores, count as devices
    (``cpu_cores`` tells them apart). ``total``: the count the sentence puts the rows against (default
    ``len(frame)``). Empty for frames without ``run_id``, ``host`` and ``device`` columns."""
    if not {"run_id", "host", "device"} <= set(frame.columns) or not len(frame):
        return []
    cores = frame["cpu_cores"] if "cpu_cores" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    places = pd.Series([_place(d, c) for d, c in zip(frame["device"], cores)], index=frame.index, dtype=object)
    out = []
    for host, rows in frame.groupby("host", sort=False, dropna=True, observed=True):
        runs = [run for run, ix in rows.groupby("run_id", sort=False, dropna=True, observed=True).groups.items()
                if places[ix].dropna().nunique() > 1]
        if not runs:
            continue
        hit = rows[rows["run_id"].isin(runs)]
        devices = sorted(set(places[hit.index].dropna()), key=_natural)
        count = f"{len(hit)} of {len(frame) if total is None else int(total)} configuration(s)"
        out.append(f"{count} were timed on {len(devices)} devices of host {host} at once ({', '.join(devices)}) by "
                   f"{'a distributed sweep' if len(runs) == 1 else f'{len(runs)} distributed sweeps'}: the "
                   "measuring processes share the host's CPU cores, so a configuration whose latency is mostly host "
                   "time can read slower than in a one-device sweep, by more than its interval; compare it with "
                   "rows timed the same way.")
    return out


def _place(device: Any, cores: Any) -> str | None:
    """Where a row was timed: its device, and for the CPU the cores its worker had (None: no device named)."""
    if not isinstance(device, str) or not device:
        return None
    return f"{device} on cores {cores}" if device.startswith("cpu") and isinstance(cores, str) and cores else device


def _natural(place: str) -> tuple:
    """Sort key putting cuda:2 before cuda:10."""
    head, _, tail = place.partition(":")
    number = tail.split(" ")[0]
    return (head, int(number) if number.isdigit() else -1, place)
