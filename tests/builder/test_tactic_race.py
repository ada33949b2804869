"""The tactic race (perfkit/builder/tactics.py): a candidate far behind after one run stops there, the
others run on; identical layers of one build are timed once even without a timing cache."""
import numpy as np
import pytest

import perfkit as pk
from perfkit.builder import tactics


def _two_identical_convs():
    rng = np.random.default_rng(0)
    net = pk.Network("twins")
    x = net.add_input("x", (4, 8, 8))
    for name in ("a", "b"):
        x = net.add_convolution(x, 4, 3, rng.standard_normal((4, 4, 3, 3)), None, padding=1, name=name).output
    net.mark_output(x)
    return net


def _race(monkeypatch, cost, iterations=6):
    """A build of the twins whose measurement of run ``i`` of a tactic returns ``cost[tactic][i]`` (the
    last value repeated); returns the engine and the runs per (layer, tactic)."""
    calls = []

    def measure(target, run, device, n):
        assert n == 1                                   # the race measures one run at a time
        run()
        run()                                           # measure's warm-up, then the timed run
        i = sum(1 for c in calls if c == (target.layer, target.tactic))
        calls.append((target.layer, target.tactic))
        values = cost[target.tactic]
        return values[min(i, len(values) - 1)]

    monkeypatch.setattr(tactics, "measure", measure)
    eng = pk.Builder("cpu").build(_two_identical_convs(),
                                  pk.BuilderConfig(max_batch_size=2, tactic_iterations=iterations))
    return eng, {k: calls.count(k) for k in set(calls)}


def test_far_behind_candidates_stop_after_one_run_and_the_rest_run_on(monkeypatch):
    cost = {"im2col": [1.0, 0.9, 0.95], "taps": [5.0], "sample": [1.1, 0.95], "batched": [1.2]}
    eng, runs = _race(monkeypatch, cost, iterations=6)
    assert {layer for layer, _ in runs} == {"a"}                    # "b" is identical: timed once
    assert runs[("a", "taps")] == 1                                 # 5x the fastest first run: stopped
    for t in ("im2col", "sample", "batched"):                       # within PRUNE, leads within noise: ran on
        assert runs[("a", t)] == 6
    log = eng.build_log.query("phase == 'tactic'")
    a = log[log["matched"] == "a"].set_index("rule")
    assert a.loc["taps", "time_ms"] == pytest.approx(5.0) and "stopped there" in a.loc["taps", "detail"]
    assert a.loc["im2col", "time_ms"] == pytest.approx(0.9) and a.loc["im2col", "outcome"] == "chosen"
    assert "best of 6 runs" in a.loc["im2col", "detail"]
    b = log[(log["matched"] == "b") & (log["outcome"] == "cached")]
    assert len(b) == 1 and "timed for 'a'" in b["detail"].iloc[0]
    assert [s.params["tactic"] for s in eng.plan.steps] == ["im2col", "im2col"]


def test_a_clear_leader_ends_the_race_after_three_runs(monkeypatch):
    cost = {"im2col": [1.0], "taps": [1.2], "sample": [1.15], "batched": [1.1]}   # 10% ahead, no spread
    eng, runs = _race(monkeypatch, cost, iterations=10)
    assert runs == {("a", "im2col"): 3, ("a", "taps"): 3, ("a", "sample"): 3, ("a", "batched"): 3}
    noisy = {"im2col": [1.0, 1.3, 1.3], "taps": [1.2], "sample": [1.15], "batched": [1.1]}  # spread 30%
    _, runs = _race(monkeypatch, noisy, iterations=10)
    assert runs[("a", "im2col")] == 10


def test_the_warm_up_of_a_warm_candidate_is_skipped():
    ran = []
    warm = tactics._warm(lambda: ran.append(1))
    warm()
    warm()
    warm()
    assert len(ran) == 2


def test_one_iteration_or_one_candidate_is_not_raced(monkeypatch):
    calls = []
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        calls.append((target.tactic, iterations)) or 1.0)
    pk.Builder("cpu").build(_two_identical_convs(), pk.BuilderConfig(max_batch_size=2, tactic_iterations=1))
    conv = pk.ops.get_op("convolution")
    assert sorted(calls) == sorted((t, 1) for t in conv.tactic_names if conv.tactic_unavailable(t, "cpu") is None)
    assert tactics.last_race() == {}


def test_tactics_the_op_declares_the_same_at_batch_one_are_timed_once(monkeypatch):
    seen = {1: set(), 2: set()}
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        seen[target.inputs[0].shape[0]].add(target.tactic) or 1.0)
    for batch in (1, 2):
        pk.Builder("cpu").build(_two_identical_convs(), pk.BuilderConfig(max_batch_size=batch))
    assert "batched" not in seen[1] and "sample" in seen[1]
    assert {"sample", "batched"} <= seen[2]


def test_tactics_that_cannot_win_on_the_cpu_are_not_timed(monkeypatch):
    timed = {}
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        timed.setdefault(target.layer, set()).add(target.tactic) or 1.0)
    rng = np.random.default_rng(0)
    net = pk.Network("losers")
    x = net.add_input("x", (4, 16, 16))
    x = net.add_pooling(x, "max", 3, 2, 1, name="small_windows").output           # 64 windows of 9
    x = net.add_convolution(x, 4, 1, rng.standard_normal((4, 4, 1, 1)), None, stride=2, name="one").output
    net.mark_output(net.add_pooling(x, "avg", 4, 4, name="global").output)       # 1 window of 16
    pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    assert timed["small_windows"] == {"taps", "rows"}
    assert timed["global"] == {"strided", "taps", "rows"}
    assert "taps" not in timed["one"] and {"im2col", "sample", "batched"} <= timed["one"]
