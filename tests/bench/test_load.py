"""generate_load(): open-loop constant and Poisson arrivals and a closed loop against a DynamicBatcher; every
request is a row with its schedule, queue time, batch, compute time and latency."""
from __future__ import annotations

import numpy as np
import pytest

import perfkit as pk
from perfkit.bench import DynamicBatcher, generate_load as load


@pytest.fixture(scope="module")
def engine():
    net = pk.models.mlp((16, 32, 8), seed=2, name="loaded")
    return pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=16, tactics="default"))


def test_constant_rate_sends_on_schedule(engine):
    with DynamicBatcher(engine, 16, max_delay_ms=0.5) as b:
        r = load(b, pattern="constant", rate_per_s=400, requests=60, duration_s=10)
    f = r.requests
    assert len(f) == 60 and f["request"].tolist() == list(range(60))
    gaps = np.diff(f["scheduled_ns"].to_numpy()) / 1e6
    assert gaps == pytest.approx([2.5] * 59, abs=1e-3)       # 400/s: every 2.5 ms
    assert (f["late_ms"] >= 0).all()
    assert (f["end_ns"] >= f["start_ns"]).all() and (f["start_ns"] >= f["submit_ns"]).all()
    assert np.allclose(f["latency_ms"], f["queue_ms"] + f["compute_ms"], atol=1e-3)
    assert r.value("offered_rate_per_s") == 400
    assert r.value("achieved_rate_per_s") == pytest.approx(400, rel=0.2)
    assert r.value("requests") == 60
    p = r.point()
    assert p["source"].iloc[0] == "measured" and p["delay_ms"].iloc[0] == 0.5 and bool(p["stable"].iloc[0])


def test_poisson_gaps_are_exponential(engine):
    with DynamicBatcher(engine, 16, max_delay_ms=1.0) as b:
        r = load(b, pattern="poisson", rate_per_s=2000, requests=400, duration_s=10, seed=5)
    gaps = np.diff(r.requests["scheduled_ns"].to_numpy()) / 1e6
    assert gaps.mean() == pytest.approx(0.5, rel=0.15)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.2)    # exponential: std = mean
    assert r.value("mean_batch") > 1.0      # 2000/s with T = 1 ms: requests share batches


def test_closed_loop_keeps_concurrency_requests_in_flight(engine):
    with DynamicBatcher(engine, 8, max_delay_ms=2.0) as b:
        r = load(b, pattern="closed", concurrency=8, requests=400, duration_s=10)
    f = r.requests
    assert len(f) == 400 and set(f["client"]) == set(range(8))
    assert f["batch_size"].max() <= 8
    assert np.isnan(r.value("offered_rate_per_s"))
    assert r.value("mean_batch") > 2


def test_bad_load_arguments(engine):
    with DynamicBatcher(engine, 4, max_delay_ms=0.0) as b:
        with pytest.raises(pk.ArgumentError, match="concurrency"):
            load(b, pattern="closed", rate_per_s=10)
        with pytest.raises(pk.ArgumentError, match="rate_per_s"):
            load(b, pattern="poisson", concurrency=3)
        with pytest.raises(pk.ArgumentError):
            load(b, pattern="bursty", rate_per_s=10)
        with pytest.raises(pk.ArgumentError):
            load(b, inputs={"data": np.zeros((4, 3), np.float32)}, rate_per_s=10)
    with pytest.raises(pk.ArgumentError, match="closed"):
        load(b, rate_per_s=10)


def test_records_are_bounded_and_a_load_beyond_them_says_so(engine, monkeypatch):
    import perfkit.bench.batcher as batcher_module
    monkeypatch.setattr(batcher_module, "RECORDS_KEPT", 5)
    with DynamicBatcher(engine, 4, max_delay_ms=0.0) as b:
        for _ in range(8):
            b.infer({"data": np.zeros(16, np.float32)})
        assert b.requests()["request"].tolist() == [3, 4, 5, 6, 7]        # the last five
        with pytest.raises(pk.ExecutionError, match="RECORDS_KEPT"):
            load(b, pattern="closed", concurrency=2, requests=12, duration_s=5)
