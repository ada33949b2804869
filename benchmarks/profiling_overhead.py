"""Issue figures for per-layer profiling on the small ResNet (default batch 32):

1. sum of per-layer times vs end-to-end latency, after the overhead correction (target: within 10%);
2. what profiling adds to end-to-end latency (target: at most 5%), profiled and unprofiled runs
   interleaved in rounds;
3. per-layer CUPTI kernel time vs the layer's event time (target: within 10%; GPU only): kernel busy
   time (sum of kernel durations) and kernel span (first kernel start to last kernel end);
4. tracking-allocator cost per recorded event vs the untracked allocator (target: at most 1 us on GPU).

On CUDA, figures 1-3 are given for both launch modes: replayed CUDA graphs (a context's default) and
eager launches (``cuda_graph=False``).

Usage:  python3 benchmarks/profiling_overhead.py [--device cuda] [--batch 32] [--rounds 15] [--modes graph,eager]
            [--model resnet_small|resnet50] [--precision fp16]

``--model resnet50`` builds ResNet-50 from ``benchmarks/cpu_models.py`` (issue 11's target: profiling within 3%
on ResNet-50 fp16 batch 32, with cuDNN's kernels mapped to their layers).
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import perfkit as pk
from perfkit.bench import time_inference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--model", default="resnet_small", help="resnet_small (perfkit's sample) or resnet50")
    p.add_argument("--kernel-batches", default="32,256", help="batches for the CUPTI kernel-vs-event comparison")
    p.add_argument("--modes", default="graph,eager", help="CUDA launch modes to measure: graph (replayed CUDA "
                   "graphs, the default of a context) and/or eager (every layer launched from Python)")
    a = p.parse_args()
    dev = pk.get_device(a.device)
    if a.model == "resnet50":
        import os
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cpu_models
        net = cpu_models.resnet_network("resnet50")
    else:
        net = pk.models.resnet_small()
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=a.batch, precision=a.precision))
    x = pk.models.sample_input(net, a.batch)
    if dev.kind != "cpu":
        x = {k: dev.to_device(v) for k, v in x.items()}
    print(f"# profiling figures, {a.model} batch {a.batch} {a.precision} on {dev.spec} ({dev.name}), "
          f"{time.strftime('%Y-%m-%d')}")
    allocator_figures(dev)            # first, while few Python objects are alive (the garbage collector
    modes = a.modes.split(",") if dev.kind == "cuda" else ["host"]     # scales with them)
    for mode in modes:
        ctx = eng.create_execution_context(cuda_graph=mode == "graph")
        print(f"== {mode}: {ctx.graph_status}" if dev.kind == "cuda" else "== CPU")
        overhead_figures(dev, eng, ctx, x, a.rounds)
        if dev.kind == "cuda":
            print(f"   after the runs: {ctx.graph_status}")
            for kb in [int(b) for b in a.kernel_batches.split(",")]:
                keng = eng if kb == a.batch else pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=kb,
                                                                                            precision=a.precision))
                kernel_figures(dev, net, keng, kb, mode)
        ctx.close()


def overhead_figures(dev, eng, ctx, x, rounds: int) -> None:
    time_inference(ctx, x, warmup=20, min_time_s=1.0)
    plain, prof = [], []
    timer = pk.LayerTimer()
    ratios = []
    for r in range(rounds):           # back-to-back pairs, alternating which goes first; the overhead is the
        order = (None, timer) if r % 2 == 0 else (timer, None)     # median of the per-pair ratios
        got = {}
        for p_ in order:
            ctx.profiler = p_
            got[p_ is None] = float(np.median(time_inference(ctx, x, warmup=3, min_time_s=0.2)))
        plain.append(got[True])
        prof.append(got[False])
        ratios.append(got[False] / got[True])
    ctx.profiler = None
    e2e, e2e_p = float(np.median(plain)), float(np.median(prof))
    overhead = 100 * (float(np.median(ratios)) - 1)
    lt = timer.frame
    layer_sum = float(lt.groupby("iteration")["ms"].sum().median())
    cost_ns = pk.profiling.calibrate_event_cost(dev)
    n = len(eng.plan.steps)
    corrected = layer_sum - (cost_ns * (n + 1) / 1e6 if dev.kind == "cpu" else 0.0)
    print(f"end-to-end unprofiled      {e2e:9.3f} ms (median of {rounds} round medians)")
    print(f"end-to-end profiled        {e2e_p:9.3f} ms   overhead {overhead:+.2f}% (median of {rounds} paired "
          f"ratios; spread {100 * (np.percentile(ratios, 25) - 1):+.1f}% .. {100 * (np.percentile(ratios, 75) - 1):+.1f}%)"
          "  (target <= 5%)")
    print(f"sum of layer times         {layer_sum:9.3f} ms   ({n} layers, clock {'/'.join(lt['clock'].unique())}, "
          f"boundary cost {cost_ns:.0f} ns)")
    print(f"  corrected                {corrected:9.3f} ms   = {100 * corrected / e2e:.1f}% of end-to-end "
          f"(target within 10%: {abs(100 * corrected / e2e - 100):.1f}% off)")
    print(f"  gap                      {e2e - corrected:9.3f} ms   outside layers (copies, launch, sync, host)")
    if dev.kind == "cuda":
        batch = next(iter(x.values())).shape[0]
        m = pk.bench.measure(ctx, batch, include_transfers=False, warmup_ms=100, iterations=50, duration_s=1.0)
        gpu = m.value("compute_median_ms")
        print(f"GPU compute per inference  {gpu:9.3f} ms   (bench.measure, CUDA events around enqueue: trtexec's "
              f"'GPU Compute Time')")
        print(f"  layer sum vs GPU compute {100 * corrected / gpu:8.1f}%   (target within 10%: "
              f"{abs(100 * corrected / gpu - 100):.1f}% off); host e2e - GPU compute = {e2e - gpu:.3f} ms of "
              "Python, launch and synchronisation")


def kernel_figures(dev, net, keng, kb: int, mode: str) -> None:
    kctx = keng.create_execution_context(cuda_graph=mode == "graph")
    kx = {k: dev.to_device(v) for k, v in pk.models.sample_input(net, kb).items()}
    time_inference(kctx, kx, warmup=5, min_time_s=0.3)
    with pk.profile(kctx, kernels=True, memory=False, gpu_metrics=True, baseline=False) as run:
        for _ in range(20):
            kctx.execute(kx)
    print(f"-- CUPTI kernels vs layer events at batch {kb} ({mode})")
    if run.kernels.empty:
        print("kernels: none recorded:", run.messages)
        kctx.close()
        return
    k = run.kernels[run.kernels["layer"] != ""]
    g = k.groupby(["iteration", "layer"])
    per_k = g["ms"].sum().rename("kernel_ms")
    span = ((g["end_ns"].max() - g["start_ns"].min()) / 1e6).rename("span_ms")
    lay = run.layers[run.layers["iteration"] >= 1].set_index(["iteration", "layer"])["ms"]    # iteration 0 warms
    both = lay.to_frame("event_ms").join(per_k, how="inner").join(span, how="inner")
    both["busy"] = both["kernel_ms"] / both["event_ms"]
    both["span"] = both["span_ms"] / both["event_ms"]
    tot = both.groupby(level="iteration")[["event_ms", "kernel_ms", "span_ms"]].sum().median()
    by_layer = both.groupby(level="layer")[["event_ms", "kernel_ms", "span_ms"]].median()
    by_layer["busy"] = by_layer["kernel_ms"] / by_layer["event_ms"]
    by_layer["span"] = by_layer["span_ms"] / by_layer["event_ms"]
    kinds = ", ".join(f"{n} {kd}" for kd, n in run.kernels["kind"].value_counts().items())
    print(f"GPU work: {len(run.kernels)} records ({kinds}), {len(k)} mapped to layers, clock "
          f"{'/'.join(run.layers['clock'].unique())}; 'kernel' below = kernels + memsets + copies of the layer")
    print(f"  per inference: kernel busy {tot['kernel_ms']:.4f} ms, kernel span {tot['span_ms']:.4f} ms, layer events "
          f"{tot['event_ms']:.4f} ms -> busy/event {tot['kernel_ms'] / tot['event_ms']:.3f}, "
          f"span/event {tot['span_ms'] / tot['event_ms']:.3f}")
    print(f"  per layer execution: busy/event median {both['busy'].median():.3f} (within 10%: "
          f"{100 * (abs(both['busy'] - 1) <= 0.1).mean():.0f}%), span/event median {both['span'].median():.3f} "
          f"(within 10%: {100 * (abs(both['span'] - 1) <= 0.1).mean():.0f}%)")
    print(by_layer.sort_values("event_ms", ascending=False).round(4).to_string())
    gs = run.gpu
    if len(gs):
        print(f"gpu: {len(gs)} samples, SM clock {gs['sm_clock_mhz'].median():.0f} MHz, power "
              f"{gs['power_w'].median():.0f} W, throttle reasons {set(gs['throttle_reasons']) - {''} or 'none'}")
    kctx.close()


def allocator_figures(dev) -> None:
    base = dev.allocator
    tracker = pk.TrackingAllocator(base)
    sizes = [1 << 20] * 2000

    def churn(alloc):
        t0 = time.perf_counter_ns()
        for s in sizes:
            alloc.free(alloc.allocate(s))
        return (time.perf_counter_ns() - t0) / (2 * len(sizes))
    churn(base), churn(tracker)
    b, t = [], []
    for _ in range(7):                # interleaved, each after a full collection: both arms alike
        gc.collect()
        b.append(churn(base))
        gc.collect()
        t.append(churn(tracker))
    b, t = min(b), min(t)
    print(f"allocator: untracked {b / 1e3:.3f} us/event, tracked {t / 1e3:.3f} us/event, "
          f"added {(t - b) / 1e3:.3f} us per recorded event (target <= 1 us on GPU)")


if __name__ == "__main__":
    main()
