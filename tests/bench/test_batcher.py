"""DynamicBatcher (guide 2.1): under many client threads no request is lost, every caller gets exactly
its own rows (checked against single-request outputs), batches never exceed max_batch_size, each batch
runs on the smallest engine that fits, and close() drains."""
from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest

import perfkit as pk
from perfkit.bench import DynamicBatcher

CLIENTS = 64
REQUESTS = 3000


@pytest.fixture(scope="module")
def tiny():
    net = pk.models.mlp((16, 32, 8), seed=3, name="batched")
    cfg = pk.BuilderConfig(max_batch_size=16, tactics="default")
    es = pk.EngineSet(net, [1, 4, 16], cfg)
    single = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1, tactics="default"))
    return net, es, single


def _singles(single, xs):
    ctx = single.create_execution_context()
    out = single.output_names[0]
    ref = np.stack([ctx.execute({"data": xs[i:i + 1]})[out][0] for i in range(len(xs))])
    ctx.close()
    return ref


def test_64_clients_lose_nothing_and_each_gets_its_own_rows(tiny):
    net, es, single = tiny
    xs = np.random.default_rng(0).uniform(-1, 1, (REQUESTS, 16)).astype(np.float32)
    ref = _singles(single, xs)
    out_name = single.output_names[0]
    got = [None] * REQUESTS
    errors = []
    with DynamicBatcher(es, max_batch_size=16, max_delay_ms=2.0) as b:
        def client(c):
            try:
                for i in range(c, REQUESTS, CLIENTS):
                    got[i] = b.infer({"data": xs[i]})[out_name]
            except BaseException as exc:           # noqa: BLE001 - reported below
                errors.append(exc)
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert all(g is not None for g in got), "a request got no answer"
    out = np.stack(got)
    assert out.shape == ref.shape                       # one sample in, one sample out (no batch dimension)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # exactly its own: each answer is nearer its own single-request output than any other request's
    d = ((out[:, None, :] - ref[None, :200, :]) ** 2).sum(-1)[:200]
    assert (d.argmin(axis=1) == np.arange(200)).all()
    df = b.requests()
    assert len(df) == REQUESTS and df["request"].is_unique
    assert df["batch_size"].max() <= 16
    per_batch = df.groupby("batch")["rows"].sum()
    assert (per_batch == df.groupby("batch")["batch_size"].first()).all()
    assert per_batch.max() <= 16
    assert (df["batch_size"] > 1).mean() > 0.5, "64 clients should share batches"
    # the smallest engine that fits
    want = np.select([df["batch_size"] <= 1, df["batch_size"] <= 4], [1, 4], 16)
    assert (df["engine_batch_size"].to_numpy() == want).all()
    assert ((df["queue_ms"] >= 0) & (df["compute_ms"] > 0)).all()
    assert np.allclose(df["latency_ms"], df["queue_ms"] + df["compute_ms"], atol=1e-3)


def test_multi_row_requests_are_never_split_and_come_back_whole(tiny):
    net, es, single = tiny
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 7, 200)
    xs = [rng.uniform(-1, 1, (int(n), 16)).astype(np.float32) for n in sizes]
    with DynamicBatcher(es, max_batch_size=8, max_delay_ms=1.0, instances=2) as b:
        futs = [b.submit({"data": x}) for x in xs]
        outs = [f.result(timeout=30) for f in futs]
    name = single.output_names[0]
    for x, o in zip(xs, outs):
        assert o[name].shape == (len(x), 8)
        np.testing.assert_allclose(o[name], _singles(single, x), rtol=1e-5, atol=1e-6)
    df = b.requests()
    assert df["batch_size"].max() <= 8
    assert set(df["instance"]) <= {0, 1}


def test_close_drains_and_refuses_more(tiny):
    net, es, _ = tiny
    b = DynamicBatcher(es, max_batch_size=16, max_delay_ms=10_000.0)     # a batch would wait 10 s
    futs = [b.submit({"data": np.zeros(16, np.float32)}) for _ in range(5)]
    b.close(timeout_s=30)                   # drains at once: nothing waits out the delay
    assert all(f.done() and f.exception() is None for f in futs)
    assert set(b.requests()["trigger"]) == {"drain"}
    with pytest.raises(pk.ExecutionError, match="closed"):
        b.submit({"data": np.zeros(16, np.float32)})
    b.close()                               # twice is fine


