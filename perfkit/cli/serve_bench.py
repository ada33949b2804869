"""``perfkit serve-bench MODEL``: opportunistic batching under load (guide 2.1). Builds engines for several batch
sizes (an EngineSet), times the latency of each batch size, then serves one-sample requests through a
``perfkit.bench.DynamicBatcher`` for each maximum delay T under a load generator, and sets the measured p50/p99
latency and throughput beside what ``simulate_batching`` predicts from the latency curve."""
from __future__ import annotations

import argparse
import os
from typing import Any

import pandas as pd

from . import _args as A
from ._files import Outputs
from ._progress import Progress
from ._report import ms, section, table, wrap

EXAMPLES = """examples:
  perfkit serve-bench mnist_mlp --rate 2000 --max-delay-ms 0,0.5,2
  perfkit serve-bench model.onnx --engines 1,8,32 --rate 500,4000 --max-delay-ms 0,1,4 --out serve/today
  perfkit serve-bench lenet --pattern closed --concurrency 64 --max-delay-ms 0,1 --duration-s 5

A batch waits up to T for more requests, then runs on the smallest engine that holds it. A small T keeps
latency low at light load; a larger T buys bigger batches, and so throughput, under heavy load. The prediction
assumes Poisson arrivals and one instance; measured rows that could not keep up are marked unstable."""


def add_parser(sub: Any) -> None:
    from ..precision import PRECISIONS
    p = sub.add_parser("serve-bench", help="opportunistic batching under load: latency and throughput against the "
                       "batching delay, measured and predicted",
                       description="Serve one-sample requests through perfkit.bench.DynamicBatcher under a load "
                                   "generator, for each maximum delay T; compare with simulate_batching's prediction.",
                       epilog=EXAMPLES, formatter_class=A.Formatter)
    p.add_argument("model", metavar="MODEL", help="a sample network name, an .onnx file or an engine file")
    p.add_argument("--shapes", type=A.shapes, default=None, metavar="S", help="per-sample dims of an ONNX model's inputs that are symbolic beyond the batch, NAME:D1xD2[,...] (trtexec's --shapes without the batch, which --batch gives)")
    p.add_argument("--rate", type=A.rates, default=None, metavar="R[,R...]",
                   help="offered requests per second (open-loop patterns)")
    p.add_argument("--max-delay-ms", type=A.delays, default=[0.0, 1.0, 4.0], metavar="T[,T...]",
                   help="maximum delays T a batch waits for more requests, in ms (default: 0,1,4)")
    p.add_argument("--pattern", choices=("poisson", "constant", "closed"), default="poisson",
                   help="arrivals: Poisson or constant rate (open loop), or closed-loop clients")
    p.add_argument("--concurrency", metavar="N", type=A.count, default=None, help="client threads of the closed loop")
    p.add_argument("--engines", type=A.comma_list(int, what="batch size"), default=None, metavar="B[,B...]",
                   help="max batch sizes of the engines built from MODEL (default: 1,8,32)")
    p.add_argument("--max-batch", metavar="B",
                   type=A.count, default=None, help="most samples per batch (default: the largest "
                   "engine's)")
    p.add_argument("--instances", metavar="N",
                   type=A.count, default=1, help="batches run at once, each by its own thread")
    p.add_argument("--precision", choices=PRECISIONS, default=None, help="precision allowed when building "
                   "(default: fp32)")
    p.add_argument("--device", metavar="D",
                   type=A.device, default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--cpu-threads", type=A.count, default=None, metavar="N", help="BLAS threads of the CPU device "
                   "(default: the *_NUM_THREADS environment, else the cores other processes leave free)")
    p.add_argument("--duration-s", metavar="S", type=A.seconds, default=2.0, help="seconds of load per delay")
    p.add_argument("--requests", metavar="N",
                   type=A.count, default=None, help="stop each load after this many requests")
    p.add_argument("--no-simulate", action="store_true", help="skip the latency curve and the prediction")
    p.add_argument("--out", type=A.output_dir, metavar="DIR", help="new folder for the frames (parquet) and the "
                   "chart of latency and throughput against T")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=command)


