"""Where a GPU build's time goes: tactic timing inputs drawn on the host and copied over, against drawn on the GPU.

    python3 benchmarks/gpu_build_time.py [--models resnet_small,transformer_encoder] [--batch 256]
        [--precisions fp16,fp32] [--rounds 2]

Builds each sample (empty timing cache, a fresh Builder each time) with the timing inputs drawn on the host
(perfkit before 2026-11-30: NumPy draws, then a copy to the GPU) and on the GPU (``tactics.draw_input``), the two
interleaved per round after one untimed warm-up build per case (CuPy's kernel cache); prints each build's time,
its tactic-timing phase from the build log, and the ratio of the medians. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    import perfkit as pk
    from perfkit.builder import tactics
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet_small,transformer_encoder")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--precisions", default="fp16,fp32")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    device_draw = tactics.draw_input

    def host_draw(shape, dtype, xp, rng):
        return xp.asarray(tactics.random_input(shape, dtype, rng))
    modes = {"host draw + copy": host_draw, "GPU draw": device_draw}
    dev = pk.get_device("cuda")
    print(f"# GPU build time, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {dev.name}, batch {a.batch}")
    for model in a.models.split(","):
        for prec in a.precisions.split(","):
            net = pk.models.SAMPLES[model]()
            cfg = pk.BuilderConfig(max_batch_size=a.batch, precision=prec)
            pk.Builder(dev).build(net, cfg)                      # warm-up: kernels compiled and cached
            got: dict = {m: [] for m in modes}
            for _ in range(a.rounds):
                for m, fn in modes.items():
                    tactics.draw_input = fn
                    try:
                        t0 = time.perf_counter()
                        eng = pk.Builder(dev).build(net, cfg)
                        got[m].append(time.perf_counter() - t0)
                    finally:
                        tactics.draw_input = device_draw
                    eng.close()
            med = {m: float(np.median(v)) for m, v in got.items()}
            runs = "; ".join(f"{m} {', '.join(f'{t:.2f}' for t in v)} s" for m, v in got.items())
            ratio = med["GPU draw"] / med["host draw + copy"]
            print(f"{model:<20} {prec}  {runs}  ->  GPU draw / host draw {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
