"""The exceptions perfkit raises on bad input, always subclasses of :class:`PerfkitError`.

Each message says what failed, where, and how to fix it. Several classes also derive from the
built-in exception a Python user would expect (``ValueError``, ``TypeError``, ``RuntimeError``),
so ``except ValueError`` keeps working in code that does not know perfkit.
"""
from __future__ import annotations


class PerfkitError(Exception):
    """Base class of every error perfkit raises on purpose."""


class ArgumentError(PerfkitError, ValueError, TypeError):
    """A function was called with an argument of the wrong type or value (a negative batch size, a
    float where an int belongs, an unknown name). Derives from both ``ValueError`` and ``TypeError``,
    the two built-ins Python raises for bad arguments."""


class UnknownNameError(ArgumentError, KeyError):
    """A name (a metric, a column, a model) that is not one of those offered was asked for."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DeviceError(PerfkitError, RuntimeError):
    """A device was asked for that this machine cannot provide (no GPU, no CuPy, bad index)."""


class NetworkDefinitionError(PerfkitError, ValueError):
    """A network definition is invalid: bad parameters, unknown tensors, duplicate names."""


class ShapeError(NetworkDefinitionError):
    """Shapes of a layer's inputs do not fit together; raised by ``Network.add_*``."""


class UnknownOpError(NetworkDefinitionError):
    """A layer type that is not registered was asked for."""


class PluginError(PerfkitError, ValueError):
    """A plugin was registered or used wrongly."""


class PluginNotRegisteredError(PluginError, KeyError):
    """A network or engine names a plugin that is not registered in this process."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BuildError(PerfkitError, RuntimeError):
    """The builder could not turn a network into an engine."""


class BuilderBusyError(BuildError):
    """A builder was used by two threads at once (one builder, one thread at a time)."""


class EngineFileError(PerfkitError, ValueError):
    """An engine file could not be loaded: unreadable, truncated, corrupted, or not an engine."""


class EngineVersionError(EngineFileError):
    """An engine file was written by an incompatible format version."""


class EngineChecksumError(EngineFileError):
    """An engine file's content does not match its checksum: it was corrupted or edited."""


class EngineDeviceError(EngineFileError):
    """An engine file was built for a device kind that is not the one it is being loaded on."""


class ExecutionError(PerfkitError, RuntimeError):
    """An inference could not run."""


class BindingError(ExecutionError, ValueError):
    """Inputs or outputs given to a context are missing, extra, or of the wrong shape, dtype or device."""


class BatchSizeError(BindingError):
    """A batch larger than the engine's ``max_batch_size`` (or not positive) was asked for."""


class ContextBusyError(ExecutionError):
    """One execution context was used by two threads at once; create one context per thread."""


class ProfilerError(PerfkitError, RuntimeError):
    """A profiler given to a context raised while layer times were reported to it; the original
    exception is the ``__cause__``. Raised by the context's next call or at the end of ``profile``."""


class AllocationError(PerfkitError, MemoryError):
    """An allocator could not provide the memory asked for."""
