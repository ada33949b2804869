"""``perfkit sweep MODEL ...``: ``perfkit.sweep`` over batch sizes and precisions from the command line (on several
devices with ``--devices``); writes the sweep frame (parquet) and its plots into a new folder, and prints each
configuration as it finishes. ``--streams`` sweeps streams and worker threads instead (``sweep_streams.py``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from . import _args as A
from ._files import Outputs
from ._report import ms, section, short, wrap

EXAMPLES = """examples:
  perfkit sweep lenet --batch 1,8,64 --precision fp32,fp16
  perfkit sweep mnist_mlp model.onnx --batch 1,32 --min-time-s 0.5 --layers --out sweeps/today
  perfkit sweep resnet_small --device cuda --batch 1,8,32,128 --latency-budget-ms 2
  perfkit sweep resnet_small --device cuda --batch 8 --streams 1,2,4,8 --threads 1,2   where throughput saturates
  perfkit sweep lenet resnet_small --batch 1,8,64 --devices all     every GPU of this host at once (Dask)

Each (model, precision, batch) gets its own engine built for that batch; the configurations are timed in
interleaved rounds, so a disturbance hits them all alike, and each median comes with its 95% interval. Open
the folder in a notebook with perfkit.widgets.SweepExplorer("<folder>/sweep.parquet") (with --devices:
"<folder>/sweep", a dataset folder)."""


def add_parser(sub: Any) -> None:
    from ..precision import PRECISIONS
    p = sub.add_parser("sweep", help="latency and throughput against batch size and precision, frame and plots",
                       description="Sweep models over batch size and precision (perfkit.sweep), or over streams and "
                                   "worker threads (--streams), and write the frame and its plots into a new "
                                   "folder.", epilog=EXAMPLES,
                       formatter_class=A.Formatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="sample network names or .onnx files")
    p.add_argument("--shapes", type=A.shapes, default=None, metavar="S", help="per-sample dims of an ONNX model's inputs that are symbolic beyond the batch, NAME:D1xD2[,...] (trtexec's --shapes without the batch, which --batch gives)")
    p.add_argument("--device", metavar="D",
                   type=A.device, default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--cpu-threads", type=A.count, default=None, metavar="N", help="BLAS threads of the CPU device "
                   "(default: the *_NUM_THREADS environment, else the cores other processes leave free)")
    p.add_argument("--batch", type=A.comma_list(int, what="batch size"), default=[1, 8, 32], metavar="B[,B...]",
                   help="batch sizes (default: 1,8,32)")
    p.add_argument("--precision", type=A.comma_list(str, PRECISIONS, "precision"), default=["fp32"],
                   metavar="P[,P...]", help=f"precisions from {', '.join(PRECISIONS)} (default: fp32)")
    p.add_argument("--min-time-s", metavar="S", type=A.seconds, default=0.2, help="seconds of timing per configuration")
    p.add_argument("--rounds", metavar="N",
                   type=A.count, default=6, help="interleaved timing rounds (6 or more give an "
                   "interval of the median)")
    p.add_argument("--layers", action="store_true", help="also profile each configuration layer by layer "
                   "(sweep_layers.parquet and a per-layer chart per model and precision)")
    p.add_argument("--devices", type=A.devices, default=None, metavar="all|D[,D...]",
                   help="spread the configurations over several devices through Dask (perfkit[cluster]): all (every "
                   "GPU here, else one CPU worker per core) or a list such as cuda:0,cuda:1; the rows then go to "
                   "the dataset folder sweep/ (perfkit.load_sweep reads it)")
    p.add_argument("--streams", type=A.comma_list(int, what="stream count"), default=None, metavar="N[,N...]",
                   help="sweep streams instead of batch sizes: throughput against execution contexts in flight, one "
                   "stream each, at each --batch and --precision (perfkit.bench.throughput_sweep; guide 2.2)")
    p.add_argument("--threads", type=A.comma_list(int, what="thread count"), default=None, metavar="M[,M...]",
                   help="with --streams: worker thread counts to cross with them (default: one thread per stream)")
    p.add_argument("--latency-budget-ms", type=A.positive_milliseconds, default=None, metavar="MS",
                   help="mark the highest throughput within this median latency on the throughput/latency chart")
    p.add_argument("--out", type=A.output_dir, default=None, metavar="DIR",
                   help="new folder for the files (default: sweep-<first model>-<time> here)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=command)


def command(args: Any) -> int:
    from ..bench import sweep
    from . import _model
    nets = [_model.network(m, args.shapes if m.lower().endswith(".onnx") else None)
            for m in dict.fromkeys(args.models)]
    names = [n.name for n in nets]
    if len(set(names)) < len(names):
        from ..errors import ArgumentError
        raise ArgumentError(f"two MODELs are both named {next(n for n in names if names.count(n) > 1)!r}; the sweep "
                            "tells models apart by name, so give each once")
    if args.streams is None and args.threads is not None:
        from ..errors import ArgumentError
        raise ArgumentError("--threads crosses worker threads with --streams; give --streams too")
    if args.streams is not None and (args.layers or args.devices is not None):
        from ..errors import ArgumentError
        raise ArgumentError(f"--{'layers' if args.layers else 'devices'} applies to a batch-size sweep; leave it out "
                            "with --streams")
    if args.devices is not None and (args.device is not None or args.cpu_threads is not None):
        from ..errors import ArgumentError
        raise ArgumentError("--devices places each configuration on a worker's device; leave out --device and "
                            "--cpu-threads with it")
    dev = _model.device(args.device, args.cpu_threads)
    out = args.out or _default_out(names[0])
    if args.streams is not None:
        from .sweep_streams import streams_sweep
        return streams_sweep(args, nets, dev, out)
    where = f"{dev.spec} ({dev.name})" if args.devices is None else \
        f"devices {args.devices if args.devices == 'all' else ','.join(args.devices)} (Dask workers)"
    print(f"perfkit sweep: {', '.join(names)} on {where}; batch {','.join(map(str, args.batch))}; "
          f"{','.join(args.precision)}; {args.min_time_s:g} s per configuration in {args.rounds} rounds")
    print(_line([c for c, _ in COLUMNS]).rstrip())
    with Outputs() as outs:
        folder = outs.folder(out)
        path = os.path.join(folder, "sweep.parquet" if args.devices is None else "sweep")
        spread = {} if args.devices is None else {"devices": args.devices}
        try:
            result = sweep(nets, args.batch, args.precision, None if spread else dev, min_time_s=args.min_time_s,
                           rounds=args.rounds, on_row=_show, out=path, layers=args.layers, progress=args.progress,
                           **spread)
        except KeyboardInterrupt:
            if os.path.exists(path):          # rows of whole networks were written as they finished: keep them
                outs.commit()
                print(f"perfkit sweep: interrupted; the configurations finished so far are in "
                      f"{os.path.join(out, os.path.basename(path))}", file=sys.stderr)
                return 130
            raise
        frame, layers = result if args.layers else (result, None)
        charts = _charts(frame, layers, args.latency_budget_ms, folder)
        _trust(frame)
        outs.commit()
    print(section("Files"))
    for name in sorted(os.listdir(out)):
        print(f"  {os.path.join(out, name)}" + (f"  ({charts[name]})" if name in charts else ""))
    if not frame["throughput_per_s"].notna().any():
        print(f"perfkit sweep: every configuration failed (their errors are in the table above and in {out}/sweep."
              "parquet)", file=sys.stderr)
        return 1
    return 0


#: (heading, width; negative: left-aligned) of the lines printed as configurations finish
COLUMNS = (("model", -20), ("precision", -9), ("batch", 6), ("median", 10), ("95% interval", 21), ("spread", 7),
           ("p90", 10), ("samples/s", 12), ("flag", -1))


def _line(cells: list) -> str:
    return "  " + "  ".join(f"{str(v):<{-w}}" if w < 0 else f"{str(v):>{w}}" for v, (_, w) in zip(cells, COLUMNS))


def _show(r: dict) -> None:
    """One configuration, printed as it finishes."""
    lo, hi = r.get("latency_ci_low_ms", float("nan")), r.get("latency_ci_high_ms", float("nan"))
    flag = r.get("error") or ("unstable" if r.get("unstable") else "")
    tput = r["throughput_per_s"]
    print(_line([r["model"], r["precision"], r["batch_size"], ms(r["latency_median_ms"]),
                 f"{ms(lo)} – {ms(hi)}" if lo == lo else "n/a", f"{r.get('latency_cv_pct', float('nan')):.1f}%",
                 ms(r["latency_p90_ms"]), f"{tput:.1f}" if tput == tput else "n/a",
                 short(" ".join(str(flag).split()), 80)]).rstrip(), flush=True)


def _default_out(model: str) -> str:
    base = f"sweep-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = base, 1
    while os.path.exists(out):
        n += 1
        out = f"{base}-{n}"
    return out


def _charts(frame: Any, layers: Any, budget_ms: Any, folder: str) -> dict:
    """The sweep's figures as PNG files: {file name: what it shows}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import plot_latency_throughput, plot_layers_vs_batch, plot_sweep
    figures = {"throughput_vs_batch.png": (plot_sweep(frame, "throughput_per_s"), "throughput against batch size"),
               "latency_vs_batch.png": (plot_sweep(frame, "latency_median_ms"), "median latency against batch size"),
               "throughput_vs_latency.png": (plot_latency_throughput(frame, budget_ms),
                                             "throughput against latency over the batch sizes")}
    if layers is not None and len(layers):
        for (model, precision), _ in layers.groupby(["model", "precision"]):
            figures[f"layers_vs_batch_{model}_{precision}.png"] = (
                plot_layers_vs_batch(layers, model, precision), f"per-layer time of {model} in {precision}")
    for name, (fig, _) in figures.items():
        fig.savefig(os.path.join(folder, name), dpi=100)
    plt.close("all")
    return {name: what for name, (_, what) in figures.items()}


def _trust(frame: Any) -> None:
    from ..bench import sweep_disturbances
    print(section("Trust"))
    sentences = sweep_disturbances(frame)
    if not sentences:
        print("  no sign of disturbance: steady rounds, host load within its cores, no throttling")
    for s in sentences:
        for line in wrap(s, "    ", "  - ", prose=True):
            print(line)
    ok = frame[frame["throughput_per_s"].notna()]
    if len(ok):
        best = ok.loc[ok.groupby("model")["throughput_per_s"].idxmax()]
        print(section("Highest throughput per model"))
        for r in best.itertuples():
            print(f"  {r.model}: {r.throughput_per_s:.1f} samples/s at batch {r.batch_size} in {r.precision} "
                  f"(median latency {ms(r.latency_median_ms)})")
