"""Shared plumbing of the plot functions: draw on the given axes, or on a new figure."""
from __future__ import annotations

from typing import Any

from ..errors import ArgumentError
from ..frames.units import bytes_unit, human_bytes, human_ms  # noqa: F401  (the plots and explorers take them here)


def check_ax(ax: Any, what: str) -> None:
    """``ax`` must be None (a new figure) or a matplotlib Axes."""
    if ax is None:
        return
    from matplotlib.axes import Axes
    if not isinstance(ax, Axes):
        raise ArgumentError(f"{what}: ax must be a matplotlib Axes or None (a new figure), not {type(ax).__name__}")


#: widest figure drawn (inches): at 100 dpi it fits JupyterLab's output column (about 1100 px) and a report page
WIDTH_IN = 11.0


def figure_and_axes(ax: Any, figsize: tuple, **subplots: Any) -> tuple:
    """``(ax.figure, ax)``, or a new constrained-layout figure of ``figsize``, at most :data:`WIDTH_IN` wide
    (``subplots``: more arguments of ``pyplot.subplots``, such as ``nrows``, ``sharex``, ``gridspec_kw``)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(min(figsize[0], WIDTH_IN), figsize[1]), layout="constrained", **subplots)


def say_empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


def four(v: float) -> str:
    """A number to 4 significant figures without an exponent: 43550 -> '43,550', 637.2 -> '637.2',
    0.01234 -> '0.01234'."""
    import math
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    digits = 3 - math.floor(math.log10(abs(v))) if v else 0
    return f"{v:.{max(digits, 0)}f}".rstrip("0").rstrip(".") if digits > 0 else f"{v:.0f}"


def at_resolution(v: float, width: float) -> str:
    """``v`` with the decimals that tell apart values 1/50 of ``width`` (the axis's visible range) apart:
    246.455 ms on a 0.7 ms wide axis (as its ticks), 246 ms on a 5 s one; 4 significant figures when ``width`` is 0."""
    return tick_text(v, width / 50) if width > 0 else four(v)


def ms_unit(max_ms: float) -> tuple:
    """(name, ms per unit) for an axis of durations up to ``max_ms``: µs below 1 ms, else ms."""
    return ("µs", 1e-3) if abs(max_ms) < 1.0 else ("ms", 1.0)


def unit_of(kind: str, values: Any) -> tuple:
    """(unit name, divisor) for values of a metric of ``kind``: 'ms' (durations: µs below 1 ms, else ms),
    'bytes' (B/KiB/MiB/GiB) or anything else (a rate: samples/s, as recorded)."""
    import numpy as np
    top = float(np.nanmax(np.abs(np.asarray(values, dtype=float)))) if len(values) else 0.0
    if kind == "ms":
        return ms_unit(top)
    if kind == "bytes":
        return bytes_unit(top)
    return "samples/s", 1.0


def title_parts(frame: Any, *frames: Any) -> list:
    """What a title names, from the attrs and columns of ``frame`` (and ``frames``): model, device,
    precision and batch size, each where known; several values are joined with '/'."""
    parts = []
    for keys, col in ((("model", "network", "engine"), "model"), (("device_name", "device"), "device"),
                      (("precision",), "precision"), (("batch_size",), "batch_size")):
        vals = _known(keys, col, (frame, *frames))
        if vals:
            text = "/".join(map(str, vals[:6])) + ("/…" if len(vals) > 6 else "")
            parts.append(f"batch {text}" if col == "batch_size" else text)
    return parts


def _known(keys: tuple, col: str, frames: tuple) -> list:
    for f in frames:
        if f is None:
            continue
        for k in keys:
            if f.attrs.get(k) not in (None, ""):
                return [f.attrs[k]]
        if col in getattr(f, "columns", ()) and len(f):
            vals = f[col].dropna().unique()
            if len(vals):
                return sorted(vals.tolist())
    return []


class TimeAxis:
    """x positions in ms since ``t0`` of perf_counter_ns times, on an axis whose long idle gaps are cut.

    A stretch of ``span`` longer than ``cut`` of it (and than STANDS_OUT typical gaps) in which none
    of the ``busy`` times fall and no ``intervals`` (n x 2, ns) run is drawn ``kept`` of the axis wide,
    as a hatched band naming its length; each stretch kept is drawn at least ``least`` of the active
    time wide (a 0.5 ms context creation beside 80 ms of inference stays visible), its ticks at round
    real times. ``breaks`` (ns) split a stretch without a gap: each side is then drawn at least
    ``least`` wide too (a 1 ms context creation after a 250 ms build stays readable); the scale
    changes there. Without gaps or breaks, x is simply ``(t - t0) / 1e6``."""

    def __init__(self, t0: int, span: tuple, busy: Any = (), intervals: Any = None, cut: float = 0.25,
                 kept: float = 0.03, least: float = 0.12, breaks: Any = ()):
        import numpy as np
        self.t0 = t0
        self.gaps = _idle_gaps(span, np.asarray(busy, float), np.zeros((0, 2)) if intervals is None else
                               np.asarray(intervals, float).reshape(-1, 2), cut)
        self.breaks = [float(b) for b in breaks if span[0] < b < span[1]
                       and not any(a <= b <= e for a, e in self.gaps)]
        cuts = sorted([*self.gaps, *[(b, b) for b in self.breaks]])
        ends = [float(span[0]), *[v for g in cuts for v in g], float(span[1])]
        stretches = list(zip(ends[0::2], ends[1::2]))
        active = sum(b - a for a, b in stretches) / 1e6 or 1.0
        widths = [max((b - a) / 1e6, least * active if cuts else 0.0) for a, b in stretches]
        gap = kept * sum(widths)
        t, x = [], [(span[0] - t0) / 1e6]
        for (a, b), w, (ga, gb) in zip(stretches, widths, [*cuts, (0.0, 0.0)]):
            t += [a, b]
            x += [x[-1] + w, x[-1] + w + (gap if gb > ga else 0.0)]
        self.t, self.x = np.array(t), np.array(x[:-1])
        self.stretches = stretches

    def slope(self) -> float:
        """x units per ms in the last stretch."""
        dt = (self.t[-1] - self.t[-2]) / 1e6
        return float((self.x[-1] - self.x[-2]) / dt) if dt > 0 else 1.0

    def __call__(self, t_ns: Any) -> Any:
        import numpy as np
        t = np.asarray(t_ns, dtype=float)
        if not self.gaps and not self.breaks:
            return (t - self.t0) / 1e6
        x = np.interp(t, self.t, self.x)
        x = np.where(t > self.t[-1], self.x[-1] + (t - self.t[-1]) / 1e6 * self.slope(), x)
        return np.where(t < self.t[0], self.x[0] + (t - self.t[0]) / 1e6, x)

    def decorate(self, ax: Any, end_ns: float) -> None:
        """The hatched band of each cut gap and ticks at round real times within each stretch kept."""
        if not self.gaps and not self.breaks:
            return
        import numpy as np
        from matplotlib.ticker import MaxNLocator
        for a, b in self.gaps:
            ax.axvspan(self(a), self(b), facecolor="0.93", edgecolor="0.6", hatch="//", lw=0.5, gid="idle_gap")
            ax.annotate(f"idle {human_ms((b - a) / 1e6)}", (float(self((a + b) / 2)), 0.5),
                        xycoords=("data", "axes fraction"), rotation=90, ha="center", va="center", fontsize=7,
                        color="0.3", gid="idle_gap_label", bbox=dict(fc="white", ec="none", pad=1))
        stretches = [*self.stretches[:-1], (self.stretches[-1][0], end_ns)]
        total = float(self(end_ns) - self(self.t[0])) or 1.0
        per_char = _char_width(ax) * total                 # x units one tick-label character takes
        steps = {}
        for a, b in stretches:
            n = max(1, int(round(8 * float(self(b) - self(a)) / total)))
            lo, hi = (a - self.t0) / 1e6, (b - self.t0) / 1e6
            vals = MaxNLocator(n + 1, steps=[1, 2, 5, 10]).tick_values(lo, hi) if hi > lo else np.array([lo])
            steps[(a, b)] = (vals, float(vals[1] - vals[0]) if len(vals) > 1 else None)
        finest = min((st for _, st in steps.values() if st), default=1.0)
        ticks, labels = [], []
        for (a, b), (vals, step) in steps.items():
            lo, hi = (a - self.t0) / 1e6, (b - self.t0) / 1e6
            for v in vals:
                x = float(self(self.t0 + v * 1e6))
                # an instant (a lone event's stretch) reads to the axis's resolution, not the clock's
                text = tick_text(v, max(step, 1e-6) if step else 10 * finest)
                room = per_char * (0.5 * (len(text) + (len(labels[-1]) if labels else 0)) + 0.5)
                if lo - 1e-9 <= v <= hi + 1e-9 and (not ticks or (x - ticks[-1] > room and text != labels[-1])):
                    ticks.append(x)
                    labels.append(text)
        ax.set_xticks(np.array(ticks), labels)


def drop_colliding_ticks(ax: Any, pad_px: float = 4.0) -> None:
    """After layout, keeps the x ticks whose labels, left to right, begin ``pad_px`` after the last kept one ends
    (ticks placed by estimate, such as a cut time axis's, can still touch: '6550 6560')."""
    import numpy as np
    ax.figure.draw_without_rendering()
    lo, hi = sorted(ax.get_xlim())
    kept, end = [], -np.inf
    for x, label in zip(ax.get_xticks(), ax.get_xticklabels()):
        if not lo <= x <= hi or not label.get_text():
            continue
        box = label.get_window_extent()
        if box.x0 >= end + pad_px:
            kept.append((x, label.get_text()))
            end = box.x1
    ax.set_xticks([x for x, _ in kept], [text for _, text in kept])


def _char_width(ax: Any) -> float:
    """The share of the axes' width that one tick-label character takes (a digit is about 0.6 em)."""
    import matplotlib
    size = matplotlib.rcParams["xtick.labelsize"]
    try:
        size = float(size)
    except ValueError:                                  # 'medium' and the like
        size = matplotlib.font_manager.FontProperties(size=size).get_size_in_points()
    width_in = ax.figure.get_figwidth() * ax.get_position().width * 0.85     # less what a legend outside takes
    return 0.6 * size / 72 / max(width_in, 1e-3)


def tick_text(v: float, step: float) -> str:
    """A tick value as plain decimals, as many as ``step`` (> 0) needs: no exponent, and a value within
    rounding error of zero reads '0' (never '1e-13')."""
    import math
    digits = max(0, -math.floor(math.log10(abs(step))) + 1)
    return f"{round(v, digits) + 0.0:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{round(v) + 0:d}"


def plain_numbers(axis: Any) -> None:
    """Plain tick labels on ``axis`` (``ax.xaxis``): no offset ('+1.234e3') and no scientific
    exponent ('1e-13') at its end, which on a time axis reads as a value."""
    from matplotlib.ticker import ScalarFormatter
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)


STANDS_OUT = 5         # an idle gap is cut only when it is this many times longer than the typical one


def _idle_gaps(span: tuple, busy: Any, intervals: Any, cut: float) -> list:
    """Stretches of ``span`` with no busy time in them and no interval running, longer than STANDS_OUT typical
    gaps between busy times and than ``cut`` of the time left once the longer ones are cut (a 5 s pause
    beside a 43 s one is cut too)."""
    import numpy as np
    total = span[1] - span[0]
    if total <= 0:
        return []
    pts = np.sort(np.concatenate([[span[0], span[1]], busy, intervals.ravel()]))
    pts = pts[(pts >= span[0]) & (pts <= span[1])]
    d = np.diff(pts)
    typical = float(np.median(d[d > 0])) if (d > 0).any() else 0.0
    idle = [(float(pts[i]), float(pts[i + 1])) for i in np.flatnonzero(d > STANDS_OUT * typical)]
    idle = [(a, b) for a, b in idle if not ((intervals[:, 0] < b) & (intervals[:, 1] > a)).any()]
    out, left = [], total
    for a, b in sorted(idle, key=lambda g: g[0] - g[1]):      # longest first, each against the time still drawn
        if b - a <= cut * left:
            break
        out.append((a, b))
        left -= b - a
    out.sort()
    return out
