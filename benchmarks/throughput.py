"""Throughput under load (issue 12), the figures for benchmarks/RESULTS.md:

1. throughput against streams (1, 2, 4, 8) and worker threads for the small ResNet at batch 8
   (perfkit.bench.throughput_sweep: interleaved rounds, speedup over 1 stream / 1 thread);
2. the DynamicBatcher's p50/p99 latency and throughput against the maximum delay T under Poisson load,
   beside simulate_batching's prediction from the measured latency-vs-batch curve;
3. pageable against pinned copy bandwidth (perfkit.bench.transfers).

Runs on the GPU when there is one (``--device cuda``), else on the CPU (``--device cpu``; there the copies are
host memory copies and the frame says so). Prints Markdown tables; ``--out DIR`` also writes the frames
(parquet) and the figures (PNG).

    python benchmarks/throughput.py --device cuda --out /tmp/throughput_h200
    python benchmarks/throughput.py --device cpu --quick
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

import perfkit as pk
import perfkit.frames.schemas_load  # noqa: F401  (the batching frame's schema)
from perfkit.frames.units import human_bytes


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch", type=int, default=8, help="batch size of the streams sweep (default 8)")
    p.add_argument("--streams", default="1,2,4,8", help="stream counts (default 1,2,4,8)")
    p.add_argument("--threads", default="1,2,4,8", help="worker-thread counts (each <= streams; default 1,2,4,8)")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds of the sweep (default 6)")
    p.add_argument("--duration-s", type=float, default=1.0, help="seconds per configuration and round (default 1)")
    p.add_argument("--rate", type=float, default=None,
                   help="Poisson requests/s for the batcher (default: half the engine's capacity, at most 4000)")
    p.add_argument("--delays-ms", default="0,0.25,0.5,1,2,4,8", help="max delays T of the batcher")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test: 2 rounds of 0.2 s, 3 delays)")
    p.add_argument("--out", default=None, help="folder for frames (parquet) and figures (PNG)")
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.duration_s, a.delays_ms = 2, 0.2, "0,1,4"
    streams = [int(s) for s in a.streams.split(",")]
    threads = [int(s) for s in a.threads.split(",")]
    delays = [float(s) for s in a.delays_ms.split(",")]
    dev = pk.get_device(a.device)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    print(f"# Throughput under load — {dev.spec} ({dev.name}), perfkit {pk.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    net = pk.models.resnet_small()
    sizes = [1, 2, 4, 8, 16, 32]
    es = pk.EngineSet(net, sizes, pk.BuilderConfig(max_batch_size=max(sizes), precision="fp16"
                                                   if dev.kind == "cuda" else "fp32"), device=dev)
    engine = es.engines[a.batch] if a.batch in es.engines else es.engine_for(a.batch)
    frames = {}

    # 1. streams and threads -------------------------------------------------------------------------------
    sweep = pk.bench.throughput_sweep(engine, a.batch, streams=streams, threads=threads, duration_s=a.duration_s,
                                      rounds=a.rounds, warmup_ms=200)
    frames["throughput"] = sweep
    print(f"## 1. Throughput against streams and threads: {engine.name} {engine.precision}, batch {a.batch}, "
          f"{a.rounds} interleaved rounds of {a.duration_s:g} s, H2D + D2H included\n")
    cols = ["streams", "threads", "throughput_per_s", "throughput_ci_low_per_s", "throughput_ci_high_per_s",
            "speedup", "latency_median_ms", "latency_p99_ms", "in_flight_mean", "blas_threads",
            "host_other_busy_cores"]
    print(_markdown(sweep[cols]))
    best = sweep.loc[sweep["throughput_per_s"].idxmax()]
    print(f"\nbest: {best['throughput_per_s']:.0f} samples/s with {best['streams']} streams and {best['threads']} "
          f"threads ({best['speedup']:.2f}x one stream and one thread)\n")

    # 2. the batcher against T -----------------------------------------------------------------------------
    curve = _curve(es, sizes)
    capacity = max(sizes) / (curve[max(sizes)] / 1e3)
    rate = a.rate or min(0.5 * capacity, 4000.0)
    print(f"## 2. DynamicBatcher under Poisson load: {rate:.0f} requests/s of one sample, max batch {max(sizes)} "
          f"(engines for {sizes}; engine capacity at batch {max(sizes)}: {capacity:.0f}/s)\n")
    print("latency vs batch (execute, median ms): " + ", ".join(f"{b}: {ms:.3f}" for b, ms in curve.items()) + "\n")
    warm = dev.kind == "cuda"      # capture every batch size's graph before serving (cheap on a GPU)
    points = {t: [] for t in delays}
    batchers = {t: pk.bench.DynamicBatcher(es, max_batch_size=max(sizes), max_delay_ms=t, warmup=warm) for t in delays}
    try:                           # 3 rounds, the delays in a rotated order each round: a burst hits every T alike
        for r in range(3):
            for t in delays[r % len(delays):] + delays[:r % len(delays)]:
                res = pk.bench.generate_load(batchers[t], pattern="poisson", rate_per_s=rate, seed=r,
                                             duration_s=max(0.5, 2 * a.duration_s / 3))
                points[t].append(res.point())
    finally:
        for b in batchers.values():
            b.close()
    # per T: the median over the rounds of each figure; stable only when every round was
    measured = pd.concat([pd.concat(p).median(numeric_only=True).to_frame().T.assign(
        source="measured", stable=bool(pd.concat(p)["stable"].all())) for p in points.values()], ignore_index=True)
    measured = pk.frames.schemas_load.BATCHING_SIMULATION.frame(
        [{**r, "max_batch_size": int(r["max_batch_size"]), "requests": int(r["requests"])}
         for r in measured.to_dict("records")])
    print("(each figure: the median of 3 interleaved rounds)\n")
    predicted = pk.bench.simulate_batching(curve, rate, delays, max_batch_size=max(sizes))
    frames["batching_measured"], frames["batching_predicted"] = measured, predicted
    both = measured.merge(predicted, on="delay_ms", suffixes=("", "_pred"))
    print(_markdown(both[["delay_ms", "latency_p50_ms", "latency_p50_ms_pred", "latency_p99_ms", "latency_p99_ms_pred",
                          "throughput_per_s", "mean_batch", "mean_batch_pred", "stable"]]))
    with pk.bench.DynamicBatcher(es, max_batch_size=max(sizes), max_delay_ms=1.0, warmup=warm) as b:
        closed = pk.bench.generate_load(b, pattern="closed", concurrency=64, duration_s=max(1.0, 2 * a.duration_s))
    print(f"\nclosed loop, 64 clients, T = 1 ms: {closed.value('throughput_per_s'):.0f} requests/s, p50 "
          f"{closed.value('latency_p50_ms'):.3f} ms, p99 {closed.value('latency_p99_ms'):.3f} ms, mean batch "
          f"{closed.value('mean_batch'):.1f}\n")

    # 3. transfers -----------------------------------------------------------------------------------------
    copies = pk.bench.transfers(dev, repeats=10 if a.quick else 30)
    frames["transfers"] = copies
    print(f"## 3. Copy bandwidth, pageable vs pinned ({copies.attrs['note']})\n")
    wide = copies.pivot_table(index="size_bytes", columns=["direction", "memory"], values="bandwidth_gb_s")
    wide.columns = [f"{d} {m} GB/s" for d, m in wide.columns]
    wide.index = [human_bytes(s) for s in wide.index]
    print(_markdown(wide.reset_index(names="size")))
    if a.out:
        _write(a.out, frames, sweep, measured, predicted, copies)
    return 0


def _curve(es, sizes: list) -> dict:
    """Median latency (ms) of each engine of the set at its own max batch size (synchronous execute)."""
    curve = {}
    for b in sizes:
        ctx = es.engines[b].create_execution_context()
        x = pk.models.sample_input(es.engines[b], b)
        curve[b] = float(np.median(pk.bench.time_inference(ctx, x, b, warmup=3, min_time_s=0.3)))
        ctx.close()
    return curve


def _markdown(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if v != v else (f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}")
        return str(v)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _write(out: str, frames: dict, sweep, measured, predicted, copies) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from perfkit.plots.throughput import plot_batching, plot_throughput
    from perfkit.plots.transfers import plot_transfers
    for name, f in frames.items():
        f = f.copy()
        f.attrs = {}
        f.to_parquet(os.path.join(out, f"{name}.parquet"))
    for name, fig in (("throughput", plot_throughput(sweep)), ("batching", plot_batching(predicted, measured)),
                      ("transfers", plot_transfers(copies))):
        fig.savefig(os.path.join(out, f"{name}.png"), dpi=110)
        plt.close(fig)
    print(f"\nframes and figures in {out}")


if __name__ == "__main__":
    sys.exit(main())
