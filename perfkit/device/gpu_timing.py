"""GPU time of a piece of work, without the host's launch time in it (the builder's tactic timing on CUDA).

Timed from the host between two synchronisations, a layer at batch 1 measures mostly its launch: Python,
the library calls, the synchronisation itself (tens of microseconds on an H200, for kernels of a few). In
graph mode none of that is paid per layer, so such timings choose for the wrong cost: a tactic of two small
kernels loses to one of one large kernel, a float16 layer with its two reformat kernels to a float32 one.

:func:`gpu_ms` holds the stream with a *spin kernel* (one thread that waits on the GPU's globaltimer), queues
a start event, the work and an end event behind it, and reads the time between the events: the GPU reaches
the start event only once everything up to the end event is queued, so the interval is the work's own GPU
time, back to back, as a graph replays it. If the host was still queueing when the spin ended (the start
event was reached before ``run`` returned), the wait doubles and the sample is taken again; after
:data:`RETRIES` tries the last sample stands (work that synchronises inside ``run`` cannot be hidden). The
wait halves again when the host queued in less than a quarter of it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

RETRIES = 3
#: the first wait; it grows (to at most :data:`MAX_WAIT_NS`) when a layer's launch takes longer
FIRST_WAIT_NS = 200_000
MAX_WAIT_NS = 50_000_000

_SPIN_SRC = r"""
extern "C" __global__ void perfkit_spin(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
"""
_state: dict = {"wait_ns": FIRST_WAIT_NS}


def _spin_kernel() -> Any:
    k = _state.get("kernel")
    if k is None:
        import cupy
        k = _state["kernel"] = cupy.RawKernel(_SPIN_SRC, "perfkit_spin")
    return k


def gpu_ms(run: Callable[[], None], device: Any) -> float:
    """Milliseconds of GPU time of one ``run()`` on the current stream of ``device`` (a CUDA device),
    with the host's launch time hidden behind a spin kernel."""
    import cupy
    import numpy as np
    spin = _spin_kernel()
    stream = cupy.cuda.get_current_stream()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    ms = 0.0
    for _ in range(RETRIES):
        device.synchronize()
        wait = _state["wait_ns"]
        t0 = time.perf_counter_ns()
        spin((1,), (1,), (np.uint64(wait),))
        start.record(stream)
        run()
        hidden = not start.done             # the GPU was still spinning when the work was queued
        end.record(stream)
        host_ns = time.perf_counter_ns() - t0
        end.synchronize()
        ms = cupy.cuda.get_elapsed_time(start, end)
        if hidden:
            if 4 * host_ns < wait:              # a long wait, needed once, is not kept for every layer after
                _state["wait_ns"] = max(FIRST_WAIT_NS, wait // 2)
            return ms
        _state["wait_ns"] = min(MAX_WAIT_NS, max(2 * wait, 2 * host_ns))
    return ms
