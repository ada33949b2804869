"""Eager launches vs CUDA-graph replay (runtime/cuda_graph.py) for the sample networks.

Usage:  python3 benchmarks/cuda_graphs.py [--batches 1,32] [--precisions fp32,fp16] [--rounds 5]

For every (network, precision, batch): one engine, two contexts (``cuda_graph=False`` and the
default), checked to give identical outputs, then timed with ``execute`` on device inputs in
interleaved rounds (median of round medians). Prints latency, the eager/graph ratio (above 1: graphs
are faster), the time the capture took and the memory the graph keeps.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import perfkit as pk
from perfkit.bench import time_inference

MODELS = ("mnist_mlp", "lenet", "resnet_small", "mlp", "transformer_encoder")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=1.0)
    a = p.parse_args()
    dev = pk.get_device(a.device)
    print(f"# eager vs CUDA graph, {dev.spec} ({dev.name}), {time.strftime('%Y-%m-%d')}")
    print("| model | precision | batch | eager ms | graph ms | eager/graph | capture ms | graph memory |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in MODELS:
        net = getattr(pk.models, name)()
        for prec in a.precisions.split(","):
            for batch in (int(b) for b in a.batches.split(",")):
                eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch, precision=prec))
                eager, graph = eng.create_execution_context(cuda_graph=False), eng.create_execution_context()
                x = {k: dev.to_device(v) for k, v in pk.models.sample_input(net, batch).items()}
                want = eager.execute(x)
                for _ in range(3):
                    got = graph.execute(x)
                same = all(bool((want[k] == got[k]).all()) for k in want)
                te, tg = [], []
                for _ in range(a.rounds):
                    te.append(np.median(time_inference(eager, x, min_time_s=a.min_time / a.rounds)))
                    tg.append(np.median(time_inference(graph, x, min_time_s=a.min_time / a.rounds)))
                e, g = float(np.median(te)), float(np.median(tg))
                st = graph._graphs
                print(f"| {name} | {prec} | {batch} | {e:.3f} | {g:.3f} | **{e / g:.1f}** | {st.capture_ms:.1f} | "
                      f"{graph.graph_memory_bytes / 2**20:.2f} MiB |" + ("" if same else " OUTPUTS DIFFER"))
                if not graph.graph_status.startswith("on"):
                    print(f"|  | graph mode: {graph.graph_status} |")


if __name__ == "__main__":
    main()
