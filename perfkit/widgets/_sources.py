"""What an explorer may be given instead of frames: a run (live or loaded) or a saved run directory."""
from __future__ import annotations

import os
from typing import Any

from ..arguments import path as check_path
from ..errors import ArgumentError
from ..profiling.data import RunData, load_run


def as_run(run: Any, what: str) -> RunData:
    """``run`` if it is a run (``pk.profile``'s Run, or ``load_run``'s RunData), else the run saved in
    the directory ``run`` names."""
    if isinstance(run, RunData):
        if not run.frames:
            raise ArgumentError(f"{what}: the run has no frames yet; explore it after its `with pk.profile(...)` "
                                "block has ended")
        return run
    if isinstance(run, (str, os.PathLike)) and not isinstance(run, bytes):
        return load_run(check_path(run, what))
    raise ArgumentError(f"{what} must be a run (pk.profile's Run, pk.load_run's result) or the directory of a saved "
                        f"run, not {type(run).__name__}")


def read_parquet(file: str, what: str, fix: str) -> Any:
    """``pandas.read_parquet(file)``; a file that cannot be read is an ArgumentError naming it and ``fix``."""
    from ..frames.parquet_read import read_parquet as read_checked
    try:
        return read_checked(file)
    except Exception as exc:          # pyarrow raises many types for a missing or foreign file
        raise ArgumentError(f"{what}: cannot read {file!r} as parquet ({type(exc).__name__}: {exc}); {fix}") from None


def run_frame(run: RunData, name: str) -> Any:
    """The run's ``engine_layers`` or ``build_log`` frame (what its engine said of itself), or None
    when the run does not hold one (a run saved before runs kept them)."""
    frame = getattr(run, name, None)
    return frame if frame is not None and len(frame) else None
