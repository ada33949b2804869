"""Buffers, allocators, device copies, the Engine and ExecutionContext constructors and LayerTimer
refuse bad arguments with a PerfkitError that names the fix, and a refused call changes nothing."""
from __future__ import annotations

import math

import numpy as np
import pytest

import perfkit as pk
from perfkit.errors import AllocationError, ArgumentError


@pytest.fixture(scope="module")
def cpu():
    return pk.get_device("cpu")


@pytest.mark.parametrize("make", [pk.CountingAllocator, pk.TrackingAllocator])
def test_free_of_a_buffer_never_allocated_is_refused_and_changes_nothing(cpu, make):
    alloc = make(cpu.allocator)
    kept = alloc.allocate(64)
    held = alloc.in_use_bytes
    with pytest.raises(ArgumentError, match="not allocated by this allocator"):
        alloc.free(pk.Buffer(np.zeros(8, np.uint8), "cpu"))
    with pytest.raises(ArgumentError):
        alloc.free(None)
    assert alloc.in_use_bytes == held == kept.nbytes
    alloc.free(kept)
    with pytest.raises(ArgumentError, match="freed already"):     # a second free of the same block
        alloc.free(kept)
    assert alloc.in_use_bytes == 0


@pytest.mark.parametrize("make", [pk.CountingAllocator, pk.TrackingAllocator])
@pytest.mark.parametrize("size, alignment, flags, words", [
    (-1, 256, 0, "size"), (True, 256, 0, "size"), (2.0, 256, 0, "size"), (64, 100, 0, "power of two"),
    (64, 0, 0, "alignment"), (64, 256, -1, "flags"), (64, 256, None, "flags")])
def test_allocate_refuses_bad_requests(cpu, make, size, alignment, flags, words):
    alloc = make(cpu.allocator)
    with pytest.raises(ArgumentError, match=words):
        alloc.allocate(size, alignment, flags)
    assert alloc.in_use_bytes == 0


def test_counting_allocator_turns_an_impossible_size_into_an_allocation_error(cpu):
    alloc = pk.CountingAllocator(cpu.allocator)
    with pytest.raises(AllocationError, match="ask for"):
        alloc.allocate(10 ** 15)
    assert alloc.in_use_bytes == 0 and alloc.peak_bytes == 0


@pytest.mark.parametrize("make", [pk.CountingAllocator, pk.TrackingAllocator])
def test_allocators_need_an_allocator_as_base(make):
    with pytest.raises(ArgumentError, match="allocate"):
        make(object())


def test_record_external_refuses_bad_values_and_the_events_stay_readable():
    tracker = pk.TrackingAllocator()
    for kw in ({"action": "grow"}, {"size": math.nan}, {"size": -8}, {"ptr": 1.5}, {"tag": None}):
        args = {"action": "alloc", "ptr": 1, "size": 8, "tag": "user", **kw}
        with pytest.raises(ArgumentError):
            tracker.record_external(**args)
    tracker.record_external("alloc", 1, 8)
    events = tracker.events_since(0)
    assert list(events["size_bytes"]) == [8] and tracker.in_use_bytes == 8
    with pytest.raises(ArgumentError, match="mark"):
        tracker.events_since(-1)


def test_tracking_allocator_checks_max_events():
    with pytest.raises(ArgumentError, match="max_events"):
        pk.TrackingAllocator(max_events=0)


def test_buffer_checks_its_array_and_kind():
    with pytest.raises(ArgumentError, match="uint8"):
        pk.Buffer(np.zeros(4), "cpu")
    with pytest.raises(ArgumentError, match="device_kind"):
        pk.Buffer(np.zeros(4, np.uint8), "gpu")


@pytest.mark.parametrize("offset, shape, dtype, words", [
    (1, (4,), "float32", "multiple"), (0, (100,), "float32", "do not fit"), (0, (2.5,), "float32", "dimension"),
    (0, (), "float32", "non-empty"), (0, (4,), "nope", "data type"), (0, (4,), object, "not numeric"),
    (-4, (1,), "float32", "offset")])
def test_buffer_view_stays_inside_the_buffer(offset, shape, dtype, words):
    buf = pk.Buffer(np.zeros(64, np.uint8), "cpu")
    with pytest.raises(ArgumentError, match=words):
        buf.view(offset, shape, dtype)
    v = buf.view(4, (3,), "float32")
    assert v.shape == (3,) and v.dtype == np.float32 and np.shares_memory(v, buf.array)


