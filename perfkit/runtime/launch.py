"""How one call of an execution context runs: its record (:class:`Call`), the engine's steps bound to
the context (:class:`StepLoop`), the order of the context's own work across streams
(:class:`Pending`), and the choice of launch path (:class:`Launcher`): a CUDA-graph replay
(``cuda_graph.py``), the profiled step loop (``profiled.py``), or the plain step loop.

These are the interface ``profiled.py`` and ``cuda_graph.py`` use; neither sees the context itself.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ..device.memory import set_current_layer
from ..errors import ExecutionError, PerfkitError
from ..ops import get_op


class Call:
    """One query of a context: its id (counted per context from 0), kind ("execute" or "enqueue"),
    batch, stream, host times of submission, and the profiler and step hooks it was submitted with.
    The id travels through the (profiled) step loop, so every layer time names the query it belongs to."""

    __slots__ = ("context", "query", "kind", "batch", "stream", "t0_ns", "t1_ns", "profiler", "hooks")

    def __init__(self, context: Any, query: int, kind: str, profiler: Any, hooks: list) -> None:
        self.context, self.query, self.kind, self.profiler, self.hooks = context, query, kind, profiler, hooks
        self.batch, self.stream, self.t0_ns, self.t1_ns = 0, None, time.perf_counter_ns(), 0

    @property
    def profiled(self) -> bool:
        return self.profiler is not None or bool(self.hooks)


class StepLoop:
    """The engine's steps, each with its op and weights, run against one context's tensors.

    ``steps``: the plan's steps (``name``, ``type``, ``precision``, ``inputs``, ``outputs``, ...);
    ``desc``: (name, type, precision) per step; ``last_input_reader``: the index of the last step
    that reads an engine input (-1 if none), after which ``input_consumed`` fires.
    ``run_step(i, ...)`` runs step i and names the layer in any error; ``run(...)`` runs them all.
    """

    def __init__(self, engine: Any, env: Any) -> None:
        plan = engine.plan
        self.xp = engine.device.xp
        self.env = env
        self.steps = list(plan.steps)
        self.desc = [(s.name, s.type, s.precision) for s in plan.steps]
        self._bound = [(get_op(s.type), {k: engine.weights[v] for k, v in s.weights.items()}) for s in plan.steps]
        inputs = set(plan.inputs)
        readers = [i for i, s in enumerate(plan.steps) if inputs & set(s.inputs)]
        self.last_input_reader = max(readers) if readers else -1

    def __len__(self) -> int:
        return len(self.steps)

    def run_step(self, i: int, batch: int, tensors: dict, consumed: Callable[[], None] | None) -> None:
        """Runs (CPU) or launches (CUDA, on the current stream) step ``i``; calls ``consumed`` after the
        last step that reads an input."""
        s = self.steps[i]
        op, weights = self._bound[i]
        env = self.env
        env.reset_scratch()
        set_current_layer(s.name)
        outs = [tensors[t] for t in s.outputs]
        try:
            op.compute(env, [tensors[t] for t in s.inputs], outs, s.params, weights)
        except Exception as exc:
            set_current_layer("")
            kind = s.type if s.type != "plugin" else f"plugin {s.params.get('plugin')!r}"
            why = str(exc) if isinstance(exc, PerfkitError) else f"{type(exc).__name__}: {exc}"
            raise ExecutionError(f"layer {s.name!r} ({kind}) failed at batch {batch}: {why}") from exc
        if i == self.last_input_reader and consumed is not None:
            consumed()

    def run(self, batch: int, tensors: dict, consumed: Callable[[], None] | None) -> None:
        if self.last_input_reader < 0 and consumed is not None:
            consumed()
        for i in range(len(self.steps)):
            self.run_step(i, batch, tensors, consumed)
        set_current_layer("")


class Pending:
    """The context's work queued on streams, in order: each ``enqueue`` on a stream other than the
    last one first makes that stream wait for the context's earlier work (bound to the done event's
    record at that moment, as ``cudaStreamWaitEvent`` is), then records the done event after its own."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self._event: Any = None
        self._stream: Any = None

    def order(self, stream: Any) -> None:
        """Makes ``stream`` wait for the context's work queued on other streams."""
        if self._event is None:
            self._event = self.device.create_event()
        elif self._stream is not None and self._stream is not stream and not self._event.query():
            stream.wait_event(self._event)

    def queued(self, stream: Any) -> None:
        """The context's latest work is on ``stream``."""
        self._event.record(stream)
        self._stream = stream

    def in_flight(self) -> bool:
        return self._stream is not None and not self._event.query()

    def wait(self) -> None:
        """Waits for all of it; errors stay with the streams (``stream.synchronize`` raises them)."""
        if self._stream is not None:
            self._event.synchronize()
            self._stream = None


class Launcher:
    """Picks the launch path of each call: a CUDA-graph replay when the context has graphs on and the
    runner accepts the call, else the profiled step loop when the call has a profiler or step hooks,
    else the plain step loop."""

    def __init__(self, device: Any, loop: StepLoop, buffers: Any, profiling: Any, graphs: Any) -> None:
        self.cuda = device.kind != "cpu"
        self.loop, self.buffers, self.profiling, self.graphs = loop, buffers, profiling, graphs
        self.use_graphs = graphs is not None

    def launch(self, call: Call, bindings: dict, stream: Any, input_consumed: Any, sync: bool) -> None:
        """Runs (CPU) or launches (CUDA, on ``stream``) every step for ``call.batch`` samples. On the CPU
        ``input_consumed`` is the function that reaches the event (``CpuEvent.arm``); on CUDA the event."""
        batch = call.batch
        if self.cuda:
            if self.use_graphs and self.graphs is not None and \
                    self.graphs.run(call, batch, bindings, stream, input_consumed, sync):
                return                          # replayed: no step loop, no per-call tensor views
            consumed = None if input_consumed is None else (lambda: input_consumed.record(stream))
        else:
            consumed = input_consumed
        tensors = self.buffers.tensors(batch, bindings)
        with (stream if self.cuda else _nothing):
            if call.profiled:
                from .profiled import launch_profiled
                launch_profiled(self.loop, self.profiling, call, tensors, stream, consumed, sync)
            else:
                self.loop.run(batch, tensors, consumed)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_nothing = _Nothing()
