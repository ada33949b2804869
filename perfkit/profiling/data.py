"""RunData: the frames and metadata of a profiling run, live or loaded; summaries and exports."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd

from ..errors import ArgumentError
from ..frames.schemas import SCHEMAS
from ..frames.units import with_shown
from .run_files import ENGINE_FRAMES, FRAMES, RunLoadError, load_run_files, save_run, saved_frames
from .summary import FINDING_UNITS, disturbances, layer_summary

#: the unprofiled latency's robust coefficient of variation (``frames.stats.spread_pct``, %) above which a run
#: is called unstable
RUN_MAX_CV_PCT = 10.0

__all__ = ["RunData", "RunLoadError", "load_run", "FRAMES"]


class RunData:
    def __init__(self, frames: dict, meta: dict, messages: list):
        if type(self) is RunData:       # a live Run (a subclass) starts empty and fills its frames as it records
            _check_parts(frames, meta, messages)
        self.frames = frames
        self.meta = meta
        self.messages = messages

    layers = property(lambda self: self.frames["layers"], doc="layer_times frame")
    memory = property(lambda self: self.frames["memory"], doc="memory_events frame")
    queries = property(lambda self: self.frames["queries"], doc="queries frame")
    gpu = property(lambda self: self.frames["gpu"], doc="gpu_samples frame")
    kernels = property(lambda self: self.frames["kernels"], doc="kernels frame")
    engine_layers = property(lambda self: self._engine_frame("engine_layers"),
                             doc="engine_layers frame of the engine that ran (empty for runs saved without it)")
    build_log = property(lambda self: self._engine_frame("build_log"),
                         doc="build_log frame of that engine: fusions, precisions, tactics (empty when not saved)")

    def _engine_frame(self, name: str) -> pd.DataFrame:
        f = self.frames.get(name)
        return f if f is not None else SCHEMAS[ENGINE_FRAMES[name]].frame([])

    def summary(self, by: str = "layer", sort: str = "total_ms") -> pd.DataFrame:
        """Per layer (or per type with ``by="type"``): count, total, mean, median, p90, min, max, percent."""
        s = layer_summary(self.layers, by, sort)
        s.attrs.update({k: v for k, v in self.overview_values().items()})
        s.attrs["disturbances"] = self.disturbances()["explanation"].tolist()
        return s

    def disturbances(self) -> pd.DataFrame:
        """The signs that this run was disturbed, each explained in words (a ``diagnoses`` frame, empty
        when there is none): the layer sum above end-to-end, profiling overhead beyond its calibrated
        cost, a wide spread of the unprofiled latency, throttled GPU clocks, host load above the cores."""
        v = dict(self.overview_values())
        if len(self.gpu):
            v["gpu_throttle"] = "|".join(self.gpu["throttle_reasons"].astype(str))
        return disturbances(v, max_cv_pct=RUN_MAX_CV_PCT)

    def overview_values(self) -> dict:
        m = self.meta
        v: dict = {"iterations": int(self.layers["iteration"].nunique()) if len(self.layers) else 0}
        if len(self.layers):
            per_it = self.layers.groupby("iteration")["ms"].sum()
            v["layer_sum_ms"] = float(per_it.median())
            v["layers_per_inference"] = int(self.layers.groupby("iteration").size().median())
            v["graph_replays_pct"] = 100.0 * float((self.layers.groupby("iteration")["clock"].first()
                                                    == "cuda_graph").mean())
        for k in ("e2e_profiled_ms", "e2e_unprofiled_ms", "event_cost_ns", "predicted_device_memory_bytes",
                  "measured_device_memory_bytes"):
            if k in m:
                v[k] = m[k]
        for k, name in (("threads", "threads"), ("host_load_1m", "host_load_1m"), ("host_cpus", "host_cpus"),
                        ("e2e_unprofiled_cv_pct", "latency_cv_pct"),
                        ("host_other_busy_cores", "host_other_busy_cores")):
            x = m.get(k)            # recorded since issue 9: absent (or, in an edited run.json, not a number) before
            if type(x) in (int, float) and math.isfinite(x) and x >= 0:
                v[name] = float(x)
        if "e2e_profiled_ms" in v and "e2e_unprofiled_ms" in v and v["e2e_unprofiled_ms"] > 0:
            v["overhead_pct"] = 100.0 * (v["e2e_profiled_ms"] - v["e2e_unprofiled_ms"]) / v["e2e_unprofiled_ms"]
            if "layers_per_inference" in v:
                cost_ms = v.get("event_cost_ns", 0.0) * (v["layers_per_inference"] + 1) / 1e6
                v["expected_overhead_pct"] = 100.0 * cost_ms / v["e2e_unprofiled_ms"]
        if "layer_sum_ms" in v and v.get("e2e_unprofiled_ms", 0) > 0:
            corr = v.get("event_cost_ns", 0.0) * (v.get("layers_per_inference", 0) + 1) / 1e6
            v["layer_sum_corrected_ms"] = v["layer_sum_ms"] - (corr if self.layers["clock"].iloc[0] == "host" else 0.0)
            v["gap_ms"] = v["e2e_unprofiled_ms"] - v["layer_sum_corrected_ms"]
            v["layer_sum_pct_of_e2e"] = 100.0 * v["layer_sum_corrected_ms"] / v["e2e_unprofiled_ms"]
        return v

    def overview(self) -> pd.DataFrame:
        """The run's headline figures with a plain explanation of each: ``metric``, ``value`` (a number),
        ``shown`` (the value in human units, e.g. ``0.520 ms``, ``31.3 MiB``), ``unit``, ``meaning``."""
        v = self.overview_values()
        explain = {
            "iterations": ("", "profiled inferences"),
            "layers_per_inference": ("", "engine layers timed in each inference"),
            "layer_sum_ms": ("ms", "median over inferences of the sum of the layer times"),
            "layer_sum_corrected_ms": ("ms", "the same, less the calibrated cost of the profiler's own timestamps"),
            "e2e_profiled_ms": ("ms", "median host latency of the profiled inferences"),
            "e2e_unprofiled_ms": ("ms", "median host latency of the same inference run again without profiling"),
            "overhead_pct": ("%", "what profiling added to end-to-end latency"),
            "gap_ms": ("ms", "end-to-end (unprofiled) minus the layer sum: input/output copies, launching the first "
                             "layer, synchronisation and host work between layers"),
            "layer_sum_pct_of_e2e": ("%", "share of the end-to-end latency spent inside layers"),
            "event_cost_ns": ("ns", "calibrated host cost of one layer boundary (timestamp or CUDA event record; "
                                    "a replayed CUDA graph's boundaries are GPU timestamps on a side branch)"),
            "graph_replays_pct": ("%", "profiled inferences that were CUDA-graph replays (the rest launched every "
                                       "layer from Python, whose gaps count inside the layer times)"),
            "predicted_device_memory_bytes": ("B", "engine.device_memory_bytes: predicted by the builder"),
            "measured_device_memory_bytes": ("B", "bytes the engine and this context held through the tracking "
                                                  "allocator (peak during the run)"),
            "expected_overhead_pct": ("%", "what profiling should add, from the calibrated cost of its layer "
                                           "boundaries"),
            "latency_cv_pct": ("%", "robust coefficient of variation of the unprofiled latency (IQR / 1.349 / "
                                    "median: a few outliers do not move it; std / mean in runs saved before)"),
            "threads": ("", "BLAS threads of the CPU device (0 on a GPU)"),
            "host_load_1m": ("", "host 1-minute load average when the run started (when it stopped in runs "
                                 "saved before)"),
            "host_cpus": ("", "CPU cores this process may use"),
            "host_other_busy_cores": ("", "cores other processes kept busy during the run (/proc/stat less this "
                                          "process)"),
        }
        rows = [{"metric": k, "value": float(val), "unit": explain.get(k, ("", ""))[0],
                 "meaning": explain.get(k, ("", k))[1]} for k, val in v.items()]
        found = self.disturbances()
        rows.append({"metric": "disturbed", "value": float(len(found)), "unit": "",
                     "meaning": "signs that the measurement was disturbed, each in a row below" if len(found) else
                     "no sign of disturbance: layer sum within end-to-end, overhead as calibrated, steady latency, "
                     "no throttling, host load within its cores (where recorded)"})
        rows += [{"metric": f"disturbed: {f.finding}", "value": float(f.value), "unit": FINDING_UNITS.get(f.finding, ""),
                  "meaning": f.explanation}
                 for f in found.itertuples()]
        df = with_shown(pd.DataFrame(rows, columns=["metric", "value", "unit", "meaning"]))
        df.attrs["messages"] = list(self.messages)
        return df

    # storage -------------------------------------------------------------------------------------
    def save(self, directory: Any) -> str:
        """Writes each frame as parquet and the metadata as run.json under ``directory``, with a
        SHA-256 checksum per file (see :mod:`perfkit.profiling.run_files`). Returns the directory."""
        from ..arguments import path
        from ..errors import ArgumentError
        directory = path(directory, "RunData.save: directory")
        try:
            return save_run(self.frames, self.meta, self.messages, directory)
        except OSError as exc:
            raise ArgumentError(f"RunData.save: cannot write the run into {directory!r}: {exc.strerror or exc}; "
                                "choose a directory that can be created and written") from None

    # exports -------------------------------------------------------------------------------------
    def export_chrome_trace(self, path: Any) -> str:
        from ..frames.exporters import chrome_trace
        text = json.dumps(chrome_trace(self), separators=(",", ":"), check_circular=False)
        # one write: json.dump encodes in small chunks, three times slower
        with _open_for_writing(path, "export_chrome_trace") as f:
            f.write(text)
        return os.fspath(path)

    def export_profile(self, path: Any) -> str:
        from ..frames.exporters import trtexec_profile
        with _open_for_writing(path, "export_profile") as f:
            json.dump(trtexec_profile(self.layers), f, indent=1)
        return os.fspath(path)

    def export_times(self, path: Any) -> str:
        from ..frames.exporters import trtexec_times
        with _open_for_writing(path, "export_times") as f:
            json.dump(trtexec_times(self.queries), f, indent=1)
        return os.fspath(path)

    def __repr__(self) -> str:
        v = self.overview_values()
        return (f"<perfkit run {self.meta.get('run_id')} on {self.meta.get('device')}: {v.get('iterations', 0)} "
                f"inference(s) of {self.meta.get('engine')}>")


def _open_for_writing(where: Any, what: str) -> Any:
    """``open(where, "w")`` for an export; a bad path is a PerfkitError that names it."""
    from ..arguments import path
    from ..errors import ArgumentError
    where = path(where, f"{what}: path")
    try:
        return open(where, "w")
    except OSError as exc:
        raise ArgumentError(f"{what}: cannot write {where!r}: {exc.strerror or exc}; choose a writable file path") from None


def load_run(directory: Any) -> RunData:
    """Loads a run written by ``run.save(directory)``: checksums verified, every frame validated
    against its schema (nullability included); raises RunLoadError or SchemaError otherwise."""
    from ..arguments import path
    frames, meta, messages = load_run_files(path(directory, "load_run: directory"))
    return RunData(frames, meta, messages)


def _check_parts(frames: Any, meta: Any, messages: Any) -> None:
    if not isinstance(frames, dict) or not set(FRAMES) <= set(frames) <= set(FRAMES) | set(ENGINE_FRAMES):
        raise ArgumentError(f"RunData: frames must be a dict with the frames {sorted(FRAMES)} (and optionally "
                            f"{sorted(ENGINE_FRAMES)}), not "
                            f"{type(frames).__name__} {sorted(frames) if isinstance(frames, dict) else ''}")
    for name, schema in saved_frames(frames).items():
        SCHEMAS[schema].validate(frames[name])
    if not isinstance(meta, dict):
        raise ArgumentError(f"RunData: meta must be a dict, not {type(meta).__name__}")
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        raise ArgumentError("RunData: messages must be a list of strings")
