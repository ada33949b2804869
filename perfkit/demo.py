"""``perfkit demo``: the main job. Builds the sample networks, sweeps them over batch size and precision, profiles
each, and writes frames, traces, charts and one self-contained report.html into a new run folder."""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

from .plots._axes import four, human_bytes, human_ms

DEMO_MODELS = ("mnist_mlp", "lenet", "resnet_small", "transformer_encoder")


def _unique(values: Sequence) -> list:
    return list(dict.fromkeys(values))


def _new_run_dir(out: str) -> str:
    """A new folder under ``out`` named by the time; a second run within the same second gets a suffix."""
    from .errors import ArgumentError
    if os.path.exists(out) and not os.path.isdir(out):
        raise ArgumentError(f"--out {out!r} is a file, not a directory; choose a directory for the run's files")
    base = os.path.join(out, time.strftime("%Y%m%d-%H%M%S"))
    run_dir, n = base, 1
    while True:
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            n += 1
            run_dir = f"{base}-{n}"
        except OSError as exc:
            raise ArgumentError(f"cannot create the run folder {run_dir!r}: {exc.strerror or exc}; choose another "
                                "--out") from None


def demo(device: str | None, out: str, batch_sizes: Sequence[int], precisions: Sequence[str],
         models: Sequence[str], min_time_s: float) -> str:
    """Runs the demo into a new folder under ``out`` and returns its path; every argument is checked
    first, so a bad one leaves no folder behind."""
    from . import models as pkm
    from .arguments import number, one_of, positive_int
    from .device import get_device
    from .errors import ArgumentError
    from .network import PRECISIONS

    for what, values in (("batch_sizes", batch_sizes), ("precisions", precisions), ("models", models)):
        if not isinstance(values, (list, tuple)):
            raise ArgumentError(f"demo: {what} must be a list, not {type(values).__name__}")
    batch_sizes, precisions, models = _unique(batch_sizes), _unique(precisions), _unique(models)
    for b in batch_sizes:
        positive_int(b, "demo: each batch size")
    for p in precisions:
        one_of(p, PRECISIONS, "demo: each precision")
    from .onnx import is_onnx
    for m in models:
        if is_onnx(m):
            if not os.path.isfile(m):
                raise ArgumentError(f"demo: ONNX model {m!r} does not exist; give the path of an .onnx file")
        else:
            one_of(m, pkm.SAMPLES, "demo: each model (a sample name or the path of an .onnx file)")
    if not (batch_sizes and precisions and models):
        raise ArgumentError("demo needs at least one batch size, one precision and one model")
    min_time_s = number(min_time_s, "demo: min_time_s", minimum=0)
    dev = get_device(device)                   # every argument is checked before the run folder is made
    run_dir = _new_run_dir(out)
    try:
        _run_demo(dev, run_dir, batch_sizes, precisions, models, min_time_s)
    except BaseException:
        if not os.listdir(run_dir):           # nothing written yet: leave no empty run folder behind
            os.rmdir(run_dir)
        raise
    return run_dir


