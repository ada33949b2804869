"""Where the MLPs' time goes on a GPU (issue 11): host time of one call, kernels per layer, gaps between them.

    python3 benchmarks/mlp_diagnosis.py [--cases mnist_mlp:fp32:1,mlp4096:fp16:1,mlp4096:fp16:256]

For each (model, precision, batch), on a warm context replaying its CUDA graph:

- host microseconds per ``execute`` and per ``enqueue`` + stream synchronisation, against a bare replay of the
  same captured graph (CuPy's ``Graph.launch`` + synchronisation): what perfkit's host path adds to the launch;
- the ten most expensive functions of 2,000 ``enqueue`` calls under cProfile (tottime);
- perfkit's own profile with CUPTI: each kernel's name, layer and median duration, the GPU busy time of one
  inference (sum of kernels) against its span (first kernel start to last kernel end).

The MLP 4x4096 figures go against PyTorch in ``gpu_vs_torch.py``; this script says what limits perfkit.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _net(pk, name):
    if name == "mnist_mlp":
        return pk.models.mnist_mlp()
    if name == "mlp4096":
        return pk.models.mlp((4096,) * 5, name="mlp4096")
    raise SystemExit(f"unknown model {name!r}")


def _us_per_call(fn, n=2000) -> float:
    for _ in range(50):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _execute_parts(ctx, g, bare):
    """What ``execute``'s warm path adds to a bare launch + synchronisation, piece by piece: the event that
    orders its stream after the caller's, and the fresh output copies (allocation + device copy). ``g`` is the
    graph the bare launch replayed (enqueue's: the same layers), launched here on execute's stream."""
    bufs, stream = ctx._buffers, ctx._sync_stream  # noqa: SLF001 - a diagnosis reaches inside
    outs = ctx._express.outputs  # noqa: SLF001

    def ordered():
        bufs.after_caller(stream)
        g.launch(stream.raw.ptr)
        stream.synchronize()

    def copied():
        g.launch(stream.raw.ptr)
        bufs.copies(outs, stream)
        stream.synchronize()
    o_us, c_us = _us_per_call(ordered), _us_per_call(copied)
    print(f"execute's parts (us over the bare launch+sync): ordering event {o_us - bare:+.1f}, "
          f"output copies {c_us - bare:+.1f} ({len(outs)} output(s))")


def case(pk, name, prec, batch):
    dev = pk.get_device("cuda")
    net = _net(pk, name)
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch, precision=prec))
    ctx = eng.create_execution_context()
    (iname, xh), = pk.models.sample_input(net, batch, seed=1).items()
    x = {iname: dev.to_device(xh.astype(eng.get_binding_dtype(iname)))}
    stream = dev.create_stream()
    outs = {n: dev.xp.empty((batch,) + tuple(eng.get_binding_shape(n)), eng.get_binding_dtype(n))
            for n in eng.output_names}
    binds = {**x, **outs}
    for _ in range(5):
        ctx.enqueue(binds, stream)
    stream.synchronize()
    print(f"\n## {name} {prec} batch {batch}: graph {ctx.graph_status}")
    print("layers:", [(s.name, s.type, s.precision, s.params.get("tactic")) for s in eng.plan.steps])
    log = eng.build_log
    race = log[log["phase"].isin(["precision", "tactic"]) & (log["outcome"] != "done")]
    for r in race.itertuples():                 # what the builder measured for each candidate
        print(f"  build: {r.phase:<9} {r.rule:<22} {r.matched[:40]:<40} {r.time_ms:9.4f} ms  {r.outcome:<8} "
              f"{r.detail[:110]}")

    def enq():
        ctx.enqueue(binds, stream)
        stream.synchronize()

    def exe():
        ctx.execute(x)
        dev.synchronize()
    bare = None
    try:                                   # the captured graph itself, launched bare
        g = next(iter(ctx._graphs.graphs.values()))[0]  # noqa: SLF001 - a diagnosis reaches inside

        def bare_fn():
            g.launch(stream.raw.ptr)
            stream.synchronize()
        bare = _us_per_call(bare_fn)
    except Exception as exc:  # noqa: BLE001
        print(f"bare replay not measured ({type(exc).__name__}: {exc})")
    e_us, q_us = _us_per_call(exe), _us_per_call(enq)
    print(f"host us per call: execute {e_us:.1f}, enqueue+sync {q_us:.1f}, bare graph launch+sync "
          f"{'-' if bare is None else f'{bare:.1f}'}; fast-path calls: execute {ctx._express.hits}, "  # noqa: SLF001
          f"enqueue {ctx._express_enqueue.hits}")  # noqa: SLF001
    if bare is not None:
        _execute_parts(ctx, g, bare)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(2000):
        enq()
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
    print("\n".join(line for line in s.getvalue().splitlines() if line.strip())[:4000])
    with pk.profile(ctx, kernels=True, memory=False, gpu_metrics=False, baseline=False) as run:
        for _ in range(30):
            ctx.enqueue(binds, stream)
        stream.synchronize()
    k = run.kernels
    if len(k):
        k = k[k["iteration"] >= 5]
        per = k.groupby(["layer", "name"])["ms"].median().reset_index()
        per["name"] = per["name"].str.slice(0, 70)
        print(per.to_string(index=False))
        spans = k.groupby("iteration").agg(busy=("ms", "sum"), start=("start_ns", "min"), end=("end_ns", "max"))
        spans["span_ms"] = (spans["end"] - spans["start"]) / 1e6
        print(f"one inference: kernels {spans['busy'].median() * 1e3:.1f} us busy, span "
              f"{spans['span_ms'].median() * 1e3:.1f} us (first start to last end), "
              f"{k.groupby('iteration').size().median():.0f} kernels")
    else:
        print("no kernels recorded (CUPTI unavailable?)")
    ctx.close()
    eng.close()


def main():
    import perfkit as pk
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="mnist_mlp:fp32:1,mnist_mlp:fp16:1,mlp4096:fp16:1,mlp4096:fp16:256")
    a = p.parse_args()
    print(f"# MLP diagnosis, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {pk.get_device('cuda').name}")
    for c in a.cases.split(","):
        name, prec, batch = c.split(":")
        try:
            case(pk, name, prec, int(batch))
        except Exception as exc:  # noqa: BLE001 - one failing case must not end the report
            import traceback
            traceback.print_exc()
            print(f"{c}: failed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    np.set_printoptions(linewidth=200)
    main()
