"""The demo's 'best throughput per model' lines say when the pick is not what it seems: a reduced precision no
layer took, and a runner-up precision whose latency interval overlaps the best's."""
import pandas as pd

import perfkit as pk
from perfkit.demo import _best_caveats


def _row(precision, lo, hi):
    return {"model": "mnist_mlp", "precision": precision, "batch_size": 8, "throughput_per_s": 1.0,
            "latency_median_ms": (lo + hi) / 2, "latency_ci_low_ms": lo, "latency_ci_high_ms": hi}


def test_an_fp16_engine_without_fp16_layers_and_overlapping_intervals_are_named():
    net = pk.models.mnist_mlp()
    dev = pk.get_device("cpu")
    fp16 = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=8, precision="fp16"))
    assert not (fp16.layers.query("type != 'identity'")["precision"] == "fp16").any()   # the CPU kept fp32
    frame = pd.DataFrame([_row("fp32", 0.436, 0.482), _row("fp16", 0.413, 0.555)])
    said = _best_caveats(frame, frame.iloc[1], {("mnist_mlp", "fp16", 8): fp16})
    assert said[0] == "fp16 was allowed but every layer stayed in fp32: this is an fp32 engine"
    assert said[1].startswith("not distinguishable from fp32 at this batch")
    apart = pd.DataFrame([_row("fp32", 0.60, 0.70), _row("fp16", 0.413, 0.555)])
    assert _best_caveats(apart, apart.iloc[1], {}) == []               # no engine at hand, intervals apart
