"""fusion_benefit with injected timings: order-statistic intervals of the median paired round difference,
'significant' only when the interval excludes 0 (a sign test), none below 6 rounds, engines interleaved with a
rotating start."""
import math

import numpy as np
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod

REF = [1.00, 1.03, 0.97, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99]   # the fully fused engine's round medians (ms)


def _net():
    net = pk.Network("fc")
    x = net.add_input("x", (8,))
    h = net.add_fully_connected(x, 6, np.ones((6, 8), np.float32), name="fc").output
    net.mark_output(net.add_activation(h, "relu", name="r").output)
    return net


def _benefit(monkeypatch, unfused, rounds=6, ref=REF):
    """fc + relu fuses into one layer (fc_relu): the reference has 1 layer, the others 2. ``unfused(r)`` is
    the 2-layer engines' latency in round r; the reference gets ref[r]."""
    calls = []

    def fake_slice(context, inputs, min_time_s, min_iterations):
        fused = len(context.engine.plan.steps) == 1
        r = sum(1 for c in calls if c[1] == id(context))
        calls.append((fused, id(context)))
        return np.array([ref[r] if fused else unfused(r)])
    monkeypatch.setattr(rounds_mod, "time_slice", fake_slice)
    frame = pk.analysis.fusion_benefit(_net(), pk.BuilderConfig(max_batch_size=2), device="cpu", min_time_s=0.0,
                                       rounds=rounds)
    pk.frames.FUSION_BENEFIT.validate(frame, strict=True)
    return frame.set_index("rule"), calls


def test_equal_engines_are_not_significant(monkeypatch):
    wobble = [0.01, -0.02, 0.01, -0.01, 0.02, 0.01]      # the same speed, noise of either sign
    f, _ = _benefit(monkeypatch, lambda r: REF[r] + wobble[r])
    row = f.loc["fc_relu"]
    assert row["latency_delta_ms"] == pytest.approx(0.01)
    assert row["latency_delta_ci_low_ms"] < 0 < row["latency_delta_ci_high_ms"]
    assert not row["significant"] and row["latency_delta_ci_level_pct"] == pytest.approx(96.875)
    ref = f.loc["(all rules)"]
    assert (ref["latency_delta_ms"], ref["latency_delta_ci_low_ms"], ref["latency_delta_ci_high_ms"]) == (0, 0, 0)
    assert not ref["significant"]


def test_a_clear_difference_is_significant_with_its_interval(monkeypatch):
    f, calls = _benefit(monkeypatch, lambda r: REF[r] * 1.3)
    row = f.loc["fc_relu"]
    assert row["significant"] and row["latency_delta_ci_low_ms"] > 0
    assert row["latency_delta_ci_low_ms"] <= row["latency_delta_ms"] <= row["latency_delta_ci_high_ms"]
    assert row["latency_delta_ms"] == pytest.approx(0.3, rel=0.05)
    assert row["latency_delta_pct"] == pytest.approx(30.0, rel=0.05)
    assert f.loc["(no rules)"]["significant"]
    firsts = [calls[3 * r][0] for r in range(6)]   # 3 engines a round; the reference is not always first
    assert firsts.count(True) < 6


def test_deltas_are_paired_by_round(monkeypatch):
    # a slow drift of the machine moves both engines alike: paired differences stay at +0.1 and are significant,
    # although the unpaired ranges of the two engines overlap
    drift = [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]
    f, _ = _benefit(monkeypatch, lambda r: drift[r] + 0.1, ref=drift)
    row = f.loc["fc_relu"]
    assert row["latency_delta_ms"] == pytest.approx(0.1) and row["significant"]


def test_five_rounds_are_too_few_for_a_95_percent_interval(monkeypatch):
    # five deltas of one sign: a sign test at p = 0.0625; the smallest and largest of 5 cover the median 93.75%
    f, _ = _benefit(monkeypatch, lambda r: REF[r] + 0.3, rounds=5)
    row = f.loc["fc_relu"]
    assert math.isnan(row["latency_delta_ci_low_ms"]) and math.isnan(row["latency_delta_ci_high_ms"])
    assert math.isnan(row["latency_delta_ci_level_pct"]) and not row["significant"]
    assert row["latency_delta_ms"] == pytest.approx(0.3)


@pytest.mark.parametrize("rounds, significant", [(6, False), (10, True)])
def test_significance_is_a_sign_test_of_the_paired_deltas(monkeypatch, rounds, significant):
    # one round against the rest: 5 of 6 positive is p = 0.22 (not significant), 9 of 10 is p = 0.021 (significant)
    deltas = [0.3] * (rounds - 1) + [-0.01]
    f, _ = _benefit(monkeypatch, lambda r: REF[r] + deltas[r], rounds=rounds)
    row = f.loc["fc_relu"]
    assert bool(row["significant"]) is significant
    assert row["latency_delta_ci_level_pct"] >= 95.0
