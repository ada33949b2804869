"""Rows of tests/bad_argument_table.py for the plot functions of perfkit.plots added with the explorers (issue 9)."""
from __future__ import annotations

import perfkit as pk
from bad_argument_table import case  # noqa: F401
from bad_argument_values import AX, CHOICE, COUNT, FLAG, FRAME, OPT_COUNT, Lazy, family  # noqa: F401

# memory over time ----------------------------------------------------------------------------------
MEMORY = {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)}
LAYER_TIMES_OR_NONE = {**{k: v for k, v in FRAME.items() if k != "none"}, "other_frame": Lazy(lambda w: w.sweep_frame)}
PHASE_LIST = family(unknown=["boot"], empty=[], none=None, number=3, text="nope", list_with_junk=["build", 3])
WINDOW = family(reversed=(5.0, 1.0), empty_window=(1.0, 1.0), one_number=3.0, text="0-5", nan=(0.0, float("nan")),
                three=(0.0, 1.0, 2.0))
T0_NS = family(float=1.5, text="0", bool=True)

case("memory_phases", lambda w, kw: pk.plots.memory_phases(**kw),
     {"memory_events": Lazy(lambda w: w.engine.allocator.events), "layer_times": Lazy(lambda w: w.run.layers)},
     {"memory_events": MEMORY, "layer_times": LAYER_TIMES_OR_NONE})
case("memory_time_range", lambda w, kw: pk.plots.memory_time_range(**kw),
     {"memory_events": Lazy(lambda w: w.engine.allocator.events), "phases": ("build",), "layer_times": None, "t0_ns": None},
     {"memory_events": MEMORY, "phases": PHASE_LIST, "layer_times": LAYER_TIMES_OR_NONE, "t0_ns": T0_NS})
case("top_allocations", lambda w, kw: pk.plots.top_allocations(**kw),
     {"memory_events": Lazy(lambda w: w.engine.allocator.events), "window_ms": (0.0, 10.0), "n": 3, "t0_ns": None,
      "phases": None, "tags": None},
     {"memory_events": MEMORY, "window_ms": WINDOW, "n": COUNT, "t0_ns": T0_NS,
      "phases": {k: v for k, v in PHASE_LIST.items() if k != "none"},
      "tags": family(empty=[], number=3, list_with_junk=["weights", 3], empty_name=[""])})
case("plot_memory", lambda w, kw: w.closing(pk.plots.plot_memory(**kw)),
     {"memory_events": Lazy(lambda w: w.run.memory), "ax": None, "by_tag": True, "phases": ("context creation",),
      "window_ms": None, "tags": None, "predicted_bytes": 10.0, "layer_times": Lazy(lambda w: w.run.layers),
      "t0_ns": None},
     {"memory_events": MEMORY, "ax": AX, "by_tag": FLAG, "phases": PHASE_LIST, "window_ms": WINDOW,
      "tags": family(empty=[], number=3, list_with_junk=["weights", 3], empty_name=[""]),
      "predicted_bytes": family(negative=-1.0, nan=float("nan"), inf=float("inf"), text="10", bool=True),
      "layer_times": LAYER_TIMES_OR_NONE, "t0_ns": T0_NS})

# per-layer time against batch size and precision ------------------------------------------------------


def _sweep_layers(w):
    from perfkit.frames.schemas import SWEEP_LAYERS
    return SWEEP_LAYERS.frame([{"run_id": "r", "model": "tiny", "device": "cpu", "precision": p, "batch_size": b,
                                "index": i, "layer": f"l{i}", "type": "activation", "layer_precision": p, "count": 3,
                                "median_ms": 0.1 * b + i, "ci_low_ms": 0.0, "ci_high_ms": 1.0, "pct": 50.0,
                                "flops": 1.0, "bytes": 1.0}
                               for p in ("fp32", "fp16") for b in (1, 2) for i in range(2)])


SWEEP_LAYERS_FRAME = {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)}
MODEL = family(unknown="nope", number=3, empty="", list=["tiny"])
case("layer_scaling", lambda w, kw: pk.plots.layer_scaling(**kw),
     {"sweep_layers": Lazy(_sweep_layers), "model": None, "precision": "fp32"},
     {"sweep_layers": SWEEP_LAYERS_FRAME, "model": MODEL, "precision": {**CHOICE, "none_of_two": None}})
case("plot_layers_vs_batch", lambda w, kw: w.closing(pk.plots.plot_layers_vs_batch(**kw)),
     {"sweep_layers": Lazy(_sweep_layers), "model": "tiny", "precision": "fp16", "top": 1, "ax": None},
     {"sweep_layers": SWEEP_LAYERS_FRAME, "model": MODEL, "precision": {**CHOICE, "none_of_two": None}, "top": COUNT,
      "ax": AX})
case("plot_layers_vs_precision", lambda w, kw: w.closing(pk.plots.plot_layers_vs_precision(**kw)),
     {"sweep_layers": Lazy(_sweep_layers), "model": None, "batch_size": 2, "top": 8, "ax": None},
     {"sweep_layers": SWEEP_LAYERS_FRAME, "model": MODEL, "batch_size": {**OPT_COUNT, "missing": 3}, "top": COUNT,
      "ax": AX})

# latency ------------------------------------------------------------------------------------------------
case("plot_latency_throughput", lambda w, kw: w.closing(pk.plots.plot_latency_throughput(**kw)),
     {"sweep": Lazy(lambda w: w.sweep_frame), "budget_ms": 1.0, "ax": None},
     {"sweep": {**FRAME, "other_frame": Lazy(lambda w: w.run.layers)},
      "budget_ms": family(zero=0.0, negative=-1.0, nan=float("nan"), inf=float("inf"), text="5", bool=True),
      "ax": AX})
case("plot_latency_distribution", lambda w, kw: w.closing(pk.plots.plot_latency_distribution(**kw)),
     {"queries_or_latencies_ms": Lazy(lambda w: w.run.queries), "ax": None},
     {"queries_or_latencies_ms": {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame), "texts": ["a", "b"],
                                  "bools": [True, False], "number": 3.0},
      "ax": AX})

# GPU samples --------------------------------------------------------------------------------------------


def _gpu_samples(w):
    from perfkit.frames.schemas import GPU_SAMPLES
    return GPU_SAMPLES.frame([{"ts_ns": 10**9 + i * 10**7, "gpu": 0, "util_gpu_pct": 50.0, "util_mem_pct": 5.0,
                               "mem_used_bytes": 2**30, "sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0,
                               "power_w": 300.0, "power_limit_w": 700.0, "temperature_c": 40.0,
                               "throttle_reasons": "sw_power_cap" if i == 2 else ""} for i in range(4)])


case("plot_gpu_samples", lambda w, kw: w.closing(pk.plots.plot_gpu_samples(**kw)),
     {"gpu_samples": Lazy(_gpu_samples), "metrics": ("sm_clock_mhz", "power_w"), "ax": None, "t0_ns": None},
     {"gpu_samples": {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)},
      "metrics": {**CHOICE, "empty_list": [], "twice": ["power_w", "power_w"], "text_column": ["throttle_reasons"]},
      "ax": AX, "t0_ns": family(float=1.5, text="0", bool=True)})
