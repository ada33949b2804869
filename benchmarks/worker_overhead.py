"""What measuring inside a Dask worker costs: one timing loop in this process, in a worker's task thread and
in a plain child process of the worker (a process with no event loop, as a measuring child would be), on perfkit's own
local cluster and on a cluster with Dask's default worker settings (what a user's own cluster has).

    python3 benchmarks/worker_overhead.py [--model mnist_mlp] [--batch 1] [--calls 4000] [--clusters 3]

The loop builds ``--model`` for the CPU with one BLAS thread, warms up, then times ``--calls`` calls of
``execute`` one by one and reports the median and the 10th percentile in µs. For each of ``--clusters``
fresh clusters of each kind (one single-threaded worker process) it runs the loop twice in the worker's
task thread and twice in a child process of the worker, then once in this process. Read the medians side
by side: a ratio near 1 for the child and above 1 for the thread is what the worker's event loop costs the timing
(benchmarks/RESULTS.md, 2026-11-29 22:00 UTC).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def loop(model: str, batch: int, calls: int) -> tuple:
    """(median µs, 10th percentile µs) of ``calls`` warm ``execute`` calls, one BLAS thread."""
    import time

    import perfkit as pk
    dev = pk.get_device("cpu")
    dev.threads = 1
    net = getattr(pk.models, model)()
    ctx = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch)).create_execution_context()
    x = pk.models.sample_input(net, batch)
    for _ in range(300):
        ctx.execute(x)
    ts = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        ctx.execute(x)
        ts[i] = time.perf_counter_ns() - t0
    return float(np.median(ts)) / 1e3, float(np.percentile(ts, 10)) / 1e3


def in_child(model: str, batch: int, calls: int) -> tuple:
    """``loop`` in a plain child process of this worker, started from the task's thread (the
    worker's environment, no event loop), its result read back as JSON."""
    import json
    import subprocess
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-loop", model, str(batch), str(calls)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_mlp")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--clusters", type=int, default=3)
    a = ap.parse_args()
    args = (a.model, a.batch, a.calls)
    from dask.distributed import Client, LocalCluster

    from perfkit.bench import distributed as dist, local_cluster
    print(f"{a.model} batch {a.batch}, one BLAS thread, {a.calls} calls per loop: median / p10 µs")
    for kind in ("perfkit", "dask-default"):
        for i in range(a.clusters):
            if kind == "perfkit":
                cluster, client = local_cluster.start_local_cluster(dist.resolve_devices(["cpu"]))
                client.run(_stop_measuring_child)       # its worker plugin started one: idle cores for the loops
            else:
                cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
                client = Client(cluster)
            try:
                thread = [client.submit(loop, *args, pure=False).result() for _ in range(2)]
                child = [client.submit(in_child, *args, pure=False).result() for _ in range(2)]
            finally:
                client.close()
                cluster.close()
            here = loop(*args)
            fmt = lambda r: " ".join(f"{m:6.1f}/{p:6.1f}" for m, p in r)  # noqa: E731
            print(f"{kind:12s} cluster {i + 1}: here {fmt([here])}  thread {fmt(thread)}  child {fmt(child)}  "
                  f"thread/here {np.median([m for m, _ in thread]) / here[0]:.2f}  "
                  f"child/here {np.median([m for m, _ in child]) / here[0]:.2f}", flush=True)


def _stop_measuring_child() -> None:
    """Ends the measuring child a perfkit worker starts with itself (once it is ready), so that it does not
    share the worker's core while the loops run."""
    from perfkit.bench import measure_process
    measure_process._close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-loop"]:
        import json
        print(json.dumps(loop(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
