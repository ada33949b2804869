"""Per-layer statistics of a layer_times frame (trtexec --dumpProfile / PyTorch key_averages), and the
signs, stated in words, that a measurement was disturbed (shared by runs, measure() and sweeps)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from ..arguments import frame, one_of
from ..frames.schemas import DIAGNOSES, LAYER_SUMMARY
from ..frames.stats import aggregations

BY = ("layer", "type")
_PERCENTILES = (90,)


def layer_summary(layer_times: pd.DataFrame, by: str = "layer", sort: str = "total_ms") -> pd.DataFrame:
    """count, total, mean, median (with its 95 % confidence interval), p90, min, max, std (ms) and
    percent of the total, per layer (``by="layer"``) or per layer type (``by="type"``), sorted by
    ``sort`` (a column of the summary; ``None`` or ``""`` keeps execution order)."""
    one_of(by, BY, "layer_summary: by")
    if sort:
        one_of(sort, LAYER_SUMMARY.names, "layer_summary: sort (or None for execution order)")
    frame(layer_times, "layer_summary: layer_times (run.layers)", ("layer", "type", "index", "ms"))
    if layer_times.empty:
        return LAYER_SUMMARY.frame([], {"by": by})
    keys = ["layer", "type"] if by == "layer" else ["type"]
    grouped = layer_times.groupby(keys, sort=False)
    stats = grouped["ms"].agg(**aggregations(_PERCENTILES, suffix="_ms"))
    stats["first_index"] = grouped["index"].min()
    stats = stats.sort_values("first_index", kind="stable").reset_index()
    grand = float(layer_times["ms"].sum())
    stats["pct"] = 100.0 * stats["total_ms"] / grand if grand > 0 else 0.0
    if by == "type":
        stats["layer"] = stats["type"]
    out = LAYER_SUMMARY.frame(stats[LAYER_SUMMARY.names].to_dict("records"), {"by": by})
    if sort:
        out = out.sort_values(sort, ascending=sort in BY, kind="stable").reset_index(drop=True)
    return out


# disturbances: what says a measurement was disturbed, in words --------------------------------------

#: the layer sum (less the profiler's calibrated cost) may exceed the end-to-end latency by this much
#: before it counts as disturbed: layers run inside the inference, so their sum cannot exceed it
LAYER_SUM_LIMIT_PCT = 102.0
#: throttle reasons that are no disturbance: an idle GPU, clocks set by the user, the power cap every
#: busy GPU meets (measure() reports that one as information)
#: profiling cannot make an inference faster: an overhead below minus (calibrated cost + this) is disturbance
OVERHEAD_SLACK_PCT = 5.0
#: the unit of each finding's value (the rest are plain numbers: a load average, a count of reasons)
FINDING_UNITS = {"layer_sum_above_e2e": "%", "overhead_beyond_calibration": "%", "overhead_negative": "%",
                 "unstable": "%"}
#: other processes' busy cores + BLAS threads may exceed the cores by this much before it is contention
CONTENDED_SLACK_CORES = 0.25
#: an interval of the median wider than this share of the median says some rounds were disturbed
WIDE_INTERVAL_PCT = 25.0
BENIGN_THROTTLE = frozenset({"", "gpu_idle", "applications_clocks", "sw_power_cap"})


def throttle_reasons(reasons: Any) -> list:
    """The disturbing throttle reasons in ``reasons`` (a '|'-joined string or strings of them), sorted."""
    if isinstance(reasons, str):
        items = [reasons]
    elif isinstance(reasons, (list, tuple, set)):
        items = [r for r in reasons if isinstance(r, str)]
    else:                   # None, NaN, pd.NA: nothing recorded
        return []
    return sorted({x for r in items for x in r.split("|")} - BENIGN_THROTTLE)


def disturbances(values: Mapping[str, Any], max_cv_pct: float = 10.0) -> pd.DataFrame:
    """A ``diagnoses`` frame (severity ``warning``) with one row per sign that the measurement
    described by ``values`` was disturbed, each explained in words. Keys read when present:
    ``layer_sum_pct_of_e2e``; ``overhead_pct`` with ``expected_overhead_pct`` (the profiler's calibrated
    cost; a negative overhead beyond that cost and ``OVERHEAD_SLACK_PCT`` is a disturbed baseline);
    ``latency_ci_low_ms``/``latency_ci_high_ms`` with ``latency_median_ms`` (``wide_interval``: the interval of the
    median wider than ``WIDE_INTERVAL_PCT`` of it, which the robust spread, blind to a few outlying rounds, misses);
    ``latency_cv_pct`` (against ``max_cv_pct``: the robust coefficient of variation of
    :func:`perfkit.frames.stats.spread_pct`, interquartile range / 1.349 over the median, which one
    outlying sample does not move; sweeps take it over round medians, runs and ``measure`` over
    single inferences); ``gpu_throttle`` (NVML reasons, '|'-joined);
    ``host_load_1m`` with ``host_cpus`` (and ``threads``, the CPU device's BLAS threads, for advice), on CPU
    rows only where ``host_other_busy_cores`` is unknown;
    ``host_other_busy_cores`` with ``threads`` and ``host_cpus`` (``contended``: other processes' busy
    cores plus the BLAS threads exceed the cores by more than ``CONTENDED_SLACK_CORES``; not on CUDA
    rows, whose ``threads`` is 0). Missing or NaN values are not findings."""
    v = {k: x for k, x in values.items() if not (isinstance(x, float) and math.isnan(x))}
    out = []
    pct = v.get("layer_sum_pct_of_e2e")
    if pct is not None and pct > LAYER_SUM_LIMIT_PCT:
        out.append(("layer_sum_above_e2e", pct, LAYER_SUM_LIMIT_PCT,
                    f"the layer times add up to {pct:.0f}% of the end-to-end latency, which they run inside: the "
                    "machine was disturbed between the profiled and the unprofiled inferences (other work, clock "
                    "changes); profile again on a quiet machine before trusting the shares."))
    over, expected = v.get("overhead_pct"), v.get("expected_overhead_pct")
    if over is not None and expected is not None and over > 2.0 * expected + 5.0:
        out.append(("overhead_beyond_calibration", over, 2.0 * expected + 5.0,
                    f"profiling added {over:.0f}% to the end-to-end latency, while its calibrated cost is "
                    f"{expected:.1f}%: the rest is disturbance (other work, a cold cache or a clock change), not "
                    "the profiler; per-layer times are inflated by it."))
    if over is not None and over < -(expected or 0.0) - OVERHEAD_SLACK_PCT:
        out.append(("overhead_negative", over, -(expected or 0.0) - OVERHEAD_SLACK_PCT,
                    f"the unprofiled baseline was slower than the profiled run (profiling overhead "
                    f"{over:+.0f}%, which cannot be below zero beyond noise), so the machine changed between them; "
                    "the end-to-end baseline and the shares against it are not trustworthy: measure again on a quiet "
                    "machine."))
    cv = v.get("latency_cv_pct")
    if cv is not None and cv > max_cv_pct:
        out.append(("unstable", cv, max_cv_pct,
                    f"latency varied by {cv:.1f}% (robust coefficient of variation above {max_cv_pct:g}%): the "
                    "figures are not stable; stop other work, lock clocks, or measure longer."))
    lo, hi, med = v.get("latency_ci_low_ms"), v.get("latency_ci_high_ms"), v.get("latency_median_ms")
    if lo is not None and hi is not None and med and (hi - lo) / med * 100.0 > WIDE_INTERVAL_PCT:
        width = (hi - lo) / med * 100.0
        out.append(("wide_interval", width, WIDE_INTERVAL_PCT,
                    f"the interval of the median runs from {lo:.4g} to {hi:.4g} ms, {width:.0f}% of the median "
                    f"{med:.4g} ms" + (f", although the rounds' robust spread is only {cv:.1f}%" if cv is not None
                                       and cv <= max_cv_pct else "")
                    + ": some rounds were much slower (or faster) than the rest, an intermittent disturbance; "
                    "compare it with other rows only through the interval, or measure again with more rounds."))
    reasons = throttle_reasons(v.get("gpu_throttle"))
    if reasons:
        out.append(("throttled", float(len(reasons)), 0.0,
                    f"GPU clocks were throttled while measuring ({', '.join(reasons)}): figures are low and unstable; "
                    "check cooling, power and concurrent work."))
    load, cpus, threads = v.get("host_load_1m"), v.get("host_cpus"), v.get("threads")
    # the load average counts the whole machine, perfkit's own threads included: on CPU rows where the cores
    # other processes kept busy on this process's own cores were measured (``contended``), they decide instead
    # (a sweep worker pinned to one core saw the other worker's load as "1.5 on 1 core(s)" on every row);
    # CUDA rows have no ``contended`` rule, so the load average still speaks for them
    cpu_row = bool(threads) and not str(v.get("device", "cpu")).startswith("cuda")
    if load is not None and cpus and load > cpus and (v.get("host_other_busy_cores") is None or not cpu_row):
        hint = "" if not threads or threads <= 1 else (
            f" With {int(threads)} BLAS threads on a loaded host a matrix product waits for whichever of its threads "
            "is descheduled (milliseconds each time): time with perfkit.get_device('cpu', threads=1) there.")
        out.append(("host_loaded", load, float(cpus),
                    f"the host's load average was {load:.1f} on {int(cpus)} core(s): other work competed for the CPU "
                    "while measuring, so host-side times (and CPU-device times) are inflated and noisy." + hint))
    out.extend(_contended(v))
    return DIAGNOSES.frame([{"finding": f, "severity": "warning", "value": float(x), "threshold": float(t),
                             "explanation": e} for f, x, t, e in out])


def _contended(v: Mapping[str, Any]) -> list:
    """The ``contended`` finding: BLAS threads outnumbered the cores other processes left free."""
    other, cpus, threads = v.get("host_other_busy_cores"), v.get("host_cpus"), v.get("threads")
    if other is None or not cpus or not threads or str(v.get("device", "cpu")).startswith("cuda"):
        return []
    limit = float(cpus) + CONTENDED_SLACK_CORES - float(threads)
    if other <= limit:
        return []
    if threads > float(cpus) + CONTENDED_SLACK_CORES:     # perfkit's own threads alone outnumber the cores
        return [("contended", float(other), limit,
                 f"perfkit itself ran {int(threads)} BLAS threads (all its streams together) on {int(cpus)} core(s)"
                 + (f", and other processes kept {other:.1f} busy" if other >= 0.5 else "") + ": its threads "
                 "take turns on the cores, and a matrix product waits for whichever is descheduled, so these times "
                 "are inflated and noisy; use fewer streams, or fewer BLAS threads per stream, so that together "
                 "they fit the cores.")]
    if threads > 1:
        return [("contended", float(other), limit,
                 f"other processes kept {other:.1f} of {int(cpus)} cores busy while {int(threads)} BLAS threads "
                 "computed: a matrix product waits for whichever thread is descheduled, so these times can be many "
                 "times too long even when they look stable; time with perfkit.get_device('cpu', threads=1) or on a "
                 "quiet machine.")]
    return [("contended", float(other), limit,
             f"other processes kept {other:.1f} of {int(cpus)} cores busy while perfkit's one BLAS thread computed: "
             "it was descheduled for them, so these times are inflated and noisy; time on a quiet machine, or on "
             "cores nothing else runs on.")]
