"""A profiler that raises is never silenced: the context raises ProfilerError (wrapping the original)
on its next call, ``profile`` at its exit; ``profile`` times no baseline after the user's block raised."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host


class Broken:
    def __init__(self):
        self.calls = 0

    def report_layer_time(self, layer_name, ms):
        self.calls += 1
        raise RuntimeError("disk full")


@pytest.fixture
def setup(device):
    net = pk.models.mnist_mlp()
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4))
    x = pk.models.sample_input(net, 4, seed=3)["data"]
    expected = to_host(eng.create_execution_context().execute({"data": x})["prob"])
    return eng, x, expected


def _check(err, prof):
    assert isinstance(err.value, pk.PerfkitError)
    assert isinstance(err.value.__cause__, RuntimeError) and "disk full" in str(err.value.__cause__)
    assert prof.calls == 1          # reported once, then kept until it surfaced


def test_execute_with_a_raising_profiler(setup):
    eng, x, expected = setup
    ctx = eng.create_execution_context()
    ctx.profiler = prof = Broken()
    out = ctx.execute({"data": x})["prob"]          # the inference itself succeeded
    np.testing.assert_array_equal(to_host(out), expected)
    ctx.profiler = None
    with pytest.raises(pk.ProfilerError, match="profiler Broken raised RuntimeError in report_layer_time") as err:
        ctx.execute({"data": x})
    _check(err, prof)
    np.testing.assert_array_equal(to_host(ctx.execute({"data": x})["prob"]), expected)   # raised once


def test_enqueue_with_a_raising_profiler_surfaces_on_the_next_call(setup, device):
    eng, x, expected = setup
    ctx = eng.create_execution_context()
    ctx.profiler = prof = Broken()
    s = device.create_stream()
    out = ctx.enqueue({"data": device.to_device(x)}, s)["prob"]
    s.synchronize()                                 # the stream's work did not fail
    np.testing.assert_array_equal(to_host(out), expected)
    with pytest.raises(pk.ProfilerError, match="Broken") as err:
        ctx.wait_profiles()
    _check(err, prof)


def test_profile_raises_the_profiler_error_at_exit(setup, device):
    eng, x, expected = setup
    ctx = eng.create_execution_context()
    ctx.profiler = prof = Broken()
    s = device.create_stream()
    with pytest.raises(pk.ProfilerError, match="Broken") as err:
        with pk.profile(ctx, layers=False, memory=False, gpu_metrics=False):
            ctx.enqueue({"data": device.to_device(x)}, s)
    _check(err, prof)
    assert ctx.profiler is prof and ctx.observers == []     # the context was restored


def test_profile_skips_the_baseline_when_the_block_raised(setup):
    eng, x, expected = setup
    ctx = eng.create_execution_context()
    calls = []
    real = ctx.execute

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    ctx.execute = counting
    with pytest.raises(ValueError, match="the user's own failure"):
        with pk.profile(ctx, memory=False, gpu_metrics=False) as run:
            ctx.execute({"data": x})
            raise ValueError("the user's own failure")
    assert len(calls) == 1 and "e2e_unprofiled_ms" not in run.meta
    assert any("profiled block raised" in m for m in run.messages)
    with pk.profile(ctx, memory=False, gpu_metrics=False) as run:    # without a failure it runs
        ctx.execute({"data": x})
    assert len(calls) > 2 and run.meta["e2e_unprofiled_ms"] > 0
