"""Chrome trace export: the column-wise builder gives the events the row-by-row one gave."""
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.frames.exporters import chrome_trace, trtexec_profile
from perfkit.frames.schemas import GPU_SAMPLES, KERNELS, LAYER_TIMES, MEMORY_EVENTS, QUERIES

HERE = os.path.dirname(__file__)


def _old():
    spec = importlib.util.spec_from_file_location("old_exporters", os.path.join(HERE, "old_exporters.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Run:
    def __init__(self, n_iter: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        names = [("conv1", "convolution"), ("pool1", "pooling"), ("ip1", "fully_connected")]
        t, rows = 1_000_000_000, []
        for it in range(n_iter):
            for i, (n, ty) in enumerate(names):
                d = int(rng.integers(1, 5000))
                rows.append({"run_id": "r", "iteration": it, "index": i, "layer": n, "type": ty, "start_ns": t,
                             "end_ns": t + d, "ms": d / 1e6, "stream": f"s{it % 2}", "context": "ctx",
                             "batch_size": 2, "precision": "fp32", "clock": "host"})
                t += d + int(rng.integers(0, 100))
        self.layers = LAYER_TIMES.frame(rows)
        self.kernels = KERNELS.frame([{"name": "gemm", "kind": "kernel", "start_ns": 1_000_000_100 + k,
                                       "end_ns": 1_000_000_100 + k, "ms": 0.0, "stream": 7 + k % 2,
                                       "correlation_id": k, "layer": "ip1", "iteration": k} for k in range(5)])
        self.queries = QUERIES.frame([{"run_id": "r", "query": q, "stream": 0, "batch_size": 2,
                                       "enqueue_start_ns": 999_999_000 + q, "enqueue_end_ns": 999_999_500 + q,
                                       "end_ns": 1_000_100_000 + q, "enqueue_ms": 0.1, "h2d_ms": 0.0,
                                       "compute_ms": np.nan if q == 1 else 0.5, "d2h_ms": 0.0, "latency_ms": 0.5,
                                       "host_latency_ms": 0.6} for q in range(3)])
        self.memory = MEMORY_EVENTS.frame([{"ts_ns": 1_000_000_000 + 10 * k, "action": "alloc", "ptr": k,
                                            "size_bytes": 256, "requested_bytes": 200, "tag": "io", "owner": "o",
                                            "layer": "", "thread": "main", "in_use_bytes": 256 * k,
                                            "peak_bytes": 256 * k} for k in range(4)])
        self.gpu = GPU_SAMPLES.frame([{"ts_ns": 1_000_000_000 + k, "gpu": 0, "util_gpu_pct": 50.0,
                                       "util_mem_pct": 1.0, "mem_used_bytes": 1, "sm_clock_mhz": np.nan if k else 1980.0,
                                       "mem_clock_mhz": 1.0, "power_w": 300.0, "power_limit_w": 700.0,
                                       "temperature_c": 40.0, "throttle_reasons": ""} for k in range(2)])
        self.meta = {"engine": "e", "device": "cpu", "run_id": "r"}


def _canon(trace):
    return sorted(json.dumps(e, sort_keys=True) for e in trace["traceEvents"])


def test_chrome_trace_events_equal_the_row_by_row_export():
    run = _Run(20)
    new, old = chrome_trace(run), _old().chrome_trace(run)
    assert _canon(new) == _canon(old)
    assert new["otherData"] == old["otherData"] and new["displayTimeUnit"] == old["displayTimeUnit"]
    assert len(new["traceEvents"]) == 3 + 5 + 60 + 5 + 3 + 4 + 2       # processes, threads, events by kind
    first_x = next(i for i, e in enumerate(new["traceEvents"]) if e["ph"] != "M")
    assert all(e["ph"] == "M" for e in new["traceEvents"][:first_x])    # names before the events they name


def test_trtexec_profile_equals_the_loop():
    run = _Run(15, seed=3)
    new, old = trtexec_profile(run.layers), _old().trtexec_profile(run.layers)
    assert new[0] == old[0] and [e["name"] for e in new[1:]] == [e["name"] for e in old[1:]]
    for a, b in zip(new[1:], old[1:]):         # pandas and NumPy sum in different orders: equal to rounding
        assert a.pop("name") == b.pop("name") and a == pytest.approx(b, rel=1e-12)


def test_missing_strings_become_null_not_a_crash():
    run = _Run(2)
    run.layers["layer"] = pd.array([pd.NA] * len(run.layers), dtype="string")
    names = {e.get("name") for e in chrome_trace(run)["traceEvents"] if e.get("cat") == "layer"}
    assert names == {None}
    json.dumps(chrome_trace(run))
