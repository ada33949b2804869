"""The layers ONNX import added (normalization, resize, deconvolution) against onnxruntime's CPU kernels,
one operator at a time, interleaved.

    python3 benchmarks/onnx_layers_vs_onnxruntime.py [--rounds 7] [--reps 10] [--threads N] [--cases a,b]

Each case is one ONNX node (built with onnx.helper) run by onnxruntime's CPU provider with N intra-op
threads, and the same layer built with perfkit's Network API on the CPU device (fp32, the batch the
case names), both through their public run call (``InferenceSession.run`` / ``ExecutionContext.execute``:
input and output copies included on both sides). Per round, each runs ``--reps`` times after a warm-up,
alternating which goes first; a round's value is its median. The table gives the median over rounds with
its order-statistic interval (frames.stats.median_ci) and perfkit / onnxruntime with the interval of that
ratio, after checking that both agree. Judge the ratio, not the absolute times, on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import perfkit as pk  # noqa: E402
from perfkit.frames.stats import median_ci, ratio_from_intervals  # noqa: E402


def cases(rng):
    """name -> (ONNX node, initializers {name: array}, input array, perfkit builder(net, x) -> layer)."""
    from onnx import helper
    x_ln = rng.standard_normal((8, 128, 768)).astype(np.float32)
    g, b = rng.standard_normal(768).astype(np.float32), rng.standard_normal(768).astype(np.float32)
    x_img = rng.standard_normal((8, 64, 56, 56)).astype(np.float32)
    s_in, b_in = rng.uniform(0.5, 1.5, 64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    w_dc = (rng.standard_normal((64, 32, 4, 4)) * 0.1).astype(np.float32)
    scales = np.array([1, 1, 2, 2], np.float32)
    return {
        "layer_norm_8x128x768": (helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1),
                                 {"g": g, "b": b}, x_ln, lambda net, x: net.add_normalization(x, g, b, [-1])),
        "instance_norm_8x64x56x56": (helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"]),
                                     {"s": s_in, "b": b_in}, x_img,
                                     lambda net, x: net.add_normalization(x, s_in.reshape(64, 1, 1),
                                                                          b_in.reshape(64, 1, 1), [1, 2])),
        "resize_nearest_2x": (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"), {"s": scales},
                              x_img, lambda net, x: net.add_resize(x, scales=(1, 2, 2))),
        "resize_linear_2x": (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"), {"s": scales},
                             x_img, lambda net, x: net.add_resize(x, scales=(1, 2, 2), mode="linear")),
        "conv_transpose_k4s2": (helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1]),
                                {"w": w_dc}, x_img,
                                lambda net, x: net.add_deconvolution(x, 32, 4, w_dc, stride=2, padding=1)),
    }


def session(node, inits, x, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def timed(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cases", default="")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    table = cases(rng)
    wanted = [c for c in args.cases.split(",") if c] or list(table)
    print(f"{'case':26} {'onnxruntime ms':>22} {'perfkit ms':>22} {'perfkit/ort':>20}")
    for name in wanted:
        node, inits, x, build = table[name]
        sess = session(node, inits, x, args.threads)
        net = pk.Network(name)
        layer = build(net, net.add_input("x", x.shape[1:]))
        net.mark_output(layer.outputs[0])
        ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=x.shape[0])).create_execution_context()
        ref, got = sess.run(None, {"x": x})[0], ctx.execute({"x": x})[layer.outputs[0].name]
        err = float(np.max(np.abs(ref - got)))
        assert err <= 1e-3 * max(1.0, float(np.max(np.abs(ref)))), f"{name}: engines disagree by {err}"
        runs = {"ort": lambda: sess.run(None, {"x": x}), "perfkit": lambda: ctx.execute({"x": x})}
        rounds = {"ort": [], "perfkit": []}
        for r in range(args.rounds):
            for who in (("ort", "perfkit") if r % 2 else ("perfkit", "ort")):
                rounds[who].append(timed(runs[who], args.reps))
        cell = {}
        for who, vals in rounds.items():
            lo, hi = median_ci(vals)
            cell[who] = (float(np.median(vals)), lo, hi)
        ratio, rlo, rhi = ratio_from_intervals(*cell["ort"], *cell["perfkit"])
        show = {w: f"{m:8.2f} [{lo:.2f}, {hi:.2f}]" for w, (m, lo, hi) in cell.items()}
        print(f"{name:26} {show['ort']:>22} {show['perfkit']:>22} {ratio:8.2f} [{rlo:.2f}, {rhi:.2f}]")


if __name__ == "__main__":
    main()
