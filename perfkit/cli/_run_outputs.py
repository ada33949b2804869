"""What ``perfkit run`` writes: trtexec-compatible JSON exports, Chrome traces, engine files and the ``--out``
folder of parquet frames, each staged under a temporary name (``_files.Outputs``) and renamed at the end."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import pandas as pd

from ._files import Outputs, per_config
from ._report import ADVICE, ms, per_s, table, wrap

#: the results.parquet columns taken from the summary of measure() / throughput(), when present
SUMMARY_METRICS = ("queries", "throughput_per_s", "throughput_qps", "latency_min_ms", "latency_mean_ms",
                   "latency_median_ms", "latency_median_ci_low_ms", "latency_median_ci_high_ms", "latency_max_ms",
                   "latency_std_ms", "host_latency_median_ms", "enqueue_median_ms", "h2d_median_ms",
                   "compute_median_ms", "d2h_median_ms", "total_host_wall_ms", "copy_share_pct", "host_load_1m",
                   "host_cpus", "host_other_busy_cores")


def stage_config_outputs(outs: Outputs, args: Any, cfg: Any, several: bool, inputs: Any = None) -> None:
    """The exports of one configuration, written now under temporary names."""
    from ..frames.exporters import trtexec_times
    name = lambda p: per_config(p, cfg.precision, cfg.batch, several)  # noqa: E731
    if args.export_times:
        _json(outs.file(name(args.export_times)), trtexec_times(cfg.result.queries))
    if args.export_profile:
        cfg.run.export_profile(outs.file(name(args.export_profile)))
    if args.export_trace:
        trace_run(cfg).export_chrome_trace(outs.file(name(args.export_trace)))
    if args.save_engine:
        cfg.engine.save(outs.file(name(args.save_engine)))
    if args.export_layer_info:
        from .inspect_engine import describe
        with open(outs.file(name(args.export_layer_info)), "w") as f:
            json.dump(describe(cfg.engine), f, indent=1, default=str)
    if args.export_output:
        _outputs(outs.file(name(args.export_output)), cfg, inputs)


def trace_run(cfg: Any) -> Any:
    """The frames a trace shows: the timed inferences of the measurement, one lane per stream (guide 2.2: do the
    streams overlap?), then, on the same perf_counter_ns clock, the profiling pass layer by layer with its memory
    and GPU samples (its query numbers and layer iterations follow the timed ones)."""
    from ..frames.schemas import SCHEMAS
    from ..profiling import RunData
    from ..profiling.run_files import FRAMES
    timed = cfg.result.queries
    frames = {k: SCHEMAS[v].frame([]) for k, v in FRAMES.items()}
    meta = dict(getattr(cfg.result, "meta", {}))
    if cfg.run is not None:
        n = int(timed["query"].max()) + 1 if len(timed) else 0
        frames.update({k: cfg.run.frames[k] for k in ("memory", "gpu")})
        frames["layers"] = cfg.run.layers.assign(iteration=cfg.run.layers["iteration"] + n)
        k = cfg.run.kernels
        frames["kernels"] = k.assign(iteration=k["iteration"].where(k["iteration"] < 0, k["iteration"] + n))
        timed = pd.concat([timed, cfg.run.queries.assign(query=cfg.run.queries["query"] + n)], ignore_index=True)
        meta = {**meta, **cfg.run.meta}
    frames["queries"] = timed
    return RunData(frames, meta, [])


def _outputs(path: str, cfg: Any, inputs: Any) -> None:
    """One inference at the configuration's batch on its inputs (--inputs, else perfkit.models.sample_input's), its
    outputs saved as an .npz (host arrays, written by numpy without pickle)."""
    import numpy as np

    from ..models import sample_input
    dev = cfg.engine.device
    x = {k: v[:cfg.batch] for k, v in inputs.items()} if inputs is not None else sample_input(cfg.engine, cfg.batch)
    if dev.kind != "cpu":
        x = {k: dev.to_device(v) for k, v in x.items()}
    ctx = cfg.engine.create_execution_context()
    try:
        out = ctx.execute(x)
        host = {k: np.asarray(dev.to_host(v) if dev.kind != "cpu" else v) for k, v in out.items()}
    finally:
        ctx.close()
    with open(path, "wb") as f:                  # a file object: np.savez would add .npz to a temporary name
        np.savez(f, **host)


def _json(path: str, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def results_row(plan: dict, cfg: Any, args: Any) -> dict:
    """One row of results.parquet and of the summary table: the configuration and its headline figures."""
    s = cfg.result.summary
    values = {m: float(v) for m, v in zip(s["metric"], s["value"])}
    found = list(cfg.diagnoses["finding"]) if cfg.diagnoses is not None else []
    row = {"model": plan["model"], "device": plan["device"].spec, "precision": cfg.precision,
           "engine_precision": cfg.engine.precision, "batch_size": cfg.batch, "streams": args.streams,
           "threads": args.threads or 0, "include_transfers": not args.no_transfers, "engine_id": cfg.engine.id,
           "device_memory_bytes": cfg.engine.device_memory_bytes}
    for m in SUMMARY_METRICS:
        row[m] = values.get(m, float("nan"))
    for p in args.percentiles:
        row[f"latency_p{p:g}_ms"] = values.get(f"latency_p{p:g}_ms", float("nan"))
    row["disturbed"] = any(f not in ADVICE for f in found)
    row["findings"] = ", ".join(found)
    return row


def summary_table(rows: list) -> list:
    """The configurations side by side, and the one with the highest throughput."""
    tail = [k for k in rows[0] if k.startswith("latency_p") and k.endswith("_ms")][-1:]     # the highest percentile
    label = tail[0][len("latency_"):-len("_ms")] if tail else ""
    shown = [{"precision": r["precision"], "batch": r["batch_size"], "median": ms(r["latency_median_ms"]),
              "95% interval": f"{ms(r['latency_median_ci_low_ms'])} – {ms(r['latency_median_ci_high_ms'])}",
              label: ms(r[tail[0]]) if tail else "", "throughput": per_s(r["throughput_per_s"]),
              "disturbed": "yes" if r["disturbed"] else "no"} for r in rows]
    lines = table(shown, ["precision", "batch", "median", "95% interval", label, "throughput", "disturbed"],
                  right=("batch", "median", label, "throughput"))
    best = max(rows, key=lambda r: r["throughput_per_s"] if r["throughput_per_s"] == r["throughput_per_s"] else -1)
    lines.append(f"Highest throughput: {best['precision']} at batch {best['batch_size']}, "
                 f"{per_s(best['throughput_per_s'])} (median latency {ms(best['latency_median_ms'])}).")
    lines += wrap("these configurations were measured one after the other, so a change of load between them moves "
                  "their comparison; `perfkit sweep` times them in interleaved rounds, and "
                  "perfkit.widgets.compare gives the interval of each ratio.", "  ", "Note: ", prose=True)
    return lines


def stage_out_folder(outs: Outputs, args: Any, plan: dict, rows: list) -> None:
    """``--out DIR``: results.parquet (a row per configuration), command.json, and per configuration
    ``<precision>_b<batch>/`` with queries, summary, diagnoses, engine_layers, build_log (parquet) and the profile
    run (``perfkit.load_run`` reads it)."""
    from .._version import __version__
    from ..frames.schemas_cli import RUN_RESULTS
    folder = outs.folder(args.out)
    declared = set(RUN_RESULTS.names)
    results = RUN_RESULTS.frame([{k: v for k, v in r.items() if k in declared} for r in rows],
                                {"model": plan["model"], "device": plan["device"].spec})
    for col in [k for k in rows[0] if k not in declared]:          # latency_p<P>_ms, one per percentile asked
        results[col] = [float(r[col]) for r in rows]
    results.to_parquet(os.path.join(folder, "results.parquet"))
    for cfg in plan["configs"]:
        sub = os.path.join(folder, f"{cfg.precision}_b{cfg.batch}")
        os.makedirs(sub)
        frames = {"queries": cfg.result.queries, "summary": cfg.result.summary, **cfg.frames}
        if cfg.diagnoses is not None:
            frames["diagnoses"] = cfg.diagnoses
        for name, frame in frames.items():
            frame.to_parquet(os.path.join(sub, f"{name}.parquet"))
        if cfg.run is not None:
            cfg.run.save(os.path.join(sub, "profile"))
    info = {"perfkit_version": __version__, "argv": sys.argv[1:], "model": plan["model"],
            "device": plan["device"].spec, "device_name": plan["device"].name,
            "configurations": [f"{c.precision}_b{c.batch}" for c in plan["configs"]]}
    _json(os.path.join(folder, "command.json"), info)
