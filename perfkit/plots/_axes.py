"""Shared plumbing of the plot functions: draw on the given axes, or on a new figure."""
from __future__ import annotations

from typing import Any

from ..errors import ArgumentError


def check_ax(ax: Any, what: str) -> None:
    """``ax`` must be None (a new figure) or a matplotlib Axes."""
    if ax is None:
        return
    from matplotlib.axes import Axes
    if not isinstance(ax, Axes):
        raise ArgumentError(f"{what}: ax must be a matplotlib Axes or None (a new figure), not {type(ax).__name__}")


def figure_and_axes(ax: Any, figsize: tuple, **subplots: Any) -> tuple:
    """``(ax.figure, ax)``, or a new constrained-layout figure of ``figsize`` (``subplots``: more
    arguments of ``pyplot.subplots``, such as ``nrows``, ``sharex``, ``gridspec_kw``)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=figsize, layout="constrained", **subplots)


def say_empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
