"""The errors of the ONNX importer: every one a :class:`~perfkit.errors.PerfkitError` (and a ``ValueError``)."""
from __future__ import annotations

from ..errors import NetworkDefinitionError


class OnnxImportError(NetworkDefinitionError):
    """An ONNX model could not be turned into a perfkit Network."""


class OnnxFileError(OnnxImportError):
    """The input is not a readable, well-formed ONNX model: not ONNX, truncated, a missing initializer
    or input, a cyclic graph, wrong types or attributes, external data that cannot be read."""


class UnsupportedOnnxError(OnnxImportError):
    """A well-formed model uses an operator, attribute or shape the importer does not support.

    ``node``, ``op_type``, ``opset`` and ``domain`` say where; the message also says what is supported."""

    def __init__(self, message: str, node: str = "", op_type: str = "", opset: int | None = None,
                 domain: str = ""):
        super().__init__(message)
        self.node, self.op_type, self.opset, self.domain = node, op_type, opset, domain


class OnnxDependencyError(OnnxImportError, ImportError):
    """The ``onnx`` package is not installed."""


def require_onnx():
    """The ``onnx`` module, or an :class:`OnnxDependencyError` that says how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise OnnxDependencyError("perfkit.onnx needs the 'onnx' package: pip install 'perfkit[onnx]' "
                                  f"({exc})") from None
    return onnx