def test_full_batches_start_before_the_delay(tiny):
    net, es, _ = tiny
    with DynamicBatcher(es, max_batch_size=4, max_delay_ms=10_000.0) as b:
        futs = [b.submit({"data": np.zeros(16, np.float32)}) for _ in range(8)]
        concurrent.futures.wait(futs, timeout=20)
        assert all(f.done() for f in futs), "full batches must not wait for the delay"
    df = b.requests()
    assert set(df["trigger"]) == {"full"} and set(df["batch_size"]) == {4}


def test_a_failed_batch_fails_its_callers_only(tiny, monkeypatch):
    net, es, _ = tiny
    with DynamicBatcher(es, max_batch_size=4, max_delay_ms=0.0) as b:
        boom = RuntimeError("engine exploded")
        real = b._run

        def once(*args, **kwargs):
            b._run = real
            raise boom
        b._run = once
        with pytest.raises(RuntimeError, match="exploded"):
            b.infer({"data": np.zeros(16, np.float32)})
        assert b.infer({"data": np.zeros(16, np.float32)})["output"].shape == (8,)      # the instance goes on


def test_bad_requests_are_refused_at_submit(tiny):
    net, es, _ = tiny
    with DynamicBatcher(es, max_batch_size=4, max_delay_ms=0.0) as b:
        for bad in ({"nope": np.zeros(16, np.float32)}, {"data": np.zeros(15, np.float32)},
                    {"data": np.zeros((5, 16), np.float32)}, {"data": "text"}, [np.zeros(16)],
                    {"data": np.zeros((0, 16), np.float32)}, {"data": np.zeros(16, complex)}):
            with pytest.raises(pk.PerfkitError):
                b.submit(bad)
        assert b.queued_rows == 0
    assert len(b.requests()) == 0


def test_warmup_runs_every_size_on_every_instance_first(tiny):
    net, es, single = tiny
    with DynamicBatcher(es, max_batch_size=6, max_delay_ms=0.0, instances=2, warmup=True) as b:
        assert [sorted(c) for c in b._contexts] == [[1, 4, 16], [1, 4, 16]]     # 1; 2-4; 5-6 on the 16 engine
        queries = [c._queries for inst in b._contexts for c in inst.values()]
        assert queries == [2, 6, 4] * 2                                          # every size twice
        x = np.random.default_rng(3).uniform(-1, 1, (6, 16)).astype(np.float32)
        np.testing.assert_allclose(b.infer({"data": x})["output"], _singles(single, x), rtol=1e-5, atol=1e-6)
    assert all(c._closed for inst in b._contexts for c in inst.values())


def test_a_request_cancelled_before_its_batch_is_skipped(tiny):
    net, es, _ = tiny
    b = DynamicBatcher(es, max_batch_size=16, max_delay_ms=10_000.0)
    keep, drop = (b.submit({"data": np.full(16, v, np.float32)}) for v in (1.0, 2.0))
    assert drop.cancel()
    b.close(timeout_s=30)
    assert keep.result().keys() == {"output"} and drop.cancelled()
    df = b.requests()
    assert df["request"].tolist() == [keep.request_id] and df["batch_size"].tolist() == [1]


def test_infer_from_a_callback_on_an_instance_thread_is_refused_not_a_deadlock(tiny):
    net, es, _ = tiny
    seen = []
    with DynamicBatcher(es, max_batch_size=4, max_delay_ms=300.0) as b:   # not done before the callback is added
        def again(_):
            try:
                b.infer({"data": np.zeros(16, np.float32)})
            except pk.ExecutionError as exc:
                seen.append(str(exc))
        fut = b.submit({"data": np.zeros(16, np.float32)})
        fut.add_done_callback(again)
        fut.result(timeout=10)
    assert seen and "own instance" in seen[0]


def test_an_answered_request_is_already_in_the_records():
    # a caller woken by its answer (here: a done-callback, run in the batcher's thread) finds its own row
    import perfkit as pk
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=4))
    one = {n: a[0] for n, a in pk.models.sample_input(eng, 1).items()}
    seen = []
    with pk.bench.DynamicBatcher(eng, max_batch_size=4, max_delay_ms=0.5) as batcher:
        for _ in range(20):
            fut = batcher.submit(one)
            fut.add_done_callback(lambda f: seen.append(f.request_id in set(batcher.requests()["request"])))
            fut.result()
    assert len(seen) == 20 and all(seen)
