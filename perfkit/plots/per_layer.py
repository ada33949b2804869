"""Per-layer time against batch size and against precision, from the ``sweep_layers`` frame: stacked
bars of the slowest layers (the rest as 'other'), time per sample on a second axis, and the layers
that gain least from batching (or from a lower precision) outlined and named."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, integer, positive_int
from ..errors import ArgumentError
from ..precision import PRECISION_ORDER
from ._axes import check_ax, figure_and_axes, human_ms, ms_unit, say_empty, title_parts

COLUMNS = ("model", "precision", "batch_size", "index", "layer", "type", "median_ms")
WORST_MIN_PCT = 3.0     # a layer below this share of the time is not named as scaling worst, however it scales
WORSE = 1.1           # ... nor one whose gain is within 10% of the whole network's
OTHER_COLOR = (0.78, 0.78, 0.78)


def _frame(sweep_layers: Any, what: str) -> pd.DataFrame:
    return check_frame(sweep_layers, f"{what}: sweep_layers (the layers frame of sweep(..., layers=True))", COLUMNS)


def _one(df: pd.DataFrame, column: str, value: Any, what: str) -> pd.DataFrame:
    """The rows of ``df`` whose ``column`` is ``value`` (None: the one value the frame holds; see _only)."""
    if not len(df):
        return df
    return df[df[column] == _only(df, column, value, what)]


def _titled(sweep_layers: pd.DataFrame, df: pd.DataFrame, ax: Any, what: str) -> tuple:
    """(figure, axes) titled ``what`` and what the rows shown share; 'no layer times' when there are none."""
    fig, ax = figure_and_axes(ax, (11, 4.8))
    title = " · ".join(title_parts(sweep_layers.iloc[:0], df))
    ax.set_title(f"{what} — {title}" if title else what, fontsize=9)
    if df.empty:
        say_empty(ax, "layer times")
    return fig, ax


def _only(df: pd.DataFrame, column: str, value: Any, what: str) -> Any:
    """``value``, or the frame's only value of ``column`` when it is None; refused if not in the frame."""
    have = sorted(df[column].dropna().unique().tolist())
    if value is None:
        if len(have) > 1:
            raise ArgumentError(f"{what}: the frame holds {len(have)} values of {column} ({', '.join(map(str, have))}); "
                                f"pass {column}= one of them")
        return have[0] if have else None
    if column == "batch_size":
        value = positive_int(value, f"{what}: batch_size")
    elif not isinstance(value, str):
        raise ArgumentError(f"{what}: {column} must be a string such as {have[0] if have else 'fp32'!r}, not {value!r}")
    if value not in have:
        raise ArgumentError(f"{what}: {column} {value!r} is not in the frame; it holds {', '.join(map(str, have))}")
    return value


def layer_scaling(sweep_layers: pd.DataFrame, model: Any = None, precision: Any = None) -> pd.DataFrame:
    """Per layer of one (model, precision): the time per sample (layer median / batch size) at the
    smallest and at the largest batch, ``scaling`` = the second over the first (1.0: batching gained
    nothing; smallest/largest batch: perfect), and the layer's share of the time at the largest
    batch. Worst scaling first."""
    what = "layer_scaling"
    df = _frame(sweep_layers, what)
    return _scaling(_one(_one(df, "model", model, what), "precision", precision, what))


