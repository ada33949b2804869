"""Deterministic weight initialisers for the sample networks."""
from __future__ import annotations

import numpy as np


def he(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def small(rng: np.random.Generator, shape: tuple, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)
