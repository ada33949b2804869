"""The demo's own checks: a profile that disagrees with the sweep of the same engine is said in words, and
each profiled model's slowest layers come with what explains them."""
import pandas as pd

import perfkit as pk
from perfkit.demo import _cross_check, _layer_why


class _Run:
    def __init__(self, e2e_ms):
        self.e2e_ms = e2e_ms

    def overview_values(self):
        return {"e2e_unprofiled_ms": self.e2e_ms}


def _sweep(median, lo, hi):
    return pd.DataFrame({"model": ["m"], "precision": ["fp32"], "batch_size": [64], "latency_median_ms": [median],
                         "latency_ci_low_ms": [lo], "latency_ci_high_ms": [hi]})


def test_a_profile_60x_slower_than_its_sweep_row_is_said():
    said = _cross_check(_sweep(0.396, 0.39, 0.41), {"m": (_Run(23.98), None)}, "fp32", 64)
    assert len(said) == 1 and "60.6x apart" in said[0] and "trust neither" in said[0]


def test_agreeing_measurements_say_nothing_and_an_unknown_interval_uses_the_median():
    assert _cross_check(_sweep(0.396, 0.39, 0.41), {"m": (_Run(0.45), None)}, "fp32", 64) == []
    assert _cross_check(_sweep(1.0, float("nan"), float("nan")), {"m": (_Run(1.2), None)}, "fp32", 64) == []
    assert len(_cross_check(_sweep(1.0, float("nan"), float("nan")), {"m": (_Run(3.0), None)}, "fp32", 64)) == 1


def test_layer_why_names_precision_tactic_members_and_achieved_rates():
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8))
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 8)
    with pk.profile(ctx, memory=False, baseline=False) as run:
        for _ in range(3):
            ctx.execute(x)
    why = _layer_why(run, 8).set_index("layer")
    mlp = why.loc["2-layer MLP (ip1 + relu1 + ip2)"]
    assert mlp["precision"] == "fp32" and mlp["tactic"] in ("nn", "nt")
    assert mlp["fused network layers"] == "ip1, relu1, ip2"
    assert float(mlp["GFLOP/s"].replace(",", "")) > 0 and float(mlp["GB/s"].replace(",", "")) > 0
