"""One ONNX node being converted: its attributes, inputs (constants or runtime tensors), outputs, and
errors that name the node, its op type and opset."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import OnnxFileError, UnsupportedOnnxError
from .values import is_tensor


class NodeContext:
    def __init__(self, imp: Any, node: Any, label: str, base: str, version: int):
        self.imp, self.node, self.label, self.base, self.version = imp, node, label, base, version
        self.op_type = node.op_type
        self.values = imp.values
        self.attrs = {}
        for a in node.attribute:
            self.attrs[a.name] = a

    # errors --------------------------------------------------------------------------------------
    def where(self) -> str:
        return f"node {self.label} ({self.op_type}, opset {self.imp.opset})"

    def fail(self, message: str, malformed: bool = False) -> None:
        if malformed:
            raise OnnxFileError(f"{self.where()}: {message}")
        raise UnsupportedOnnxError(f"{self.where()}: {message}", node=self.node.name or self.base,
                                   op_type=self.op_type, opset=self.imp.opset, domain=self.node.domain)

    # attributes ----------------------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        a = self.attrs.get(name)
        if a is None:
            return default
        from onnx import helper
        try:
            v = helper.get_attribute_value(a)
        except Exception as exc:
            self.fail(f"attribute {name!r} cannot be read ({exc})", malformed=True)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        return v

    def int_attr(self, name: str, default: int | None = None) -> int | None:
        v = self.attr(name, default)
        if v is not None and (isinstance(v, (bool, list, str)) or not isinstance(v, (int, np.integer))):
            self.fail(f"attribute {name!r} must be an int, not {v!r}", malformed=True)
        return None if v is None else int(v)

    def float_attr(self, name: str, default: float) -> float:
        v = self.attr(name, default)
        if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) or not np.isfinite(v):
            self.fail(f"attribute {name!r} must be a finite number, not {v!r}", malformed=True)
        return float(v)

    def ints_attr(self, name: str, default: Any = None) -> list | None:
        v = self.attr(name, default)
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or any(isinstance(x, bool) or not isinstance(x, (int, np.integer))
                                                   for x in v):
            self.fail(f"attribute {name!r} must be a list of ints, not {v!r}", malformed=True)
        return [int(x) for x in v]

    def choice(self, name: str, default: str, supported: tuple, known: tuple = ()) -> str:
        v = self.attr(name, default)
        if v not in supported:
            if known and v not in known:
                self.fail(f"attribute {name}={v!r} is not a value ONNX defines ({', '.join(known)})", malformed=True)
            self.fail(f"attribute {name}={v!r} is not supported; supported: {', '.join(supported)}")
        return v

    # inputs and outputs --------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        """Inputs given, not counting trailing empty (omitted optional) ones."""
        names = list(self.node.input)
        while names and not names[-1]:
            names.pop()
        return len(names)

    def has(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def input(self, i: int) -> Any:
        if not self.has(i):
            self.fail(f"input {i} is required", malformed=True)
        return self.values[self.node.input[i]]

    def const(self, i: int, what: str = "") -> np.ndarray:
        v = self.input(i)
        if is_tensor(v):
            self.fail(f"{what or f'input {i}'} ({self.node.input[i]!r}) must be a constant (an initializer or "
                      "computed from constants at import); here it is computed at run time")
        return v

    def const_ints(self, i: int, what: str) -> list:
        v = np.asarray(self.const(i, what))
        if v.dtype.kind not in "iu" or v.ndim > 1:
            self.fail(f"{what} must be a 1-D integer tensor, not {v.dtype} of shape {v.shape}", malformed=True)
        return [int(x) for x in v.reshape(-1)]

    def tensor(self, i: int) -> Any:
        return self.values.runtime(self, self.input(i), f"input {i} ({self.node.input[i]!r})")

    def rank(self, i: int) -> int:
        return self.values.rank(self.input(i))

    def output(self, value: Any, i: int = 0) -> None:
        if i < len(self.node.output) and self.node.output[i]:
            self.values[self.node.output[i]] = value

    def add(self, method: str, *args: Any, part: str | None = None, **kw: Any) -> Any:
        return self.imp.add(self, method, *args, part=part, **kw)
