"""``perfkit sweep MODEL --streams 1,2,4,8 [--threads 1,2]``: throughput against streams and worker threads (guide
2.2: where it saturates) with ``perfkit.bench.throughput_sweep``, one engine per (model, precision, batch size);
writes the ``throughput`` frame and a chart per engine."""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ._files import Outputs
from ._progress import Progress
from ._report import ms, per_s, section, table


def streams_sweep(args: Any, nets: list, dev: Any, out: str) -> int:
    from ..bench import throughput_sweep
    from ..builder import Builder, BuilderConfig
    configs = [(net, p, b) for net in nets for p in args.precision for b in args.batch]
    print(f"perfkit sweep: {', '.join(n.name for n in nets)} on {dev.spec} ({dev.name}); streams "
          f"{','.join(map(str, args.streams))}; threads {','.join(map(str, args.threads or ['one per stream']))}; "
          f"{args.min_time_s:g} s per configuration and round, {args.rounds} rounds")
    frames, charts = [], {}
    with Progress(len(configs), "perfkit sweep", args.progress) as bar, Outputs() as outs:
        folder = outs.folder(out)
        for net, precision, batch in configs:
            bar.phase(f"{net.name} {precision} batch {batch}")
            engine = Builder(dev).build(net, BuilderConfig(max_batch_size=batch, precision=precision))
            frame = throughput_sweep(engine, batch, streams=args.streams, threads=args.threads,
                                     duration_s=args.min_time_s, rounds=args.rounds)
            frames.append(frame.assign(precision_allowed=precision))
            for line in _lines(net.name, precision, batch, frame):
                print(line)
            charts.update(_chart(frame, net.name, precision, batch, folder))
            bar.step()
        pd.concat(frames, ignore_index=True).to_parquet(os.path.join(folder, "throughput.parquet"))
        outs.commit()
    print(section("Files"))
    for name in sorted(os.listdir(out)):
        print(f"  {os.path.join(out, name)}" + (f"  ({charts[name]})" if name in charts else ""))
    return 0


def _lines(model: str, precision: str, batch: int, f: Any) -> list:
    rows = [{"streams": r.streams, "threads": r.threads, "throughput": per_s(r.throughput_per_s),
             "95% interval": f"{per_s(r.throughput_ci_low_per_s)} – {per_s(r.throughput_ci_high_per_s)}"
             if r.throughput_ci_low_per_s == r.throughput_ci_low_per_s else "n/a (under 6 rounds)",
             "speedup": f"{r.speedup:.2f}x" if r.speedup == r.speedup else "n/a",
             "median": ms(r.latency_median_ms), "p99": ms(r.latency_p99_ms),
             "overlap": f"{r.overlap_pct:.0f}%" if r.overlap_pct == r.overlap_pct else "n/a"} for r in f.itertuples()]
    lines = [section(f"{model} {precision} batch {batch}: throughput against streams and threads")]
    lines += table(rows, ["streams", "threads", "throughput", "95% interval", "speedup", "median", "p99", "overlap"],
                   right=("streams", "threads", "throughput", "speedup", "median", "p99", "overlap"))
    best = f["throughput_per_s"].max()
    first = f[f["throughput_per_s"] >= 0.95 * best].sort_values(["streams", "threads"]).iloc[0]
    lines.append(f"  saturates at {int(first['streams'])} stream(s), {int(first['threads'])} thread(s): within 5% of "
                 f"the best, {per_s(best)}")
    return lines


def _chart(frame: Any, model: str, precision: str, batch: int, folder: str) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import plot_throughput
    name = f"throughput_vs_streams_{model}_{precision}_b{batch}.png"
    plot_throughput(frame).savefig(os.path.join(folder, name), dpi=100)
    plt.close("all")
    return {name: f"throughput and latency of {model} ({precision}, batch {batch}) against streams"}
