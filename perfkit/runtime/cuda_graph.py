"""CUDA-graph replay of an execution context's step loop (trtexec's ``--useCudaGraph``, per context).

Launching an engine layer by layer from Python costs microseconds of host time per kernel, so at
small batches the GPU waits for the host between layers. In graph mode a context captures its whole
step loop into a CUDA graph once per *key* — batch size, binding addresses, whether it is profiled,
the ``input_consumed`` event — and afterwards replays it with a single launch.

- The first call with a new key runs eagerly (kernels compile, cuBLAS warms up); the second
  captures; later calls replay. At most ``MAX_GRAPHS`` keys are kept per context (least recently
  used first out).
- Memory CuPy allocates while a graph is captured (temporaries of some ops) comes from a pool private
  to that graph, itself fed by the context's allocator (tagged ``workspace``), and stays with the
  graph until it is dropped (``context.graph_memory_bytes``): the replayed kernels keep using those
  addresses. Within one capture freed temporaries are reused, as the replay keeps their order.
- A profiled graph has a one-thread *stamp* kernel at every layer boundary that writes the GPU's
  globaltimer (32 ns steps on an H200) into page-locked host memory; per-layer times are the
  differences, placed on the ``perf_counter_ns`` timeline by one measured offset. The stamps sit on
  a side branch of the graph: stamp i waits for the last node of layer i, and layer i + 1 does not
  wait for stamp i; the branch runs at the highest stream priority, so a stamp's one block is
  dispatched ahead of the next layer's waiting blocks. Only the first stamp is in line (a root node
  on a branch starts before the graph's main chain does). In line, a stamp cost each boundary about
  1.1 us and an event-record node about 3.5 us (benchmarks/RESULTS.md). A profiled ``enqueue``
  rotates among up to ``TIMED_SLOTS`` copies so that a replay never overwrites unread stamps.
- The nodes each layer added are recorded while capturing; CUPTI records of kernels, copies and
  memsets carry the graph node that ran them, which maps all replayed GPU work back to its layer.
- Capture needs nvmath-python (cuBLAS calls CUDA accepts under capture) and cuda-bindings. When
  they are missing, or an op cannot be captured, the context says why (``context.graph_status``)
  and runs eagerly.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from ..device.memory import allocate, set_current_layer
from .profiled import report_graph_times
from .stamps import stamper

MAX_GRAPHS = 8
TIMED_SLOTS = 4
_EVENT_RECORD_EXTERNAL = 1
_USE_NODE_PRIORITY = 8      # CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY
_GPU_WORK = ("kernel", "memset", "memcpy")
def graph_support() -> str:
    """'' when CUDA graphs can be captured in this process, else the reason they cannot."""
    try:
        from cuda.bindings import driver  # noqa: F401
    except Exception:
        return "cuda-bindings is not installed (pip install cuda-bindings)"
    from ..ops.cuda_gemm import _nvmath_cublas
    if _nvmath_cublas() is None:
        return ("nvmath-python is not installed: CuPy's cuBLAS wrapper refuses stream capture "
                "(pip install nvmath-python)")
    return ""


class CaptureError(Exception):
    """An op could not be captured (it synchronises, copies from pageable memory, ...)."""


class _Keeper:
    """Base allocator of a graph's private CuPy pool: every block comes from the context's allocator
    (tagged ``workspace``, owner ``<context>/graph``) and is kept until the graph is dropped."""

    def __init__(self, allocator: Any, owner: str) -> None:
        self.allocator = allocator
        self.owner = owner
        self.buffers: list = []
        self.pool: Any = None

    def __call__(self, size: int) -> Any:
        buf = allocate(self.allocator, max(int(size), 1), "workspace", self.owner, "cuda")
        self.buffers.append(buf)
        return buf.array.data

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def release(self) -> None:
        if self.pool is not None:
            self.pool.free_all_blocks()
            self.pool = None
        for b in self.buffers:
            self.allocator.free(b)
        self.buffers = []


class CapturedGraph:
    """One instantiated graph, its per-layer nodes, its stamps (profiled graphs) and kept memory."""

    def __init__(self, key: tuple, exec_ptr: int, graph_ptr: int, layer_nodes: list, keeper: _Keeper,
                 capture_ms: float, stamps: Any = None, done: Any = None) -> None:
        self.key = key
        self.exec_ptr = exec_ptr
        self.graph_ptr = graph_ptr
        self.layer_nodes = layer_nodes          # per step: [(node handle, kind)], kind "kernel", "memset", ...
        self.stamps = stamps                    # profiled graphs: n_steps + 1 globaltimer values (pinned memory)
        self.done = done                        # profiled graphs: event recorded after each launch
        self.keeper = keeper
        self.capture_ms = capture_ms
        self.launches = 0
        self.free = threading.Event()
        self.free.set()
        self._cupti_ids: dict | None = None
        self.marker_nodes: list = []            # nodes profiling added (stamp kernels, event records)

    @property
    def kernels_per_layer(self) -> list:
        return [sum(1 for _, k in nodes if k == "kernel") for nodes in self.layer_nodes]

    def nodes_per_layer(self) -> list:
        """Per step: {node kind: count}, e.g. {"kernel": 3, "memset": 1}."""
        out = []
        for nodes in self.layer_nodes:
            d: dict = {}
            for _, k in nodes:
                d[k] = d.get(k, 0) + 1
            out.append(d)
        return out

    def cupti_node_layers(self, cupti: Any) -> dict:
        """CUPTI graph-node id -> step index for every node that runs on the GPU (kernels, memsets,
        copies); -1 for profiling's own nodes."""
        if self._cupti_ids is None:
            ids = {int(cupti.get_graph_node_id(node)): -1 for node in self.marker_nodes}
            for i, nodes in enumerate(self.layer_nodes):
                for node, kind in nodes:
                    if kind in _GPU_WORK:
                        ids[int(cupti.get_graph_node_id(node))] = i
            # CUPTI's node ids are (graph id << 32 | node index); kernel records name the captured
            # graph's nodes, copy and memset records the executable graph's, whose indices are the same
            try:
                exec_id = int(cupti.get_graph_exec_id(self.exec_ptr))
                ids.update({(exec_id << 32) | (nid & 0xFFFFFFFF): i for nid, i in list(ids.items())})
            except Exception:
                pass
            self._cupti_ids = ids
        return self._cupti_ids

    def launch(self, stream_ptr: int) -> None:
        import cupy
        cupy.cuda.runtime.graphLaunch(self.exec_ptr, stream_ptr)
        self.launches += 1

    def close(self) -> None:
        import cupy
        rt = cupy.cuda.runtime
        if self.exec_ptr:
            rt.graphExecDestroy(self.exec_ptr)
        if self.graph_ptr:
            rt.graphDestroy(self.graph_ptr)
        self.exec_ptr = self.graph_ptr = 0
        self.keeper.release()


