"""Human-readable numbers for tables and labels: ``8``, ``0.520 ms``, ``850 µs``, ``31.3 MiB``, ``30.4 %``,
``32.8 M/s``, ``1.98 GHz``. Three significant figures, no exponent. Lives below every layer that shows
numbers (profiling summaries, bench, plots) so that each can reuse it."""
from __future__ import annotations

import math

BYTE_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))
_SI = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def three(v: float) -> str:
    """Three significant figures without an exponent: 1020, 102, 10.2, 1.02 (and 0.520)."""
    a = abs(v)
    if a >= 100 or a == 0:
        return f"{v:.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3g}" if a < 0.01 else f"{v:.3f}"


def bytes_unit(max_bytes: float) -> tuple:
    """(name, bytes per unit) for values up to ``max_bytes``: the largest unit that keeps it at 1 or more."""
    for name, per in reversed(BYTE_UNITS):
        if abs(max_bytes) >= per:
            return name, per
    return BYTE_UNITS[0]


def human_bytes(n: float) -> str:
    """``1736704`` -> ``'1.66 MiB'``; whole bytes below 1 KiB."""
    name, per = bytes_unit(n)
    return f"{n:.0f} B" if per == 1 else f"{three(n / per)} {name}"


def human_ms(ms: float) -> str:
    """A duration in ms as ``'850 µs'``, ``'1.23 ms'`` or ``'2.5 s'``."""
    if abs(ms) < 1.0:
        if ms == 0:
            return "0 ms"
        return f"{three(ms * 1e3)} µs" if abs(ms) >= 1e-3 else f"{three(ms * 1e6)} ns"
    return f"{three(ms)} ms" if abs(ms) < 1000 else f"{three(ms / 1e3)} s"


def _si(v: float, unit: str) -> str:
    for prefix, per in _SI:
        if abs(v) >= per:
            return f"{three(v / per)} {prefix}{unit}"
    return f"{three(v)} {unit}"


def shown(value: float, unit: str = "") -> str:
    """``value`` in ``unit`` as a person reads it. Units: ``ms``, ``ns``, ``s`` (durations), ``B`` (bytes,
    binary prefixes), ``%``, ``1/s`` (shown ``/s``), ``Hz``, ``W``, ``flop``, ``flop/s`` (SI prefixes);
    ``""`` is a count or plain number (whole numbers without decimals). NaN or None is ``'n/a'``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = float(value)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if unit in ("ms", "ns", "s"):
        return human_ms(v * {"ms": 1.0, "ns": 1e-6, "s": 1e3}[unit])
    if unit == "B":
        return human_bytes(v)
    if unit == "%":
        return f"{three(v)} %"
    if unit in ("1/s", "Hz", "W", "flop", "flop/s"):
        return _si(v, "/s" if unit == "1/s" else unit).replace(" /s", "/s")
    if v == int(v) and abs(v) < 1e15:
        text = f"{int(v)}"
    else:
        text = three(v) if abs(v) < 1e4 else _si(v, "").strip()
    return f"{text} {unit}".strip()


def with_shown(table):
    """``table`` (a ``metric, value, unit, ...`` DataFrame) with a ``shown`` string column after ``value``:
    each value in human units, so that a notebook displays ``0.520 ms`` rather than ``5.200000e-01``."""
    table = table.copy()
    table.insert(table.columns.get_loc("value") + 1, "shown",
                 [shown(v, u) for v, u in zip(table["value"], table["unit"])])
    return table
