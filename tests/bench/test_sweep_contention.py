"""A neighbour keeping a core busy while a sweep times with every core's BLAS threads: the row records the
cores other processes kept busy (host_other_busy_cores) and sweep_disturbances calls it 'contended'."""
import math
import os

import numpy as np
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod
from perfkit.device.host import CpuSnapshot
from perfkit.profiling.summary import disturbances


class Machine:
    """Injected CPU snapshots: each timing slice lasts ``slice_s``; this process keeps ``own`` cores busy
    and other processes ``neighbour`` cores."""

    def __init__(self, neighbour, own=2.0, slice_s=0.05):
        self.t, self.neighbour, self.own, self.slice_s = 0.0, neighbour, own, slice_s

    def snapshot(self):
        return CpuSnapshot(self.t, (self.neighbour + self.own) * self.t, self.own * self.t)

    def time_slice(self, *a):
        self.t += self.slice_s
        return np.array([0.3, 0.3])


def _sweep(monkeypatch, neighbour, threads=2):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.9, 0.9, 0.9))       # the load average sees nothing
    machine = Machine(neighbour)
    monkeypatch.setattr(rounds_mod, "cpu_snapshot", machine.snapshot)
    monkeypatch.setattr(rounds_mod, "time_slice", machine.time_slice)
    dev = pk.get_device("cpu", threads=threads)
    try:
        return pk.sweep(pk.models.mnist_mlp(), (8,), device="cpu", min_time_s=0.3, min_iterations=1, progress=False)
    finally:
        dev.threads = None


def test_a_busy_neighbour_with_two_blas_threads_on_two_cores_is_contended(monkeypatch):
    frame = _sweep(monkeypatch, neighbour=1.0)
    (row,) = frame.to_dict("records")
    assert row["threads"] == 2 and row["host_other_busy_cores"] == pytest.approx(1.0)
    pk.frames.SWEEP.validate(frame, strict=True)
    (note,) = frame.attrs["disturbances"]
    assert "1.0 of 2 cores busy while 2 BLAS threads" in note and "threads=1" in note
    assert "contended" in set(disturbances(row)["finding"])


def test_no_neighbour_or_one_thread_is_not_contended(monkeypatch):
    frame = _sweep(monkeypatch, neighbour=0.0)
    assert frame["host_other_busy_cores"].tolist() == [0.0] and frame.attrs["disturbances"] == []
    frame = _sweep(monkeypatch, neighbour=1.0, threads=1)
    assert frame["host_other_busy_cores"].tolist() == [pytest.approx(1.0)] and frame.attrs["disturbances"] == []


def test_contended_needs_the_columns_and_skips_cuda_rows():
    row = {"host_other_busy_cores": 1.0, "host_cpus": 2, "threads": 2, "device": "cpu"}
    assert disturbances(row)["finding"].tolist() == ["contended"]
    assert disturbances({**row, "host_other_busy_cores": 0.2}).empty                 # 2.2 <= 2 + 0.25
    assert disturbances({**row, "host_other_busy_cores": math.nan}).empty
    assert disturbances({**row, "device": "cuda:0"}).empty and disturbances({**row, "threads": 0}).empty
    assert disturbances({k: v for k, v in row.items() if k != "host_other_busy_cores"}).empty


def test_a_sweep_timed_on_several_devices_of_one_host_at_once_says_so(monkeypatch):
    """A distributed sweep's rows from two devices of one host get one sentence, counted against every row;
    rows of two runs each on one device, of one run on two hosts, or without a run or host get none; failed
    rows do not count; CPU workers are told apart by their cores."""
    import pandas as pd
    frame = _sweep(monkeypatch, neighbour=0.0)
    host = frame["host"].iloc[0]
    two = pd.concat([frame.assign(device="cuda:10"), frame.assign(device="cuda:2", batch_size=16)],
                    ignore_index=True)
    notes = pk.bench.sweep_disturbances(two)
    (note,) = [n for n in notes if "at once" in n]
    assert note.startswith(f"2 of 2 configuration(s) were timed on 2 devices of host {host} at once "
                           "(cuda:2, cuda:10) by a distributed sweep:")
    assert rounds_mod.concurrent_devices(two.astype("string")) == [note]      # as pk.load_sweep gives it
    assert rounds_mod.concurrent_devices(two.assign(run_id=["a", "b"])) == []
    assert rounds_mod.concurrent_devices(two.assign(host=["h1", "h2"])) == []
    assert rounds_mod.concurrent_devices(two.assign(run_id=[None, "a"])) == []
    assert rounds_mod.concurrent_devices(two.assign(host=pd.array([pd.NA, host], dtype="string"))) == []
    assert rounds_mod.concurrent_devices(two.drop(columns="run_id")) == []
    failed = pk.bench.sweep_disturbances(two.assign(error=[None, "out of memory"]))
    assert not [n for n in failed if "at once" in n]
    three = pd.concat([two, two.assign(run_id="other", batch_size=32)], ignore_index=True)
    (both,) = rounds_mod.concurrent_devices(three.assign(error=""))         # two concurrent runs: one sentence
    assert both.startswith("4 of 4 configuration(s)") and "by 2 distributed sweeps" in both
    (partly,) = [n for n in pk.bench.sweep_disturbances(three.assign(error=["", "", "", "boom"])) if "at once" in n]
    assert partly.startswith("2 of 4 configuration(s)") and "by a distributed sweep" in partly   # 'other': one left
    cpus = pd.concat([frame.assign(cpu_cores="0"), frame.assign(cpu_cores="1", batch_size=16)], ignore_index=True)
    (note,) = rounds_mod.concurrent_devices(cpus)
    assert "on 2 devices of host" in note and "(cpu on cores 0, cpu on cores 1)" in note
    assert rounds_mod.concurrent_devices(cpus.assign(cpu_cores="0-1")) == []   # one worker's cores: serialised
