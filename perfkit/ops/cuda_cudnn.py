"""Convolutions through cuDNN's Python frontend (``nvidia-cudnn-frontend``), in channels-last (NHWC) memory.

A cuDNN graph per convolution shape: the convolution, its bias and (when nothing else follows) its ReLU as one
fused kernel, fp16 in and out with float32 accumulation. Measured on an H200 (benchmarks/RESULTS.md,
2026-11-29/30): NHWC plans were correct everywhere and 1.3-2.5x faster than PyTorch's NCHW convolution in fp16,
while NCHW plans were wrong or unsupported, and a graph that also adds the residual built in 0.5-1.8 s per
shape and ran slower than the convolution followed by one element-wise pass. So the residual sum, a power and
other activations run after cuDNN as one element-wise kernel over the same NHWC memory.

Tensors reach the op as per-sample ``(C, H, W)`` views whose strides are channels-last (the builder's layout
pass gives the tactic such tensors, see ``builder/layout.py``): ``x.transpose(0, 2, 3, 1)`` is then the
contiguous ``(N, H, W, C)`` memory itself. The kernel is stored as ``(K, kh, kw, C)``.

Graphs depend on the batch size, so one is planned per (shape, batch) at first use and kept for the process
(the builder's timing plans the engine's maximum batch; a context plans smaller batches on their first,
eager, call, before a CUDA graph captures them). Plans are limited to :data:`WORKSPACE_BYTES` of workspace,
carved from the context's. Handles are per thread and device, kept for the thread's life (as PyTorch keeps its
cuDNN handles); each call binds the current CuPy stream. One lock serialises planning (a few milliseconds per
shape, on first use only).
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .base import TacticUnavailable

#: the most workspace a cuDNN plan may take (plans that want more are deselected); fp16 NHWC plans of
#: ResNet-50's layers needed 0-131 bytes on an H200, the fp32 ones up to 411 MB
WORKSPACE_BYTES = 8 << 20

_LOCK = threading.Lock()
_GRAPHS: dict = {}                  # key -> _Graph
_LOCAL = threading.local()          # .handles: {device id: (handle, stream ptr)}
_AVAILABLE: list = []               # [None] when usable, else [reason]


class CudnnUnavailable(TacticUnavailable):
    """cuDNN's frontend is missing, or it has no plan for a convolution (the tactic cannot run here)."""


def unavailable_reason() -> str | None:
    """None when cuDNN's frontend and library load, else why not (checked once per process)."""
    if not _AVAILABLE:
        try:
            import cudnn
            cudnn.backend_version()
            _AVAILABLE.append(None)
        except Exception as exc:    # not installed, or libcudnn missing: the tactic is not offered
            _AVAILABLE.append(f"cuDNN's Python frontend cannot be used ({type(exc).__name__}: {exc}); "
                              "pip install perfkit[cuda13] (or [cuda12]) installs it")
    return _AVAILABLE[0]


def _handle(cudnn: Any) -> Any:
    """This thread's cuDNN handle on the current device, bound to the current CuPy stream."""
    import cupy
    handles = getattr(_LOCAL, "handles", None)
    if handles is None:
        handles = _LOCAL.handles = {}
    dev = cupy.cuda.runtime.getDevice()
    entry = handles.get(dev)
    if entry is None:
        entry = handles[dev] = [cudnn.create_handle(), None]
    sp = cupy.cuda.get_current_stream().ptr
    if entry[1] != sp:
        cudnn.set_stream(entry[0], sp)
        entry[1] = sp
    return entry[0]


def channels_last(a: Any) -> bool:
    """Whether a (N, C, H, W) view has channels-last strides (its transpose to NHWC is C-contiguous)."""
    return a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous


