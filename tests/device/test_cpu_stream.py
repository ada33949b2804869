"""The CPU stream keeps the guide's asynchronous semantics: ordered, non-blocking, events with times."""
import threading
import time

import pytest

import perfkit as pk
from oracles import assert_close, depth, reference_forward


def test_stream_runs_in_order_without_blocking_the_caller():
    dev = pk.get_device("cpu")
    s = dev.create_stream()
    gate = threading.Event()
    seen = []
    s.submit(gate.wait)
    for i in range(5):
        s.submit(lambda i=i: seen.append(i))
    assert seen == [] and not s.query()       # the caller did not wait
    gate.set()
    s.synchronize()
    assert seen == [0, 1, 2, 3, 4] and s.query()


def test_events_record_when_the_stream_reaches_them():
    dev = pk.get_device("cpu")
    s = dev.create_stream()
    start, end = dev.create_event(), dev.create_event()
    start.record(s)
    s.submit(lambda: time.sleep(0.03))
    end.record(s)
    assert dev.elapsed_ms(start, end) >= 25
    assert start.ts_ns <= end.ts_ns


def test_wait_event_orders_two_streams():
    dev = pk.get_device("cpu")
    a, b = dev.create_stream(), dev.create_stream()
    seen = []
    a.submit(lambda: (time.sleep(0.02), seen.append("a")))
    e = dev.create_event()
    e.record(a)
    b.wait_event(e)
    b.submit(lambda: seen.append("b"))
    b.synchronize()
    assert seen == ["a", "b"]


def test_errors_surface_at_synchronize_and_the_stream_survives():
    s = pk.get_device("cpu").create_stream()
    s.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        s.synchronize()
    out = []
    s.submit(lambda: out.append(1))
    s.synchronize()
    assert out == [1]


def test_get_device():
    assert pk.get_device("cpu") is pk.get_device("CPU")
    assert pk.get_device(None).kind in ("cpu", "cuda")
    with pytest.raises(pk.DeviceError, match="unknown device"):
        pk.get_device("tpu")
    if not pk.cuda_available():
        with pytest.raises(pk.DeviceError):
            pk.get_device("cuda")
        assert pk.get_device("auto").kind == "cpu"


def test_close_waits_for_the_work_and_refuses_more():
    s = pk.get_device("cpu").create_stream()
    seen = []
    s.submit(lambda: (time.sleep(0.02), seen.append(1)))
    s.close()
    assert seen == [1] and s.closed
    with pytest.raises(pk.ExecutionError, match="was closed; create a new one"):
        s.submit(lambda: seen.append(2))
    s.synchronize()                 # still answers
    assert seen == [1]


def test_a_context_closes_the_streams_it_created():
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    ctx = eng.create_execution_context()
    net = pk.models.mnist_mlp()
    x = pk.models.sample_input(net, 2, seed=0)
    out = ctx.enqueue(x)                            # on the context's default stream
    default = ctx._default_stream
    ctx.close()
    assert default.closed
    assert_close(out["prob"], reference_forward(net, x)["prob"], "fp32", depth=depth(net))   # ran before the close
    ctx.close()                                     # closing twice does nothing
    with pytest.raises(pk.ExecutionError, match="was closed"):
        ctx.execute({"data": x})


def test_streams_share_a_few_worker_threads():
    """Streams hold no thread of their own: 300 streams with work in turn use the shared pool."""
    dev = pk.get_device("cpu")
    before = threading.active_count()
    for _ in range(300):
        s = dev.create_stream()
        s.submit(lambda: None)
        s.synchronize()
    assert threading.active_count() - before < 5
