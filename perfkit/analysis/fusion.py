"""fusion_benefit: what each fusion rule buys, measured by switching it off and rebuilding."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from ..arguments import number, optional_positive_int, positive_int
from ..bench.latency import time_inference
from ..builder import Builder, BuilderConfig
from ..builder.passes import RULE_NAMES
from ..errors import ArgumentError
from ..frames.schemas import FUSION_BENEFIT
from ..models import sample_input


def fusion_benefit(network: Any, config: BuilderConfig | None = None, batch_size: int | None = None,
                   device: Any = None, min_time_s: float = 0.3, rounds: int = 3) -> pd.DataFrame:
    """Builds ``network`` with all fusions, then once per rule that fired with that rule switched
    off, and times each engine at ``batch_size`` (default: the config's max batch size). Engines are
    timed in ``rounds`` interleaved rounds and the median is kept, so slow drift of the machine
    affects every row alike. Rows are sorted by the latency a rule saves, largest first.
    """
    from ..network import Network
    if not isinstance(network, Network):
        raise ArgumentError(f"fusion_benefit needs a perfkit Network, not {type(network).__name__}")
    if config is not None and not isinstance(config, BuilderConfig):
        raise ArgumentError(f"fusion_benefit: config must be a BuilderConfig or None, not {type(config).__name__}")
    optional_positive_int(batch_size, "fusion_benefit: batch_size")
    number(min_time_s, "fusion_benefit: min_time_s", minimum=0)
    positive_int(rounds, "fusion_benefit: rounds")
    base = dataclasses.replace(config or BuilderConfig(), fusions="all")
    batch = int(batch_size or base.max_batch_size)
    base = dataclasses.replace(base, max_batch_size=max(batch, base.max_batch_size))
    builder = Builder(device)
    full = builder.build(network, base)
    log = full.build_log
    fired = log[(log["phase"] == "fusion") & (log["outcome"] == "fused")]["rule"].value_counts()
    variants = {"(all rules)": (full, int(fired.sum()))}
    for rule in [r for r in RULE_NAMES if r in fired.index]:
        cfg = dataclasses.replace(base, fusions=set(RULE_NAMES) - {rule})
        variants[rule] = (builder.build(network, cfg), int(fired[rule]))
    variants["(no rules)"] = (builder.build(network, dataclasses.replace(base, fusions="none")), 0)
    inputs = sample_input(network, batch)
    if full.device.kind != "cpu":
        inputs = {k: full.device.to_device(v) for k, v in inputs.items()}
    contexts = {k: e.create_execution_context() for k, (e, _) in variants.items()}
    for ctx in contexts.values():       # warm every engine (caches, allocator pools, GPU clocks) before timing
        time_inference(ctx, inputs, warmup=3, min_iterations=3, min_time_s=min(0.2, min_time_s / rounds))
    samples: dict = {k: [] for k in variants}
    for _ in range(rounds):
        for k, ctx in contexts.items():
            samples[k].append(np.median(time_inference(ctx, inputs, min_time_s=min_time_s / rounds)))
    ref_ms = float(np.median(samples["(all rules)"]))
    rows = []
    for k, (eng, n) in variants.items():
        ms = float(np.median(samples[k]))
        rows.append({"rule": k, "fusions": n, "layers": len(eng.plan.steps), "latency_ms": ms,
                     "latency_delta_ms": ms - ref_ms, "latency_delta_pct": 100.0 * (ms - ref_ms) / ref_ms,
                     "device_memory_bytes": eng.device_memory_bytes,
                     "memory_delta_bytes": eng.device_memory_bytes - full.device_memory_bytes})
    frame = FUSION_BENEFIT.frame(rows, {"network": network.name, "batch_size": batch, "device": full.device.spec,
                                        "precision": base.precision})
    order = frame["rule"].map(lambda r: (0 if r == "(all rules)" else 2 if r == "(no rules)" else 1))
    frame = frame.assign(_o=order).sort_values(["_o", "latency_delta_ms"], ascending=[True, False])
    return frame.drop(columns="_o").reset_index(drop=True)
