"""Issue 11 probe, for the GPU machine: cuDNN's Python frontend on ResNet-50's convolutions before perfkit uses it.

    python3 benchmarks/cudnn_probe.py        (writes $OUT/cudnn_probe.json; needs cudnn-frontend, CuPy, PyTorch)

For each convolution shape (ResNet-50 layers at batch 1, 32 and 256), fp16 and fp32 (fp32 with TF32 and
down-converting engines deselected, as perfkit's fp32 must stay fp32), NCHW and NHWC strides, and three graphs
(the convolution alone; + bias + ReLU; + bias + residual add + ReLU), it prints and records: whether a plan
exists (heuristics A then FALLBACK), the plan's name, its workspace, the graph's build time, its median time on
the device (CUDA events, 20 runs) against ``torch.nn.functional.conv2d`` on the same stream (cuDNN benchmark
mode, TF32 off), the result's relative error against PyTorch, the host time of one ``execute`` call, and for
every NHWC graph whether it captures into a CUDA graph and replays to the same result, and the replay's time.
``--batches 32`` (a comma list) keeps the shapes of those batch sizes only; ``--no-nchw`` leaves NCHW out.
First run 2026-11-29 23:59 UTC on an H200 (benchmarks/RESULTS.md): NHWC right everywhere, NCHW wrong or
unsupported, so capture is now checked on the NHWC graphs (it was tried only on an NCHW graph, which did not
build).
"""
import argparse
import json
import os
import sys
import time
import traceback

import cupy as cp
import numpy as np

out_dir = os.environ.get("OUT", "/tmp")
log = []


