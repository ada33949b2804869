"""The concurrency matrix (issue 8): one context on two streams, several contexts per stream, execute
and enqueue mixed under a profiler, 32 threads with a context each, one context shared by threads.
Every piece of work runs in a thread joined with a timeout, so a deadlock fails in seconds."""
import threading

import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host

TIMEOUT_S = 30.0


def within(fn, timeout=TIMEOUT_S):
    """Runs ``fn`` on a daemon thread; fails the test if it has not returned after ``timeout`` s."""
    box = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as exc:      # re-raised on the test's thread
            box["error"] = exc
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} did not finish within {timeout} s (deadlock?)"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture(scope="module")
def mnist_cpu():
    return _mnist(pk.get_device("cpu"))


def _mnist(dev):
    net = pk.models.mnist_mlp()
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=8))
    xs = [pk.models.sample_input(net, 8, seed=i)["data"] for i in range(4)]
    ref = eng.create_execution_context()
    expected = [to_host(ref.execute({"data": x})["prob"]).copy() for x in xs]
    ref.close()
    return eng, [dev.to_device(x) for x in xs], expected


def _out(dev):
    return dev.xp.empty((8, 10), np.float32)


@pytest.fixture
def mnist(device, mnist_cpu):
    return mnist_cpu if device.kind == "cpu" else _mnist(device)


def test_one_context_two_streams_alternating(device, mnist):
    """400 enqueues of one context alternating between two streams, from one thread: every output is
    right and nothing hangs (the context orders its own buffer reuse across streams)."""
    eng, xs, expected = mnist
    ctx = eng.create_execution_context()
    a, b = device.create_stream(), device.create_stream()

    def run():
        outs = []
        for i in range(400):
            res = ctx.enqueue({"data": xs[i % 4], "prob": _out(device)}, a if i % 2 == 0 else b)
            outs.append((i % 4, res["prob"]))
        a.synchronize()
        b.synchronize()
        return [i for i, (k, o) in enumerate(outs) if not np.array_equal(to_host(o), expected[k])]
    wrong = within(run)
    assert wrong == [], f"{len(wrong)} of 400 outputs wrong, first at {wrong[:5]}"


def test_enqueue_on_a_then_b_does_not_wait_for_its_own_mark(device, mnist):
    """enqueue(x, A); enqueue(x, B): B waits for A's work only, never for its own later record of the
    context's done event; the context's own outputs hold B's result."""
    eng, xs, expected = mnist
    ctx = eng.create_execution_context()
    for i in range(30):
        a, b = device.create_stream(), device.create_stream()

        def pair():
            ctx.enqueue({"data": xs[0]}, a)
            out = ctx.enqueue({"data": xs[1]}, b)
            b.synchronize()
            return to_host(out["prob"])
        np.testing.assert_array_equal(within(pair, 10.0), expected[1])


def test_several_contexts_per_stream(device, mnist):
    eng, xs, expected = mnist
    ctxs = [eng.create_execution_context() for _ in range(4)]
    s = device.create_stream()

    def run():
        outs = []
        for i in range(120):
            outs.append((i % 4, ctxs[i % 4].enqueue({"data": xs[i % 4], "prob": _out(device)}, s)["prob"]))
        s.synchronize()
        return sum(not np.array_equal(to_host(o), expected[k]) for k, o in outs)
    assert within(run) == 0


def test_execute_and_enqueue_mixed_under_a_profiler(device, mnist):
    """Batch-1 executes interleaved with batch-8 enqueues: each query's compute time is the span of its
    own layers, of its own batch size, and the queries frame lists every call with its stream."""
    eng, xs, expected = mnist
    ctx = eng.create_execution_context()
    s = device.create_stream()
    host1 = to_host(xs[2])[:1]
    expected1 = to_host(ctx.execute({"data": host1})["prob"])      # batch 1 may round differently from 8

    def run():
        outs = []
        with pk.profile(ctx, memory=False, gpu_metrics=False, baseline=False) as run:
            for i in range(12):
                outs.append(("enqueue", ctx.enqueue({"data": xs[i % 4], "prob": _out(device)}, s)["prob"], i % 4))
                outs.append(("execute", ctx.execute({"data": host1})["prob"], None))
            s.synchronize()
        return run, outs
    run, outs = within(run)
    for kind, o, k in outs:
        np.testing.assert_array_equal(to_host(o), expected1 if k is None else expected[k])
    q, layers = run.queries, run.layers
    assert len(q) == 24 and list(q["query"]) == list(range(24))
    assert list(q["batch_size"]) == [8, 1] * 12
    assert q["stream"].iloc[0] != q["stream"].iloc[1]
    assert len(set(q["stream"].iloc[0::2])) == 1 and len(set(q["stream"].iloc[1::2])) == 1
    n_layers = len(eng.plan.steps)
    for r in q.itertuples():
        own = layers[layers["iteration"] == r.query]
        assert len(own) == n_layers, (r.query, len(own))
        assert set(own["batch_size"]) == {r.batch_size}
        span_ms = (own["end_ns"].max() - own["start_ns"].min()) / 1e6
        assert r.compute_ms == pytest.approx(span_ms, rel=1e-9, abs=1e-9)