def command(args: Any) -> None:
    from .. import bench
    from ..errors import ArgumentError
    if args.pattern == "closed":
        if args.rate is not None:
            raise ArgumentError("--rate is for the open-loop patterns (poisson, constant); --pattern closed takes "
                                "--concurrency N client threads instead")
        if args.concurrency is None:
            raise ArgumentError("--pattern closed needs --concurrency N (client threads, each waiting for its answer)")
        loads = [{"concurrency": args.concurrency}]
    else:
        if args.concurrency is not None:
            raise ArgumentError(f"--concurrency is for --pattern closed; --pattern {args.pattern} takes --rate R "
                                "(requests per second) instead")
        if args.rate is None:
            raise ArgumentError(f"--pattern {args.pattern} needs --rate R (requests per second), e.g. --rate 1000")
        loads = [{"rate_per_s": r} for r in args.rate]
    engines, label, dev = _engines(args)
    if args.max_batch is not None and args.max_batch > engines.max_batch_size:
        raise ArgumentError(f"--max-batch {args.max_batch} is more than the largest engine ({engines.max_batch_size}); "
                            "add a larger size to --engines (or build the engine file for a larger batch)")
    biggest = args.max_batch or engines.max_batch_size
    print(f"perfkit serve-bench: {label} on {dev.spec} ({dev.name}); batches up to {biggest}; {args.instances} "
          f"instance(s); {args.pattern} load for {args.duration_s:g} s per delay")
    generate = bench.generate_load
    measured, requests, simulations = [], [], []
    with Progress(len(loads) * len(args.max_delay_ms) + (not args.no_simulate), "perfkit serve-bench",
                  args.progress) as bar:
        bar.phase("timing each batch size")
        curve = None if args.no_simulate else _curve(engines, biggest, args)
        bar.step()
        for lo in loads:
            for t in args.max_delay_ms:
                bar.phase(f"T = {t:g} ms, {'; '.join(f'{k} {v:g}' for k, v in lo.items())}")
                with bench.DynamicBatcher(engines, biggest, t, instances=args.instances) as batcher:
                    res = generate(batcher, pattern=args.pattern, duration_s=args.duration_s,
                                   requests=args.requests, **lo)
                measured.append(res.point())
                requests.append(res.requests.assign(delay_ms=t, **{k: float(v) for k, v in lo.items()}))
                bar.step()
            if curve is not None and "rate_per_s" in lo:
                simulations.append(bench.simulate_batching(curve, lo["rate_per_s"], args.max_delay_ms, biggest))
    measured_f = pd.concat(measured, ignore_index=True)
    simulated_f = pd.concat(simulations, ignore_index=True) if simulations else None
    for line in _table(measured_f, simulated_f, args.pattern):
        print(line)
    if args.out:
        with Outputs() as outs:
            folder = outs.folder(args.out)
            _write(folder, measured_f, simulated_f, requests, curve)
            outs.commit()
        print(section("Files"))
        for name in sorted(os.listdir(args.out)):
            print(f"  {os.path.join(args.out, name)}")


def _engines(args: Any) -> tuple:
    """The EngineSet built for --engines (or the one engine of an engine file), a label, and the device."""
    from ..builder import BuilderConfig, EngineSet
    from . import _model
    if _model.is_engine_file(args.model):
        from ..errors import ArgumentError
        for flag in ("engines", "precision"):
            if getattr(args, flag) is not None:
                raise ArgumentError(f"--{flag} applies when building from a model, and {args.model!r} is an engine "
                                    "file that is served as built; leave it out or give the ONNX model or sample name")
        e = _model.engine(args.model, args.device, args.cpu_threads)
        return e, f"{e.name} (engine file {args.model})", e.device
    net = _model.network(args.model, args.shapes)
    dev = _model.device(args.device, args.cpu_threads)
    config = BuilderConfig(precision=args.precision or "fp32")
    return EngineSet(net, args.engines or [1, 8, 32], config, dev), net.name, dev


