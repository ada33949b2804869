"""Chrome-trace export: the column-wise builder (frames/exporters.py) against the row-by-row loop it
replaced (kept as tests/frames/old_exporters.py), on a synthetic run of many layer rows.

Usage:  python3 benchmarks/chrome_trace_export.py [--rows 180000] [--rounds 3]

Times the whole export to a file, each way: the old path (row-by-row events, ``json.dump`` to the
file, which encodes in small chunks) and the new one (``RunData.export_chrome_trace``: column-wise
events, one ``json.dumps`` and one write). Prints the median of each over interleaved rounds and
their ratio, after checking that both give the same events.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time

import numpy as np

from perfkit.frames.exporters import chrome_trace
from perfkit.profiling.data import RunData
from perfkit.frames.schemas import GPU_SAMPLES, KERNELS, LAYER_TIMES, MEMORY_EVENTS, QUERIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SyntheticRun:
    def __init__(self, rows: int):
        rng = np.random.default_rng(0)
        n_layers = 12
        it = np.arange(rows) // n_layers
        dur = rng.integers(1_000, 50_000, rows)
        start = 1_000_000_000 + np.concatenate([[0], np.cumsum(dur + 100)[:-1]])
        self.layers = LAYER_TIMES.frame([])
        cols = {"run_id": "r", "iteration": it, "index": np.arange(rows) % n_layers,
                "layer": [f"layer{i % n_layers}" for i in range(rows)], "type": "convolution",
                "start_ns": start, "end_ns": start + dur, "ms": dur / 1e6, "stream": "s0", "context": "ctx",
                "batch_size": 8, "precision": "fp16", "clock": "host"}
        import pandas as pd
        df = pd.DataFrame(cols)
        self.layers = LAYER_TIMES.validate(df.astype({c.name: c.dtype for c in LAYER_TIMES.columns}))
        self.kernels, self.queries = KERNELS.frame([]), QUERIES.frame([])
        self.memory, self.gpu = MEMORY_EVENTS.frame([]), GPU_SAMPLES.frame([])
        self.meta = {"engine": "synthetic", "device": "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=180_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("old", os.path.join(ROOT, "tests", "frames", "old_exporters.py"))
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    run = SyntheticRun(a.rows)
    assert sorted(map(json.dumps, chrome_trace(run)["traceEvents"])) == \
        sorted(map(json.dumps, old.chrome_trace(run)["traceEvents"]))
    def old_export(path: str) -> None:
        with open(path, "w") as f:
            json.dump(old.chrome_trace(run), f)

    def new_export(path: str) -> None:
        RunData.export_chrome_trace(run, path)

    times: dict = {"row by row": [], "column-wise": []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):                   # interleaved, so both see the same machine load
            for name, fn in (("row by row", old_export), ("column-wise", new_export)):
                t0 = time.perf_counter()
                fn(os.path.join(d, "trace.json"))
                times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:12s} {v:8.3f} s for {a.rows} layer rows")
    print(f"ratio (row by row / column-wise): {med['row by row'] / med['column-wise']:.1f}x")


if __name__ == "__main__":
    main()
