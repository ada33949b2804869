"""The memory of one execution context, carved into the views its step loop reads and writes.

One allocation each for activations (the builder's liveness-planned arena), workspace and I/O,
taken from the engine's allocator under the context's owner tag; tensors are views at the offsets
the plan gives, sized for ``max_batch_size`` and sliced to each call's batch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..device.memory import align, allocate
from ..ops import Env
from ..ops.base import NHWC


class ContextBuffers:
    """Activation arena, workspace and I/O buffers of one context, and the views into them.

    ``io(name, batch)`` is the context's own buffer of an input or output; ``bindings`` completes a
    call's bindings with the context's output buffers; ``tensors`` gives every tensor the step loop
    touches (activation views cached per batch size, constants, bindings). ``env`` is the ops'
    compute environment over the workspace; ``pinned`` the page-locked staging of ``execute`` on CUDA.
    """

    def __init__(self, engine: Any, owner: str) -> None:
        plan, device = engine.plan, engine.device
        kind, alloc = device.kind, engine.allocator
        b, mem, t = plan.max_batch_size, plan.memory, plan.tensors
        self.allocator = alloc
        self.outputs = list(plan.outputs)
        taken: list = []
        try:                                    # all three or none: a failure returns what was taken
            for attr, key, tag in (("arena", "activation_bytes", "activations"),
                                   ("workspace", "workspace_bytes", "workspace"), ("io_buffer", "io_bytes", "io")):
                buf = allocate(alloc, mem[key], tag, owner, kind) if mem[key] else None
                setattr(self, attr, buf)
                if buf is not None:
                    taken.append(buf)
        except BaseException:
            for buf in taken:
                alloc.free(buf)
            raise
        self._act = {n: _activation_view(self.arena, p, b) for n, p in t.items() if p.kind == "activation"}
        self._const = {n: engine.weights[f"constant/{n}"] for n, p in t.items() if p.kind == "constant"}
        self._io, off = {}, 0
        for n in plan.inputs + plan.outputs:
            p = t[n]
            self._io[n] = self.io_buffer.view(off, (b,) + tuple(p.shape), p.dtype)
            off += align(b * int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize)
        ws = None if self.workspace is None else self.workspace.array
        blas_bytes = int(plan.extra.get("blas_workspace_bytes", 0)) if kind == "cuda" and ws is not None else 0
        self.env = Env(device.xp, kind, ws[:ws.nbytes - blas_bytes] if blas_bytes else ws,
                       ws[ws.nbytes - blas_bytes:] if blas_bytes else None,
                       tf32=plan.build_config.get("tf32") is True)
        self._fixed: dict = {}                  # batch -> activation views and constants
        self._views: dict = {}                  # (name, batch) -> I/O view (a CuPy slice costs ~5 us)
        self._released = False
        self._after: Any = None                 # CUDA event: execute's stream waits for the caller's
        self._cuda = kind == "cuda"
        # page-locked host staging for execute() with host arrays on CUDA (guide ch. 5: pinned memory)
        self.pinned = {} if kind == "cpu" else {
            n: device.pinned_empty((b,) + tuple(t[n].shape), t[n].dtype) for n in plan.inputs + plan.outputs}

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in self._owned() if x is not None)

    def _owned(self) -> tuple:
        return (self.arena, self.workspace, self.io_buffer)

    def io(self, name: str, batch: int) -> Any:
        view = self._views.get((name, batch))
        if view is None:
            view = self._views[(name, batch)] = self._io[name][:batch]
        return view

    def bindings(self, batch: int, inputs: dict, outputs: dict) -> dict:
        """name -> array for every input and output of one inference (the context's own output
        buffers where the caller gave none)."""
        b = dict(inputs)
        for n in self.outputs:
            b[n] = outputs[n] if n in outputs else self.io(n, batch)
        return b

    def tensors(self, batch: int, bindings: dict) -> dict:
        """Every tensor the step loop reads or writes: activations (views cached per batch size),
        constants and the bindings."""
        fixed = self._fixed.get(batch)
        if fixed is None:
            fixed = self._fixed[batch] = {n: v[:batch] for n, v in self._act.items()}
            fixed.update(self._const)
        tensors = dict(fixed)
        tensors.update(bindings)
        return tensors

    def after_caller(self, stream: Any) -> None:
        """Orders ``stream`` (an ``execute``'s) after the work queued so far on the caller's current CuPy stream
        (CUDA; nothing on the CPU): device inputs the caller just computed are read once they are written, and
        a pool block the caller freed while its own queued work still reads it is not overwritten early by the
        output copies, which CuPy's pool hands out for the current stream."""
        if not self._cuda:                      # the CPU: one inline stream, nothing to order
            return
        import cupy as cp
        current = cp.cuda.get_current_stream()
        if current.ptr != stream.raw.ptr:
            if self._after is None:
                self._after = cp.cuda.Event(block=False, disable_timing=True, interprocess=False)
            self._after.record(current)
            stream.raw.wait_event(self._after)

    def copies(self, outs: dict, stream: Any) -> dict:
        """New arrays holding the outputs ``outs`` (``execute``'s fresh copies): on CUDA one ``cudaMemcpyAsync``
        each on ``stream`` (ordered after the caller's stream by :meth:`after_caller`), into memory CuPy's pool
        gives the current stream. The caller synchronises ``stream`` before handing them out, so the context's
        next call on any stream cannot overwrite a buffer still being copied."""
        if all(isinstance(a, np.ndarray) for a in outs.values()):
            return {n: a.copy() for n, a in outs.items()}
        import cupy as cp
        result = {}
        for n, a in outs.items():
            out = result[n] = cp.ndarray(a.shape, a.dtype)   # empty_like works out an order and strides first
            out.data.copy_from_device_async(a.data, a.nbytes, stream.raw)
        return result

    def release(self) -> None:
        """Closes the compute environment and returns the buffers to the allocator (once)."""
        if self._released:
            return
        self._released = True
        owned = [x for x in self._owned() if x is not None]
        self.arena = self.workspace = self.io_buffer = None
        self._act, self._io, self._fixed, self._views = {}, {}, {}, {}
        self.env.close()
        for b in owned:
            self.allocator.free(b)


def _activation_view(arena: Any, p: Any, batch: int) -> Any:
    """An activation's (B, ...) view in the arena; a channels-last one is (B, H, W, C) memory seen as (B, C, H, W)."""
    if p.layout == NHWC:
        c, h, w = p.shape
        return arena.view(p.offset, (batch, h, w, c), p.dtype).transpose(0, 3, 1, 2)
    return arena.view(p.offset, (batch,) + tuple(p.shape), p.dtype)