def _run_demo(dev: Any, run_dir: str, batch_sizes: list, precisions: list, models: list, min_time_s: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from .bench import sweep
    from .onnx import network_from
    print(f"perfkit demo on {dev.spec} ({dev.name}); writing to {run_dir}")
    print(f"{'model':<22}{'prec':<6}{'batch':>6}{'median ms':>11}{'p90 ms':>9}{'samples/s':>12}{'device mem':>13}")

    def show(r: dict) -> None:
        print(f"{r['model']:<22}{r['precision']:<6}{r['batch_size']:>6}{r['latency_median_ms']:>11.3f}"
              f"{r['latency_p90_ms']:>9.3f}{r['throughput_per_s']:>12.1f}{human_bytes(r['device_memory_bytes']):>13}",
              flush=True)

    nets = [network_from(m) for m in models]      # sample names, and ONNX files (perfkit.onnx)
    engines: dict = {}
    frame = sweep(nets, batch_sizes, precisions, dev, min_time_s=min_time_s, on_row=show, engines=engines)
    logs: list = []
    layers: list = []
    frame.to_parquet(os.path.join(run_dir, "sweep.parquet"))
    top = max(batch_sizes)
    for net in nets:
        for precision in precisions:
            e = engines[(net.name, precision, top)]
            logs.append(e.build_log.assign(model=net.name, engine_precision=precision))
            layers.append(e.layers.assign(model=net.name, engine_precision=precision))
    for name, parts in (("build_log", logs), ("engine_layers", layers)):
        frame_all = pd.concat(parts, ignore_index=True)     # the schema's columns plus model and precision
        frame_all.attrs.update({"schema": name, "device": dev.spec, "device_name": dev.name})
        frame_all.to_parquet(os.path.join(run_dir, f"{name}.parquet"))
    print("\nwhat the builder fused (largest batch, first precision):")
    for net in nets:
        e = engines[(net.name, precisions[0], top)]
        fl = e.build_log.query("phase == 'fusion'")
        print(f"  {net.name:<22}{len(net.layers):>4} layers -> {len(e.plan.steps):<4} "
              f"{(fl['outcome'] == 'fused').sum()} fusions, {(fl['outcome'] == 'not fused').sum()} candidates not fused")
    reduced = [p for p in precisions if p != "fp32"]
    if reduced:   # a reduced precision is allowed, not imposed: say where the builder took it
        print(f"\nlayers in fp16/bf16 (largest batch; the builder keeps a layer in fp32 where that is faster on "
              f"{dev.spec}, fast fp16: {dev.fast_fp16}, fast bf16: {dev.fast_bf16}):")
        for net in nets:
            for p in reduced:
                steps = engines[(net.name, p, top)].layers.query("type != 'identity'")
                print(f"  {net.name:<22}{p:<6}{int((steps['precision'] == p).sum())} of {len(steps)} layers in {p}")
    print(f"\nper-layer profiles (batch {top}, {precisions[0]}): top layers, memory predicted vs measured, overhead")
    profiles = {net.name: _profile(dev, engines[(net.name, precisions[0], top)], net, top, run_dir) for net in nets}
    for sentence in _cross_check(frame, profiles, precisions[0], top):
        print(f"  disagreement: {sentence}")
    best = frame.loc[frame.groupby("model")["throughput_per_s"].idxmax()]
    print("\nbest throughput per model:")
    for _, r in best.iterrows():
        print(f"  {r['model']:<22}{r['throughput_per_s']:>12.1f} samples/s  ({r['precision']}, batch {r['batch_size']}, "
              f"{r['latency_median_ms']:.3f} ms, {human_bytes(r['device_memory_bytes'])} device memory)")
        for sentence in _best_caveats(frame, r, engines):
            print(f"  {'':<22}{sentence}")
    figures = _demo_figures(frame, profiles, engines, precisions[0], top, run_dir)
    report = _demo_report(dev, frame, nets, engines, precisions, top, profiles, figures, run_dir)
    print(f"\nwrote {', '.join(sorted(os.listdir(run_dir)))} in {run_dir}")
    print(f"report: {report}")


def _profile(dev: Any, e: Any, net: Any, batch: int, run_dir: str) -> tuple:
    """Profiles 10 inferences of ``e`` on a fresh context; saves the run and its trace; returns the run and the
    memory events of this engine and its contexts (the device's allocator also serves the sweep's other engines)."""
    from . import models as pkm
    from .profiling import profile
    ctx = e.create_execution_context()
    x = pkm.sample_input(net, batch)
    if dev.kind != "cpu":
        x = {k: dev.to_device(v) for k, v in x.items()}
    ctx.execute(x)
    with profile(ctx) as run:
        for _ in range(10):
            ctx.execute(x)
    v = run.overview_values()
    s = run.summary().head(3)
    top3 = "; ".join(f"{r.layer} {r.pct:.0f}%" for r in s.itertuples())
    print(f"  {net.name:<22} layers sum {v['layer_sum_ms']:.3f} ms of {v['e2e_unprofiled_ms']:.3f} ms end-to-end, "
          f"profiling overhead {v.get('overhead_pct', float('nan')):+.1f}%; memory predicted "
          f"{human_bytes(v['predicted_device_memory_bytes'])}, measured {human_bytes(v['measured_device_memory_bytes'])}")
    print(f"  {'':<22} top: {top3}")
    for d in run.disturbances()["explanation"]:
        print(f"  {'':<22} disturbed: {d}")
    run.save(os.path.join(run_dir, f"profile_{net.name}"))
    run.export_chrome_trace(os.path.join(run_dir, f"trace_{net.name}.json"))
    events = _own_events(e.allocator.events if hasattr(e.allocator, "events") else run.memory, e.owner)
    ctx.close()
    return run, events


def _best_caveats(frame: Any, r: Any, engines: dict) -> list:
    """What qualifies a model's best row: a reduced precision that no layer took (the engine is the fp32 one
    in all but name), and the other precisions at that batch whose latency intervals overlap the best's (the
    pick between them is within the measurement's uncertainty)."""
    out = []
    e = engines.get((r["model"], r["precision"], int(r["batch_size"])))
    if r["precision"] != "fp32" and e is not None:
        steps = e.layers.query("type != 'identity'")
        if not (steps["precision"] == r["precision"]).any():
            out.append(f"{r['precision']} was allowed but every layer stayed in fp32: this is an fp32 engine")
    lo, hi = (float(r.get(c, float("nan"))) for c in ("latency_ci_low_ms", "latency_ci_high_ms"))
    if lo == lo and hi == hi:
        same = frame[(frame["model"] == r["model"]) & (frame["batch_size"] == r["batch_size"])
                     & (frame["precision"] != r["precision"])]
        for _, o in same.iterrows():
            olo, ohi = (float(o.get(c, float("nan"))) for c in ("latency_ci_low_ms", "latency_ci_high_ms"))
            if olo == olo and ohi == ohi and olo <= hi and lo <= ohi:
                out.append(f"not distinguishable from {o['precision']} at this batch: latency intervals "
                           f"{lo:.3f}-{hi:.3f} and {olo:.3f}-{ohi:.3f} ms overlap")
    return out


def _cross_check(frame: Any, profiles: dict, precision: str, batch: int) -> list:
    """Sentences for the profiled models whose unprofiled end-to-end latency (the profile's baseline) lies
    far outside the sweep's interval for the same configuration: two measurements of one engine that disagree
    say the machine changed between them, and neither should be trusted alone."""
    out = []
    for model, (run, _) in profiles.items():
        row = frame[(frame["model"] == model) & (frame["precision"] == precision) & (frame["batch_size"] == batch)]
        e2e = run.overview_values().get("e2e_unprofiled_ms")
        if row.empty or e2e is None:
            continue
        r = row.iloc[0]
        lo, hi, med = (float(r.get(c, float("nan"))) for c in ("latency_ci_low_ms", "latency_ci_high_ms",
                                                                "latency_median_ms"))
        lo, hi = (med, med) if lo != lo or hi != hi else (lo, hi)
        if lo / 1.5 <= e2e <= hi * 1.5 or not med > 0:
            continue
        out.append(f"{model} ({precision}, batch {batch}): the sweep timed a median of {med:.4g} ms (interval "
                   f"{lo:.4g}-{hi:.4g} ms), its profile's unprofiled inferences {e2e:.4g} ms, {max(e2e, med) / min(e2e, med):.1f}x "
                   "apart. The same engine measured twice disagrees: the machine changed between the two (see the host "
                   "load), so trust neither figure alone; measure again on a quiet machine.")
    return out


def _layer_why(run: Any, batch: int, n: int = 5) -> Any:
    """The ``n`` slowest layers of a profile with what explains them: precision, tactic, the network layers
    fused into each, and the achieved GFLOP/s and GB/s (FLOPs and bytes per sample from the engine's layers)."""
    import pandas as pd
    s = run.summary().head(n)
    info = run.engine_layers.set_index("layer") if len(run.engine_layers) else pd.DataFrame()
    rows = []
    for r in s.itertuples():
        i = info.loc[r.layer] if r.layer in info.index else {}
        seconds = r.median_ms / 1e3
        flops, nbytes = (float(i.get(k, float("nan"))) * batch for k in ("flops", "bytes"))
        rows.append({"layer": r.layer, "type": r.type, "share %": round(r.pct, 1), "median": human_ms(r.median_ms),
                     "precision": i.get("precision", ""), "tactic": i.get("tactic", ""),
                     "GFLOP/s": four(flops / seconds / 1e9) if seconds > 0 else "",
                     "GB/s": four(nbytes / seconds / 1e9) if seconds > 0 else "",
                     "fused network layers": i.get("origin", "")})
    return pd.DataFrame(rows)


def _own_events(events: Any, owner: str) -> Any:
    """The memory events of one engine and its contexts, with the running totals recounted over them alone."""
    name = owner.split(":", 1)[-1]
    own = events["owner"].astype(str)
    ev = events[(own == owner) | own.str.startswith(f"context:{name}/")].reset_index(drop=True)
    sign = ev["action"].map({"alloc": 1, "free": -1}).fillna(0).astype("int64")     # a refused ('oom') request holds nothing
    held = (sign * ev["size_bytes"]).cumsum()
    return ev.assign(in_use_bytes=held.astype("int64"), peak_bytes=held.cummax().astype("int64"))


def _demo_figures(frame: Any, profiles: dict, engines: dict, precision: str, top: int, run_dir: str) -> dict:
    """The demo's charts, saved as PNG: throughput and latency against batch size, and the layer timeline and
    memory over time of the model with the most engine layers. Returns {file name: (figure, what it shows)}."""
    import matplotlib.pyplot as plt

    from .plots import plot_layer_timeline, plot_memory, plot_sweep
    model = max(profiles, key=lambda m: len(engines[(m, precision, top)].plan.steps))
    run, events = profiles[model]
    e = engines[(model, precision, top)]
    figures = {
        "throughput_vs_batch.png": (plot_sweep(frame, "throughput_per_s"), "throughput against batch size, one line "
                                    "per model and precision, with the 95% interval of each point as a band"),
        "latency_vs_batch.png": (plot_sweep(frame, "latency_median_ms"), "median latency against batch size, with "
                                 "95% interval bands"),
        f"layer_timeline_{model}.png": (plot_layer_timeline(run.layers, iterations=[0, 1, 2]),
                                        f"three profiled inferences of {model} (batch {top}, {precision}), layer by "
                                        "layer, the slowest named beside the axes"),
        f"memory_{model}.png": (plot_memory(events, predicted_bytes=e.device_memory_bytes, layer_times=run.layers),
                                f"device memory of {model} from context creation through the profiled inferences, "
                                "stacked by tag, against the builder's prediction"),
    }
    for name, (fig, _) in figures.items():
        fig.savefig(os.path.join(run_dir, name), dpi=100)     # the dpi report.html embeds them at
    plt.close("all")
    return figures


def _sweep_table(frame: Any) -> Any:
    """The sweep as a reader wants it: one row per configuration, the interval beside the median."""
    import pandas as pd
    f = frame.sort_values(["model", "precision", "batch_size"])
    low, high = (f.get(c, pd.Series(float("nan"), index=f.index)) for c in ("latency_ci_low_ms", "latency_ci_high_ms"))
    flags = f.get("unstable", pd.Series(False, index=f.index)).map({True: "unstable", False: ""})
    if "error" in f:
        flags = flags.where(f["error"].fillna("") == "", f["error"])
    return pd.DataFrame({
        "model": f["model"], "precision": f["precision"], "batch size": f["batch_size"].astype(int),
        "median ms": f["latency_median_ms"].round(4), "95% interval ms": [f"{a:.4g} – {b:.4g}" if a == a and b == b else "unknown (too few rounds)"
                            for a, b in zip(low, high)],
        "spread %": f.get("latency_cv_pct", pd.Series(float("nan"), index=f.index)).round(1),
        "p90 ms": f["latency_p90_ms"].round(4), "samples/s": f["throughput_per_s"].round(1),
        "device memory": [human_bytes(b) for b in f["device_memory_bytes"]], "flag": flags})


def _trust_text(dev: Any, frame: Any, cross_checks: list) -> str:
    """How far to trust the sweep, in words: how it was timed, the host load its rows recorded, unstable rows, and
    the disturbances bench.sweep_disturbances finds in those rows."""
    from .bench import sweep_disturbances
    lines = [f"Measured on {dev.spec} ({dev.name}). Each configuration was timed in interleaved rounds; its median is "
             "the median of the round medians, with a 95% interval and the spread of the rounds (a robust "
             "coefficient of variation). Where two configurations' intervals do not overlap, they differ; where "
             "they overlap, compare them with perfkit.widgets.compare, which gives the interval of their ratio."]
    if {"host_load_1m", "host_cpus"} <= set(frame.columns) and len(frame):
        lines.append(f"Host load (1-minute average, read before each row was timed) reached "
                     f"{float(frame['host_load_1m'].max()):.1f} on {int(frame['host_cpus'].max())} cores.")
    if "unstable" in frame and frame["unstable"].any():
        lines.append(f"{int(frame['unstable'].sum())} of {len(frame)} configurations stayed unstable after being "
                     "timed again: read their medians with their intervals.")
    lines += sweep_disturbances(frame)
    lines += cross_checks
    return "\n".join(lines)


def _demo_report(dev: Any, frame: Any, nets: list, engines: dict, precisions: list, top: int, profiles: dict,
                 figures: dict, run_dir: str) -> str:
    """Writes report.html: the sweep with its intervals, the charts, what the builder fused, the profiles."""
    import pandas as pd

    from .report import Section, write_report
    fused = pd.DataFrame([{"model": n.name, "network layers": len(n.layers),
                           "engine layers": len(engines[(n.name, precisions[0], top)].plan.steps),
                           "fusions": int((lg["outcome"] == "fused").sum()),
                           "candidates not fused": int((lg["outcome"] == "not fused").sum())}
                          for n in nets for lg in [engines[(n.name, precisions[0], top)].build_log.query(
                              "phase == 'fusion'")]])
    overview = pd.DataFrame([{"model": m, "layer sum ms": round(v["layer_sum_ms"], 4),
                              "end-to-end ms (unprofiled)": round(v["e2e_unprofiled_ms"], 4),
                              "profiling overhead %": round(v.get("overhead_pct", float("nan")), 1),
                              "memory predicted": human_bytes(v["predicted_device_memory_bytes"]),
                              "memory measured": human_bytes(v["measured_device_memory_bytes"]),
                              "disturbed": " ".join(run.disturbances()["explanation"]) or "no"}
                             for m, (run, _) in profiles.items() for v in [run.overview_values()]])
    charts = [Section(name.removesuffix(".png").replace("_", " "), what, figure=fig, alt=what)
              for name, (fig, what) in figures.items()]
    model = next(n.removeprefix("layer_timeline_").removesuffix(".png") for n in figures if n.startswith("layer_"))
    summary = profiles[model][0].summary().head(10).reset_index(drop=True)
    sections = [
        Section("How far to trust these numbers", _trust_text(dev, frame, _cross_check(frame, profiles, precisions[0],
                                                                                     top))),
        Section("Latency and throughput against batch size and precision",
                f"One engine per batch size (guide 2.1), precisions {', '.join(precisions)} allowed per layer.",
                table=_sweep_table(frame)),
        *charts[:2],
        Section("What the builder fused", f"Engines built for batch {top} in {precisions[0]}.", table=fused),
        Section("Per-layer profiles", f"10 profiled inferences per model at batch {top} in {precisions[0]}, "
                "compared with the same inferences unprofiled.", table=overview),
        Section(f"Slowest layers of {model}", "Per layer over the profiled inferences (trtexec --dumpProfile).",
                table=summary[[c for c in ("layer", "count", "median_ms", "total_ms", "pct") if c in summary]]),
        *[Section(f"Why {m} takes its time", f"Its five slowest layers at batch {top} in {precisions[0]}: share of "
                  "the layer time, median, the precision and tactic the builder chose, the network layers fused into "
                  "each, and the FLOP/s and bytes/s each achieved.", table=_layer_why(run, top))
          for m, (run, _) in profiles.items()],
        *charts[2:],
    ]
    return write_report(os.path.join(run_dir, "report.html"), f"perfkit demo on {dev.spec}", sections)
