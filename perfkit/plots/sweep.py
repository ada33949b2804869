"""Charts of the ``sweep`` frame: a metric against batch size, one line per model and precision, with
the interval of the median as a band, rows flagged unstable ringed and failed rows named."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import flag, frame as check_frame, one_of
from ._axes import check_ax, figure_and_axes, unit_of

LABELS = {"throughput_per_s": "throughput (samples/s)", "latency_median_ms": "median latency (ms)",
          "latency_mean_ms": "mean latency (ms)", "latency_p90_ms": "p90 latency (ms)",
          "device_memory_bytes": "device memory"}
STYLES = {"fp32": "-", "fp16": "--", "bf16": ":"}
#: a marker per precision too: at legend size a dashed line is hard to tell from a solid one
MARKERS = {"fp32": "o", "fp16": "s", "bf16": "^"}
FAILED_NAMED = 3            # failed rows named one by one in the note; the rest are counted


def plot_sweep(frame: pd.DataFrame, metric: str = "throughput_per_s", ax: Any = None, logy: bool = True) -> Any:
    """Draws ``metric`` against batch size (log-log, ticks at the batch sizes measured), a line per
    (model, precision), with the 95% interval of the median latency as a band where the sweep has
    one. Rows flagged ``unstable`` get an open red ring; failed rows (``error`` set, or no value)
    are marked with a red × on the batch axis and named in a note. Returns the figure."""
    import matplotlib
    check_frame(frame, "plot_sweep: frame", ("model", "precision", "batch_size"))
    numeric = [c for c in frame.columns if c != "batch_size" and pd.api.types.is_numeric_dtype(frame[c])]
    one_of(metric, numeric, "plot_sweep: metric (a numeric column of the sweep frame)")
    flag(logy, "plot_sweep: logy")
    check_ax(ax, "plot_sweep")
    fig, ax = figure_and_axes(ax, (8.5, 4.2))
    per, label = _unit(frame, metric)
    failed = _failed(frame, metric)
    ok = frame[~failed]
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, g) in enumerate(ok.groupby("model", sort=False)):
        for precision, gp in g.groupby("precision", sort=False):
            gp = gp.sort_values("batch_size")
            color = colors[i % len(colors)]
            ax.plot(gp["batch_size"], gp[metric] / per, STYLES.get(precision, "-"), marker=MARKERS.get(precision, "o"),
                    ms=4, color=color, label=f"{model} {precision}")
            band = median_interval(gp, metric)
            if band is not None:
                ax.fill_between(gp["batch_size"], band[0], band[1], color=color, alpha=0.18, lw=0, gid="interval")
    _unstable(ax, ok, metric, per)
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    _batch_ticks(ax, frame["batch_size"])
    if metric == "throughput_per_s":
        from matplotlib.ticker import FuncFormatter
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: si_count(v)))
    ax.set_xlabel("batch size")
    ax.set_ylabel(label)
    device = frame.attrs.get("device_name") or (frame["device"].iloc[0] if len(frame) else "")
    ax.set_title(f"{LABELS.get(metric, metric)} vs batch size — {device}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if any(c.get_gid() == "interval" for c in ax.collections):
        ax.fill_between([], [], [], color="0.6", alpha=0.3, lw=0, gid="interval_key",
                        label="band: interval of the median latency (at least 95%)")
    _failed_marks(ax, frame[failed])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, handlelength=3.5)
    return fig


def si_count(v: float) -> str:
    """A count as '950', '10k', '2.5M': the ticks of a throughput axis."""
    for suffix, per in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= per:
            return f"{v / per:g}{suffix}"
    return f"{v:g}"


def _unit(frame: pd.DataFrame, metric: str) -> tuple:
    """(divisor, axis label): bytes in KiB/MiB/GiB, the rest as recorded."""
    label = LABELS.get(metric, metric)
    if metric.endswith("_bytes") and len(frame) and frame[metric].notna().any():
        name, per = unit_of("bytes", frame[metric].dropna().to_numpy())
        return float(per), f"{label} ({name})"
    return 1.0, label


def _failed(frame: pd.DataFrame, metric: str) -> np.ndarray:
    """Rows that failed: an error recorded, or no value of the metric."""
    err = frame["error"].fillna("").astype(str).str.len() > 0 if "error" in frame else False
    return (frame[metric].isna() | err).to_numpy(dtype=bool)


def _batch_ticks(ax: Any, batches: pd.Series) -> None:
    """Ticks at the batch sizes measured, written as plain numbers (1, 4, 16, not 2^0, 2^2, 2^4)."""
    from matplotlib.ticker import NullLocator
    sizes = sorted(int(b) for b in batches.dropna().unique())
    if sizes:
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.xaxis.set_minor_locator(NullLocator())


def _unstable(ax: Any, ok: pd.DataFrame, metric: str, per: float) -> None:
    """An open red ring on each row flagged unstable (its spread too wide to trust the median)."""
    if "unstable" not in ok:
        return
    u = ok[ok["unstable"].eq(True)]
    if len(u):
        ax.plot(u["batch_size"], u[metric] / per, "o", ms=11, mfc="none", mec="#c0392b", mew=1.3, gid="unstable",
                label="unstable: spread too wide")


def _failed_marks(ax: Any, failed: pd.DataFrame) -> None:
    """A red × on the batch axis at each failed row's batch size; legend rows naming them and why."""
    if failed.empty:
        return
    ax.plot(failed["batch_size"], np.full(len(failed), 0.03), "x", color="#c0392b", ms=8, mew=1.5, gid="failed",
            transform=ax.get_xaxis_transform(), clip_on=False, label="failed (on the batch axis):")
    for r in failed.head(FAILED_NAMED).itertuples():
        why = str(getattr(r, "error", "") or "no value").splitlines()[0]
        why = why if len(why) <= 40 else why[:39] + "…"
        ax.plot([], [], " ", gid="failed_note", label=f"{r.model} {r.precision} batch {r.batch_size}:\n  {why}")
    if len(failed) > FAILED_NAMED:
        ax.plot([], [], " ", gid="failed_note", label=f"… and {len(failed) - FAILED_NAMED} more failed")


def median_interval(rows: pd.DataFrame, metric: str) -> Any:
    """(low, high) Series of ``metric`` from the rows' 95% interval of the median latency
    (``latency_ci_low_ms``/``latency_ci_high_ms``), where the metric follows from that latency (the median
    latency itself, time per sample, throughput); None when the sweep recorded no interval or the metric
    does not follow from it. The SweepExplorer's points take their bands from here too."""
    if metric not in ("latency_median_ms", "time_per_sample_ms", "throughput_per_s") or \
            not {"latency_ci_low_ms", "latency_ci_high_ms"} <= set(rows.columns):
        return None
    lo, hi = rows["latency_ci_low_ms"].astype(float), rows["latency_ci_high_ms"].astype(float)
    if lo.isna().all():
        return None
    b = rows["batch_size"].astype(float)
    if metric == "time_per_sample_ms":
        return lo / b, hi / b
    if metric == "throughput_per_s":                    # samples/s = batch / latency: the bounds swap
        return b / hi * 1e3, b / lo * 1e3
    return lo, hi
