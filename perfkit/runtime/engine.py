"""Engine: an optimised, device-resident network that creates execution contexts."""
from __future__ import annotations

import hashlib
import itertools
import json
import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd

from ..device.memory import Buffer, allocate
from ..frames.schemas import BUILD_LOG, ENGINE_LAYERS
from ..ops import get_op
from .plan import EnginePlan


_instances = itertools.count(1)


def _check_arguments(plan: Any, host_weights: Any, device: Any, allocator: Any, keep_host_weights: Any) -> None:
    """Refuses, before anything is allocated, what the builder or the loader would never pass."""
    from ..arguments import flag
    from ..device.base import Device
    from ..device.memory import check_allocator
    from ..errors import ArgumentError
    if not isinstance(plan, EnginePlan):
        raise ArgumentError(f"Engine: plan must be an EnginePlan, not {type(plan).__name__}; engines are made by "
                            "perfkit.Builder(...).build(network, config) or perfkit.load_engine(path)")
    if not isinstance(device, Device):
        raise ArgumentError(f"Engine: device must be a perfkit Device, not {type(device).__name__} {device!r:.40}; "
                            "pass perfkit.get_device('cpu') or get_device('cuda:0')")
    check_allocator(allocator, "Engine (allocator)")
    flag(keep_host_weights, "Engine: keep_host_weights")
    if not isinstance(host_weights, dict):
        raise ArgumentError(f"Engine: host_weights must be a dict of weight key -> array, not "
                            f"{type(host_weights).__name__}; pass the weights the plan names ({len(plan.weights)})")
    missing = [k for k in plan.weights if k not in host_weights]
    if missing:
        raise ArgumentError(f"Engine: host_weights lacks {len(missing)} weight(s) the plan needs, such as "
                            f"{missing[:3]}; pass every weight of plan.weights")
    for key, w in plan.weights.items():
        arr = host_weights[key]
        want = np.dtype(w.dtype)
        if getattr(arr, "shape", None) != tuple(w.shape) or getattr(arr, "dtype", None) != want:
            raise ArgumentError(f"Engine: weight {key!r} is {type(arr).__name__} "
                                f"{getattr(arr, 'shape', '')} {getattr(arr, 'dtype', '')}, the plan says "
                                f"{tuple(w.shape)} {want}; pass the weights that were built with this plan")


