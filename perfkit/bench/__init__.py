"""Timing loops and sweeps; throughput under load: streams and threads, opportunistic batching, load
generation, the batching simulator and host<->device transfers."""
from .batcher import DynamicBatcher
from .latency import latency_stats, time_inference
from .load import LoadResult, generate_load
from .measure import Measurement, measure
from .rounds import sweep_disturbances
from .simulate import simulate_batching
from .sweep import sweep
from .sweep_dataset import load_sweep
from .sweep_layers import sweep_layers_path
from .throughput import Throughput, throughput, throughput_sweep
from .transfers import transfers

__all__ = ["time_inference", "latency_stats", "sweep", "measure", "Measurement", "sweep_disturbances",
           "sweep_layers_path", "throughput", "throughput_sweep", "Throughput", "DynamicBatcher", "generate_load",
           "LoadResult", "simulate_batching", "transfers", "load_sweep"]
