"""Records the frames that data/ ships, so notebooks and explorers can show a GPU's evidence on a laptop.

    python3 benchmarks/record_data.py --device cuda --out data/h200_<date>

writes, under ``--out``:
- ``sweep.parquet`` and ``sweep_layers.parquet``: the sample networks over batch size x precision,
  timed in interleaved rounds (intervals, spread, host load, GPU clocks per row) with per-layer times;
- ``profile_<model>/``: a saved run per network at ``--profile-batch`` (layers, kernels where CUPTI
  is present, memory events of the inference, GPU samples), loadable with ``perfkit.load_run``;
- ``memory_<model>.parquet``: every event of the device's tracking allocator from the start of the
  build to the end of the profiled inferences (build, context creation and inference phases).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import perfkit as pk  # noqa: E402

MODELS = ("mnist_mlp", "lenet", "resnet_small", "transformer_encoder")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-sizes", default="1,4,16,64,256")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--profile-batch", type=int, default=32)
    ap.add_argument("--min-time", type=float, default=0.5)
    a = ap.parse_args()
    dev = pk.get_device(a.device)
    os.makedirs(a.out, exist_ok=True)
    nets = [pk.models.SAMPLES[m]() for m in MODELS]
    t0 = time.perf_counter()
    frame, layers = pk.sweep(nets, [int(b) for b in a.batch_sizes.split(",")], a.precisions.split(","), dev,
                             min_time_s=a.min_time, layers=True, out=os.path.join(a.out, "sweep.parquet"))
    print(f"sweep: {len(frame)} rows, {len(layers)} layer rows in {time.perf_counter() - t0:.0f} s")
    cols = ["model", "precision", "batch_size", "latency_median_ms", "latency_ci_low_ms", "latency_ci_high_ms",
            "latency_cv_pct", "throughput_per_s", "unstable", "gpu_sm_clock_mhz", "error"]
    print(frame[[c for c in cols if c in frame.columns]].to_string(index=False))
    for net in nets:
        _profile(net, dev, a.profile_batch, a.out)


def _profile(net, dev, batch: int, out: str) -> None:
    tracker = dev.tracking_allocator
    mark = tracker.mark()
    engine = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch))
    ctx = engine.create_execution_context()
    x = pk.models.sample_input(net, batch)
    x = {k: dev.to_device(v) for k, v in x.items()} if dev.kind != "cpu" else x
    for _ in range(5):
        ctx.execute(x)
    with pk.profile(ctx, layers=True, memory=True, gpu_metrics=True, kernels=dev.kind == "cuda") as run:
        for _ in range(20):
            ctx.execute(x)
    run.save(os.path.join(out, f"profile_{net.name}"))
    events = tracker.events_since(mark)
    events.attrs.update({"engine": engine.name, "device_name": dev.name,
                         "predicted_device_memory_bytes": int(engine.device_memory_bytes)})
    events.to_parquet(os.path.join(out, f"memory_{net.name}.parquet"))
    v = run.overview_values()
    print(f"{net.name}: layers sum {v['layer_sum_ms']:.3f} ms of {v['e2e_unprofiled_ms']:.3f} ms end-to-end; "
          f"{len(run.layers)} layer rows, {len(run.kernels)} kernels, {len(events)} memory events, "
          f"{len(run.gpu)} GPU samples")
    for m in run.messages:
        print("  ", m)
    ctx.close()
    engine.close()


if __name__ == "__main__":
    main()
