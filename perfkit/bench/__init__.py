"""Timing loops and sweeps."""
from .latency import latency_stats, time_inference
from .measure import Measurement, measure
from .rounds import sweep_disturbances
from .sweep import sweep
from .sweep_layers import sweep_layers_path

__all__ = ["time_inference", "latency_stats", "sweep", "measure", "Measurement", "sweep_disturbances",
           "sweep_layers_path"]
