"""Running the ``perfkit`` command in tests: in a subprocess (end to end, as a user runs it) or in process
(``perfkit.cli.main``, for the many quick cases), and checking that a command left nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys

#: the shortest timing that still measures: a few inferences, no long warm-up
QUICK = ["--device", "cpu", "--duration-s", "0.03", "--warmup-ms", "5", "--iterations", "5"]


def cli(cwd, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m perfkit ARGV`` in ``cwd``; stdout and stderr as text."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "perfkit", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def everything(folder) -> set:
    """Every path under ``folder``, relative to it (hidden and temporary ones included)."""
    out = set()
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(root, name), folder))
    return out


def one_error_line(stderr: str) -> str:
    """The single line of a user error; fails on a traceback or several lines."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("perfkit") and "error:" in lines[0], lines[0]
    return lines[0]
