"""Sweeps: one engine per (network, precision, max batch size), timed, into the ``sweep`` frame."""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Sequence

import pandas as pd

from ..builder import Builder, BuilderConfig
from ..device import get_device
from ..frames.schemas import SWEEP
from ..models import sample_input
from ._args import check_sweep
from .latency import latency_stats, time_inference


def sweep(networks: Any, batch_sizes: Sequence[int] = (1, 8, 32), precisions: Sequence[str] = ("fp32",),
          device: Any = None, min_time_s: float = 0.2, min_iterations: int = 5,
          on_row: Callable[[dict], None] | None = None, engines: dict | None = None) -> pd.DataFrame:
    """Builds each network for each precision and batch size, times it, returns the ``sweep`` frame.

    Each batch size gets its own engine built for exactly that batch (guide 2.1). On CUDA the inputs
    are copied to the device first, so the figures are those of the network itself (the guide's
    "from input already on the GPU"). ``engines``, if given, collects the engines built, keyed by
    (network name, precision, batch size). ``on_row`` is called with each row as it is measured.
    """
    nets = check_sweep(networks, batch_sizes, precisions, min_time_s, min_iterations, on_row, engines)
    dev = get_device(device)
    builder = Builder(dev)
    run_id = uuid.uuid4().hex[:8]
    rows = []
    for net in nets:
        for precision in precisions:
            for b in batch_sizes:
                engine = builder.build(net, BuilderConfig(max_batch_size=int(b), precision=precision))
                ctx = engine.create_execution_context()
                inputs = sample_input(net, int(b))
                if dev.kind != "cpu":
                    inputs = {k: dev.to_device(v) for k, v in inputs.items()}
                ms = time_inference(ctx, inputs, min_time_s=min_time_s, min_iterations=min_iterations)
                mem = engine.memory
                row = {"run_id": run_id, "model": net.name, "device": dev.spec, "precision": precision,
                       "batch_size": int(b), **latency_stats(ms, int(b)),
                       "device_memory_bytes": engine.device_memory_bytes, "weights_bytes": mem["weights"],
                       "activation_bytes": mem["activations"], "build_time_ms": engine.build_time_ms}
                rows.append(row)
                if engines is not None:
                    engines[(net.name, precision, int(b))] = engine
                if on_row:
                    on_row(row)
                ctx.close()
    return SWEEP.frame(rows, {"run_id": run_id, "device": dev.spec, "device_name": dev.name,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


