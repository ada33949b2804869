"""fp16 and bf16 engines against fp32 ones, side by side (builder/precision_choice.py).

Usage:  python3 benchmarks/precision.py [--device cpu] [--batches 1,32] [--rounds 7] [--strict]

For every sample network and batch: an fp32 engine and engines built with ``precision="fp16"`` and
``"bf16"`` (allowed: the builder keeps each layer in fp32 where that is faster), plus with
``--strict`` the same forced with ``strict_types=True``. Each has its own context; they are timed
with ``execute`` in interleaved rounds (every round times each engine once, in the same order), so a
change of machine load reaches all of them alike. Prints the per-round ratio to fp32 as the median
and its spread (lowest-highest), how many layers each engine runs in the reduced precision, and its
device memory. The issue's acceptance: an allowed fp16/bf16 engine is never slower than fp32 beyond
noise on the CPU (a median ratio within 1 + the spread of the fp32-vs-fp32 control, printed first).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import perfkit as pk
from perfkit.bench import time_inference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--models", default=",".join(pk.models.SAMPLES))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.1, help="seconds of timed inferences per engine and round")
    p.add_argument("--strict", action="store_true", help="also time strict_types=True engines")
    a = p.parse_args()
    dev = pk.get_device(a.device)
    print(f"# fp16/bf16 vs fp32 engines on {dev.spec} ({dev.name}; {platform.processor() or platform.machine()}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {a.rounds} interleaved rounds of "
          f"{a.min_time:g} s per engine")
    variants = [("fp32 (control)", "fp32", False), ("fp16", "fp16", False), ("bf16", "bf16", False)]
    if a.strict:
        variants += [("fp16 strict", "fp16", True), ("bf16 strict", "bf16", True)]
    print("| model | batch | engine | median ms | ratio to fp32 (spread) | layers in fp16/bf16 | device memory |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name in a.models.split(","):
        net = pk.models.SAMPLES[name]()
        for batch in (int(b) for b in a.batches.split(",")):
            x = pk.models.sample_input(net, batch)
            if dev.kind != "cpu":
                x = {k: dev.to_device(v) for k, v in x.items()}
            base = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch))
            engines, labels = [base], ["fp32", variants[0][0]]
            for label, prec, strict in variants[1:]:
                try:
                    engines.append(pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch, precision=prec,
                                                                               strict_types=strict)))
                    labels.append(label)
                except pk.PerfkitError as exc:       # e.g. a forced precision this device cannot run
                    print(f"| {name} | {batch} | {label} | refused: {str(exc)[:160]} | | | |", flush=True)
            contexts = [base.create_execution_context()] + [e.create_execution_context() for e in engines]
            ms = np.empty((a.rounds, len(contexts)))
            for r in range(a.rounds):
                for i, ctx in enumerate(contexts):
                    ms[r, i] = np.median(time_inference(ctx, x, min_time_s=a.min_time))
            for i, label in enumerate(labels[1:], start=1):
                ratio = ms[:, i] / ms[:, 0]
                e = engines[i - 1]
                steps = e.layers.query("type != 'identity'")
                reduced = int((steps["precision"] != "fp32").sum())
                print(f"| {name} | {batch} | {label} | {np.median(ms[:, i]):.3f} | {np.median(ratio):.2f} "
                      f"({ratio.min():.2f}-{ratio.max():.2f}) | {reduced}/{len(steps)} | "
                      f"{e.device_memory_bytes / 2**20:.2f} MiB |", flush=True)
            for c in contexts:
                c.close()


if __name__ == "__main__":
    main()