def _scaling(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["layer", "type", "batch_small", "batch_large", "per_sample_ms_small", "per_sample_ms_large", "scaling",
            "pct_at_large"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    lo, hi = int(df["batch_size"].min()), int(df["batch_size"].max())
    per = df.assign(per_sample=df["median_ms"] / df["batch_size"])
    small = per[per["batch_size"] == lo].groupby("layer")["per_sample"].sum()
    large = per[per["batch_size"] == hi].groupby("layer")["per_sample"].sum()
    kinds = df.drop_duplicates("layer").set_index("layer")["type"]
    out = pd.DataFrame({"per_sample_ms_small": small, "per_sample_ms_large": large}).dropna()
    out["scaling"] = out["per_sample_ms_large"] / out["per_sample_ms_small"].where(out["per_sample_ms_small"] > 0)
    out["pct_at_large"] = 100 * out["per_sample_ms_large"] / (out["per_sample_ms_large"].sum() or 1.0)
    out = out.assign(type=kinds.reindex(out.index).to_numpy(), batch_small=lo, batch_large=hi)
    out = out.rename_axis("layer").reset_index()
    return out.sort_values(["scaling", "layer"], ascending=[False, True], kind="stable")[cols].reset_index(drop=True)


def plot_layers_vs_batch(sweep_layers: pd.DataFrame, model: Any = None, precision: Any = None, top: int = 8,
                         ax: Any = None) -> Any:
    """Stacked bars of each layer's median time per inference, one bar per batch size (the ``top``
    slowest layers at the largest batch, the rest as 'other'), and the time per sample (all layers /
    batch size) on a second axis. The layers whose time per sample falls least with the batch are
    outlined in red and named. ``model``/``precision`` may be left out when the frame holds one."""
    what = "plot_layers_vs_batch"
    df = _frame(sweep_layers, what)
    top = positive_int(top, f"{what}: top (how many of the slowest layers get a colour of their own)")
    check_ax(ax, what)
    df = _one(df, "model", model, what)
    df = _one(df, "precision", precision, what)
    own_figure = ax is None
    fig, ax = _titled(sweep_layers, df, ax, "per-layer time vs batch size")
    if df.empty:
        return fig
    batches = sorted(df["batch_size"].unique())
    scaling = _scaling(df).set_index("layer")
    whole = _whole_ratio(df, "batch_size", batches[0], batches[-1], per_sample=True)
    worst = [n for n, r in scaling.iterrows()
             if r["pct_at_large"] >= WORST_MIN_PCT and r["scaling"] > WORSE * whole and len(batches) > 1][:2]
    notes = {n: f"per sample ×{scaling.loc[n, 'scaling']:.2f} from batch {batches[0]} to {batches[-1]}"
             for n in worst}
    ideal = batches[0] / batches[-1]
    _stacked(ax, own_figure, df, "batch_size", batches, [str(b) for b in batches], top, worst, notes,
             f"×1.00: batching gained nothing, ×{ideal:.2g}: it gained fully")
    ax.set_xlabel("batch size")
    return fig


def plot_layers_vs_precision(sweep_layers: pd.DataFrame, model: Any = None, batch_size: Any = None, top: int = 8,
                             ax: Any = None) -> Any:
    """Stacked bars of each layer's median time per inference, one bar per precision the engine was
    built for, at ``batch_size`` (default: the largest batch in the frame), with the time per sample
    on a second axis. The layers that gain least from the lowest-time precision against the first
    (fp32 where present) are outlined in red and named."""
    what = "plot_layers_vs_precision"
    df = _frame(sweep_layers, what)
    top = positive_int(top, f"{what}: top (how many of the slowest layers get a colour of their own)")
    if batch_size is not None:
        batch_size = integer(batch_size, f"{what}: batch_size", 1)
    check_ax(ax, what)
    df = _one(df, "model", model, what)
    df = _one(df, "batch_size", batch_size if batch_size is not None or not len(df) else int(df["batch_size"].max()),
              what)
    own_figure = ax is None
    fig, ax = _titled(sweep_layers, df, ax, "per-layer time vs precision")
    if df.empty:
        return fig
    have = df["precision"].unique().tolist()
    precisions = [p for p in PRECISION_ORDER if p in have] + sorted(p for p in have if p not in PRECISION_ORDER)
    t = df.groupby(["precision", "layer"])["median_ms"].sum().unstack(0).reindex(columns=precisions)
    best = t.sum().idxmin()
    ratio = (t[best] / t[precisions[0]].where(t[precisions[0]] > 0)).dropna()
    share = 100 * t[precisions[0]] / (t[precisions[0]].sum() or 1.0)
    whole = float(t[best].sum() / t[precisions[0]].sum())
    worst = [n for n in ratio.sort_values(ascending=False).index
             if share.get(n, 0) >= WORST_MIN_PCT and ratio[n] > WORSE * whole][:2]
    notes = {n: f"{best} takes ×{ratio[n]:.2f} of its {precisions[0]} time" for n in worst}
    _stacked(ax, own_figure, df, "precision", precisions, precisions, top, worst, notes,
             f"×1.00: {best} gained nothing over {precisions[0]}")
    ax.set_xlabel("precision the engine was built for")
    return fig


def _whole_ratio(df: pd.DataFrame, by: str, first: Any, last: Any, per_sample: bool) -> float:
    """All layers' time at ``last`` over that at ``first`` (per sample when ``per_sample``)."""
    t = df.groupby(by).agg(ms=("median_ms", "sum"), batch=("batch_size", "first"))
    if per_sample:
        t["ms"] = t["ms"] / t["batch"]
    return float(t.loc[last, "ms"] / t.loc[first, "ms"]) if t.loc[first, "ms"] > 0 else np.inf


def _stacked(ax: Any, own_figure: bool, df: pd.DataFrame, by: str, keys: list, labels: list, top: int,
             worst: list, notes: dict, explain: str) -> None:
    """Bars per ``by`` value stacked by layer in execution order (``other`` on top), each bar's total
    above it, time per sample on a twin axis, the ``worst`` layers outlined and named in the legend."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    from .layer_style import layer_colors, short_name
    t = df.groupby([by, "layer"])["median_ms"].sum().unstack(0).reindex(columns=keys).fillna(0.0)
    order = df.groupby("layer")["index"].min().sort_values(kind="stable").index
    slowest = t[keys[-1]].sort_values(ascending=False, kind="stable").index[:top]
    shown = [n for n in order if n in set(slowest)]
    colors = layer_colors(order)
    rest = t.drop(index=shown).sum()
    totals = t.sum()
    unit, per = ms_unit(float(totals.max()))
    x = np.arange(len(keys))
    bottom = np.zeros(len(keys))
    handles = []
    other = df[df["layer_precision"] != df["precision"]] if "layer_precision" in df else df.iloc[:0]
    elsewise = set(zip(other[by], other["layer"]))       # (bar, layer): the layer ran in another precision
    for name, values, color in [*[(n, t.loc[n], colors[n]) for n in shown],
                                ("other", rest, OTHER_COLOR)][:len(shown) + (len(t) > len(shown))]:
        h = values.to_numpy() / per
        edge = dict(edgecolor="#c0392b", linewidth=1.8) if name in worst else dict(edgecolor="white", linewidth=0.5)
        for key, rect in zip(keys, ax.bar(x, h, 0.6, bottom=bottom, color=color, **edge)):
            rect.set_gid(f"bar:{name}")
            rect.set_hatch("////" if (key, name) in elsewise else None)
        bottom += h
        label = short_name(name, 34) if name != "other" else \
            f"other ({len(t) - len(shown)} layers · {100 * rest[keys[-1]] / (totals[keys[-1]] or 1.0):.2g}% " \
            f"at {'batch ' if by == 'batch_size' else ''}{labels[-1]})"
        handles.append(Patch(facecolor=color, label=label + (f"  ⚠ {notes[name]}" if name in notes else ""),
                             **edge))
    for xi, total in zip(x, totals):
        ax.annotate(human_ms(total), (xi, total / per), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7, gid="bar_total")
    ax.set_xticks(x, labels)
    ax.set_ylabel(f"layer time per inference ({unit}, stacked medians)", loc="bottom")
    top_bar = float(bottom.max()) * 1.12 or 1.0
    ax.set_ylim(0, top_bar / BARS_SHARE)                 # the bars keep to the lower part, their totals too
    ax.set_yticks([v for v in MaxNLocator(6).tick_values(0, top_bar) if 0 <= v <= top_bar])
    batch = df.groupby(by)["batch_size"].first().reindex(keys).to_numpy()
    line = _per_sample(ax, x, totals.to_numpy() / batch)
    handles = [line, *handles[::-1]]                      # top of the stack first, as the bars read
    handles += _elsewise_rows(elsewise, shown)
    if worst:
        handles.append(Patch(visible=False, label=f"red outline: gains least ({explain})"))
    kw = dict(handles=handles, fontsize=7, title="layers (stacked in execution order)", title_fontsize=7,
              alignment="left")
    if own_figure:
        ax.figure.legend(loc="outside right upper", **kw)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.2, 1.0), borderaxespad=0, **kw)
    ax.grid(axis="y", lw=0.3)


BARS_SHARE = 0.56      # of the height: the bars and their totals below, the time-per-sample line above
LINE_FROM = 0.62       # of the height: where the line's zero sits


def _elsewise_rows(elsewise: set, shown: list) -> list:
    """Legend rows for layers that ran in another precision than the engine's: the hatch when a
    coloured layer is hatched; the names of those folded into 'other', where no hatch shows."""
    from matplotlib.patches import Patch

    from .layer_style import short_name
    names = {n for _, n in elsewise}
    rows = []
    if names & set(shown):
        rows.append(Patch(facecolor="white", edgecolor="0.4", hatch="////",
                          label="hatched: the layer ran in another precision than the engine's"))
    hidden = sorted(names - set(shown))
    if hidden:
        listed = ", ".join(short_name(n, 30) for n in hidden[:3]) + (f" +{len(hidden) - 3}" if len(hidden) > 3 else "")
        rows.append(Patch(visible=False, label=f"in other, ran in another precision: {listed}"))
    return rows


def _per_sample(ax: Any, x: np.ndarray, sample: np.ndarray) -> Any:
    """Time per sample (ms) as a line on a twin axis whose zero sits above the bars (so its markers
    never meet the bars' total labels); a dotted line marks that zero. Returns the line."""
    twin = ax.twinx()
    unit, per = ms_unit(float(sample.max()))
    (line,) = twin.plot(x, sample / per, "o-", color="black", lw=1.4, ms=5, gid="per_sample",
                        label="time per sample (all layers / batch)")
    twin.set_ylabel(f"time per sample ({unit})", loc="top")
    top = float(sample.max()) / per * 1.15 or 1.0
    twin.set_ylim(-top * LINE_FROM / (1 - LINE_FROM), top)
    from matplotlib.ticker import MaxNLocator
    twin.set_yticks([v for v in MaxNLocator(4).tick_values(0, top) if 0 <= v <= top])
    twin.axhline(0, color="0.5", lw=0.6, ls=":", gid="per_sample_zero")
    return line
