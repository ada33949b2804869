"""The text the commands print, shaped like trtexec's report: sections headed ``=== ... ===``, statistics as
``min = …, max = …, mean = …, median = …, percentile(90%) = …``, durations in human units (µs, ms, s), and the
findings of perfkit's analyses as sentences. Only formatting: every number comes from the Python API's frames."""
from __future__ import annotations

import math
import re
import textwrap
from typing import Any, Iterable, Sequence

from ..frames.stats import latency_stats, spread_pct
from ..frames.units import human_bytes, human_ms, shown

WIDTH = 110

#: findings that are advice about the workload, not signs that the measurement was disturbed
ADVICE = frozenset({"enqueue_bound", "h2d_bound", "d2h_bound", "power_capped"})


def section(title: str) -> str:
    return f"\n=== {title} ==="


def wrap(text: str, indent: str = "", first: str | None = None, prose: bool = False) -> list:
    """``text`` in lines of at most WIDTH. Figures (``prose=False``) break after ``,`` or ``;`` where they can, so
    that a value and its unit (``3.55 k samples/s``, ``611 µs``) stay on one line; prose breaks between words."""
    first = indent if first is None else first
    text = " ".join(str(text).split())
    if prose:
        return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent) or [first.rstrip()]
    lines: list = []
    line = first
    for piece in re.split(r"(?<=[,;]) ", text):
        if line not in (first, indent) and len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line = indent
        if len(line) + len(piece) > WIDTH:
            parts = textwrap.wrap(piece, WIDTH, initial_indent=line, subsequent_indent=indent)
            lines += parts[:-1]
            line = parts[-1]
        else:
            line += ("" if line == first or line == indent else " ") + piece
    lines.append(line)
    return [x.rstrip() for x in lines]


