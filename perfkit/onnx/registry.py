"""The ONNX operators perfkit converts into layers: op type -> converter, the attributes it reads and the
first operator version it supports. Operators whose inputs are all constants are folded instead."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Converter:
    fn: Callable[[Any], None]
    attrs: tuple = ()
    since: int = 1


CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str, attrs: tuple = (), since: int = 1) -> Callable:
    """Registers the decorated function as the converter of ``op_types``."""
    def deco(fn: Callable) -> Callable:
        for op in op_types:
            CONVERTERS[op] = Converter(fn, tuple(attrs), since)
        return fn
    return deco


def supported_ops() -> dict:
    """op type -> the attributes its converter reads (every op also folds when its inputs are constants)."""
    return {k: v.attrs for k, v in sorted(CONVERTERS.items())}


from . import convert_index, convert_math, convert_nn, convert_pool, convert_resize, convert_shape  # noqa: E402,F401
