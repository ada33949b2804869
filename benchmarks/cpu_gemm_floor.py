"""The floor of perfkit's CPU convolutions: the matrix products alone, at NumPy's BLAS speed, against the
whole network in perfkit and in onnxruntime.

    python3 benchmarks/cpu_gemm_floor.py [--cnn resnet50|resnet18] [--batch 1] [--reps 20]

perfkit's CPU engine multiplies through NumPy's BLAS (OpenBLAS in NumPy's wheels): every convolution is a
GEMM over a column matrix (or the input itself for a 1x1), and every other pass (columns, bias, residual,
activation, pooling) is NumPy. This times, for each layer of the ONNX ResNet of
benchmarks/cpu_models.py built by perfkit at ``--batch``, one ``np.matmul`` of the layer's product shape
((K/g) x (C/g*kh*kw) by (C/g*kh*kw) x (batch*OH*OW) per group; fully connected layers likewise) on
preallocated operands, fastest of ``--reps``, and sums them: the time perfkit would take if everything
outside its GEMMs cost nothing. Beside it: perfkit's engine and onnxruntime (same threads) on the same
model, fastest of ``--reps`` inferences each. Same process, interleaved: read the ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perfkit as pk  # noqa: E402
from perfkit.onnx import load  # noqa: E402

import cpu_models  # noqa: E402


def _fastest(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def _shapes(engine, batch: int) -> list:
    """(layer, groups, M, K, N) of each convolution's and fully connected / MLP stage's product at ``batch``."""
    plan, out = engine.plan, []
    for st in plan.steps:
        p = st.params
        if st.type == "convolution":
            c = plan.tensors[st.inputs[0]].shape[0]
            k, oh, ow = plan.tensors[st.outputs[0]].shape
            g = p["groups"]
            kh, kw = p["kernel_size"]
            out.append((st.name, g, k // g, c // g * kh * kw, batch * oh * ow))
        elif st.type in ("fully_connected", "mlp"):
            for wname, key in sorted(st.weights.items()):
                if wname == "kernel" or (wname.startswith("w") and wname[1:].isdigit()):
                    a, b = plan.weights[key].shape
                    out_f, in_f = (a, b) if st.type == "fully_connected" else (b, a)
                    out.append((st.name, 1, out_f, in_f, batch))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnn", default="resnet50")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    model, _ = cpu_models.resnet_onnx(a.cnn)
    dev = pk.get_device("cpu")
    threads = dev.apply_threads()
    engine = pk.Builder(dev).build(load(model), pk.BuilderConfig(max_batch_size=a.batch))
    ctx = engine.create_execution_context()
    x = pk.models.sample_input(load(model), a.batch)
    rows, floor, flops = [], 0.0, 0.0
    rng = np.random.default_rng(0)
    for name, g, m, k, n in _shapes(engine, a.batch):
        w = rng.standard_normal((g, m, k), dtype=np.float32)
        cols = rng.standard_normal((g, k, n), dtype=np.float32)
        out = np.empty((g, m, n), np.float32)
        ms = _fastest(lambda: np.matmul(w, cols, out=out) if g > 1 else np.matmul(w[0], cols[0], out=out[0]), a.reps)
        rows.append((name, g, m, k, n, ms))
        floor += ms
        flops += 2.0 * g * m * k * n
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: next(iter(x.values()))}
    pk_ms, ort_ms = [], []
    for _ in range(3):                  # interleaved
        pk_ms.append(_fastest(lambda: ctx.execute(x), a.reps))
        ort_ms.append(_fastest(lambda: sess.run(None, feed), a.reps))
    pk_best, ort_best = min(pk_ms), min(ort_ms)
    rows.sort(key=lambda r: -r[-1])
    print(f"{a.cnn} batch {a.batch}, {threads} BLAS / onnxruntime threads, numpy {np.__version__}")
    print(f"{'layer':46s} {'g':>3s} {'M':>6s} {'K':>6s} {'N':>7s} {'GEMM ms':>8s} {'GFLOP/s':>8s}")
    for name, g, m, k, n, ms in rows[:12]:
        print(f"{name[:46]:46s} {g:3d} {m:6d} {k:6d} {n:7d} {ms:8.3f} {2 * g * m * k * n / ms / 1e6:8.1f}")
    print(f"... {len(rows)} products in all")
    print(f"\nGEMMs alone (NumPy's BLAS): {floor:8.2f} ms  ({flops / floor / 1e6:.0f} GFLOP/s)")
    print(f"perfkit, whole network:     {pk_best:8.2f} ms  ({pk_best / floor:.2f}x the GEMMs alone)")
    print(f"onnxruntime, whole network: {ort_best:8.2f} ms  ({flops / ort_best / 1e6:.0f} GFLOP/s of the same GEMMs)")
    print(f"perfkit / onnxruntime:      {pk_best / ort_best:.2f}x; GEMMs alone / onnxruntime: {floor / ort_best:.2f}x")


if __name__ == "__main__":
    main()
