"""GPU time of a piece of work, without the host's launch time in it (the builder's tactic timing on CUDA).

Timed from the host between two synchronisations, a layer at batch 1 measures mostly its launch: Python,
the library calls, the synchronisation itself (tens of microseconds on an H200, for kernels of a few). In
graph mode none of that is paid per layer, so such timings choose for the wrong cost: a tactic of two small
kernels loses to one of one large kernel, a float16 layer with its two reformat kernels to a float32 one.

:func:`gpu_ms` holds the stream with a *spin kernel* (one thread that waits on the GPU's globaltimer), queues
a start event, the work and an end event behind it, and reads the time between the events: the GPU reaches
the start event only once everything up to the end event is queued, so the interval is the work's own GPU
time, back to back, as a graph replays it. If the host was still queueing when the spin ended (the start
event was reached before the end event was queued), the wait grows to twice the host's time and the sample
is taken again. Work that synchronises inside ``run`` cannot be hidden: when a longer wait did not help, the
last sample stands and the wait returns to what it was. The wait halves again when the host queued in less
than a quarter of it. Builds timing on one GPU from several threads at once disturb each other's figures
(the spin and the work share the device), as they always did.
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
    before = _state["wait_ns"]
    ms = 0.0
    for attempt in range(RETRIES):
        device.synchronize()
        wait = _state["wait_ns"]
        t0 = time.perf_counter_ns()
        spin((1,), (1,), (np.uint64(wait),))
        start.record(stream)
        run()
        end.record(stream)
        hidden = not start.done             # still spinning once the end event was queued: no host gap inside
        host_ns = time.perf_counter_ns() - t0
        end.synchronize()
        ms = cupy.cuda.get_elapsed_time(start, end)
        if hidden:
            if 4 * host_ns < wait:              # a long wait, needed once, is not kept for every layer after
                _state["wait_ns"] = max(FIRST_WAIT_NS, wait // 2)
            return ms
        if attempt and host_ns >= wait:
            # a longer wait did not help: run() waits for the GPU itself (it synchronises), and no wait can
            # hide that; the last sample stands and the wait goes back to what it was
            _state["wait_ns"] = before
            return ms
        _state["wait_ns"] = min(MAX_WAIT_NS, max(2 * wait, 2 * host_ns))
    return ms