def test_32_threads_each_with_its_own_context(device, mnist):
    eng, xs, expected = mnist
    bad, errors = [], []

    def worker(t):
        try:
            ctx, s = eng.create_execution_context(), device.create_stream()
            for i in range(6):
                k = (t + i) % 4
                if i % 2:
                    o = ctx.enqueue({"data": xs[k], "prob": _out(device)}, s)["prob"]
                    s.synchronize()
                else:
                    o = ctx.execute({"data": to_host(xs[k])})["prob"]
                if not np.array_equal(to_host(o), expected[k]):
                    bad.append((t, i))
            ctx.close()
        except Exception as exc:
            errors.append(repr(exc))

    def run():
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(32)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    within(run)
    assert not errors and not bad, (errors[:3], bad[:3])


def test_one_context_shared_by_threads(device, mnist):
    """Four threads hammer one context (three enqueues on their own stream then a synchronisation, or
    an execute): only ContextBusyError may escape, and every output a call returned is right."""
    eng, xs, expected = mnist
    ctx = eng.create_execution_context()
    bad, unexpected, busy, ok = [], [], [], []

    def worker(t):
        s = device.create_stream()
        for i in range(60):
            got = []
            try:
                for j in range(3 if i % 3 else 1):
                    k = (t + i + j) % 4
                    if i % 3:
                        got.append((k, ctx.enqueue({"data": xs[k], "prob": _out(device)}, s)["prob"]))
                    else:
                        got.append((k, ctx.execute({"data": to_host(xs[k])})["prob"]))
            except pk.ContextBusyError:
                busy.append(t)
            except Exception as exc:
                unexpected.append(repr(exc))
            s.synchronize()
            for k, o in got:
                ok.append(t)
                if not np.array_equal(to_host(o), expected[k]):
                    bad.append((t, i))

    def run():
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    within(run)
    assert not unexpected, unexpected[:3]
    assert not bad, f"{len(bad)} of {len(ok)} returned outputs wrong"
    assert ok and busy


def test_work_in_flight_from_another_thread_makes_the_context_busy(mnist_cpu):
    """The busy check covers work in flight, not just submission: while thread 1's enqueued inference
    has not run, thread 2 gets ContextBusyError (and changes nothing); thread 1 itself may go on
    queueing; once the work is done, thread 2 may take the context over."""
    eng, xs, expected = mnist_cpu
    dev = eng.device
    ctx = eng.create_execution_context()
    s, gate = dev.create_stream(), threading.Event()
    s.submit(lambda: gate.wait(TIMEOUT_S))          # holds the stream: the enqueued work stays in flight
    out1 = ctx.enqueue({"data": xs[0], "prob": _out(dev)}, s)              # this thread queues work
    with pytest.raises(pk.ContextBusyError, match="another thread queued"):
        within(lambda: ctx.execute({"data": xs[1]}))                       # another thread
    with pytest.raises(pk.ContextBusyError, match="another thread"):
        within(lambda: ctx.enqueue({"data": xs[1]}, dev.create_stream()))
    out2 = ctx.enqueue({"data": xs[2], "prob": _out(dev)}, dev.create_stream())   # the same thread goes on
    gate.set()
    within(lambda: (s.synchronize(), ctx.wait_profiles()))
    np.testing.assert_array_equal(out1["prob"], expected[0])
    np.testing.assert_array_equal(out2["prob"], expected[2])
    taken_over = within(lambda: ctx.execute({"data": xs[3]})["prob"])             # work done: hand over
    np.testing.assert_array_equal(taken_over, expected[3])


def test_a_wait_binds_to_the_record_current_when_it_was_queued():
    """CUDA semantics for CPU events: recording an event again does not move a wait queued earlier."""
    dev = pk.get_device("cpu")
    a, b, c = dev.create_stream(), dev.create_stream(), dev.create_stream()
    open_a, open_b, open_c = threading.Event(), threading.Event(), threading.Event()
    ev, seen = dev.create_event(), []
    a.submit(lambda: open_a.wait(TIMEOUT_S))
    ev.record(a)
    b.submit(lambda: open_b.wait(TIMEOUT_S))
    b.wait_event(ev)                                # binds to the record on a
    b.submit(lambda: seen.append("b"))
    open_a.set()
    within(a.synchronize, 10.0)                     # the record on a has been reached
    c.submit(lambda: open_c.wait(TIMEOUT_S))
    ev.record(c)                                    # a later record, reached only once c is opened
    open_b.set()                                    # b's wait runs now, after the second record
    within(b.synchronize, 10.0)
    assert seen == ["b"] and not ev.query()
    open_c.set()
    within(lambda: ev.synchronize(10.0), 10.0)
    assert ev.query()


def test_fresh_stream_per_context_leaves_no_threads():
    """2,000 cycles of context + fresh stream + enqueue + close leave the thread count bounded."""
    dev = pk.get_device("cpu")
    net = pk.Network("tiny")
    x = net.add_input("x", (4,))
    net.mark_output(net.add_activation(x, "relu").output)
    eng = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=2))
    before = threading.active_count()

    def cycles():
        v = np.ones((2, 4), np.float32)
        for _ in range(2000):
            ctx, s = eng.create_execution_context(), dev.create_stream()
            out = ctx.enqueue({"x": v}, s)
            s.synchronize()
            assert out[eng.output_names[0]].sum() == 8
            ctx.close()
    within(cycles, 120.0)
    assert threading.active_count() - before < 20, threading.active_count() - before
