"""matplotlib figures drawn from frames (never from live engines)."""
from .sweep import plot_sweep

__all__ = ["plot_sweep"]
