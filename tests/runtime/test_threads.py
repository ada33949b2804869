"""Guide 2.3: contexts of one engine run concurrently from several threads, identical to a serial run."""
import threading

import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host


@pytest.mark.parametrize("model,iters", [("mnist_mlp", 300), ("lenet", 120)])
def test_four_threads_two_contexts_each(device, model, iters):
    net = pk.models.SAMPLES[model]()
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4))
    batches = [pk.models.sample_input(net, 1 + i % 4, seed=i) for i in range(16)]
    ref_ctx = eng.create_execution_context()
    expected = [to_host(ref_ctx.execute(b)[eng.output_names[0]]) for b in batches]
    errors, mismatches = [], []

    def worker(tid):
        try:
            ctxs = [eng.create_execution_context() for _ in range(2)]
            for i in range(iters):
                k = (tid * 7 + i) % len(batches)
                out = to_host(ctxs[i % 2].execute(batches[k])[eng.output_names[0]])
                if not np.array_equal(out, expected[k]):
                    mismatches.append((tid, i, k))
        except Exception as exc:      # pragma: no cover - reported below
            errors.append(repr(exc))
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches, (errors[:3], mismatches[:3])


def test_threads_with_streams_and_enqueue(device):
    net = pk.models.mnist_mlp()
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=8))
    x = [device.to_device(pk.models.sample_input(net, 8, seed=i)["data"]) for i in range(4)]
    expected = [to_host(eng.create_execution_context().execute({"data": v})["prob"]) for v in x]
    bad = []

    def worker(i):
        ctx, s = eng.create_execution_context(), device.create_stream()
        for _ in range(100):
            out = ctx.enqueue({"data": x[i]}, s)
            s.synchronize()
            if not np.array_equal(to_host(out["prob"]), expected[i]):
                bad.append(i)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not bad
