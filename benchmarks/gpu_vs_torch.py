"""perfkit's GPU engine against PyTorch eager and PyTorch CUDA graphs, same weights (issue 11).

    python3 benchmarks/gpu_vs_torch.py [--models mnist_mlp,mlp4096,resnet50] [--batches 1,8,32,128,256]
        [--precisions fp32,fp16] [--rounds 5] [--min-time 1.0] [--io float32|precision]

Run on the GPU machine (PyTorch is used here only, never by perfkit). Each model is built twice from one set of
weights: as a perfkit Network, and as a PyTorch module holding the same tensors.

- ``mnist_mlp``: perfkit's sample (784-500-10, softmax), its weights copied into ``nn.Linear`` layers.
- ``mlp4096``: ``pk.models.mlp`` with four 4096x4096 fully connected layers and ReLUs between them.
- ``resnet50``: ResNet-50 (bottlenecks 3-4-6-3, 224x224, batch norm in evaluation mode) from the seeded weights
  of ``benchmarks/cpu_models.py`` (torchvision's layer names and shapes; no download, no torchvision needed).

Per (model, precision, batch): the perfkit engine is built (its build time recorded), then four ways of running
the same inference are timed in interleaved rounds, each call synchronised and host-timed: perfkit
``context.execute`` on device inputs (CUDA graph replay once warm; it returns fresh output arrays), perfkit
``context.enqueue`` into preallocated outputs then a stream synchronisation (as the replay of PyTorch's graph
writes its static output), PyTorch eager under ``inference_mode`` and a captured ``torch.cuda.CUDAGraph``
replayed. PyTorch runs with cuDNN benchmark mode and TF32 off (perfkit's fp32
is strict fp32); in fp16 it takes fp16 inputs, perfkit float32 inputs converted on the GPU (its bindings stay
float32, as TensorRT's do by default). With ``--io precision`` the MLPs' perfkit networks declare their input in
the precision's dtype (float16 I/O, as a TensorRT user sets the bindings' formats), so both sides are fed the
same bytes and neither converts (ResNet-50 keeps float32 I/O). Printed and written to ``$OUT/gpu_vs_torch.jsonl`` (or /tmp):

- latency median (the median of the round medians) and p99 (of every call), throughput at the median;
- perfkit / PyTorch graph and perfkit / eager latency (above 1: perfkit slower);
- the fraction of the device's roofline perfkit reaches: FLOPs and bytes from perfkit's own cost functions
  (``engine.layers``: weights read once per batch, activations per sample), against peaks measured here (an
  8192-square matmul in the precision; a 1 GiB device copy);
- the largest output difference from PyTorch, relative to PyTorch's largest output;
- the build time.

Written on 2026-11-30 without a GPU (the session's device time was spent); its first run is due on the GPU
machine, and its figures go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------ models
def perfkit_model(name: str):
    """(perfkit Network, builder of the equivalent PyTorch module taking (torch, dtype))."""
    import perfkit as pk
    if name == "mnist_mlp":
        net = pk.models.mnist_mlp()
        return net, lambda torch, dt: _torch_sequential(torch, net, dt)
    if name == "mlp4096":
        net = pk.models.mlp((4096,) * 5, name="mlp4096")
        return net, lambda torch, dt: _torch_sequential(torch, net, dt)
    if name == "resnet50":
        import cpu_models
        net = cpu_models.resnet_network("resnet50")
        return net, lambda torch, dt: _torch_resnet(torch, "resnet50", dt)
    raise SystemExit(f"unknown model {name!r}: mnist_mlp, mlp4096 or resnet50")


def with_input_dtype(net, dtype: str):
    """The same fully connected / activation / softmax chain as ``net`` (same weights), its input declared
    ``dtype``: the layers' tensors, and the output, follow the input's dtype."""
    import perfkit as pk
    src, = net.inputs
    out = pk.Network(net.name)
    x = out.add_input(src.name, src.shape, dtype)
    for layer in net.layers:
        if layer.type == "fully_connected":
            x = out.add_fully_connected(x, layer.params["num_outputs"], layer.weights["kernel"],
                                        layer.weights.get("bias"), name=layer.name).output
        elif layer.type == "activation":
            x = out.add_activation(x, layer.params["activation"], name=layer.name).output
        elif layer.type == "softmax":
            x = out.add_softmax(x, axis=layer.params.get("axis", 0), name=layer.name).output
        else:
            raise SystemExit(f"{net.name}: --io precision is written for chains of fully connected layers")
    out.mark_output(x, net.outputs[0].name)
    return out


def _torch_sequential(torch, net, dt):
    """Flatten, then the network's fully connected layers, ReLUs and softmax, with its weights."""
    nn = torch.nn
    mods = [nn.Flatten()]
    for layer in net.layers:
        if layer.type == "fully_connected":
            k, b = layer.weights["kernel"], layer.weights.get("bias")
            lin = nn.Linear(k.shape[1], k.shape[0], bias=b is not None)
            lin.weight.data = torch.from_numpy(np.ascontiguousarray(k))
            if b is not None:
                lin.bias.data = torch.from_numpy(np.ascontiguousarray(b))
            mods.append(lin)
        elif layer.type == "activation" and layer.params["activation"] == "relu":
            mods.append(nn.ReLU())
        elif layer.type == "softmax" and layer.params.get("axis", 0) == 0 and not layer.params.get("log"):
            mods.append(nn.Softmax(dim=1))
        else:
            raise SystemExit(f"{net.name}: no PyTorch equivalent written for layer {layer.name} ({layer.type})")
    return nn.Sequential(*mods).to("cuda", dt).eval()


