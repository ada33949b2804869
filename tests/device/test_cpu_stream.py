"""The CPU stream keeps the guide's asynchronous semantics: ordered, non-blocking, events with times."""
import threading
import time

import pytest

import perfkit as pk


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
