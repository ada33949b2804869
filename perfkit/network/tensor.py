"""Tensors and layers of a network definition."""
from __future__ import annotations

from typing import Any

from ..ops.base import TensorSpec


class Tensor:
    """A named value flowing between layers: per-sample ``shape`` (the batch is implicit) and ``dtype``.

    ``is_constant`` tensors (from constant layers, or computed only from constants) have no batch
    dimension and are broadcast to every sample.
    """

    __slots__ = ("name", "shape", "dtype", "is_constant", "producer", "_network")

    def __init__(self, name: str, shape: tuple, dtype: str, network: Any, producer: str | None = None,
                 is_constant: bool = False):
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.producer = producer
        self.is_constant = is_constant
        self._network = network

    @property
    def spec(self) -> TensorSpec:
        return TensorSpec(self.shape, self.dtype, self.is_constant)

    @property
    def network(self) -> Any:
        return self._network

    def __repr__(self) -> str:
        kind = " constant" if self.is_constant else ""
        return f"<Tensor {self.name!r} {self.shape} {self.dtype}{kind}>"


class Layer:
    """A layer of a network: ``type``, ``params`` (JSON-able), ``weights`` (NumPy arrays), tensors.

    ``precision`` may be set to ``"fp32"``, ``"fp16"`` or ``"bf16"`` to override the builder's
    precision for this layer alone (``None``: follow the builder config). ``source_op``: the op type
    of the layer in the model it was imported from (an ONNX ``Conv``, ...), shown beside it in the
    engine's layers; ``None`` for layers written with the API.
    """

    __slots__ = ("name", "type", "params", "weights", "inputs", "outputs", "_precision", "_network", "source_op")

    def __init__(self, name: str, type: str, params: dict, weights: dict, inputs: list, outputs: list,
                 network: Any):
        self.name = name
        self.type = type
        self.params = params
        self.weights = weights
        self.inputs = inputs        # list[Tensor]
        self.outputs = outputs      # list[Tensor]
        self.precision: str | None = None
        self._network = network
        self.source_op: str | None = None

    @property
    def output(self) -> Tensor:
        """The layer's only output (for layers with several, use ``outputs`` or ``get_output(i)``)."""
        if len(self.outputs) != 1:
            from ..errors import NetworkDefinitionError
            raise NetworkDefinitionError(f"layer {self.name!r} has {len(self.outputs)} outputs; use get_output(i)")
        return self.outputs[0]

    @property
    def precision(self) -> str | None:
        return self._precision

    @precision.setter
    def precision(self, value: str | None) -> None:
        from ..precision import PRECISIONS
        if value is not None and (not isinstance(value, str) or value not in PRECISIONS):
            from ..errors import NetworkDefinitionError
            raise NetworkDefinitionError(f"layer {self.name!r}: precision must be one of {PRECISIONS} or None "
                                         f"(follow the builder config), not {value!r}")
        self._precision = value

    def get_output(self, index: int = 0) -> Tensor:
        """Output ``index`` (0 <= index < number of outputs)."""
        from ..arguments import integer
        from ..errors import NetworkDefinitionError
        index = integer(index, f"layer {self.name!r}: get_output index")
        if not 0 <= index < len(self.outputs):
            raise NetworkDefinitionError(f"layer {self.name!r} has {len(self.outputs)} output(s); index must be in "
                                         f"0..{len(self.outputs) - 1}, not {index}")
        return self.outputs[index]

    def __repr__(self) -> str:
        ins = ", ".join(t.name for t in self.inputs)
        outs = ", ".join(f"{t.name}{t.shape}" for t in self.outputs)
        return f"<Layer {self.name!r} {self.type}({ins}) -> {outs}>"