def _torch_resnet(torch, depth, dt):
    import cpu_models
    nn, F = torch.nn, torch.nn.functional
    convs, layout, width = cpu_models._resnet_plan(depth)
    v = cpu_models._resnet_weights(depth, 1000, 0).values
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict()
            for name, ci, co, k, s in convs:
                conv = nn.Conv2d(ci, co, k, s, k // 2, bias=False)
                conv.weight.data = t(v[f"{name}.weight"])
                bn = nn.BatchNorm2d(co, eps=1e-5)
                bn.weight.data, bn.bias.data = t(v[f"{name}.bn.scale"]), t(v[f"{name}.bn.bias"])
                bn.running_mean.data, bn.running_var.data = t(v[f"{name}.bn.mean"]), t(v[f"{name}.bn.var"])
                self.blocks[name.replace(".", "_")] = nn.Sequential(conv, bn)
            self.fc = nn.Linear(width, 1000)
            self.fc.weight.data, self.fc.bias.data = t(v["fc.weight"]), t(v["fc.bias"])

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.blocks["stem"](x)), 3, 2, 1)
            for _, body, proj in layout:
                y = x
                for i, (name, *_) in enumerate(body):
                    y = self.blocks[name.replace(".", "_")](y)
                    if i < len(body) - 1:
                        y = F.relu(y)
                x = F.relu(y + (self.blocks[proj[0].replace(".", "_")](x) if proj else x))
            return self.fc(x.mean((2, 3)))
    return ResNet().to("cuda", dt).eval()


# ---------------------------------------------------------------------------------------- timing
def _calls(fn, sync, seconds: float, at_least: int = 5) -> list:
    """Milliseconds of each synchronised call of ``fn`` for ``seconds`` (at least ``at_least`` calls)."""
    out = []
    start = time.perf_counter()
    while len(out) < at_least or time.perf_counter() - start < seconds:
        t0 = time.perf_counter_ns()
        fn()
        sync()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def measured_peaks(torch, dt) -> tuple:
    """(FLOP/s of an 8192-square matmul in ``dt``, bytes/s of a 1 GiB device-to-device copy)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=dt)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    ms = float(np.median(_calls(lambda: a @ a, torch.cuda.synchronize, 0.5)))
    flops = 2 * 8192 ** 3 / (ms / 1e3)
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    ms = float(np.median(_calls(lambda: dst.copy_(src), torch.cuda.synchronize, 0.5)))
    return flops, 2 * (1 << 30) / (ms / 1e3)            # read and write


def roofline_ms(engine, batch: int, peaks: tuple) -> float:
    """The time the device's roofline allows for one inference: perfkit's flops and bytes at ``batch``."""
    lay = engine.layers
    flops = float(lay["flops"].sum()) * batch
    weights = float(lay["weights_bytes"].sum())
    moved = weights + (float(lay["bytes"].sum()) - weights) * batch
    return max(flops / peaks[0], moved / peaks[1]) * 1e3


def torch_graph(torch, model, x):
    """A replay function for ``model(x)`` captured as a CUDA graph, and its output tensor."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.inference_mode():
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(g):
        y = model(x)
    return g.replay, y


def _tactic_counts(eng) -> str:
    """'convolution: cudnn 53; identity: - 4' - which tactic each layer type runs, and the reformat layers."""
    from collections import Counter
    c = Counter((s.type, s.params.get("tactic") or "-") for s in eng.plan.steps)
    return "; ".join(f"{t} {tac} {n}" for (t, tac), n in sorted(c.items()))


