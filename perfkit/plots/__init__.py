"""matplotlib figures drawn from frames (never from live engines)."""
from .fusion import plot_fusion_benefit
from .sweep import plot_sweep

__all__ = ["plot_sweep", "plot_fusion_benefit"]
