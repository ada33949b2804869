"""Timing loops and sweeps."""
from .latency import latency_stats, time_inference
from .measure import Measurement, measure
from .sweep import sweep

__all__ = ["time_inference", "latency_stats", "sweep", "measure", "Measurement"]
