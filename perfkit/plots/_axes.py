"""Shared plumbing of the plot functions: draw on the given axes, or on a new figure."""
from __future__ import annotations

from typing import Any


def figure_and_axes(ax: Any, figsize: tuple) -> tuple:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=figsize, layout="constrained")


def say_empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
