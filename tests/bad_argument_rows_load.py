"""Rows of tests/bad_argument_table.py for throughput under load: throughput and its sweep, the dynamic
batcher, load generation, the batching simulator, transfers, their plots and the perfkit logger."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from bad_argument_table import case
from bad_argument_values import (AX, CHOICE, COUNT, COUNT0, DEVICE, FLAG, FRAME, HUGE, INPUTS, OPT_COUNT, SECONDS,
                                 Lazy, family)

import perfkit as pk

ENGINE = family(none=None, text="engine", network=Lazy(lambda w: w.net), context=Lazy(lambda w: w.ctx))
PERCENTILES = family(none=None, text="90", above_100=(101,), nan=(np.nan,), negative=(-1,))
HOST_INPUTS = {k: v for k, v in INPUTS.items() if k not in ("none", "too_large_batch")}
OPT_SECONDS = {k: v for k, v in SECONDS.items() if k != "none"}
PAIR_AX = family(text="x", number=3, one_axes=Lazy(lambda w: w.figure().add_subplot()))


def _batcher(w):
    """One batcher of the world's engine set, made on first use (its thread is a daemon)."""
    if getattr(w, "_load_batcher", None) is None:
        w._load_batcher = pk.bench.DynamicBatcher(w.es, max_batch_size=2, max_delay_ms=0.0)
    return w._load_batcher


def _throughput(w):
    if getattr(w, "_load_throughput", None) is None:
        w._load_throughput = pk.bench.throughput(w.engine, streams=1, duration_s=0.0, warmup_ms=0.0)
    return w._load_throughput


def _load_result(w):
    if getattr(w, "_load_result", None) is None:
        w._load_result = pk.bench.generate_load(_batcher(w), pattern="constant", rate_per_s=1000.0, requests=2)
    return w._load_result


def _fresh_batcher(kw):
    b = pk.bench.DynamicBatcher(**kw)
    b.close()
    return b


def _close(w, kw):
    b = pk.bench.DynamicBatcher(w.es, max_batch_size=2, max_delay_ms=0.0)
    try:
        return b.close(**kw)
    finally:
        b.close()


case("throughput", lambda w, kw: pk.bench.throughput(**kw),
     {"engine": Lazy(lambda w: w.engine), "batch_size": None, "streams": 1, "threads": None, "duration_s": 0.0,
      "warmup_ms": 0.0, "inputs": None, "include_transfers": True, "percentiles": (90,), "gpu_metrics": False,
      "cuda_graph": True},
     {"engine": ENGINE, "batch_size": {**OPT_COUNT, **HUGE, "above_max": 3}, "streams": {**COUNT, **HUGE},
      "threads": {**OPT_COUNT, **HUGE, "above_streams": 2}, "duration_s": SECONDS, "warmup_ms": SECONDS,
      "inputs": HOST_INPUTS, "include_transfers": FLAG, "percentiles": PERCENTILES, "gpu_metrics": FLAG,
      "cuda_graph": FLAG})
case("throughput_sweep", lambda w, kw: pk.bench.throughput_sweep(**kw),
     {"engine": Lazy(lambda w: w.engine), "batch_size": None, "streams": (1,), "threads": None, "duration_s": 0.0,
      "rounds": 1, "warmup_ms": 0.0, "include_transfers": False},
     {"engine": ENGINE, "batch_size": {**OPT_COUNT, **HUGE, "above_max": 3},
      "streams": family(empty=(), zero=(0,), text="1", none=None, huge=(10 ** 12,), float=(1.5,)),
      "threads": family(empty=(), zero=(0,), text="1", huge=(10 ** 12,), all_above_streams=(5,)),
      "duration_s": SECONDS, "rounds": {**COUNT, **HUGE}, "warmup_ms": SECONDS, "include_transfers": FLAG})
case("Throughput", lambda w, kw: repr(pk.bench.Throughput(**kw)),
     {"queries": Lazy(lambda w: _throughput(w).queries), "summary": Lazy(lambda w: _throughput(w).summary),
      "meta": {}, "diagnoses": None, "gpu": None}, {},
     free={p: "a record that throughput() fills; it holds what it is given"
           for p in ("queries", "summary", "meta", "diagnoses", "gpu")})
case("Throughput.value", lambda w, kw: _throughput(w).value(**kw), {"metric": "throughput_per_s"}, {"metric": CHOICE})

case("DynamicBatcher", lambda w, kw: _fresh_batcher(kw),
     {"engine_or_engine_set": Lazy(lambda w: w.es), "max_batch_size": None, "max_delay_ms": 1.0, "instances": 1,
      "name": "b", "warmup": True},
     {"engine_or_engine_set": ENGINE, "max_batch_size": {**OPT_COUNT, **HUGE, "above_largest": 3},
      "max_delay_ms": {**SECONDS, "huge": 1e12}, "instances": {**COUNT, **HUGE},
      "name": family(empty="", blank=" ", none=None, number=3), "warmup": FLAG})
case("DynamicBatcher.submit", lambda w, kw: _batcher(w).submit(**kw).result(timeout=30),
     {"inputs": {"data": np.ones(4, np.float32)}},
     {"inputs": {**{k: v for k, v in INPUTS.items() if k != "too_large_batch"},
                 "above_max_batch": {"data": np.ones((3, 4), np.float32)}, "complex": {"data": np.ones(4, complex)},
                 "no_samples": {"data": np.ones((0, 4), np.float32)}}})
case("DynamicBatcher.infer", lambda w, kw: _batcher(w).infer(**kw),
     {"inputs": {"data": np.ones((2, 4), np.float32)}},
     {"inputs": {**{k: v for k, v in INPUTS.items() if k != "too_large_batch"},
                 "above_max_batch": {"data": np.ones((3, 4), np.float32)}}})
