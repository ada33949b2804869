"""The `perfkit` command on a GPU, end to end: build -> inspect -> run --load-engine (graphs on and off, 1 and 4
streams, with and without transfers) -> sweep -> serve-bench, each checked for exit status 0 and its files.

    python benchmarks/cli_gpu.py [--device cuda] [--out /tmp/perfkit_cli_gpu]

Prints each command, its report, and at the end one line per command with its status and wall time."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="/tmp/perfkit_cli_gpu")
    a = p.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    d = ["--device", a.device]
    eng = os.path.join(a.out, "resnet_small.engine")
    commands = [
        ["build", "resnet_small", "-o", eng, "--batch", "8", "--precision", "fp16", *d],
        ["inspect", eng],
        ["run", "--load-engine", eng, "--batch", "1,8", "--duration-s", "2", "--export-times",
         os.path.join(a.out, "times.json"), "--export-trace", os.path.join(a.out, "trace.json"),
         "--out", os.path.join(a.out, "run_graph")],
        ["run", "--load-engine", eng, "--batch", "8", "--duration-s", "2", "--no-graph", "--no-profile"],
        ["run", "--load-engine", eng, "--batch", "8", "--duration-s", "2", "--streams", "4", "--no-profile"],
        ["run", "--load-engine", eng, "--batch", "8", "--duration-s", "2", "--streams", "4", "--threads", "2",
         "--no-transfers", "--no-profile"],
        ["run", "mnist_mlp", "--batch", "1,64", "--precision", "fp32,fp16", "--duration-s", "1", *d],
        ["sweep", "resnet_small", "--batch", "1,8,32", "--precision", "fp32,fp16", "--min-time-s", "0.3", *d,
         "--out", os.path.join(a.out, "sweep")],
        ["sweep", "resnet_small", "--batch", "8", "--streams", "1,2,4,8", "--threads", "1,2,4", "--min-time-s", "0.5",
         *d, "--out", os.path.join(a.out, "streams")],
        ["serve-bench", "resnet_small", "--engines", "1,8,32", "--rate", "2000,8000", "--max-delay-ms", "0,0.5,2",
         "--duration-s", "2", *d, "--out", os.path.join(a.out, "serve")],
    ]
    results = []
    for argv in commands:
        print(f"\n$ perfkit {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "perfkit", *argv], text=True, capture_output=True)
        print(r.stdout + r.stderr, flush=True)
        results.append((r.returncode, time.perf_counter() - t, " ".join(argv[:2])))
    print("\nsummary:")
    for rc, s, what in results:
        print(f"  exit {rc}  {s:6.1f} s  perfkit {what}")
    return max(rc for rc, _, _ in results)


if __name__ == "__main__":
    sys.exit(main())
