"""Where the start of a distributed sweep goes (issue 13): what a worker's first configuration pays that the
one-process sweep has paid already, phase by phase.

    python3 benchmarks/sweep_start.py [--device cuda] [--model transformer_encoder] [--precision bf16]
        [--batch 256]

1. A fresh Python process (the one a measuring child is) times, one after the other: importing perfkit,
   ``measure_process.prepare`` (what a worker's child does while the cluster starts), the first build of the
   configuration, a build at half its batch size, and the sweep of the configuration (build and timing).
   The first build against the second bounds what a child's first configuration pays beyond the work from
   above (the second build times smaller products).
2. In this process: the start of perfkit's local cluster (one worker per device), a trivial task's round
   trip, and a one-configuration sweep on the running cluster (``devices=client``) against the same sweep
   in this process (after a warm-up in it).

Needs perfkit with Dask distributed (the ``cluster`` extra). Prints seconds per phase.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import perfkit as pk
from perfkit.bench import measure_process
t_import = time.perf_counter() - t0
a = json.loads(sys.argv[1])
t0 = time.perf_counter(); measure_process.prepare(a["device"]); t_prepare = time.perf_counter() - t0
net = pk.models.SAMPLES[a["model"]]()
builds = []
for b in (a["batch"], max(1, a["batch"] // 2)):   # another batch size: its tactics are timed anew, not cached
    cfg = pk.BuilderConfig(max_batch_size=b, precision=a["precision"])
    t0 = time.perf_counter(); pk.Builder(a["device"]).build(net, cfg).close(); builds.append(time.perf_counter() - t0)
t0 = time.perf_counter()
pk.sweep([net], batch_sizes=[a["batch"]], precisions=[a["precision"]], device=a["device"], min_time_s=a["min_time"],
         progress=False)
t_sweep = time.perf_counter() - t0
print(json.dumps({"import": t_import, "prepare": t_prepare, "first build": builds[0], "build at half the batch": builds[1],
                  "sweep after": t_sweep}))
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="transformer_encoder")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--cluster-only", action="store_true", help="leave out the fresh process (part 1)")
    p.add_argument("--repeat", type=int, default=1, help="part 2 this many times, each on a new cluster")
    a = p.parse_args()
    print(f"# start of a distributed sweep, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {a.model} "
          f"{a.precision} batch {a.batch} on {a.device}", flush=True)
    args = json.dumps({"device": a.device, "model": a.model, "precision": a.precision, "batch": a.batch,
                       "min_time": a.min_time})
    if not a.cluster_only:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the fresh process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        out = done.stdout
        wall = time.perf_counter() - t0
        got = json.loads(out.strip().splitlines()[-1])
        print("fresh process: " + ", ".join(f"{k} {v:.2f} s" for k, v in got.items()) + f"; process wall {wall:.2f} s",
              flush=True)
    for _ in range(a.repeat):
        _on_a_cluster(a)


def _on_a_cluster(a) -> None:

    import perfkit as pk
    from perfkit.bench.distributed import resolve_devices
    from perfkit.bench.local_cluster import start_local_cluster
    net = pk.models.SAMPLES[a.model]()
    kw = {"batch_sizes": [a.batch], "precisions": [a.precision], "min_time_s": a.min_time, "progress": False}
    t0 = time.perf_counter()
    cluster, client = start_local_cluster(resolve_devices("all" if a.device.startswith("cuda") else ["cpu"]))
    t_start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        client.submit(int, 1, pure=False).result()
        t_task = time.perf_counter() - t0
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            pk.sweep([net], devices=client, **kw)
            times.append(time.perf_counter() - t0)
    finally:
        client.close()
        cluster.close()
    pk.sweep([net], device=a.device, **kw)                 # warm-up in this process
    t0 = time.perf_counter()
    pk.sweep([net], device=a.device, **kw)
    t_here = time.perf_counter() - t0
    print(f"local cluster: start {t_start:.2f} s, first task round trip {t_task:.2f} s; one-configuration sweep on "
          f"it {times[0]:.2f} s, again {times[1]:.2f} s; the same sweep in this process (warm) {t_here:.2f} s",
          flush=True)


if __name__ == "__main__":     # the local cluster's workers start by spawning: guard the entry point
    main()