class Engine:
    """Built by :class:`perfkit.Builder` or loaded by :func:`perfkit.load_engine`.

    Holds the plan and the weights on its device (taken from its allocator, tagged ``weights``).
    Once they are there it keeps no host copy: :meth:`host_weights` reads them back when asked
    (saving an engine does), unless the engine was made with ``keep_host_weights=True``.
    Create one :meth:`create_execution_context` per concurrent stream or thread.
    """

    def __init__(self, plan: EnginePlan, host_weights: dict, device: Any, allocator: Any,
                 keep_host_weights: bool = False):
        _check_arguments(plan, host_weights, device, allocator, keep_host_weights)
        self.plan = plan
        self.device = device
        self.allocator = allocator
        self._contexts = 0
        self._open_contexts: weakref.WeakSet = weakref.WeakSet()
        self._closed = False
        self._lock = threading.Lock()
        self.instance = next(_instances)
        self.owner = f"engine:{plan.name}#{self.instance}"
        self._weights_buffer = None
        self.weights: dict = {}
        self._upload_weights(host_weights)
        self._host_weights = host_weights if keep_host_weights else None
        for s in plan.steps:      # fail now, not at the first inference, if an op or plugin is missing
            op = get_op(s.type)
            if s.type == "plugin":
                op.check(dict(s.params), {})

    def _upload_weights(self, host_weights: dict) -> None:
        nbytes = self.plan.memory["weights_bytes"]
        if nbytes == 0:
            return
        buf = allocate(self.allocator, nbytes, "weights", self.owner, self.device.kind)
        self._weights_buffer = buf
        self._finalizer = weakref.finalize(self, self.allocator.free, buf)
        if self.device.kind == "cpu":
            target = buf.array                  # host memory already: written in place, no staging copy
        else:
            target = np.empty(nbytes, np.uint8)
        target[...] = 0
        for key, w in self.plan.weights.items():
            arr = np.ascontiguousarray(host_weights[key])
            target[w.offset:w.offset + arr.nbytes] = arr.reshape(-1).view(np.uint8)
        if self.device.kind != "cpu":
            self.device.to_device(target, out=buf.array)
            self.device.synchronize()
        self.weights = {key: buf._view(w.offset, tuple(w.shape), w.dtype) for key, w in self.plan.weights.items()}

    def host_weights(self) -> dict:
        """Host (NumPy) copies of every weight tensor by key, read back from the device buffer
        (or the copies kept with ``keep_host_weights=True``). The engine's memory is unchanged."""
        from ..errors import ExecutionError
        if self._host_weights is not None:
            return {k: np.array(v, copy=True) for k, v in self._host_weights.items()}
        if not self.plan.weights:
            return {}
        if self._weights_buffer is None:
            raise ExecutionError(f"engine {self.name!r} was closed; its weights are gone (save it before closing)")
        blob = self.device.to_host(self._weights_buffer.array) if self.device.kind != "cpu" \
            else np.array(self._weights_buffer.array, copy=True)
        host = Buffer(blob, "cpu")
        return {key: host._view(w.offset, tuple(w.shape), w.dtype) for key, w in self.plan.weights.items()}

    # description -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def id(self) -> str:
        """A short content hash of the plan and weights (set when saved or loaded, else from the plan)."""
        return self.plan.extra.get("engine_id", "")

    @property
    def tactics_id(self) -> str:
        """A short hash of what the builder chose: each layer's name, type, precision, tactic and layout, in
        order. Two engines of one network with equal ``tactics_id`` made the same choices (what the libraries
        decide at run time, such as cuBLAS's own heuristics, aside); builds that time tactics may choose
        differently from one run to the next (a shared :class:`~perfkit.TimingCache` takes each layer's tactic
        from one timing), so compare rows of different runs knowing whether their engines match."""
        t = self.plan.tensors
        choices = [[s.name, s.type, s.precision, str(s.params.get("tactic") or ""), _layout_of(s, t)]
                   for s in self.plan.steps]
        return hashlib.sha256(json.dumps(choices).encode()).hexdigest()[:12]

    @property
    def input_names(self) -> list:
        return list(self.plan.inputs)

    @property
    def output_names(self) -> list:
        return list(self.plan.outputs)

    @property
    def max_batch_size(self) -> int:
        return self.plan.max_batch_size

    @property
    def precision(self) -> str:
        return self.plan.precision

    @property
    def build_time_ms(self) -> float:
        return self.plan.build_time_ms

    def get_binding_shape(self, name: str) -> tuple:
        """Per-sample shape of an input or output."""
        from ..errors import BindingError
        if name not in self.plan.inputs + self.plan.outputs:
            raise BindingError(f"{name!r} is not an input or output of engine {self.name!r}; "
                               f"inputs: {self.input_names}, outputs: {self.output_names}")
        return tuple(self.plan.tensors[name].shape)

    def get_binding_dtype(self, name: str) -> np.dtype:
        self.get_binding_shape(name)
        return np.dtype(self.plan.tensors[name].dtype)

    @property
    def memory(self) -> dict:
        """Device bytes by purpose: ``weights`` (engine), ``activations``, ``workspace``, ``io`` (per context)."""
        m = self.plan.memory
        return {"weights": m["weights_bytes"], "activations": m["activation_bytes"],
                "workspace": m["workspace_bytes"], "io": m["io_bytes"]}

    @property
    def device_memory_bytes(self) -> int:
        """Bytes the engine and one execution context take from the allocator, known before running."""
        return int(sum(self.memory.values()))

    @property
    def build_log(self) -> pd.DataFrame:
        return BUILD_LOG.frame(self.plan.build_log, {"engine": self.name, "engine_id": self.id})

    @property
    def layers(self) -> pd.DataFrame:
        rows, ops = [], self.plan.extra.get("source_ops") or {}
        for i, s in enumerate(self.plan.steps):
            t = self.plan.tensors
            rows.append({
                "index": i, "layer": s.name, "type": s.type, "precision": s.precision,
                "inputs": ", ".join(s.inputs), "outputs": ", ".join(s.outputs),
                "input_shapes": "; ".join(str(tuple(t[n].shape)) for n in s.inputs),
                "output_shapes": "; ".join(str(tuple(t[n].shape)) for n in s.outputs),
                "origin": ", ".join(s.origin), "flops": s.flops, "bytes": s.bytes,
                "weights_bytes": int(sum(np.dtype(self.plan.weights[k].dtype).itemsize
                                         * int(np.prod(self.plan.weights[k].shape)) for k in s.weights.values())),
                "workspace_bytes": s.workspace_bytes, "tactic": str(s.params.get("tactic") or ""),
                "source_op": ", ".join(dict.fromkeys(ops[o] for o in s.origin if o in ops)),
                "layout": _layout_of(s, t)})
        return ENGINE_LAYERS.frame(rows, {"engine": self.name, "precision": self.precision,
                                          "max_batch_size": self.max_batch_size})

    # use ---------------------------------------------------------------------------------------
    def create_execution_context(self, name: str | None = None, cuda_graph: bool = True) -> Any:
        """A new context (its own activations, workspace and I/O buffers). ``cuda_graph``: on CUDA,
        replay the step loop as a captured CUDA graph once warm (see ``runtime/cuda_graph.py``);
        ``False`` launches every layer from Python on every call. No effect on the CPU."""
        from .context import ExecutionContext
        self._check_open("create an execution context")
        with self._lock:
            self._contexts += 1
            index = self._contexts
        ctx = ExecutionContext(self, name or f"{self.name}#{self.instance}/ctx{index}", cuda_graph=cuda_graph)
        self._open_contexts.add(ctx)
        return ctx

    def _check_open(self, what: str) -> None:
        if self._closed:
            from ..errors import ExecutionError
            raise ExecutionError(f"engine {self.name!r} was closed and cannot {what}; build or load it again")

    def save(self, path: Any) -> str:
        """Writes the engine to ``path`` (a safetensors file; plan in metadata). Returns the engine id."""
        from ..arguments import path as as_path
        from .serialize import save_engine
        return save_engine(self, as_path(path, "Engine.save: path"))

    def close(self) -> None:
        """Returns the weights to the allocator. The engine cannot run afterwards; close its contexts
        first (their layers read these weights). Closing twice does nothing."""
        open_ = [c for c in list(self._open_contexts) if not getattr(c, "_closed", True)]
        if open_:
            from ..errors import ExecutionError
            raise ExecutionError(f"engine {self.name!r} still has {len(open_)} open execution context(s) "
                                 f"({', '.join(c.name for c in open_[:3])}{', ...' if len(open_) > 3 else ''}) that "
                                 "read its weights; call close() on them first")
        self._closed = True
        if self._weights_buffer is not None:
            self._weights_buffer = None
            self.weights = {}
            self._finalizer()

    def __repr__(self) -> str:
        return (f"<Engine {self.name!r} on {self.device.spec}: {len(self.plan.steps)} layers, {self.precision}, "
                f"max batch {self.max_batch_size}, {self.device_memory_bytes / 2**20:.2f} MiB>")


def _layout_of(step: Any, tensors: dict) -> str:
    """'' (row-major), 'nhwc', or 'a -> b' for a step that reads one layout and writes another (a reformat)."""
    read = {tensors[n].layout for n in step.inputs if tensors[n].kind != "constant"}
    written = {tensors[n].layout for n in step.outputs}
    if not (read | written) - {""}:
        return ""
    if read == written:
        return "/".join(sorted(x or "nchw" for x in read))
    return f"{'/'.join(sorted(x or 'nchw' for x in read))} -> {'/'.join(sorted(x or 'nchw' for x in written))}"
