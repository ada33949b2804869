"""The one ``perfkit`` logger (Python ``logging``), safe to use from many threads (guide 2.3).

Every perfkit module logs through ``get_logger(component)``: a child of the ``perfkit`` logger, so one
setting (``logging.getLogger("perfkit").setLevel(...)``, or :func:`log_to_stderr`) governs them all. The
library itself adds only a ``NullHandler`` (the logging HOWTO's rule for libraries): nothing is printed
unless the application asks. ``logging`` takes a lock per handler for each record, so lines written by
many threads never interleave; :func:`log_to_stderr` puts the thread name on every line, which is what
tells the worker threads of a throughput run or a batcher apart.
"""
from __future__ import annotations

import logging
import sys
import threading

from .errors import ArgumentError

LOGGER_NAME = "perfkit"
FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s [%(threadName)s] %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_root = logging.getLogger(LOGGER_NAME)
if not any(isinstance(h, logging.NullHandler) for h in _root.handlers):
    _root.addHandler(logging.NullHandler())
_lock = threading.Lock()
_stderr_handler: logging.Handler | None = None


def get_logger(component: str | None = None) -> logging.Logger:
    """The ``perfkit`` logger, or its child ``perfkit.<component>`` (a short dotted name such as ``"bench"``)."""
    if component is None:
        return _root
    if not isinstance(component, str) or not component.strip() or component != component.strip() or \
            any(not part.isidentifier() for part in component.split(".")):
        raise ArgumentError(f"get_logger: component must be a dotted name such as 'bench' or 'bench.batcher', "
                            f"or None for the perfkit logger, not {component!r:.60}")
    return _root.getChild(component)


def log_to_stderr(level: str | int = "INFO") -> logging.Handler:
    """Prints perfkit's records at ``level`` and above on stderr, one line each with time, level, logger and
    thread. Calling it again changes the level of the same handler (never two copies of each line).
    Returns the handler (``logging.getLogger('perfkit').removeHandler(h)`` stops it)."""
    global _stderr_handler
    if isinstance(level, str) and level.upper() in LEVELS:
        value = getattr(logging, level.upper())
    elif isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 50:
        value = level
    else:
        raise ArgumentError(f"log_to_stderr: level must be one of {LEVELS} or an int 0-50 (logging.INFO is 20), "
                            f"not {level!r:.40}")
    with _lock:
        if _stderr_handler is None or _stderr_handler not in _root.handlers:
            _stderr_handler = logging.StreamHandler(sys.stderr)
            _stderr_handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
            _root.addHandler(_stderr_handler)
        _stderr_handler.setLevel(value)
        if _root.level == logging.NOTSET or _root.level > value:
            _root.setLevel(value)
    return _stderr_handler
