"""simulate_batching against closed forms: with free compute and unbounded batches every batch is open
for exactly T (mean latency, median and mean batch follow from Poisson arrivals); with batches of one and
a constant service time it is the M/D/1 queue (Pollaczek-Khinchine mean wait)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.bench import simulate_batching


@pytest.mark.parametrize("rate,delay", [(2000.0, 5.0), (500.0, 1.0)])
def test_free_compute_batches_open_for_t(rate, delay):
    lt = rate * delay / 1e3                    # expected arrivals while a batch is open
    df = simulate_batching({1: 1e-9, 100_000: 1e-9}, rate, [delay], max_batch_size=100_000, requests=200_000)
    r = df.iloc[0]
    # the first request of a batch waits T, the others (lt on average) a uniform share of it
    assert r["latency_mean_ms"] == pytest.approx((delay + lt * delay / 2) / (1 + lt), rel=0.01)
    assert r["mean_batch"] == pytest.approx(1 + lt, rel=0.01)
    assert r["throughput_per_s"] == pytest.approx(rate, rel=0.01)
    p50 = (1 + lt) / (2 * rate) * 1e3 if lt >= 1 else delay      # P(L <= x) = rate x / (1 + lt) below T
    assert r["latency_p50_ms"] == pytest.approx(p50, rel=0.02)
    assert r["latency_p99_ms"] == pytest.approx(delay, rel=1e-6)
    assert bool(r["stable"])


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.8])
def test_batches_of_one_are_the_md1_queue(rho):
    service = 2.0
    rate = rho / service * 1e3
    df = simulate_batching({1: service}, rate, [0.0, 3.0], requests=300_000, seed=1)
    wait = rho * service / (2 * (1 - rho))
    for r in df.itertuples():                   # max batch 1: the delay cannot matter
        assert r.latency_mean_ms == pytest.approx(service + wait, rel=0.03)
        assert r.utilisation_pct == pytest.approx(100 * rho, rel=0.02)
        assert r.mean_batch == 1.0


def test_larger_t_buys_batches_and_throughput_under_heavy_load():
    curve = {1: 1.0, 8: 1.4, 32: 2.5}           # 1000/s at batch 1, 12800/s at batch 32
    df = simulate_batching(curve, 5000, [0.0, 0.5, 2.0], requests=50_000)
    assert df["mean_batch"].is_monotonic_increasing
    assert df["stable"].all()
    one = simulate_batching({1: 1.0}, 5000, [0.0], requests=20_000)
    assert not one["stable"].iloc[0]             # 5x faster arrivals than batch-1 service


def test_curve_from_a_frame_and_interpolation():
    frame = pd.DataFrame({"batch_size": [1, 4], "latency_median_ms": [1.0, 4.0]})
    a = simulate_batching(frame, 100, [0.0], requests=5000)
    b = simulate_batching({1: 1.0, 4: 4.0}, 100, [0.0], requests=5000)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["curve_batch_sizes"] == [1, 4]
    with pytest.raises(pk.ArgumentError, match="several rows per batch size"):
        simulate_batching(pd.concat([frame, frame]), 100, [0.0])
    with pytest.raises(pk.BatchSizeError, match="beyond the curve"):
        simulate_batching(frame, 100, [0.0], max_batch_size=8)
    with pytest.raises(pk.ArgumentError):
        simulate_batching({1: 0.0}, 100, [0.0])
    with pytest.raises(pk.ArgumentError):
        simulate_batching({1: 1.0}, 0, [0.0])
    with pytest.raises(pk.ArgumentError):
        simulate_batching({1: 1.0}, 10, [-1.0])
    assert np.isfinite(simulate_batching({1: 1.0}, 10, 2.0, requests=1)["latency_p50_ms"]).all()


def test_curve_from_a_load_run_is_the_median_per_batch_size():
    from perfkit.frames.schemas_load import LOAD_REQUESTS
    rows = []
    for batch, size, ms in ((0, 1, 1.0), (1, 1, 3.0), (2, 1, 2.0), (3, 4, 5.0)):
        for _ in range(size):                    # every request of a batch repeats the batch's figures
            rows.append({"run_id": "r", "request": len(rows), "client": 0, "scheduled_ns": 0, "submit_ns": 0,
                         "late_ms": 0.0, "start_ns": 0, "end_ns": 1, "queue_ms": 0.0, "batch": batch,
                         "batch_size": size, "engine_batch_size": 4, "compute_ms": ms, "latency_ms": ms})
    frame = LOAD_REQUESTS.frame(rows)
    a = simulate_batching(frame, 100, [0.0], requests=2000)
    assert a.attrs["curve_batch_sizes"] == [1, 4] and a.attrs["curve_latency_ms"] == [2.0, 5.0]
    with pytest.raises(pk.ArgumentError, match="empty"):
        simulate_batching(LOAD_REQUESTS.frame([]), 100, [0.0])
