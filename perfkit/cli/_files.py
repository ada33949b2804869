"""Every file and folder a command writes goes to a temporary name beside its target and is renamed into place
only when the whole command succeeded: a failed or interrupted command leaves no partial file and no empty
folder behind (and never replaces a good file with a half-written one). Missing folders above a target are
made when the command succeeds, as ``mkdir -p`` would."""
from __future__ import annotations

import os
import shutil
from typing import Any


def per_config(path: str, precision: str, batch: int, several: bool) -> str:
    """``path`` itself for a single configuration; ``stem.<precision>.b<batch><suffix>`` among several."""
    if not several:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.{precision}.b{batch}{ext}"


class Outputs:
    """The files and folders of one command, staged under temporary names. ``file(target)`` and ``folder(target)``
    return the temporary path to write; ``commit()`` renames them all into place; leaving the ``with`` block with
    an exception (or calling ``discard()``) removes them."""

    def __init__(self) -> None:
        self._staged: list = []          # (temporary, target, is_folder)

    def _temp(self, target: str) -> str:
        """Beside the target, or in the nearest existing folder above it (its missing folders are made only by
        ``commit``), so the rename stays on one file system."""
        folder, base = os.path.split(os.path.abspath(target))
        while not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        return os.path.join(folder, f".{base}.partial-{os.getpid()}-{len(self._staged)}")

    def file(self, target: str) -> str:
        self._check_new(target)
        tmp = self._temp(target)
        self._staged.append((tmp, target, False))
        return tmp

    def folder(self, target: str) -> str:
        self._check_new(target)
        tmp = self._temp(target)
        os.makedirs(tmp)
        self._staged.append((tmp, target, True))
        return tmp

    def _check_new(self, target: str) -> None:
        from ..errors import ArgumentError
        if any(os.path.abspath(t) == os.path.abspath(target) for _, t, _ in self._staged):
            raise ArgumentError(f"{target!r} is named for two outputs of this command; give each output its own name")

    @property
    def targets(self) -> list:
        return [t for _, t, _ in self._staged]

    def commit(self) -> list:
        """Renames every staged output into place; returns the targets that were written."""
        done = []
        for tmp, target, is_folder in self._staged:
            if is_folder or os.path.exists(tmp):
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)   # --out runs/new/x: mkdir -p
            if is_folder:
                if os.path.isdir(target) and not os.listdir(target):
                    os.rmdir(target)              # an empty folder named by --out: take its place
                os.rename(tmp, target)
                done.append(target)
            elif os.path.exists(tmp):             # an optional output that was not produced stays absent
                os.replace(tmp, target)
                done.append(target)
        self._staged = []
        return done

    def discard(self) -> None:
        for tmp, _, is_folder in self._staged:
            if is_folder:
                shutil.rmtree(tmp, ignore_errors=True)
            elif os.path.exists(tmp):
                os.unlink(tmp)
        self._staged = []

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.discard()
