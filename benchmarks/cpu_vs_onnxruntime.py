"""perfkit's CPU engine against onnxruntime's CPU provider on the same ONNX models, interleaved.

    python3 benchmarks/cpu_vs_onnxruntime.py [model.onnx ...] [--models mlp,resnet,transformer]
        [--batches 1,8] [--rounds 7] [--cnn resnet50|resnet18] [--via auto|onnx|network] [--no-build]

Models (benchmarks/cpu_models.py, built with onnx.helper): an MLP, a ResNet with batch norm and
residuals (ResNet-50 by default), a post-norm transformer-encoder block; plus any ``.onnx`` path given
(those need ``perfkit.onnx.load``). perfkit reads the ONNX model through ``perfkit.onnx.load`` when it
exists (``--via auto``), else builds the equivalent network with its own API from the same weights.

Both engines use the same threads: the CPU device's BLAS threads (perfkit.device.host: the cores other
processes leave free, or ``--threads``), and onnxruntime's intra-op threads set to the same count.
Per case and round, each engine runs ``--reps`` inferences after a warm-up, in alternating order
(perfkit first in even rounds); a round's value is its fastest inference (on a shared host, other
processes only ever add time); the table gives per engine the median over rounds and its
order-statistic interval (frames.stats.median_ci), and the ratio perfkit / onnxruntime as the median of
the rounds' paired ratios (the two engines of a round ran back to back, under the same load) with its
order-statistic interval. It also checks that both engines agree on the output, and times
perfkit's build at the largest batch with and without a timing cache (the second build reads it).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perfkit as pk  # noqa: E402
from perfkit.device import host  # noqa: E402
from perfkit.frames.stats import median_ci  # noqa: E402

import cpu_models  # noqa: E402


def _load_perfkit(model, make_network, via: str):
    """(Network, how) for the ONNX ``model``: perfkit.onnx.load when it exists, else the Network API."""
    if via in ("auto", "onnx"):
        try:
            from perfkit import onnx as pk_onnx
            load = pk_onnx.load
        except (ImportError, AttributeError):
            if via == "onnx":
                raise SystemExit("perfkit.onnx.load is not available in this tree; use --via network")
        else:
            return load(model), "perfkit.onnx.load"
    if make_network is None:
        raise SystemExit("an .onnx path needs perfkit.onnx.load (not available in this tree)")
    return make_network(), "Network API"


def _ort_session(model, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _input_shape(model) -> tuple:
    import onnx
    m = onnx.load(model) if isinstance(model, str) else model
    inits = {i.name for i in m.graph.initializer}
    x = [i for i in m.graph.input if i.name not in inits][0]
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in x.type.tensor_type.shape.dim]
    return x.name, tuple(dims[1:])


def _build(net, batch: int, cache=None):
    t0 = time.perf_counter()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=batch, timing_cache=cache))
    return eng, time.perf_counter() - t0


def _time(fn, reps: int) -> float:
    fn()                                                  # warm-up
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.min(samples))


def _interval(values) -> tuple:
    lo, hi = median_ci(values)
    return float(np.median(values)), float(lo), float(hi)


def run_case(label: str, model, make_network, batches, args, threads: int) -> list:
    net, how = _load_perfkit(model, make_network, args.via)
    name, shape = _input_shape(model)
    sess = _ort_session(model, threads)
    rows = []
    for batch in batches:
        eng, build_s = _build(net, batch)
        ctx = eng.create_execution_context()
        x = np.random.default_rng(1).standard_normal((batch,) + shape).astype(np.float32)
        pk_in = {eng.plan.inputs[0]: x}
        got = next(iter(ctx.execute(pk_in).values()))
        want = sess.run(None, {name: x})[0]
        err = float(np.max(np.abs(np.asarray(got) - want)) / (np.max(np.abs(want)) + 1e-12))
        runs = {"perfkit": lambda: ctx.execute(pk_in), "onnxruntime": lambda: sess.run(None, {name: x})}
        per = {"perfkit": [], "onnxruntime": []}
        load = host.host_load()
        for r in range(args.rounds):
            for k in (("perfkit", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "perfkit")):
                per[k].append(_time(runs[k], args.reps))
        a, b = _interval(per["onnxruntime"]), _interval(per["perfkit"])
        ratio = _interval(np.asarray(per["perfkit"]) / np.asarray(per["onnxruntime"]))
        rows.append((label, batch, how, b, a, ratio, err, build_s, load))
        print(f"{label:<12} b{batch:<3} perfkit {b[0]:9.3f} ms [{b[1]:.3f}, {b[2]:.3f}]  onnxruntime {a[0]:9.3f} ms "
              f"[{a[1]:.3f}, {a[2]:.3f}]  ratio {ratio[0]:.2f}x [{ratio[1]:.2f}, {ratio[2]:.2f}]  max rel err "
              f"{err:.1e}  build {build_s:.1f} s  ({how}; load {load['host_load_1m']:.2f})", flush=True)
        ctx.close()
    if args.build:
        batch = max(batches)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cache.json")
            _, cold = _build(net, batch, path)
            _, warm = _build(net, batch, path)
        print(f"{label:<12} b{batch:<3} build {cold:.2f} s with an empty timing cache, {warm:.2f} s from it", flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", nargs="*", help="more .onnx models (need perfkit.onnx.load)")
    p.add_argument("--models", default="mlp,resnet,transformer")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cnn", default="resnet50", choices=sorted(cpu_models.RESNETS))
    p.add_argument("--via", default="auto", choices=("auto", "onnx", "network"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-build", dest="build", action="store_false", help="skip the timing-cache build comparison")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    dev = pk.get_device("cpu")
    if args.threads:
        dev.threads = args.threads
    threads = args.threads or host.default_threads()
    dev.threads = threads
    print(f"threads {threads} (of {host.available_cores()} cores); host load {host.host_load()}", flush=True)
    import onnxruntime
    print(f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}, perfkit {pk.__version__}", flush=True)
    cases = []
    for m in [s for s in args.models.split(",") if s]:
        make_onnx, make_net = cpu_models.MODELS[m]
        kw = {"depth": args.cnn} if m == "resnet" else {}
        model, _ = make_onnx(**kw)
        cases.append((m if m != "resnet" else args.cnn, model, lambda f=make_net, kw=kw: f(**kw)))
    cases += [(os.path.basename(path), path, None) for path in args.onnx]
    for label, model, make in cases:
        run_case(label, model, make, batches, args, threads)


if __name__ == "__main__":
    main()
