"""ONNX import: ``load`` a model into a perfkit Network, ``check`` which nodes import, ``network_from``
anything a sweep or profile accepts (a Network, a sample name, an ONNX path).

The ``onnx`` package (``pip install 'perfkit[onnx]'``) is imported when a model is read, not before.
"""
from __future__ import annotations

from .loader import check, is_onnx, load, max_batch_size, network_from
from .errors import OnnxDependencyError, OnnxFileError, OnnxImportError, UnsupportedOnnxError
from .info import ImportInfo  # noqa: F401  (network.import_info is one)

__all__ = ["load", "check", "network_from", "is_onnx", "max_batch_size", "OnnxImportError",
           "OnnxFileError", "UnsupportedOnnxError", "OnnxDependencyError"]
