"""Analyses that answer questions with frames (plots live in perfkit.plots)."""
from .fusion import fusion_benefit

__all__ = ["fusion_benefit"]