def test_engine_constructor_refuses_before_allocating(cpu):
    net = pk.models.mlp((4, 3, 2), seed=1, name="tiny")
    engine = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    tracker = pk.TrackingAllocator(cpu.allocator)
    weights = engine.host_weights()
    bad = {k: v.astype(np.float64) for k, v in weights.items()}
    for args, words in (((engine.plan, {}, cpu, tracker), "lacks"), ((engine.plan, bad, cpu, tracker), "plan says"),
                        (("plan", weights, cpu, tracker), "EnginePlan"), ((engine.plan, weights, "cpu", tracker),
                                                                          "Device"),
                        ((engine.plan, weights, cpu, "x"), "allocator")):
        with pytest.raises(ArgumentError, match=words):
            pk.Engine(*args)
    assert tracker.mark() == 0              # nothing was allocated by the refused calls
    again = pk.Engine(engine.plan, weights, cpu, tracker)
    x = pk.models.sample_input(net, 2)
    np.testing.assert_array_equal(again.create_execution_context().execute(x)["output"],
                                  engine.create_execution_context().execute(x)["output"])


def test_execution_context_needs_an_engine():
    with pytest.raises(ArgumentError, match="Engine"):
        pk.ExecutionContext(pk.models.mlp((4, 3, 2), seed=1), "c")


def test_cpu_copies_check_stream_and_out(cpu):
    with pytest.raises(ArgumentError, match="shape"):
        cpu.to_device(np.ones(3), out=np.empty(5))
    with pytest.raises(ArgumentError, match="stream"):
        cpu.to_host(np.ones(3), stream="s")
    with pytest.raises(ArgumentError, match="numbers"):
        cpu.to_device("abc")
    with pytest.raises(ArgumentError, match="numbers"):
        cpu.to_device([[1.0], [1.0, 2.0]])
    out = np.zeros(3, np.float32)
    assert cpu.to_host(np.arange(3.0), out=out) is out and list(out) == [0.0, 1.0, 2.0]


def test_elapsed_ms_and_pinned_empty_check_their_arguments(cpu):
    e = cpu.create_event()
    e.record()
    with pytest.raises(ArgumentError, match="event"):
        cpu.elapsed_ms(None, e)
    with pytest.raises(ArgumentError, match="dimension"):
        cpu.pinned_empty((2.5,))
    with pytest.raises(ArgumentError, match="dtype"):
        cpu.pinned_empty((3,), "nope")
    with pytest.raises(AllocationError, match="smaller"):
        cpu.pinned_empty((10 ** 13,), np.float32)
    assert cpu.pinned_empty((2, 3), "float16").shape == (2, 3)


@pytest.mark.parametrize("name, ms", [(None, 1.0), ("fc", math.nan), ("fc", -1.0), ("fc", math.inf), ("fc", True),
                                      ("fc", "1")])
def test_report_layer_time_refuses_bad_values(name, ms):
    timer = pk.LayerTimer()
    with pytest.raises(ArgumentError):
        timer.report_layer_time(name, ms)
    timer.report_layer_time("fc", 2)
    assert timer.plain_reports == [("fc", 2.0)]


def test_record_inference_checks_rows_and_a_profiled_run_still_records():
    timer = pk.LayerTimer()

    class Ctx:
        name = "c"
    for kw in ({"layers": [("fc1",)]}, {"layers": [(0, "fc1", "fc", "fp32", 10, 5)]}, {"batch": 0},
               {"clock": "wall"}, {"query": -1}, {"context": "c"}):
        args = {"context": Ctx(), "batch": 1, "stream": "s", "clock": "host",
                "layers": [(0, "fc1", "fc", "fp32", 5, 10)], **kw}
        with pytest.raises(ArgumentError):
            timer.record_inference(**args)
    assert timer.iterations == 0
    net = pk.models.mlp((4, 3, 2), seed=1, name="tiny")
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context()
    ctx.profiler = timer
    ctx.execute(pk.models.sample_input(net, 2))
    assert timer.iterations == 1 and list(timer.frame["layer"]) == [s.name for s in ctx.engine.plan.steps]


def test_calibrate_event_cost_takes_a_device_spec():
    ns = pk.profiling.calibrate_event_cost("cpu", samples=5)
    assert isinstance(ns, float) and ns > 0
