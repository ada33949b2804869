"""BLAS threads of the CPU device: mnist batch 4 with OpenBLAS's own default (what NumPy starts with) against
the device's default, threads=1, threads=2, and a threadpool_limits block around every inference (the cost
the device avoids by applying its limit once), in interleaved rounds.

    python3 benchmarks/blas_threads.py [rounds]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import perfkit as pk  # noqa: E402
from threadpoolctl import threadpool_limits
from perfkit.bench.latency import time_inference
net = pk.models.mnist_mlp()
dev = pk.get_device("cpu")
eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=4))
ctx = eng.create_execution_context()
x = pk.models.sample_input(net, 4)
res = {"openblas_default(before)": [], f"device_default({dev.threads})": [], "threads=1": [], "threads=2": [],
       "threadpool_limits_per_call": []}
import perfkit.device.host as host
libs = host._BLAS.libs()
for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 7):
    for k in res:
        if k.startswith("openblas"):
            for l in libs: l.set_num_threads(os.cpu_count())   # what numpy starts with
        elif k.startswith("device_default"):
            dev.threads = None
        elif k == "threads=1":
            dev.threads = 1
        elif k == "threads=2":
            dev.threads = 2
        if k == "threadpool_limits_per_call":
            dev.threads = None
            s = []
            for _ in range(300):
                t0 = time.perf_counter_ns()
                with threadpool_limits(dev.threads, user_api="blas"):
                    ctx.execute(x, 4)
                s.append((time.perf_counter_ns() - t0) / 1e6)
            res[k].append(np.median(s))
        else:
            res[k].append(np.median(time_inference(ctx, x, warmup=3, min_iterations=300, min_time_s=0.1)))
dev.threads = None
base = np.median(res["openblas_default(before)"])
print(f"{'configuration':32s} {'median of round medians (ms)':>30s} {'ratio to before':>16s}   load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
for k, v in res.items():
    print(f"{k:32s} {np.median(v):30.4f} {np.median(v)/base:16.3f}")