def run_case(pk, torch, name, net, make_torch, prec, batch, peaks, rounds, min_time, io="float32") -> dict:
    dt = {"fp32": torch.float32, "fp16": torch.float16}[prec]
    dev = pk.get_device("cuda")
    if io == "precision" and prec == "fp16" and name != "resnet50":
        net = with_input_dtype(net, "float16")
    t0 = time.perf_counter()
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch, precision=prec))
    build_s = time.perf_counter() - t0
    ctx = eng.create_execution_context()
    host = pk.models.sample_input(net, batch, seed=batch)
    (iname, xh), = host.items()
    x = {iname: dev.to_device(xh.astype(eng.get_binding_dtype(iname)))}
    model = make_torch(torch, dt)
    xt = torch.from_numpy(xh).to("cuda", dt)
    with torch.inference_mode():
        want = model(xt).float().reshape(batch, -1)
        replay, y_graph = torch_graph(torch, model, xt)
        for _ in range(3):
            got = ctx.execute(x)[eng.output_names[0]]
        import cupy
        got = torch.as_tensor(cupy.asnumpy(got).reshape(batch, -1), device="cuda").float()
        diff = float((got - want).abs().max() / want.abs().max())

        def eager():
            model(xt)
        stream = dev.create_stream()
        outs = {n: dev.xp.empty((batch,) + tuple(eng.get_binding_shape(n)), eng.get_binding_dtype(n))
                for n in eng.output_names}
        ways = {"perfkit": (lambda: ctx.execute(x), dev.synchronize),
                "perfkit enqueue": (lambda: ctx.enqueue({**x, **outs}, stream), stream.synchronize),
                "torch eager": (eager, torch.cuda.synchronize),
                "torch graph": (replay, torch.cuda.synchronize)}
        samples = {k: [] for k in ways}
        medians = {k: [] for k in ways}
        for _ in range(rounds):
            for k, (fn, sync) in ways.items():
                got_ms = _calls(fn, sync, min_time / rounds)
                samples[k] += got_ms
                medians[k].append(float(np.median(got_ms)))
    med = {k: float(np.median(v)) for k, v in medians.items()}
    p99 = {k: float(np.percentile(v, 99)) for k, v in samples.items()}
    row = {"model": name, "precision": prec, "batch": batch, "build_s": round(build_s, 2),
           "io": str(eng.get_binding_dtype(iname)),
           "graph": ctx.graph_status.split(":")[0], "max_rel_diff": diff,
           "tactics": _tactic_counts(eng),
           "roofline_fraction": roofline_ms(eng, batch, peaks[prec]) / med["perfkit"]}
    for k in ways:
        row[f"{k} median ms"] = med[k]
        row[f"{k} p99 ms"] = p99[k]
        row[f"{k} per s"] = batch / med[k] * 1e3
    row["perfkit / torch graph"] = med["perfkit"] / med["torch graph"]
    row["perfkit enqueue / torch graph"] = med["perfkit enqueue"] / med["torch graph"]
    row["perfkit / torch eager"] = med["perfkit"] / med["torch eager"]
    ctx.close()
    eng.close()
    return row


def main() -> None:
    import torch

    import perfkit as pk
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="mnist_mlp,mlp4096,resnet50")
    p.add_argument("--batches", default="1,8,32,128,256")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=1.0, help="timed seconds per way and case (all rounds)")
    p.add_argument("--io", choices=("float32", "precision"), default="float32",
                   help="perfkit's input dtype for the MLPs: float32 (TensorRT's default) or the precision's")
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = pk.get_device("cuda")
    precisions = a.precisions.split(",")
    peaks = {pr: measured_peaks(torch, {"fp32": torch.float32, "fp16": torch.float16}[pr]) for pr in precisions}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# perfkit vs PyTorch {torch.__version__}, {dev.name}, {when}; "
          + "; ".join(f"{pr} peaks {f / 1e12:.0f} TFLOP/s, {b / 1e12:.2f} TB/s" for pr, (f, b) in peaks.items()),
          flush=True)
    print("| model | prec | batch | perfkit ms (p99) | enqueue ms | torch graph ms (p99) | torch eager ms | "
          "perfkit/graph | enqueue/graph | perfkit/eager | perfkit per s | roofline | max diff | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    path = os.path.join(os.environ.get("OUT", "/tmp"), "gpu_vs_torch.jsonl")
    with open(path, "a") as f:
        for name in a.models.split(","):
            net, make_torch = perfkit_model(name)
            for prec in precisions:
                for batch in (int(b) for b in a.batches.split(",")):
                    try:
                        r = run_case(pk, torch, name, net, make_torch, prec, batch, peaks, a.rounds, a.min_time,
                                     a.io)
                    except Exception as exc:  # noqa: BLE001 - one failing case must not end the table
                        print(f"| {name} | {prec} | {batch} | failed: {type(exc).__name__}: {str(exc)[:200]} |",
                              flush=True)
                        continue
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    print(f"| {name}{' (' + r['io'] + ' I/O)' if r['io'] != 'float32' else ''} | {prec} | {batch} | "
                          f"{r['perfkit median ms']:.3f} ({r['perfkit p99 ms']:.3f}) | "
                          f"{r['perfkit enqueue median ms']:.3f} | "
                          f"{r['torch graph median ms']:.3f} ({r['torch graph p99 ms']:.3f}) | "
                          f"{r['torch eager median ms']:.3f} | {r['perfkit / torch graph']:.2f} | "
                          f"{r['perfkit enqueue / torch graph']:.2f} | "
                          f"{r['perfkit / torch eager']:.2f} | {r['perfkit per s']:.0f} | "
                          f"{r['roofline_fraction']:.0%} | {r['max_rel_diff']:.1e} | {r['build_s']:.1f} |", flush=True)
                    if name == "resnet50":
                        print(f"  {name} {prec} b{batch} layers: {r['tactics']}", flush=True)


if __name__ == "__main__":
    main()
