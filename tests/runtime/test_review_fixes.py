"""Defects a review of issue 8's concurrency and lifetime work found: each test failed before its fix."""
import threading

import numpy as np
import pytest

import perfkit as pk


def _mnist(batch=4):
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=batch, tactics="default"))
    return net, eng


def test_enqueue_on_a_closed_stream_is_refused_and_leaves_the_event_reachable():
    net, eng = _mnist()
    ctx = eng.create_execution_context()
    dev = eng.device
    stream = dev.create_stream()
    stream.close()
    ev = dev.create_event()
    x = pk.models.sample_input(net, 2)
    with pytest.raises(pk.BindingError, match="was closed"):
        ctx.enqueue(x, stream, input_consumed=ev)
    with pytest.raises(pk.ExecutionError):
        ev.record(stream)                       # a record that cannot be queued ...
    assert ev.query()                           # ... leaves nothing waiting for it
    ev.synchronize(timeout=1.0)
    ref = ctx.execute(x)                        # and the context still runs
    np.testing.assert_array_equal(ctx.execute(x)["prob"], ref["prob"])


def test_closing_a_context_ends_its_profile_resolver_thread():
    net, eng = _mnist()
    x = pk.models.sample_input(net, 2)
    before = sum(t.name == "perfkit-profile-resolver" for t in threading.enumerate())
    for _ in range(20):
        ctx = eng.create_execution_context()
        ctx._profiling.later(lambda: None)      # what a profiled enqueue on CUDA hands the resolver
        ctx.execute(x)
        ctx.close()
    for t in [t for t in threading.enumerate() if t.name == "perfkit-profile-resolver"]:
        t.join(timeout=2.0)
    after = sum(t.name == "perfkit-profile-resolver" for t in threading.enumerate())
    assert after == before, f"{after - before} resolver threads outlived their contexts"


class _RaisingHook:
    def enter(self, i, step):
        if i == 1:
            raise RuntimeError("hook broke")

    def exit(self, i, step):
        return None


def test_a_raising_step_hook_is_a_profiler_error_and_the_context_recovers():
    from perfkit.device.memory import current_layer
    net, eng = _mnist()
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 2)
    ref = ctx.execute(x)
    ctx.step_hooks = [_RaisingHook()]
    with pytest.raises(pk.ProfilerError, match="_RaisingHook") as info:
        ctx.execute(x)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert current_layer() == ""                # no layer left "running" on this thread
    ctx.step_hooks = []
    np.testing.assert_array_equal(ctx.execute(x)["prob"], ref["prob"])


def test_a_rejected_call_takes_no_query_id():
    net, eng = _mnist()
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 2)
    timer = pk.LayerTimer()
    ctx.profiler = timer
    ctx.execute(x)
    with pytest.raises(pk.BindingError):
        ctx.execute({"nope": x["data"]})
    ctx.execute(x)
    assert [q for _, _, q in timer.queries()] == [0, 1]       # the context's query ids, as reported


def test_an_engine_with_open_contexts_refuses_to_close_and_a_closed_one_makes_none():
    net, eng = _mnist()
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 2)
    ref = ctx.execute(x)
    with pytest.raises(pk.ExecutionError, match="open execution context"):
        eng.close()
    np.testing.assert_array_equal(ctx.execute(x)["prob"], ref["prob"])     # nothing was freed
    ctx.close()
    eng.close()
    with pytest.raises(pk.ExecutionError, match="was closed"):
        eng.create_execution_context()