class _Graph:
    """One planned cuDNN graph and the tensors its variant pack binds."""

    def __init__(self, cudnn: Any, handle: Any, n: int, c: int, hw: tuple, k: int, params: dict, dtype: Any,
                 bias: bool, relu: bool) -> None:
        io = {np.dtype(np.float16): cudnn.data_type.HALF, np.dtype(np.float32): cudnn.data_type.FLOAT}[np.dtype(dtype)]
        f32 = cudnn.data_type.FLOAT
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[x] for x in ("kernel_size", "stride", "padding", "dilation"))
        h, w = hw
        g = cudnn.pygraph(io_data_type=io, intermediate_data_type=f32, compute_data_type=f32, handle=handle,
                          is_cuda_graph_replay_expected=True)
        self.x = g.tensor(name="X", dim=[n, c, h, w], stride=[h * w * c, 1, w * c, c], data_type=io)
        self.w = g.tensor(name="W", dim=[k, c, kh, kw], stride=[kh * kw * c, 1, kw * c, c], data_type=io)
        y = g.conv_fprop(image=self.x, weight=self.w, padding=[ph, pw], stride=[sh, sw], dilation=[dh, dw],
                         compute_data_type=f32)
        self.b = None
        if bias:
            self.b = g.tensor(name="B", dim=[1, k, 1, 1], stride=[k, 1, 1, 1], data_type=io)
            y = g.bias(input=y, bias=self.b)
        if relu:
            y = g.relu(input=y)
        y.set_output(True).set_data_type(io)
        self.y = y
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        if io == f32:               # perfkit's fp32 is strict: no TF32, no down-converted inputs
            g.deselect_numeric_notes([cudnn.numerical_note.TENSOR_CORE, cudnn.numerical_note.DOWN_CONVERT_INPUTS])
        g.deselect_workspace_greater_than(WORKSPACE_BYTES)
        g.check_support()
        g.build_plans()
        self.graph = g
        self.workspace = int(g.get_workspace_size())
        self.plan = str(g.get_plan_name_at_index(0)) if g.get_execution_plan_count() else ""


def _graph(cudnn: Any, handle: Any, key: tuple, make: Any) -> _Graph:
    graph = _GRAPHS.get(key)
    if graph is None:
        with _LOCK:
            graph = _GRAPHS.get(key)
            if graph is None:
                try:
                    graph = make()
                except Exception as exc:
                    raise CudnnUnavailable(f"cuDNN has no plan for this convolution ({type(exc).__name__}: "
                                           f"{str(exc)[:300]})") from exc
                _GRAPHS[key] = graph
    return graph


def conv(env: Any, x: Any, kernel: Any, bias: Any, out: Any, params: dict, relu: bool) -> str:
    """out = conv(x, kernel) (+ bias) (then ReLU when ``relu``) on cuDNN. ``x`` and ``out`` are channels-last
    (N, C, H, W) views, ``kernel`` is (K, kh, kw, C) contiguous. Returns the plan's name."""
    reason = unavailable_reason()
    if reason is not None:
        raise CudnnUnavailable(reason)
    if not (channels_last(x) and channels_last(out)):
        raise CudnnUnavailable("the cudnn tactic needs channels-last (NHWC) input and output tensors; the "
                               "builder's layout pass gives it those")
    import cudnn
    import cupy
    handle = _handle(cudnn)
    n, c, h, w = x.shape
    k = out.shape[1]
    key = (cupy.cuda.runtime.getDevice(), n, c, h, w, k, tuple(params["kernel_size"]), tuple(params["stride"]),
           tuple(params["padding"]), tuple(params["dilation"]), np.dtype(x.dtype).str, bias is not None, bool(relu))
    g = _graph(cudnn, handle, key, lambda: _Graph(cudnn, handle, n, c, (h, w), k, params, x.dtype,
                                                  bias is not None, relu))
    pack = {g.x: x.data.ptr, g.w: kernel.data.ptr, g.y: out.data.ptr}
    if g.b is not None:
        pack[g.b] = bias.data.ptr
    ws = env.scratch((max(g.workspace, 1),), np.uint8)
    g.graph.execute(pack, ws.data.ptr, handle=handle)
    return g.plan


def planned() -> int:
    """How many cuDNN graphs this process has planned (tests and the build log read it)."""
    return len(_GRAPHS)