def _curve(engines: Any, biggest: int, args: Any) -> dict:
    """Median host latency (submission to result, as a batcher sees it) per batch size: powers of two and the
    engines' sizes up to ``biggest``, each on the engine that would run it."""
    from ..bench import measure
    sizes = sorted({b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if b <= biggest}
                   | {b for b in getattr(engines, "batch_sizes", [engines.max_batch_size]) if b <= biggest} | {biggest})
    curve = {}
    for b in sizes:
        e = engines.engine_for(b) if hasattr(engines, "engine_for") else engines
        ctx = e.create_execution_context()
        try:
            m = measure(ctx, b, warmup_ms=10, iterations=20, duration_s=0.1, gpu_metrics=False)
        finally:
            ctx.close()
        curve[b] = m.value("host_latency_median_ms")
    print(section("Latency by batch size (the simulator's input)"))
    print("  " + ", ".join(f"b{b}: {ms(v)}" for b, v in curve.items()))
    return curve


def _table(measured: pd.DataFrame, simulated: Any, pattern: str) -> list:
    lines = [section("Batching against the delay T (measured" + (", predicted" if simulated is not None else "")
                     + ")")]
    rows = []
    for r in measured.itertuples():
        row = {"offered/s": f"{r.arrival_rate_per_s:.0f}" if r.arrival_rate_per_s == r.arrival_rate_per_s else
               "closed", "T": ms(r.delay_ms), "served/s": f"{r.throughput_per_s:.0f}", "p50": ms(r.latency_p50_ms),
               "p99": ms(r.latency_p99_ms), "mean batch": f"{r.mean_batch:.2f}",
               "busy": f"{r.utilisation_pct:.0f}%", "stable": "yes" if r.stable else "NO"}
        if simulated is not None:
            same_rate = (simulated["arrival_rate_per_s"] - r.arrival_rate_per_s).abs() < 1e-6 * r.arrival_rate_per_s
            p = simulated[(simulated["delay_ms"] == r.delay_ms) & same_rate]
            if len(p):
                q = p.iloc[0]
                row.update({"pred. p50": ms(q["latency_p50_ms"]), "pred. p99": ms(q["latency_p99_ms"]),
                            "pred. batch": f"{q['mean_batch']:.2f}"})
        rows.append(row)
    cols = ["offered/s", "T", "served/s", "p50", "p99", "mean batch", "busy", "stable"]
    if simulated is not None:
        cols += ["pred. p50", "pred. p99", "pred. batch"]
    lines += table(rows, cols, right=[c for c in cols if c != "stable"])
    if pattern == "constant" and simulated is not None:
        lines += wrap("the prediction assumes Poisson arrivals; constant arrivals wait less for a batch to fill",
                      "  ", "  note: ", prose=True)
    unstable = measured[~measured["stable"]]
    if len(unstable):
        lines += wrap(f"{len(unstable)} row(s) served fewer requests per second than offered: the queue grew while "
                      "they ran, so their latencies depend on the duration; offer less, raise T or the batch size, or "
                      "add instances", "  ", "  unstable: ", prose=True)
    ok = measured[measured["stable"]]
    if len(ok):
        best = ok.loc[ok["latency_p99_ms"].idxmin()]
        lines.append(f"Lowest p99 that kept up: T = {ms(best['delay_ms'])}, p99 {ms(best['latency_p99_ms'])}, "
                     f"{best['throughput_per_s']:.0f} requests/s, mean batch {best['mean_batch']:.2f}")
    return lines


def _write(folder: str, measured: pd.DataFrame, simulated: Any, requests: list, curve: Any) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    measured.to_parquet(os.path.join(folder, "measured.parquet"))
    pd.concat(requests, ignore_index=True).to_parquet(os.path.join(folder, "requests.parquet"))
    if curve is not None:
        pd.DataFrame({"batch_size": list(curve), "latency_ms": list(curve.values())}).to_parquet(
            os.path.join(folder, "latency_by_batch.parquet"))
    if simulated is not None:
        from ..plots.throughput import plot_batching
        simulated.to_parquet(os.path.join(folder, "simulated.parquet"))
        for rate, sim in simulated.groupby("arrival_rate_per_s"):
            got = measured[(measured["arrival_rate_per_s"] - rate).abs() < 1e-6 * rate]
            fig = plot_batching(sim, got if len(got) else None)
            fig.savefig(os.path.join(folder, f"batching_{rate:g}_per_s.png"), dpi=100)
        plt.close("all")