case("DynamicBatcher.close", _close, {"timeout_s": None}, {"timeout_s": OPT_SECONDS})
case("DynamicBatcher.requests", lambda w, kw: _batcher(w).requests(), {}, {})

case("generate_load", lambda w, kw: pk.bench.generate_load(**kw),
     {"batcher": Lazy(_batcher), "inputs": None, "pattern": "constant", "rate_per_s": 1000.0, "concurrency": None,
      "duration_s": 0.0, "requests": 2, "seed": 0, "percentiles": (50,)},
     {"batcher": family(none=None, text="b", engine=Lazy(lambda w: w.engine),
                        closed=Lazy(lambda w: _fresh_batcher({"engine_or_engine_set": w.es}))),
      "inputs": {**{k: v for k, v in INPUTS.items() if k not in ("none", "too_large_batch")},
                 "no_samples": {"data": np.ones((0, 4), np.float32)}},
      "pattern": CHOICE, "rate_per_s": {**SECONDS, "zero": 0.0}, "concurrency": {**OPT_COUNT, **HUGE},
      "duration_s": SECONDS, "requests": {**OPT_COUNT, **HUGE}, "seed": COUNT0, "percentiles": PERCENTILES})
case("LoadResult", lambda w, kw: repr(pk.bench.LoadResult(**kw)),
     {"requests": Lazy(lambda w: _load_result(w).requests), "summary": Lazy(lambda w: _load_result(w).summary),
      "meta": {}}, {}, free={p: "a record that generate_load() fills; it holds what it is given"
                             for p in ("requests", "summary", "meta")})
case("LoadResult.value", lambda w, kw: _load_result(w).value(**kw), {"metric": "throughput_per_s"},
     {"metric": CHOICE})
case("LoadResult.point", lambda w, kw: _load_result(w).point(), {}, {})

case("simulate_batching", lambda w, kw: pk.bench.simulate_batching(**kw),
     {"latency_by_batch": {1: 1.0, 4: 2.0}, "arrival_rate_per_s": 100.0, "delays_ms": (0.0, 1.0),
      "max_batch_size": None, "requests": 100, "seed": 0},
     {"latency_by_batch": family(none=None, text="curve", empty={}, zero_latency={1: 0.0}, nan_latency={1: np.nan},
                                 negative_batch={-1: 1.0}, float_batch={1.5: 1.0},
                                 frame_without_columns=pd.DataFrame({"a": [1]}),
                                 duplicated_batches=pd.DataFrame({"batch_size": [1, 1], "latency_ms": [1.0, 2.0]})),
      "arrival_rate_per_s": {**SECONDS, "zero": 0.0},
      "delays_ms": family(none=None, text="1", empty=(), negative=(-1.0,), nan=(np.nan,), inf=(np.inf,)),
      "max_batch_size": {**OPT_COUNT, "beyond_the_curve": 8}, "requests": {**COUNT, **HUGE}, "seed": COUNT0})

case("transfers", lambda w, kw: pk.bench.transfers(**kw),
     {"device": "cpu", "sizes_bytes": (4096,), "repeats": 1, "directions": ("h2d",)},
     {"device": DEVICE, "sizes_bytes": family(empty=(), zero=(0,), text="4096", huge=(1 << 40,), float=(1.5,)),
      "repeats": {**COUNT, **HUGE},
      "directions": family(none=None, text="h2d", unknown=("up",), empty=(), twice=("h2d", "h2d"))})

# plots and the logger, once exported (perfkit.plots, perfkit) --------------------------------------
if hasattr(pk.plots, "plot_throughput"):
    def _sweep(w):
        if getattr(w, "_load_sweep", None) is None:
            w._load_sweep = pk.bench.throughput_sweep(w.engine, streams=(1, 2), duration_s=0.0, rounds=1,
                                                      warmup_ms=0.0)
        return w._load_sweep

    SIM = Lazy(lambda w: pk.bench.simulate_batching({1: 1.0}, 100.0, (0.0, 1.0), requests=50))
    case("plot_throughput", lambda w, kw: w.closing(pk.plots.plot_throughput(**kw)),
         {"frame": Lazy(_sweep), "ax": None}, {"frame": FRAME, "ax": PAIR_AX})
    case("plot_stream_timeline", lambda w, kw: w.closing(pk.plots.plot_stream_timeline(**kw)),
         {"queries": Lazy(lambda w: _throughput(w).queries), "ax": None, "max_queries": 10},
         {"queries": FRAME, "ax": AX, "max_queries": COUNT})
    case("plot_batching", lambda w, kw: w.closing(pk.plots.plot_batching(**kw)),
         {"simulation": SIM, "measured": None, "ax": None},
         {"simulation": FRAME, "measured": {k: v for k, v in FRAME.items() if k != "none"}, "ax": PAIR_AX})
if hasattr(pk.plots, "plot_transfers"):
    case("plot_transfers", lambda w, kw: w.closing(pk.plots.plot_transfers(**kw)),
         {"frame": Lazy(lambda w: pk.bench.transfers("cpu", sizes_bytes=(4096,), repeats=1)), "ax": None},
         {"frame": FRAME, "ax": AX})
if hasattr(pk, "get_logger"):
    def _quiet(handler):
        logging.getLogger("perfkit").removeHandler(handler)
        return handler

    case("get_logger", lambda w, kw: pk.get_logger(**kw), {"component": "bench"},
         {"component": family(empty="", blank=" ", number=3, dots="a..b", digit="1x")})
    case("log_to_stderr", lambda w, kw: _quiet(pk.log_to_stderr(**kw)), {"level": "WARNING"},
         {"level": family(unknown="LOUD", negative=-1, bool=True, none=None, float=2.5, above=99)})
