"""Progress bars: automatic (off under pytest and off a terminal, on in notebooks), forced with progress=,
one step per timing slice in sweeps and fusion_benefit, and silent for quick tactic timing."""
import importlib
import sys
import types

import numpy as np
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod
from perfkit.builder import tactics_progress as tp

sweep_mod = importlib.import_module("perfkit.bench.sweep")


def test_automatic_progress_is_off_under_pytest_and_off_a_terminal_and_on_in_a_notebook(monkeypatch):
    assert tp.progress_wanted(None, "x") is False                      # PYTEST_CURRENT_TEST is set
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(sys, "stderr", open("/dev/null", "w"))          # not a terminal
    monkeypatch.setitem(sys.modules, "ipykernel", object())             # imported (by ipywidgets, say): no kernel
    assert tp.progress_wanted(None, "x") is False
    kernel_shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel_shell))
    assert tp.progress_wanted(None, "x") is True                        # inside a notebook kernel
    assert tp.progress_wanted(True, "x") is True and tp.progress_wanted(False, "x") is False
    with pytest.raises(pk.ArgumentError, match="progress"):
        tp.progress_wanted("yes", "sweep")


class Recorder:
    bars = []

    def __init__(self, total, desc, enabled, delay=0.0):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        Recorder.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, text):
        self.postfix = text

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_a_sweep_steps_its_bar_once_per_slice_including_re_measured_and_failed_ones(monkeypatch):
    Recorder.bars = []
    monkeypatch.setattr(sweep_mod, "progress_bar", Recorder)
    slow = iter([1.0, 2.0, 3.0] + [1.0] * 20)               # batch 2 spreads widely once (robust spread 74%)
    monkeypatch.setattr(rounds_mod, "time_slice", lambda c, *a: np.array(
        [next(slow) if c.engine.max_batch_size == 2 else 1.0]))
    net = pk.models.mlp((4, 3), seed=1, name="m")
    pk.sweep(net, (1, 2, 10 ** 12), device="cpu", min_time_s=0.0, min_iterations=1, rounds=3, progress=True)
    (bar,) = Recorder.bars
    assert bar.enabled is True and bar.desc == "sweep"
    assert bar.total == 3 * 3 + 3 and bar.n == bar.total              # 3 configurations x 3 rounds + 1 re-measured


def test_fusion_benefit_steps_its_bar_through_builds_and_rounds(monkeypatch):
    Recorder.bars = []
    monkeypatch.setattr(importlib.import_module("perfkit.analysis.fusion"), "progress_bar", Recorder)
    monkeypatch.setattr(rounds_mod, "time_slice", lambda *a: np.array([1.0]))
    f = pk.analysis.fusion_benefit(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2), device="cpu",
                                   min_time_s=0.0, rounds=2, progress=False)
    (bar,) = Recorder.bars
    rules = len(f) - 2
    assert bar.enabled is False and bar.total == rules + 1 + len(f) * 2 and bar.n == bar.total


def test_a_real_bar_reaches_its_total_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(rounds_mod, "time_slice", lambda *a: np.array([1.0]))
    pk.sweep(pk.models.mlp((4, 3), seed=1, name="m"), (1,), device="cpu", min_time_s=0.0, min_iterations=1,
             rounds=2, progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "2/2" in err


def _watched(monkeypatch):
    """As in a notebook: automatic progress is on."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    kernel_shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel_shell))


def _conv_net():
    net = pk.Network("c")
    x = net.add_input("x", (2, 6, 6))
    y = net.add_convolution(x, 2, (3, 3), np.ones((2, 2, 3, 3), np.float32), name="conv").output
    net.mark_output(y)
    return net


def test_tactic_timing_shows_a_bar_only_once_it_took_a_second(capsys, monkeypatch):
    _watched(monkeypatch)
    tactics = importlib.import_module("perfkit.builder.tactics")
    cfg = pk.BuilderConfig(max_batch_size=2, tactics="time")
    pk.Builder("cpu").build(_conv_net(), cfg)
    assert "timing tactics" not in capsys.readouterr().err             # quick: nothing printed
    real = tactics.measure

    def slow(*a):
        import time
        time.sleep(0.6)
        return real(*a)
    monkeypatch.setattr(tactics, "measure", slow)
    pk.Builder("cpu").build(_conv_net(), cfg)
    assert "timing tactics" in capsys.readouterr().err
