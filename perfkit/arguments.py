"""Checks of user-supplied arguments shared by the public functions: each returns the value in its
canonical form or raises :class:`~perfkit.errors.ArgumentError` naming the argument and the fix.

This module sits beside ``errors`` at the foundation: it imports nothing else from perfkit.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from .errors import AllocationError, ArgumentError, UnknownNameError


def integer(value: Any, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int; bools, floats (even 2.0), strings and None are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{what} must be an int, not {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{what} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{what} must be at most {maximum}, not {value}")
    return value


def positive_int(value: Any, what: str, maximum: int | None = None) -> int:
    return integer(value, what, 1, maximum)


def optional_positive_int(value: Any, what: str) -> int | None:
    return None if value is None else positive_int(value, what)


def number(value: Any, what: str, minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: bool = False) -> float:
    """``value`` as a finite float in [minimum, maximum] (``minimum`` excluded with ``exclusive_minimum``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{what} must be a number, not {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ArgumentError(f"{what} must be a finite number, not {value}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        bound = "greater than" if exclusive_minimum else "at least"
        raise ArgumentError(f"{what} must be {bound} {minimum:g}, not {value:g}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{what} must be at most {maximum:g}, not {value:g}")
    return value


def flag(value: Any, what: str) -> bool:
    """A real bool (``True``/``False``); 0, 1, "no" and None are refused, so a misplaced argument shows."""
    if not isinstance(value, bool):
        raise ArgumentError(f"{what} must be True or False, not {type(value).__name__} {value!r}")
    return value


def one_of(value: Any, choices: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``choices`` (strings); otherwise an UnknownNameError listing them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise UnknownNameError(f"{what} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


def frame(value: Any, what: str, columns: Iterable[str] = ()) -> Any:
    """A pandas DataFrame holding ``columns``; anything else is refused with the columns it lacks."""
    import pandas as pd
    if not isinstance(value, pd.DataFrame):
        raise ArgumentError(f"{what} must be a pandas DataFrame, not {type(value).__name__}")
    missing = [c for c in columns if c not in value.columns]
    if missing:
        raise ArgumentError(f"{what} lacks column(s) {missing}; pass the frame perfkit made for it "
                            f"(it has {list(value.columns)})")
    return value


def host_memory_bytes() -> int:
    """Physical memory of this machine in bytes (0 where the platform does not say)."""
    import os
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


def fits_in_host_memory(nbytes: int, what: str, fix: str) -> None:
    """Refuses, before allocating, host arrays larger than the machine's physical memory."""
    total = host_memory_bytes()
    if total and nbytes > total:
        raise AllocationError(f"{what} needs {nbytes / 2**30:.1f} GiB of host memory, more than this machine's "
                              f"{total / 2**30:.1f} GiB: {fix}")


def path(value: Any, what: str) -> str:
    """A file system path (str or os.PathLike). Ints are refused: ``open(3)`` would use file descriptor 3."""
    import os
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        p = os.fspath(value)
        if p:
            return p
    raise ArgumentError(f"{what} must be a path (a non-empty str or pathlib.Path), not {type(value).__name__} {value!r}")
