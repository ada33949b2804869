"""fusion_benefit: what each fusion rule buys, measured by switching it off and rebuilding, with the
interval of each difference, so that a difference within the noise says so instead of showing a sign."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import pandas as pd

from ..arguments import number, optional_positive_int, positive_int
from ..bench import rounds as _rounds
from ..bench._args import MAX_ROUNDS
from ..bench.latency import time_inference
from ..builder import Builder, BuilderConfig
from ..builder.passes import RULE_NAMES
from ..builder.tactics_progress import progress_bar, progress_wanted
from ..errors import ArgumentError
from ..frames.schemas import FUSION_BENEFIT
from ..frames.stats import median_ci, median_ci_level
from ..models import sample_input

REFERENCE = "(all rules)"


def fusion_benefit(network: Any, config: BuilderConfig | None = None, batch_size: int | None = None,
                   device: Any = None, min_time_s: float = 0.3, rounds: int = 6,
                   progress: bool | None = None) -> pd.DataFrame:
    """Builds ``network`` (a Network, a sample name or an ``.onnx`` file, as ``sweep`` takes it) with all
    fusions, then once per rule that fired with that rule switched off, and times each engine at
    ``batch_size`` (default: the config's max batch size).

    Engines are timed in ``rounds`` interleaved rounds (each a slice of ``min_time_s / rounds``
    seconds per engine), so drift of the machine lands on every row alike. A row's
    ``latency_delta_ms`` is the median over rounds of its latency minus the fully fused engine's in
    the same round, with the distribution-free order-statistic interval of that median
    (``latency_delta_ci_low_ms``/``_high_ms``: at least 95% coverage, the coverage reached in
    ``latency_delta_ci_level_pct``, 96.9% at the default 6 rounds; NaN below 6 rounds, where no
    interval reaches 95%). ``significant`` is whether that interval excludes 0: a sign test of the
    paired round differences at the 5% level (at 6 rounds: all six differences share a sign; at 10:
    at least nine do). A difference that is not significant is noise at this many rounds: time more
    rounds, or a quieter machine, before reading a sign into it.
    Rows are sorted by the latency a rule saves, largest first. ``progress``: a ``tqdm`` bar (None:
    automatic, as in ``sweep``).
    """
    from ..bench._args import _network
    from ..network import Network
    if isinstance(network, (str, bytes, os.PathLike)):
        network = _network(network)     # as sweep takes it; an unknown name or a bad file raises its own error
    elif not isinstance(network, Network):
        raise ArgumentError(f"fusion_benefit needs a perfkit Network, a sample name or an .onnx file, not "
                            f"{type(network).__name__} {network!r:.60}")
    if config is not None and not isinstance(config, BuilderConfig):
        raise ArgumentError(f"fusion_benefit: config must be a BuilderConfig or None, not {type(config).__name__}")
    optional_positive_int(batch_size, "fusion_benefit: batch_size")
    number(min_time_s, "fusion_benefit: min_time_s", minimum=0)
    positive_int(rounds, "fusion_benefit: rounds", maximum=MAX_ROUNDS)
    show = progress_wanted(progress, "fusion_benefit")
    base = dataclasses.replace(config or BuilderConfig(), fusions="all")
    batch = int(batch_size or base.max_batch_size)
    base = dataclasses.replace(base, max_batch_size=max(batch, base.max_batch_size))
    builder = Builder(device)
    full = builder.build(network, base)
    log = full.build_log
    fired = log[(log["phase"] == "fusion") & (log["outcome"] == "fused")]["rule"].value_counts()
    rules = [r for r in RULE_NAMES if r in fired.index]
    with progress_bar(len(rules) + 1 + (len(rules) + 2) * rounds, "fusion_benefit", show) as bar:
        variants = {REFERENCE: (full, int(fired.sum()))}
        for rule in rules:
            bar.set_postfix_str(f"building without {rule}")
            variants[rule] = (builder.build(network, dataclasses.replace(base, fusions=set(RULE_NAMES) - {rule})),
                              int(fired[rule]))
            bar.update(1)
        variants["(no rules)"] = (builder.build(network, dataclasses.replace(base, fusions="none")), 0)
        bar.update(1)
        medians = _timed_rounds(variants, network, batch, min_time_s, rounds, bar)
    rows = [_row(k, eng, n, medians, full) for k, (eng, n) in variants.items()]
    frame = FUSION_BENEFIT.frame(rows, {"network": network.name, "batch_size": batch, "device": full.device.spec,
                                        "precision": base.precision, "rounds": rounds})
    order = frame["rule"].map(lambda r: (0 if r == REFERENCE else 2 if r == "(no rules)" else 1))
    frame = frame.assign(_o=order).sort_values(["_o", "latency_delta_ms"], ascending=[True, False])
    return frame.drop(columns="_o").reset_index(drop=True)


def _timed_rounds(variants: dict, network: Any, batch: int, min_time_s: float, rounds: int, bar: Any) -> dict:
    """Variant -> its round medians (ms), timed in interleaved rounds (through ``bench.rounds.time_slice``,
    which tests replace) after a warm-up of every engine."""
    dev = next(iter(variants.values()))[0].device
    inputs = sample_input(network, batch)
    if dev.kind != "cpu":
        inputs = {k: dev.to_device(v) for k, v in inputs.items()}
    else:
        dev.apply_threads()
    contexts = {k: e.create_execution_context() for k, (e, _) in variants.items()}
    try:
        for ctx in contexts.values():   # warm every engine (caches, allocator pools, GPU clocks) before timing
            time_inference(ctx, inputs, warmup=3, min_iterations=3, min_time_s=min(0.2, min_time_s / rounds))
        medians: dict = {k: [] for k in variants}
        keys = list(contexts)
        for r in range(rounds):         # each round starts one engine further: no engine is always first
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                ctx = contexts[k]
                medians[k].append(float(np.median(_rounds.time_slice(ctx, inputs, min_time_s / rounds, 3))))
                bar.update(1)
        return medians
    finally:
        for ctx in contexts.values():
            ctx.close()


def _row(rule: str, eng: Any, fusions: int, medians: dict, full: Any) -> dict:
    ms = np.asarray(medians[rule])
    delta = ms - np.asarray(medians[REFERENCE])          # paired: the same round, moments apart
    d = float(np.median(delta))
    lo, hi = median_ci(delta)
    ref = float(np.median(medians[REFERENCE]))
    return {"rule": rule, "fusions": fusions, "layers": len(eng.plan.steps), "latency_ms": float(np.median(ms)),
            "latency_delta_ms": d, "latency_delta_pct": 100.0 * d / ref if ref > 0 else 0.0,
            "device_memory_bytes": eng.device_memory_bytes,
            "memory_delta_bytes": eng.device_memory_bytes - full.device_memory_bytes,
            "latency_delta_ci_low_ms": lo, "latency_delta_ci_high_ms": hi,
            "latency_delta_ci_level_pct": 100.0 * median_ci_level(delta.size), "significant": bool(lo > 0 or hi < 0)}