def say(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    log.append(s)


import cudnn  # noqa: E402
import torch  # noqa: E402

say("cudnn backend", cudnn.backend_version(), "torch", torch.__version__, torch.backends.cudnn.version())
handle = cudnn.create_handle()
stream = cp.cuda.Stream(non_blocking=True)
cudnn.set_stream(handle, stream.ptr)
DT = {"fp16": (cudnn.data_type.HALF, cp.float16, torch.float16), "fp32": (cudnn.data_type.FLOAT, cp.float32, torch.float32)}
say("numerical notes", [n for n in dir(cudnn.numerical_note) if not n.startswith("_")])
say("heur modes", [n for n in dir(cudnn.heur_mode) if not n.startswith("_")])


def strides(shape, layout):
    n, c, h, w = shape
    return [c * h * w, h * w, w, 1] if layout == "nchw" else [h * w * c, 1, w * c, c]


def make_graph(xs, ws, pad, st, prec, layout, fuse, no_tf32=True):
    io, _, _ = DT[prec]
    g = cudnn.pygraph(io_data_type=io, intermediate_data_type=cudnn.data_type.FLOAT,
                      compute_data_type=cudnn.data_type.FLOAT, handle=handle)
    X = g.tensor(name="X", dim=list(xs), stride=strides(xs, layout), data_type=io)
    W = g.tensor(name="W", dim=list(ws), stride=strides(ws, layout), data_type=io)
    Y = g.conv_fprop(image=X, weight=W, padding=[pad, pad], stride=[st, st], dilation=[1, 1],
                     compute_data_type=cudnn.data_type.FLOAT)
    T = {"X": X, "W": W}
    if fuse in ("bias_relu", "bias_add_relu"):
        B = g.tensor(name="B", dim=[1, ws[0], 1, 1], stride=[ws[0], 1, 1, 1], data_type=io)
        T["B"] = B
        Y = g.bias(input=Y, bias=B)
        if fuse == "bias_add_relu":
            n, k = xs[0], ws[0]
            oh = (xs[2] + 2 * pad - ws[2]) // st + 1
            R = g.tensor(name="R", dim=[n, k, oh, oh], stride=strides((n, k, oh, oh), layout), data_type=io)
            T["R"] = R
            Y = g.add(a=Y, b=R)
        Y = g.relu(input=Y)
    Y.set_output(True).set_data_type(io)
    T["Y"] = Y
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    if prec == "fp32" and no_tf32:
        g.deselect_numeric_notes([cudnn.numerical_note.TENSOR_CORE, cudnn.numerical_note.DOWN_CONVERT_INPUTS])
    g.check_support()
    g.build_plans()
    return g, T


def timeit(fn, n=20):
    fn()
    stream.synchronize()
    s, e = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(n):
        s.record(stream)
        fn()
        e.record(stream)
        e.synchronize()
        ts.append(cp.cuda.get_elapsed_time(s, e))
    return float(np.median(ts))


cases = [  # N, C, H, K, k, stride, pad  (ResNet-50 layers)
    (32, 64, 56, 64, 3, 1, 1), (32, 256, 56, 64, 1, 1, 0), (32, 128, 28, 128, 3, 1, 1),
    (32, 512, 7, 2048, 1, 1, 0), (256, 64, 56, 64, 3, 1, 1), (256, 3, 224, 64, 7, 2, 3),
    (1, 64, 56, 64, 3, 1, 1), (256, 256, 14, 256, 3, 1, 1)]
ap = argparse.ArgumentParser()
ap.add_argument("--batches", default="", help="keep only these batch sizes' shapes (comma list)")
ap.add_argument("--no-nchw", action="store_true", help="NHWC strides only")
args = ap.parse_args()
if args.batches:
    cases = [c for c in cases if c[0] in {int(b) for b in args.batches.split(",")}]
layouts = ("nhwc",) if args.no_nchw else ("nchw", "nhwc")
rows = []
for (n, c, h, k, kk, st, pad) in cases:
    xs, ws = (n, c, h, h), (k, c, kk, kk)
    oh = (h + 2 * pad - kk) // st + 1
    for prec in ("fp16", "fp32"):
        io, cdt, tdt = DT[prec]
        xt = torch.randn(xs, device="cuda", dtype=tdt)
        wt = torch.randn(ws, device="cuda", dtype=tdt) * 0.05
        bt = torch.randn(k, device="cuda", dtype=tdt)
        rt = torch.randn((n, k, oh, oh), device="cuda", dtype=tdt)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        ref = torch.relu(torch.nn.functional.conv2d(xt, wt, bt, stride=st, padding=pad) + rt)

        def torch_conv():
            with torch.cuda.stream(torch.cuda.ExternalStream(stream.ptr)):
                torch.nn.functional.conv2d(xt, wt, None, stride=st, padding=pad)
        t_torch = timeit(torch_conv)
        for layout in layouts:
            for fuse in ("none", "bias_relu", "bias_add_relu"):
                row = dict(case=(n, c, h, k, kk, st, pad), prec=prec, layout=layout, fuse=fuse, torch_conv_ms=t_torch)
                try:
                    t0 = time.perf_counter()
                    g, T = make_graph(xs, ws, pad, st, prec, layout, fuse)
                    row["build_ms"] = (time.perf_counter() - t0) * 1e3
                    row["plans"] = g.get_execution_plan_count()
                    row["plan"] = g.get_plan_name_at_index(0) if row["plans"] else None
                    wsz = g.get_workspace_size()
                    row["ws"] = int(wsz)
                    wbuf = cp.empty(max(int(wsz), 256), cp.uint8)
                    mf = torch.channels_last if layout == "nhwc" else torch.contiguous_format
                    X = xt.contiguous(memory_format=mf)
                    Wd = wt.contiguous(memory_format=mf)
                    R = rt.contiguous(memory_format=mf)
                    Y = torch.empty((n, k, oh, oh), device="cuda", dtype=tdt).contiguous(memory_format=mf)
                    B = bt.reshape(1, k, 1, 1).contiguous()
                    torch.cuda.synchronize()    # PyTorch prepared them on its stream; the graphs run on `stream`
                    pack = {T["X"]: X.data_ptr(), T["W"]: Wd.data_ptr(), T["Y"]: Y.data_ptr()}
                    if "B" in T:
                        pack[T["B"]] = B.data_ptr()
                    if "R" in T:
                        pack[T["R"]] = R.data_ptr()
                    wp = wbuf.data.ptr

                    def run():
                        g.execute(pack, wp, handle=handle)
                    row["ms"] = timeit(run)
                    stream.synchronize()
                    if fuse == "bias_add_relu":
                        want = ref
                    elif fuse == "bias_relu":
                        want = torch.relu(torch.nn.functional.conv2d(xt, wt, bt, stride=st, padding=pad))
                    else:
                        want = torch.nn.functional.conv2d(xt, wt, None, stride=st, padding=pad)
                    err = ((Y.float() - want.float()).abs().max() / want.float().abs().max()).item()
                    row["rel_err"] = err
                    # host cost per execute
                    t0 = time.perf_counter()
                    for _ in range(200):
                        run()
                    row["host_us"] = (time.perf_counter() - t0) / 200 * 1e6
                    stream.synchronize()
                    # capture: the graph's execute inside a CUDA graph, replayed, and its replay time
                    if layout == "nhwc":
                        Y.zero_()
                        torch.cuda.synchronize()    # the zeroing ran on PyTorch's stream
                        try:
                            stream.begin_capture()
                            try:
                                run()
                            finally:
                                graph = stream.end_capture()
                            graph.launch(stream)
                            stream.synchronize()
                            row["capture_err"] = ((Y.float() - want.float()).abs().max()
                                                  / want.float().abs().max()).item()
                            row["replay_ms"] = timeit(lambda: graph.launch(stream))
                        except Exception as exc:  # noqa: BLE001
                            row["capture_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                except Exception as exc:  # noqa: BLE001
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                say(json.dumps(row))
                rows.append(row)
json.dump(rows, open(os.path.join(out_dir, "cudnn_probe.json"), "w"), indent=1)
