"""The network definition API: inputs, layers added with ``add_*``, outputs marked."""
from __future__ import annotations

import copy
import numbers
import re
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import NetworkDefinitionError, PerfkitError, ShapeError
from ..ops import get_op
from ..ops.base import DTYPES
from ..precision import PRECISIONS
from .layer_adders import LayerAdders
from .tensor import Layer, Tensor


def per_sample_shape(shape: Any, where: str) -> tuple:
    """``shape`` as a tuple of positive Python ints; floats (even 2.0), bools and strings are refused,
    so that ``(2.5,)`` or ``(True, 3)`` never become ``(2,)`` or ``(1, 3)`` silently."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise ShapeError(f"{where}: shape must be a sequence of ints such as (3, 28, 28), not {shape!r}")
    dims = tuple(shape)
    bad = [d for d in dims if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral)]
    if bad:
        raise ShapeError(f"{where}: shape {dims!r} has non-integer dimension(s) {bad!r}; every dimension must "
                         "be an int")
    dims = tuple(int(d) for d in dims)
    if not dims or any(d <= 0 for d in dims):
        raise ShapeError(f"{where}: per-sample shape {dims} must be non-empty with positive "
                         "dimensions (the batch dimension is implicit; do not include it)")
    return dims


def _check_finite(value: Any, where: str) -> None:
    """Refuses NaN and infinity anywhere in a layer's parameters (nested lists and dicts included)."""
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, where)
    elif isinstance(value, (float, np.floating)) and not np.isfinite(value):
        raise NetworkDefinitionError(f"{where} must be finite numbers, not {value}")


