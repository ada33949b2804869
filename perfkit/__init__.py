"""perfkit: measure and understand neural-network inference performance, in a notebook.

A small inference engine shaped like TensorRT (Network -> Builder -> Engine -> ExecutionContext),
on the CPU with NumPy or on NVIDIA GPUs with CuPy, whose measurements land in pandas DataFrames.
"""
from ._version import __version__  # noqa: F401

from .errors import *  # noqa: E402,F401,F403
from .errors import PerfkitError  # noqa: E402
from .log import get_logger, log_to_stderr  # noqa: E402
from .device import Buffer, CountingAllocator, Device, cuda_available, get_device  # noqa: E402
from .network import Layer, Network, Tensor  # noqa: E402
from .ops import register_plugin, registered_ops, registered_plugins, unregister_plugin  # noqa: E402
from .builder import Builder, BuilderConfig, EngineSet  # noqa: E402
from .runtime import Engine, ExecutionContext, load_engine  # noqa: E402
from .builder.tactics import TimingCache  # noqa: E402
from .device.tracking import TrackingAllocator  # noqa: E402
from .profiling import LayerTimer, NvmlSampler, load_run, profile  # noqa: E402
from . import analysis, bench, frames, models, plots, profiling  # noqa: E402,F401
from .bench import load_sweep, sweep  # noqa: E402

__all__ = ["__version__", "PerfkitError", "Device", "get_device", "cuda_available", "Buffer", "CountingAllocator",
           "Network", "Layer", "Tensor", "register_plugin", "unregister_plugin", "registered_plugins",
           "registered_ops", "Builder", "BuilderConfig", "TimingCache", "Engine", "EngineSet", "ExecutionContext", "load_engine", "models", "analysis", "bench", "frames", "plots", "profiling", "sweep", "TrackingAllocator",
           "LayerTimer", "NvmlSampler", "profile", "load_run", "load_sweep", "get_logger", "log_to_stderr"]
