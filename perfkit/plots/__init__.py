"""matplotlib figures drawn from frames (never from live engines); each function returns a Figure."""
from .fusion import plot_fusion_benefit
from .gpu import plot_gpu_samples
from .latency import plot_latency_distribution, plot_latency_throughput
from .layer_timeline import plot_layer_timeline
from .memory import memory_phases, memory_time_range, plot_memory, top_allocations
from .per_layer import layer_scaling, plot_layers_vs_batch, plot_layers_vs_precision
from .sweep import plot_sweep
from .throughput import plot_batching, plot_stream_timeline, plot_throughput
from .transfers import plot_transfers

__all__ = ["plot_sweep", "plot_fusion_benefit", "plot_layer_timeline", "plot_memory", "memory_phases",
           "memory_time_range", "top_allocations", "layer_scaling", "plot_layers_vs_batch",
           "plot_layers_vs_precision", "plot_latency_throughput", "plot_latency_distribution",
           "plot_gpu_samples", "plot_throughput", "plot_stream_timeline", "plot_batching", "plot_transfers"]
