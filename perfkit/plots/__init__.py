"""matplotlib figures drawn from frames (never from live engines)."""
from .fusion import plot_fusion_benefit
from .sweep import plot_sweep
from .timeline import plot_layer_timeline, plot_memory

__all__ = ["plot_sweep", "plot_fusion_benefit", "plot_layer_timeline", "plot_memory"]
