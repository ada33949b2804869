"""Deterministic weight initialisers for the sample networks."""
from __future__ import annotations

import numpy as np

from ..arguments import fits_in_host_memory, integer


def seeded(seed: object, model: str) -> np.random.Generator:
    """The generator of a sample network's weights; ``seed`` must be a non-negative int."""
    return np.random.default_rng(integer(seed, f"{model}: seed", minimum=0))


def check_weight_memory(parameters: int, model: str) -> None:
    """Refuses a sample network whose weights (drawn as float64) would not fit in host memory."""
    fits_in_host_memory(8 * int(parameters), f"{model} with these sizes ({parameters:,} weights)",
                        "choose smaller sizes")


def he(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def small(rng: np.random.Generator, shape: tuple, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)