class GraphRunner:
    """A context's graphs: decides per call whether to replay, capture or run eagerly.

    It sees the context only through its parts (``runtime/launch.py``, ``buffers.py``,
    ``profiled.py``): the step loop it captures, the buffers that give the tensors, the profiling
    state that reads the stamps, and ``wait_pending`` (waits for the context's queued work)."""

    def __init__(self, device: Any, allocator: Any, owner: str, plan: Any, loop: Any, buffers: Any,
                 profiling: Any, wait_pending: Any) -> None:
        self.device, self.allocator, self.owner = device, allocator, owner
        self.names = list(plan.inputs) + list(plan.outputs)
        self.loop, self.buffers, self.profiling, self.wait_pending = loop, buffers, profiling, wait_pending
        self.graphs: OrderedDict = OrderedDict()      # key -> [CapturedGraph, ...] (slots)
        self.seen: set = set()
        self.captures = 0
        self.replays = 0
        self.capture_ms = 0.0
        self.failure = ""
        self.last_launched: CapturedGraph | None = None   # the graph of the last run() that replayed
        self._support = graph_support()

    @property
    def available(self) -> bool:
        return not self._support and not self.failure

    def status(self) -> str:
        if self._support:
            return f"off: {self._support}"
        if self.failure:
            return f"off: {self.failure}"
        return (f"on: {sum(len(v) for v in self.graphs.values())} graph(s) held, {self.captures} captured "
                f"({self.capture_ms:.1f} ms), {self.replays} replays")

    @property
    def memory_bytes(self) -> int:
        return sum(g.keeper.nbytes for slots in self.graphs.values() for g in slots)

    def run(self, call: Any, batch: int, bindings: dict, stream: Any, input_consumed: Any, sync: bool) -> bool:
        """Replays (capturing first if needed) and returns True, or returns False: run eagerly.
        ``call`` carries the query id and the profiler and step hooks the call was submitted with."""
        self.last_launched = None
        if not self.available or any(not getattr(h, "graph_aware", False) for h in call.hooks):
            return False
        timed = call.profiler is not None
        key = (batch, tuple(bindings[n].data.ptr for n in self.names), timed,
               0 if input_consumed is None else input_consumed.raw.ptr)
        slots = self.graphs.get(key)
        if slots is None:
            warm = key[:2]                      # the same batch and buffers ran before, profiled or not
            if warm not in self.seen:
                if len(self.seen) > 64 * MAX_GRAPHS:   # callers that never reuse buffers: forget old ones
                    self.seen.clear()
                self.seen.add(warm)
                return False                    # first sight: warm up eagerly (kernels compile, cuBLAS loads)
            slots = []
        graph = self._slot(slots, timed and not sync)
        if graph is None:
            try:
                graph = self._capture(key, batch, self.buffers.tensors(batch, bindings), stream, input_consumed,
                                      timed)
            except CaptureError as exc:
                self.failure = str(exc)
                self.close()
                return False
            slots.append(graph)
        self.graphs[key] = slots
        self.graphs.move_to_end(key)
        self._evict()
        if timed:
            graph.free.clear()
        self._launch(graph, stream, call)
        if timed:
            report_graph_times(self.profiling, self.loop.desc, call, graph, stream, sync)
        self.replays += 1
        self.last_launched = graph
        return True

    def _launch(self, graph: CapturedGraph, stream: Any, call: Any) -> None:
        hooks = call.hooks
        for h in hooks:
            h.graph_enter(call.context, graph)
        graph.launch(stream.raw.ptr)
        for h in reversed(hooks):
            h.graph_exit(call.context, graph)

    def _slot(self, slots: list, rotate: bool) -> CapturedGraph | None:
        for g in slots:
            if g.free.is_set():
                return g
        if not slots or (rotate and len(slots) < TIMED_SLOTS):
            return None
        oldest = min(slots, key=lambda g: g.launches)
        oldest.free.wait()                      # its stamps are read by the resolver thread first
        return oldest

    def _evict(self) -> None:
        while len(self.graphs) > MAX_GRAPHS:
            _, slots = self.graphs.popitem(last=False)
            self.wait_pending()
            for g in slots:
                g.free.wait()
                g.close()

    def close(self) -> None:
        for slots in self.graphs.values():
            for g in slots:
                g.free.wait()
                g.close()
        self.graphs.clear()
        self.seen.clear()

    def _capture(self, key: tuple, batch: int, tensors: dict, stream: Any, input_consumed: Any,
                 timed: bool) -> CapturedGraph:
        import cupy
        from cuda.bindings import driver as cu
        loop = self.loop
        rt = cupy.cuda.runtime
        s = stream.raw
        t0 = time.perf_counter()
        n = len(loop)
        stamps = self.device.pinned_empty((n + 1,), np.uint64) if timed else None
        side = fork = None
        if stamps is not None:
            # stamps go on a side branch of the graph: each depends on the last node of the layer
            # before it, but the next layer does not wait for it, so they cost the layers nothing
            stamps[...] = 0
            stamp = stamper(stamps.ctypes.data)
            # highest priority: a stamp's single block is dispatched before blocks of the next layer
            # that are still waiting (the priority is captured into the node; see _instantiate)
            top = int(cu.cuCtxGetStreamPriorityRange()[2])
            side = cupy.cuda.Stream(non_blocking=True, priority=top)
            fork = cupy.cuda.Event(disable_timing=True)

            def mark(i: int) -> None:
                if i == 0:                      # in line: the first layer starts right after it
                    stamp(0)
                    return
                fork.record(s)                  # a dependency inside the capture, not an event node
                side.wait_event(fork)
                with side:
                    stamp(i)
        else:
            def mark(i: int) -> None:
                return None
        keeper = _Keeper(self.allocator, f"{self.owner}/graph")
        # a private pool: temporaries freed during the capture are reused later in the same capture
        # (the replay keeps that order), and nothing outside this graph ever gets its blocks
        pool = cupy.cuda.MemoryPool(keeper)
        layer_nodes: list = []
        seen: set = set()
        stream.synchronize()                    # nothing of ours may be in flight on the capturing stream
        failure = None
        s.begin_capture()
        try:
            with stream, cupy.cuda.using_allocator(pool.malloc):
                if input_consumed is not None and loop.last_input_reader < 0:
                    _record(cu, input_consumed.raw.ptr, s.ptr)
                mark(0)
                markers = _new_nodes(cu, s.ptr, seen)
                for i in range(n):
                    loop.run_step(i, batch, tensors, None)
                    layer_nodes.append(_new_nodes(cu, s.ptr, seen))
                    if input_consumed is not None and i == loop.last_input_reader:
                        _record(cu, input_consumed.raw.ptr, s.ptr)
                    mark(i + 1)
                    markers += _new_nodes(cu, s.ptr, seen)      # profiling's own nodes belong to no layer
                if side is not None:                            # join the branch before the capture ends
                    fork.record(side)
                    s.wait_event(fork)
        except Exception as exc:
            failure = f"layer {getattr(loop.steps[len(layer_nodes)], 'name', '?')!r} cannot be captured " \
                      f"into a CUDA graph ({type(exc).__name__}: {str(exc)[:200]})" \
                if len(layer_nodes) < n else f"capture failed ({type(exc).__name__}: {exc})"
        finally:
            set_current_layer("")
            try:
                graph_ptr = rt.streamEndCapture(s.ptr)
            except Exception as exc:
                graph_ptr = 0
                failure = failure or f"capture failed ({type(exc).__name__}: {exc})"
        if failure is not None:
            if graph_ptr:
                rt.graphDestroy(graph_ptr)
            pool.free_all_blocks()
            keeper.release()
            raise CaptureError(failure)
        try:
            exec_ptr = _instantiate(cu, graph_ptr)
        except Exception as exc:
            rt.graphDestroy(graph_ptr)
            keeper.release()
            raise CaptureError(f"the captured graph could not be instantiated ({exc})") from None
        ms = (time.perf_counter() - t0) * 1e3
        self.captures += 1
        self.capture_ms += ms
        keeper.pool = pool
        graph = CapturedGraph(key, exec_ptr, graph_ptr, layer_nodes, keeper, ms, stamps,
                              self.device.create_event() if timed else None)
        graph.marker_nodes = [h for h, _ in markers]
        return graph