def ms(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else human_ms(float(v))


def per_s(v: Any, what: str = "samples") -> str:
    """``5.33 k samples/s``."""
    text = shown(v, "1/s")
    return text if text == "n/a" else f"{text[:-2].strip()} {what}/s"


def stats_line(samples_ms: Any, percentiles: Sequence[float] = (), median_ci: bool = False) -> str:
    """``min = …, max = …, mean = …, median = …[, percentile(P%) = …]`` of ``samples_ms``."""
    s = latency_stats(samples_ms, percentiles)
    if not s["count"]:
        return "n/a (no samples)"
    text = f"min = {ms(s['min'])}, max = {ms(s['max'])}, mean = {ms(s['mean'])}, median = {ms(s['median'])}"
    if median_ci and s["median_ci_low"] == s["median_ci_low"]:
        text += f" (95% interval {ms(s['median_ci_low'])} – {ms(s['median_ci_high'])})"
    return text + "".join(f", percentile({p:g}%) = {ms(s[f'p{p:g}'])}" for p in percentiles)


def table(rows: list, columns: Sequence[str], right: Iterable[str] = (), indent: str = "  ") -> list:
    """Fixed-width text table of ``rows`` (dicts of strings), columns padded to their widest cell."""
    right = set(right)
    cells = [[str(c) for c in columns]] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    out = []
    for row in cells:
        parts = [v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(row, widths, columns)]
        out.append((indent + "  ".join(parts)).rstrip())
    return out


def memory_line(engine: Any) -> str:
    m = engine.memory
    return (f"device memory {human_bytes(engine.device_memory_bytes)} (weights {human_bytes(m['weights'])}, "
            f"activations {human_bytes(m['activations'])}, workspace {human_bytes(m['workspace'])}, "
            f"I/O {human_bytes(m['io'])} per context)")


def engine_lines(engine: Any, network_layers: int | None = None) -> list:
    """What the builder made: layers before and after fusion, precisions taken, memory, build time."""
    log = engine.build_log
    fusion = log[log["phase"] == "fusion"]
    steps = engine.layers
    real = steps[steps["type"] != "identity"]
    counts = real["precision"].value_counts()
    prec = ", ".join(f"{int(n)} in {p}" for p, n in counts.items())
    before = f"{network_layers} network layers -> " if network_layers is not None else ""
    fused = int((fusion["outcome"] == "fused").sum())
    not_fused = int((fusion["outcome"] == "not fused").sum())
    text = (f"{engine.precision} allowed, max batch {engine.max_batch_size}: {before}{len(steps)} engine layers "
            f"({fused} fusion{'s' if fused != 1 else ''}, {not_fused} candidate{'s' if not_fused != 1 else ''} not "
            f"fused); layers {prec}; {memory_line(engine)}")
    if engine.build_time_ms:
        text += f"; built in {ms(engine.build_time_ms)}"
    return wrap(text, "  ", "Engine: ")


def performance(result: Any, percentiles: Sequence[float], kind: str) -> list:
    """trtexec's performance summary from a ``measure()`` Measurement or a ``throughput()`` result: throughput,
    latency statistics with the median's interval and the spread, enqueue / H2D / compute / D2H, totals, host."""
    q = result.queries
    v = _values(result)
    text = (f"{per_s(v.get('throughput_per_s'), 'samples')} ({per_s(v.get('throughput_qps'), 'inferences')}) over "
            f"{ms(v.get('total_host_wall_ms'))} of wall time")
    if "throughput_ci_low_per_s" in v:
        text += f"; 95% interval {per_s(v['throughput_ci_low_per_s'])} – {per_s(v.get('throughput_ci_high_per_s'))}"
    lines = wrap(text, "  ", "Throughput: ")
    what = "H2D + compute + D2H" if kind != "cpu" else "device-timed"
    lines += wrap(stats_line(q["latency_ms"], percentiles), "  ", f"Latency ({what}): ")
    s = latency_stats(q["latency_ms"])
    if s["count"]:
        ci = (f"{ms(s['median_ci_low'])} – {ms(s['median_ci_high'])} (95% confidence, order statistics)"
              if s["median_ci_low"] == s["median_ci_low"] else "unknown: too few inferences")
        robust = spread_pct(q["latency_ms"])
        lines += wrap(f"{ci}; spread {robust:.1f}% (robust coefficient of variation: IQR / 1.349 / median), "
                      f"std {ms(s['std'])}", "  ", "Median interval: ")
    for label, col in (("Enqueue Time", "enqueue_ms"), ("H2D Latency", "h2d_ms"), ("Compute Time", "compute_ms"),
                       ("D2H Latency", "d2h_ms"), ("Host Latency", "host_latency_ms")):
        if col in q:
            lines += wrap(stats_line(q[col], percentiles), "  ", f"{label}: ")
    comp = v.get("total_compute_ms", float(q["compute_ms"].sum()))
    lines.append(f"Total Host Walltime: {ms(v.get('total_host_wall_ms'))}; Total Compute Time: {ms(comp)}"
                 + (f" ({v['compute_share_pct']:.0f}% of the wall time)" if "compute_share_pct" in v else "")
                 + f"; {len(q)} inferences")
    if "copy_share_pct" in v:
        lines.append(f"Transfers: H2D + D2H are {v['copy_share_pct']:.1f}% of a query's latency (median over queries)")
    blas = v.get("blas_threads", v.get("threads"))      # throughput(): "threads" counts its worker threads
    host = [f"load {v['host_load_1m']:.2f} on {int(v['host_cpus'])} cores before timing"
            if _num(v.get("host_load_1m")) and _num(v.get("host_cpus")) else "",
            f"other processes kept {v['host_other_busy_cores']:.2f} cores busy while timing"
            if _num(v.get("host_other_busy_cores")) else "",
            f"{int(blas)} BLAS thread(s) per stream" if kind == "cpu" and _num(blas) else ""]
    if any(host):
        lines += wrap("; ".join(h for h in host if h), "  ", "Host: ")
    return lines


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == x


def _values(result: Any) -> dict:
    s = result.summary
    return {m: float(x) for m, x in zip(s["metric"], s["value"])}


def findings(diagnoses: Any, explained: set | None = None) -> list:
    """A sentence that says whether the measurement was disturbed, then every finding explained. ``explained``:
    the findings an earlier configuration of the same command explained; they get their figure only (the part
    of the explanation before its advice), and the set is updated."""
    if diagnoses is None or not len(diagnoses):
        return ["Disturbed: no sign of it (steady latency, host load within its cores, no throttling)."]
    disturbed = diagnoses[~diagnoses["finding"].isin(ADVICE)]
    lines = []
    if len(disturbed):
        lines += wrap(f"yes — read these figures with care: {', '.join(disturbed['finding'])} (explained below); "
                      "measure again on a quiet machine before comparing them.", "  ", "Disturbed: ", prose=True)
    else:
        lines.append("Disturbed: no sign of it.")
    for f in diagnoses.itertuples():
        text = f.explanation
        if explained is not None:
            if f.finding in explained and ": " in text:
                text = text.split(": ")[0] + " (advice above)"
            explained.add(f.finding)
        lines += wrap(text, "    ", f"  [{f.severity}] {f.finding}: ", prose=True)
    return lines


def layer_profile(run: Any, top: int | None) -> list:
    """The per-layer profile of a profiling run (trtexec --dumpProfile): each layer's median with its interval,
    total and share, the precision and tactic the builder chose, and the run's layer sum against end-to-end. The
    ``top`` slowest layers, or (``top=None``) every layer in execution order, numbered as ``perfkit inspect``."""
    summary = run.summary()
    info = run.engine_layers.set_index("layer") if len(run.engine_layers) else None
    if top is None:
        order = run.layers.groupby("layer")["index"].min()
        shownrows = summary.assign(index=summary["layer"].map(order)).sort_values("index", kind="stable")
    else:
        # the slowest per inference (median), not by total: one outlier inference must not rank a layer first
        slowest = summary.sort_values("median_ms", ascending=False, kind="stable").head(top)
        shownrows = slowest.assign(index=slowest["layer"].map(run.layers.groupby("layer")["index"].min()))
    rows = []
    for r in shownrows.itertuples():
        i = info.loc[r.layer] if info is not None and r.layer in info.index else {}
        ci = f"{ms(r.median_ci_low_ms)} – {ms(r.median_ci_high_ms)}" if r.median_ci_low_ms == r.median_ci_low_ms \
            else "n/a"
        rows.append({"#": r.index, "layer": short(r.layer), "type": r.type, "precision": i.get("precision", ""),
                     "tactic": i.get("tactic", "") or "", "median": ms(r.median_ms), "95% interval": ci,
                     "total": ms(r.total_ms), "share": f"{r.pct:.1f}%"})
    lines = table(rows, ["#", "layer", "type", "precision", "tactic", "median", "95% interval", "total", "share"],
                  right=("#", "median", "total", "share"))
    if top is not None and len(summary) > top:
        lines.append(f"  ({top} slowest of {len(summary)} layers; --dump-profile lists every layer)")
    v = run.overview_values()
    if "layer_sum_ms" in v and v.get("e2e_unprofiled_ms"):
        lines += wrap(f"layer sum {ms(v['layer_sum_ms'])} of {ms(v['e2e_unprofiled_ms'])} end-to-end unprofiled "
                      f"({v.get('layer_sum_pct_of_e2e', float('nan')):.0f}%); profiling overhead "
                      f"{v.get('overhead_pct', float('nan')):+.1f}% (its calibrated cost "
                      f"{v.get('expected_overhead_pct', float('nan')):.1f}%)", "  ", "  ")
    for d in run.disturbances()["explanation"]:
        lines += wrap(d, "    ", "  disturbed: ", prose=True)
    return lines


def short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def figures(summary: Any) -> list:
    """A summary frame (metric, value, shown, unit, meaning) as a table: every figure with what it means."""
    return table([{"metric": r.metric, "value": r.shown, "meaning": r.meaning} for r in summary.itertuples()],
                 ["metric", "value", "meaning"], right=("value",))
