"""Collects build-log rows with their timing; becomes the ``build_log`` frame."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator


class BuildLog:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, phase: str, rule: str, matched: str = "", produced: str = "", before: int = 0,
            after: int = 0, time_ms: float = 0.0, detail: str = "", outcome: str = "done") -> None:
        self.rows.append({"step": len(self.rows), "phase": phase, "rule": rule, "matched": matched,
                          "produced": produced, "layers_before": int(before), "layers_after": int(after),
                          "time_ms": float(time_ms), "outcome": outcome, "detail": detail})

    @contextlib.contextmanager
    def timed(self, phase: str, rule: str, count_fn) -> Iterator[dict]:
        """Times a phase; the body fills ``info`` with matched/produced/detail."""
        before = count_fn()
        info: dict = {"matched": "", "produced": "", "detail": ""}
        t0 = time.perf_counter()
        yield info
        self.add(phase, rule, info["matched"], info["produced"], before, count_fn(),
                 (time.perf_counter() - t0) * 1e3, info["detail"])
