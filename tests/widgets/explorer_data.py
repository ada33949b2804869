"""Shared data of the explorer tests: synthetic sweep frames with known values (imported by name: a module name
no other test folder uses, unlike conftest)."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

pytest.importorskip("ipywidgets", reason="the explorers need ipywidgets (pip install perfkit[notebook])")

import numpy as np  # noqa: E402

from perfkit.frames.schemas import SWEEP, SWEEP_LAYERS  # noqa: E402


def sweep_row(model="mlp", precision="fp32", batch=1, ms=1.0, unstable=False, load=0.5, cpus=2, error="", **kw):
    """A SWEEP row whose median latency is ``ms`` with the interval ms*(0.9, 1.1)."""
    failed = bool(error)
    row = {"run_id": "r", "model": model, "device": "cpu", "precision": precision, "batch_size": batch,
           "iterations": 0 if failed else 50, "latency_mean_ms": ms, "latency_median_ms": ms,
           "latency_p90_ms": ms * 1.2,
           "latency_min_ms": ms * 0.8, "latency_max_ms": ms * 1.5, "throughput_per_s": batch / ms * 1e3,
           "device_memory_bytes": 1000 * batch, "weights_bytes": 500, "activation_bytes": 100 * batch,
           "build_time_ms": 5.0, "rounds": 5, "latency_ci_low_ms": ms * 0.9, "latency_ci_high_ms": ms * 1.1,
           "latency_cv_pct": 20.0 if unstable else 2.0, "unstable": unstable, "remeasured": unstable,
           "host_load_1m": load, "host_cpus": cpus, "gpu_sm_clock_mhz": np.nan, "gpu_throttle": None,
           "error": error, "threads": 2}
    if failed:
        for k in ("latency_mean_ms", "latency_median_ms", "latency_p90_ms", "latency_min_ms", "latency_max_ms",
                  "throughput_per_s", "latency_ci_low_ms", "latency_ci_high_ms", "latency_cv_pct"):
            row[k] = np.nan
    row.update(kw)
    return row


def sweep_frame(rows=None):
    """Two models x two precisions x batch 1, 4, 16; latency = base * (1 + batch/8), fp16 at 0.8x."""
    if rows is None:
        rows = [sweep_row(m, p, b, base * (1 + b / 8) * (0.8 if p == "fp16" else 1.0))
                for m, base in (("mlp", 1.0), ("cnn", 3.0)) for p in ("fp32", "fp16") for b in (1, 4, 16)]
    return SWEEP.frame(rows, {"device_name": "test cpu"})


def layer_rows(model="mlp", precision="fp32", batch=1, layers=(("fc1", 0.4), ("fc2", 0.6))):
    return [{"run_id": "r", "model": model, "device": "cpu", "precision": precision, "batch_size": batch, "index": i,
             "layer": name, "type": "fully_connected", "layer_precision": precision, "count": 10,
             "median_ms": ms * batch, "ci_low_ms": ms * batch * 0.9, "ci_high_ms": ms * batch * 1.1, "pct": 50.0,
             "flops": 1e6, "bytes": 1e4} for i, (name, ms) in enumerate(layers)]


def layers_frame():
    return SWEEP_LAYERS.frame([r for m in ("mlp",) for p in ("fp32", "fp16") for b in (1, 4, 16)
                               for r in layer_rows(m, p, b)])
