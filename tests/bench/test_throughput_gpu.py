"""Throughput under load on a CUDA GPU: several contexts on their own streams (graphs captured on one
thread, replayed from many), the batcher with its graphs captured up front, and pinned copies faster than
pageable ones."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import perfkit as pk
from device_helpers import HAS_CUDA

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU/CuPy")]


@pytest.fixture(scope="module")
def resnet():
    return pk.Builder("cuda").build(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=8, precision="fp16"))


def test_streams_and_threads_on_the_gpu(resnet):
    r = pk.bench.throughput(resnet, 8, streams=4, threads=2, duration_s=0.5, warmup_ms=100)
    assert len(r.gpu) > 0                      # NVML samples of the timed phase (nvidia-ml-py on the GPU machine)
    q = r.queries
    assert set(q["stream"]) == {0, 1, 2, 3} and (q["compute_ms"] > 0).all() and (q["h2d_ms"] > 0).all()
    assert r.value("in_flight_mean") > 1.5
    one = pk.bench.throughput(resnet, 8, streams=1, duration_s=0.5, warmup_ms=100)
    assert r.value("throughput_per_s") > 0.8 * one.value("throughput_per_s")


def test_batcher_on_the_gpu_answers_each_caller():
    net = pk.models.resnet_small()
    es = pk.EngineSet(net, [1, 4, 8], pk.BuilderConfig(max_batch_size=8), device="cuda")
    single = es.engines[1].create_execution_context()
    xs = pk.models.sample_input(net, 256)["data"]
    ref = np.stack([single.execute({"data": xs[i:i + 1]})["prob"][0] for i in range(len(xs))])
    got = [None] * len(xs)
    with pk.bench.DynamicBatcher(es, 8, max_delay_ms=1.0, warmup=True) as b:
        def client(c):
            for i in range(c, len(xs), 32):
                got[i] = b.infer({"data": xs[i]})["prob"]
        threads = [threading.Thread(target=client, args=(c,)) for c in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    np.testing.assert_allclose(np.stack(got), ref, rtol=1e-4, atol=1e-5)
    assert b.requests()["batch_size"].max() <= 8


def test_pinned_copies_beat_pageable_on_the_gpu():
    df = pk.bench.transfers("cuda", sizes_bytes=[64 << 20], repeats=10)
    bw = df.set_index(["direction", "memory"])["bandwidth_gb_s"]
    assert bw["h2d", "pinned"] > bw["h2d", "pageable"]
    assert "DMA" in df.attrs["note"]
