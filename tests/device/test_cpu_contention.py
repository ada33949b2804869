"""The contention probe: cores OTHER processes keep busy (/proc/stat less this process's CPU time), and the
default BLAS thread count it sizes (all cores less the busy ones; an explicit count or the environment wins)."""
import math
import sys

import pytest

import perfkit as pk
from perfkit.device import host as cpu_mod
from perfkit.device.host import THREAD_ENV, CpuSnapshot, other_busy_cores, other_busy_cores_over


def snap(wall, machine, own):
    return CpuSnapshot(float(wall), float(machine), float(own))


def test_other_busy_cores_is_the_machines_busy_time_less_this_processes_over_the_wall_time():
    # 0.5 s: the machine's cores were busy 1.5 CPU-s, 1.0 of them this process's own
    assert other_busy_cores(snap(10, 100, 3), snap(10.5, 101.5, 4)) == pytest.approx(1.0)
    assert other_busy_cores(snap(10, 100, 3), snap(10.5, 101.0, 4)) == 0.0          # only its own work
    assert other_busy_cores(snap(10, 100, 3), snap(10.5, 100.9, 4)) == 0.0          # tick rounding: never below 0
    pairs = [(snap(0, 0, 0), snap(0.1, 0.2, 0.1)), (snap(1, 1, 1), snap(1.3, 1.3, 1.3))]
    assert other_busy_cores_over(pairs) == pytest.approx(0.1 / 0.4)                 # weighted by wall time
    assert math.isnan(other_busy_cores_over([]))
    assert math.isnan(other_busy_cores(snap(0, 0, 0), snap(0.001, 0.01, 0)))          # under 5 ticks: unknown
    assert math.isnan(other_busy_cores(snap(0, math.nan, 0), snap(1, math.nan, 0)))  # no /proc/stat


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_a_real_snapshot_reads_proc_stat_and_nan_without_it(monkeypatch):
    import time
    a = cpu_mod.cpu_snapshot()
    time.sleep(0.1)
    other = other_busy_cores(a, cpu_mod.cpu_snapshot())
    assert math.isfinite(a.machine_busy_s) and 0.0 <= other <= cpu_mod.available_cores() + 0.5

    def no_proc(*a, **k):
        raise FileNotFoundError("/proc/stat")
    monkeypatch.setattr(cpu_mod, "open", no_proc, raising=False)
    assert math.isnan(cpu_mod.cpu_snapshot().machine_busy_s)


def test_the_probe_sleeps_between_two_snapshots_and_its_answer_is_reused(monkeypatch):
    clock = {"t": 0.0, "calls": 0}

    def fake_snapshot():
        clock["calls"] += 1
        return snap(clock["t"], 1.0 * clock["t"], 0.0)        # one core busy, not by this process
    monkeypatch.setattr(cpu_mod, "cpu_snapshot", fake_snapshot)
    monkeypatch.setattr(cpu_mod.time, "sleep", lambda s: clock.__setitem__("t", clock["t"] + s))
    monkeypatch.setattr(cpu_mod, "_probe_cache", [])
    assert cpu_mod.probe_other_busy_cores() == pytest.approx(1.0) and clock["calls"] == 2
    assert cpu_mod.probe_other_busy_cores() == pytest.approx(1.0) and clock["calls"] == 2   # reused


@pytest.fixture
def two_cores(monkeypatch):
    import os
    for name in THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    dev = pk.get_device("cpu")
    yield dev
    monkeypatch.setattr(cpu_mod, "probe_other_busy_cores", lambda: 0.0)
    dev.threads = None


@pytest.mark.parametrize("busy, want", [(0.0, 2), (0.3, 2), (1.0, 1), (0.8, 1), (2.0, 1), (math.nan, 2)])
def test_the_default_threads_leave_the_cores_other_processes_keep_busy(two_cores, monkeypatch, busy, want):
    monkeypatch.setattr(cpu_mod, "probe_other_busy_cores", lambda: busy)
    two_cores.threads = None
    assert two_cores.apply_threads() == want and two_cores.threads == want and two_cores.info()["threads"] == want


def test_an_explicit_count_or_the_environment_wins_over_the_probe(two_cores, monkeypatch):
    def never():
        raise AssertionError("probed although the user set the threads")
    monkeypatch.setattr(cpu_mod, "probe_other_busy_cores", never)
    two_cores.threads = 2
    assert two_cores.apply_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    two_cores.threads = None
    assert two_cores.apply_threads() == 2 and two_cores.threads == 2


def test_making_a_cpu_device_does_not_probe(monkeypatch):
    # the 0.1 s probe belongs to the timing functions (apply_threads), not to start-up
    from perfkit.device.cpu import CpuDevice

    def never():
        raise AssertionError("probed at start-up")
    monkeypatch.setattr(cpu_mod, "probe_other_busy_cores", never)
    dev = CpuDevice()
    assert dev.threads >= 1
