"""An ``onnx.backend.base.Backend`` over perfkit, so ONNX's own backend test suite (``onnx.backend.test``)
and anything written against that interface runs models through perfkit's importer, builder and engine.

A model is imported with its leading dimension as the batch (``batch="auto"``) and, where that cannot be
(the model reduces, transposes or concatenates along its first axis, or has scalar inputs), as a model
without a batch (``batch=None``: run at batch 1). Inputs are cast to the network's input dtypes (int64 ->
int32) and outputs back to the ONNX output types."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PerfkitError
from .errors import require_onnx

require_onnx()
from onnx.backend.base import Backend, BackendRep  # noqa: E402


class PerfkitRep(BackendRep):
    """A prepared model. perfkit engines hold their weights (as TensorRT's do), so inputs that the importer
    needs as constants (Conv weights, Reshape shapes, ...) are bound when the first inputs arrive: the model
    is imported with every input at run time if it can be, else with every input but the first bound as an
    initializer; each with the leading dimension as the batch, else without a batch."""

    MODES = (("auto", False), ("auto", True), (None, False), (None, True))

    def __init__(self, model: Any, precision: str = "fp32", device: str = "cpu"):
        self.model, self.precision, self.device = model, precision, device
        self.mode: tuple | None = None          # (batch, inputs bound) that imported
        self._built: dict = {}

    def _import(self, feeds: dict) -> tuple:
        from .loader import load
        errors = []
        names = [i.name for i in self.model.graph.input if i.name not in {t.name for t in self.model.graph.initializer}]
        for batch, bind in self.MODES if self.mode is None else (self.mode,):
            model = self.model
            if bind:
                model = _bound(self.model, {n: feeds[n] for n in names[1:] if n in feeds})
            try:
                net = load(model, batch=batch)
            except PerfkitError as exc:
                errors.append(exc)
                continue
            self.mode = (batch, bind)
            return net, batch
        # the most telling error: one about a node (not about the inputs' batch), else the first
        raise next((e for e in errors if getattr(e, "op_type", "")), errors[0])

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        names = [i.name for i in self.model.graph.input if i.name not in {t.name for t in self.model.graph.initializer}]
        if isinstance(inputs, dict):
            feeds = {n: _array(inputs[n]) for n in names if n in inputs}
        else:
            arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            feeds = {n: _array(a) for n, a in zip(names, arrays)}
        key = tuple((n, a.shape, a.dtype.str, a.tobytes()) for n, a in feeds.items()) if self.mode is None or \
            self.mode[1] else tuple((n, a.shape) for n, a in feeds.items())
        if key not in self._built:
            net, batch = self._import(feeds)
            self._built = {key: (net, batch, {})}
        net, batch_mode, contexts = self._built[key]
        run_feeds = {}
        for t in net.inputs:
            a = feeds[t.name]
            run_feeds[t.name] = (a[None] if batch_mode is None else a).astype(t.dtype)
        batch = next(iter(run_feeds.values())).shape[0] if run_feeds else 1
        if batch not in contexts:
            from ..builder import Builder, BuilderConfig
            cfg = BuilderConfig(max_batch_size=batch, precision=self.precision, tactics="default",
                                strict_types=self.precision != "fp32")
            contexts[batch] = Builder(self.device).build(net, cfg).create_execution_context()
        out = contexts[batch].execute(run_feeds)
        info = net.import_info
        result = []
        for t in net.outputs:
            y = np.asarray(out[t.name])
            if batch_mode is None:
                y = y[0]
            want = info.output_dtypes.get(t.name, "?")
            result.append(y.astype(want) if want not in ("?", "object") else y)
        return tuple(result)


def _array(a: Any) -> np.ndarray:
    if type(a).__name__ == "TensorProto":
        from onnx import numpy_helper
        return numpy_helper.to_array(a)
    return np.asarray(a)


def _bound(model: Any, values: dict) -> Any:
    """A copy of ``model`` with ``values`` as initializers (their graph inputs removed)."""
    from onnx import numpy_helper
    m = type(model)()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for n, a in values.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(a), n))
    return m


class PerfkitBackend(Backend):
    precision = "fp32"

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> PerfkitRep:
        """Checks that the model reads (the import itself waits for the first inputs: see PerfkitRep)."""
        from .reader import read_model
        proto, _ = read_model(model)
        return PerfkitRep(proto, cls.precision)

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = PerfkitBackend.prepare
run_model = PerfkitBackend.run_model
supports_device = PerfkitBackend.supports_device
