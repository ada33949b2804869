"""Progress on long commands: one ``tqdm`` bar on stderr (stdout keeps the report clean for pipes and files),
counting configurations, its postfix naming the phase, and redrawn twice a second by a thread so that the
elapsed time moves during a measurement of several seconds. Automatic: shown when stderr is a terminal (or in a
notebook), not in pipes and not under pytest; ``--progress``/``--no-progress`` force it."""
from __future__ import annotations

import threading
from typing import Any


class Progress:
    def __init__(self, total: int, desc: str, progress: Any):
        from ..builder.tactics_progress import progress_bar, progress_wanted
        self.enabled = progress_wanted(progress, desc)
        self.bar = progress_bar(total, desc, self.enabled)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="perfkit-progress", daemon=True) \
            if self.enabled and hasattr(self.bar, "refresh") else None

    def _redraw(self) -> None:
        while not self._stop.wait(0.5):
            self.bar.refresh()

    def phase(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def step(self) -> None:
        self.bar.update()

    def __enter__(self) -> "Progress":
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()
