"""Fused vs unfused latency of the sample networks, and the per-rule fusion benefit of the small ResNet.

Usage:  python3 benchmarks/fusion.py [--device cpu] [--rounds 7] [--min-time 0.3]

Every engine pair is timed in interleaved rounds (fused, unfused, fused, ...) and the median of the
round medians is reported, so drift of a noisy machine hits both alike. Prints a table and the
ratio unfused / fused (above 1: fusion is faster).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import perfkit as pk
from perfkit.bench import time_inference


def compare(net, batch, device, rounds, min_time):
    b = pk.Builder(device)
    fused = b.build(net, pk.BuilderConfig(max_batch_size=batch))
    unfused = b.build(net, pk.BuilderConfig(max_batch_size=batch, fusions="none"))
    x = pk.models.sample_input(net, batch)
    dev = fused.device
    if dev.kind != "cpu":
        x = {k: dev.to_device(v) for k, v in x.items()}
    cf, cu = fused.create_execution_context(), unfused.create_execution_context()
    f, u = [], []
    for _ in range(rounds):
        f.append(np.median(time_inference(cf, x, min_time_s=min_time / rounds)))
        u.append(np.median(time_inference(cu, x, min_time_s=min_time / rounds)))
    return fused, unfused, float(np.median(f)), float(np.median(u))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-time", type=float, default=2.0)
    a = p.parse_args()
    dev = pk.get_device(a.device)
    print(f"# fusion benchmark on {dev.spec} ({dev.name}), {time.strftime('%Y-%m-%d')}")
    print(f"{'model':<22}{'batch':>6}{'layers':>12}{'fused ms':>11}{'unfused ms':>12}{'unfused/fused':>15}"
          f"{'act. tensors':>14}")
    for name in ("mnist_mlp", "lenet", "resnet_small", "transformer_encoder"):
        net = pk.models.SAMPLES[name]()
        for batch in (1, 16):
            fe, ue, f, u = compare(net, batch, dev, a.rounds, a.min_time)
            nt = lambda e: sum(t.kind == "activation" for t in e.plan.tensors.values())  # noqa: E731
            print(f"{name:<22}{batch:>6}{len(ue.plan.steps):>5} -> {len(fe.plan.steps):<4}{f:>11.3f}{u:>12.3f}"
                  f"{u / f:>15.2f}{nt(ue):>7} -> {nt(fe):<4}", flush=True)
    print("\n# per-rule benefit, resnet_small, batch 16")
    frame = pk.analysis.fusion_benefit(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=16), device=dev,
                                       min_time_s=a.min_time, rounds=a.rounds)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
