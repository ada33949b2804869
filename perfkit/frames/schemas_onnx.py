"""Frames of ONNX import (issue 10): which nodes of a model perfkit imports, and what each became."""
from __future__ import annotations

from .schemas import _s

ONNX_CHECK = _s(
    "onnx_check", "One row per node of an ONNX model, in graph order: whether perfkit imports it and why not "
                  "(perfkit.onnx.check; nothing is built).",
    ("node", "string", "", "ONNX node name (unnamed nodes: their first output's name)"),
    ("op_type", "string", "", "ONNX operator type, e.g. Conv"),
    ("domain", "string", "", "operator domain ('ai.onnx' for the default domain)"),
    ("opset", "int64", "", "the model's opset for the default domain"),
    ("supported", "bool", "", "whether the node imports; for nodes after an unsupported one whose inputs cannot "
                              "be stood in for, whether its operator is supported at all"),
    ("reason", "string", "", "why not ('' when supported), naming what is supported"),
    ("became", "string", "", "what the node became: the perfkit layers it made (joined by ', '), 'folded' "
                             "(computed at import), 'removed' (Dropout, Identity) or ''"),
)
