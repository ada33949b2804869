"""Measurement hooks: per-layer profilers, profiling runs, GPU metrics, kernel traces, NVTX."""
from ..device.tracking import CupyAllocationHook, TrackingAllocator
from .data import RunData, RunLoadError, load_run
from .nvml import NvmlSampler
from .profiler import LayerTimer, Profiler, calibrate_event_cost
from .run import Run, profile
from .summary import layer_summary

__all__ = ["Profiler", "LayerTimer", "calibrate_event_cost", "TrackingAllocator", "CupyAllocationHook",
           "NvmlSampler", "Run", "RunData", "RunLoadError", "profile", "load_run", "layer_summary"]