class Network(LayerAdders):
    """A network definition, as in TensorRT: tensors declared per sample, layers in order.

    >>> net = Network("tiny")
    >>> x = net.add_input("x", (4,))
    >>> fc = net.add_fully_connected(x, 2, kernel=np.ones((2, 4)), name="fc")
    >>> net.mark_output(fc.output)
    """

    def __init__(self, name: str = "network"):
        if not isinstance(name, str) or not name.strip():
            raise NetworkDefinitionError(f"a network's name must be a non-empty string, not {name!r}")
        self.name = name
        self.layers: list[Layer] = []
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self._tensors: dict[str, Tensor] = {}
        self._layer_names: set[str] = set()

    # tensors ------------------------------------------------------------------------------------
    def add_input(self, name: str, shape: Sequence[int], dtype: str = "float32") -> Tensor:
        """Declares a network input with a per-sample ``shape`` (no batch dimension)."""
        self._check_new_tensor_name(name)
        given = dtype
        if not isinstance(dtype, str) or dtype not in DTYPES:
            try:
                dtype = str(np.dtype(dtype)) if dtype is not None else None
            except (TypeError, ValueError):
                dtype = None
        if dtype not in DTYPES:
            raise NetworkDefinitionError(f"input {name!r}: dtype must be one of {', '.join(DTYPES)} "
                                         f"(or the NumPy dtype of one), not {given!r}")
        shape = per_sample_shape(shape, f"input {name!r}")
        t = Tensor(name, shape, dtype, self)
        self._tensors[name] = t
        self.inputs.append(t)
        return t

    def mark_output(self, tensor: Any, name: str | None = None) -> Tensor:
        """Marks ``tensor`` (or a layer's single output) as a network output, optionally renaming it."""
        t = self._tensor(tensor, "mark_output")
        if t in self.outputs:
            raise NetworkDefinitionError(f"tensor {t.name!r} is already marked as an output")
        if t.is_constant:
            raise NetworkDefinitionError(f"tensor {t.name!r} is a constant; outputs must depend on an input")
        if name is not None and name != t.name:
            self.rename_tensor(t, name)
        self.outputs.append(t)
        return t

    def rename_tensor(self, tensor: Any, new_name: str) -> Tensor:
        t = self._tensor(tensor, "rename_tensor")
        self._check_new_tensor_name(new_name)
        del self._tensors[t.name]
        t.name = new_name
        self._tensors[new_name] = t
        return t

    def get_tensor(self, name: str) -> Tensor:
        if not isinstance(name, str):
            raise NetworkDefinitionError(f"tensor names are strings, not {type(name).__name__} {name!r}")
        try:
            return self._tensors[name]
        except KeyError:
            raise NetworkDefinitionError(f"network {self.name!r} has no tensor {name!r}; "
                                         f"tensors: {', '.join(self._tensors)}") from None

    def get_layer(self, name: str) -> Layer:
        if not isinstance(name, str):
            raise NetworkDefinitionError(f"layer names are strings, not {type(name).__name__} {name!r}")
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise NetworkDefinitionError(f"network {self.name!r} has no layer {name!r}")

    @property
    def tensors(self) -> list[Tensor]:
        return list(self._tensors.values())

    # layers -------------------------------------------------------------------------------------
    def add_layer(self, op_type: str, inputs: Iterable[Any], params: dict | None = None,
                  weights: dict | None = None, name: str | None = None) -> Layer:
        """Adds a layer of a registered type; the ``add_*`` methods are thin wrappers over this."""
        if not isinstance(op_type, str):
            raise NetworkDefinitionError(f"op_type must be the name of a layer type (see perfkit.registered_ops()), "
                                         f"not {op_type!r}")
        op = get_op(op_type)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise NetworkDefinitionError(f"a {op_type} layer's inputs must be a list of tensors, not {inputs!r}")
        for what, value in (("params", params), ("weights", weights)):
            if value is not None and not isinstance(value, dict):
                raise NetworkDefinitionError(f"a {op_type} layer's {what} must be a dict or None, not {value!r}")
        _check_finite(params or {}, f"a {op_type} layer's parameters")
        ins = [self._tensor(t, op_type) for t in inputs]
        n = len(ins)
        if n < op.min_inputs or (op.max_inputs is not None and n > op.max_inputs):
            want = op.min_inputs if op.max_inputs == op.min_inputs else \
                f"{op.min_inputs}..{op.max_inputs if op.max_inputs is not None else 'n'}"
            raise NetworkDefinitionError(f"a {op_type} layer takes {want} input(s), got {n}")
        name = self._layer_name(name, op)
        params = copy.deepcopy(dict(params or {}))
        weights = {k: v for k, v in (weights or {}).items()}
        try:
            params = op.check(params, weights)
            specs = op.infer(params, [t.spec for t in ins], weights)
        except PerfkitError as exc:
            shapes = ", ".join(f"{t.name}{t.shape}" for t in ins)
            raise type(exc)(f"layer {name!r} ({op_type}; inputs {shapes or 'none'}): {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, ZeroDivisionError) as exc:
            raise NetworkDefinitionError(f"layer {name!r} ({op_type}): invalid parameters or weights: {exc!r}") from None
        constant = op_type == "constant" or (bool(ins) and all(t.is_constant for t in ins))
        suffixes = op.output_names or tuple(str(i) for i in range(len(specs)))
        outs = []
        for i, spec in enumerate(specs):
            tname = name if len(specs) == 1 else f"{name}.{suffixes[i]}"
            self._check_new_tensor_name(tname)
            outs.append(Tensor(tname, spec.shape, spec.dtype, self, producer=name, is_constant=constant))
        layer = Layer(name, op_type, params, weights, ins, outs, self)
        for t in outs:
            self._tensors[t.name] = t
        self.layers.append(layer)
        self._layer_names.add(name)
        return layer

    def _layer_name(self, name: str | None, op: Any) -> str:
        if name is None:
            i = len(self.layers) + 1
            name = f"{op.short}_{i}"
            while name in self._layer_names or name in self._tensors:
                i += 1
                name = f"{op.short}_{i}"
            return name
        if not isinstance(name, str) or not name.strip():
            raise NetworkDefinitionError(f"layer names must be non-empty strings, not {name!r}")
        if name in self._layer_names:
            raise NetworkDefinitionError(f"a layer named {name!r} already exists in network {self.name!r}")
        return name

    def _check_new_tensor_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or re.search(r"[\x00-\x1f]", name):
            raise NetworkDefinitionError(f"tensor names must be non-empty printable strings, not {name!r}")
        if name in self._tensors:
            raise NetworkDefinitionError(f"a tensor named {name!r} already exists in network {self.name!r}")

    def _tensor(self, t: Any, where: str) -> Tensor:
        if isinstance(t, Layer):
            t = t.output
        if isinstance(t, str):
            return self.get_tensor(t)
        if not isinstance(t, Tensor):
            raise NetworkDefinitionError(f"{where}: expected a Tensor (or a layer with one output), got {type(t).__name__}")
        if t.network is not self:
            raise NetworkDefinitionError(f"{where}: tensor {t.name!r} belongs to network {t.network.name!r}, "
                                         f"not {self.name!r}")
        return t

    # views --------------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per layer: name, type, inputs, outputs, output shapes, parameter count, precision."""
        rows = []
        for layer in self.layers:
            rows.append({
                "layer": layer.name, "type": layer.type,
                "inputs": ", ".join(t.name for t in layer.inputs),
                "outputs": ", ".join(t.name for t in layer.outputs),
                "output_shapes": "; ".join(str(t.shape) for t in layer.outputs),
                "parameters": int(sum(np.asarray(w).size for w in layer.weights.values())),
                "precision": layer.precision or "",
            })
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (f"<Network {self.name!r}: {len(self.inputs)} input(s), {len(self.layers)} layers, "
                f"{len(self.outputs)} output(s)>")