def _instantiate(cu: Any, graph_ptr: int) -> int:
    """An executable graph that honours the priority captured into each kernel node."""
    err, exe = cu.cuGraphInstantiate(cu.CUgraph(graph_ptr), _USE_NODE_PRIORITY)
    if int(err):
        raise RuntimeError(f"cuGraphInstantiate failed: {err}")
    return int(exe)


def _record(cu: Any, event_ptr: int, stream_ptr: int) -> None:
    """An event record that stays an event record when replayed (not a capture-internal dependency)."""
    (err,) = cu.cuEventRecordWithFlags(cu.CUevent(event_ptr), cu.CUstream(stream_ptr), _EVENT_RECORD_EXTERNAL)
    if int(err):
        raise RuntimeError(f"cuEventRecordWithFlags failed: {err}")


def _new_nodes(cu: Any, stream_ptr: int, seen: set) -> list:
    """Nodes added to the graph under capture since the last call: [(node handle, kind)]."""
    info = cu.cuStreamGetCaptureInfo(cu.CUstream(stream_ptr))
    graph = next((x for x in info[1:] if isinstance(x, cu.CUgraph)), None)
    if graph is None:
        return []
    err, _, count = cu.cuGraphGetNodes(graph, 0)
    err, nodes, count = cu.cuGraphGetNodes(graph, count)
    out = []
    for nd in nodes[:count]:
        h = int(nd)
        if h in seen:
            continue
        seen.add(h)
        _, t = cu.cuGraphNodeGetType(nd)
        out.append((h, getattr(t, "name", str(t)).replace("CU_GRAPH_NODE_TYPE_", "").lower()))
    return out
