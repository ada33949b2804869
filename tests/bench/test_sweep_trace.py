"""The distributed sweep's trace (perfkit.bench.sweep_trace): every process of the sweep records its steps,
in causal order; the sweep's argument check does not import Dask; the sweep returns with its processes ended."""
import os
import subprocess
import sys

import pytest

import perfkit as pk
from perfkit.bench import sweep_trace

pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a 2-worker CPU cluster needs 2 cores")


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_every_process_of_a_distributed_sweep_traces_its_steps_in_order(tmp_path, monkeypatch):
    from perfkit.bench import measure_handoff
    monkeypatch.setattr(measure_handoff, "ENABLED", True)      # the GPU workers' way, on CPU workers
    path = str(tmp_path / "trace.jsonl")
    monkeypatch.setenv(sweep_trace.ENV, path)
    net = pk.models.mlp((16, 24, 4), seed=3, name="tiny_trace")
    frame = pk.sweep(net, batch_sizes=[1, 2], precisions=["fp32"], devices=["cpu", "cpu"], out=tmp_path / "d",
                     min_time_s=0.03, min_iterations=3, rounds=6, progress=False)
    assert len(frame) == 2 and (frame["error"] == "").all()
    trace = sweep_trace.read(path)
    assert set(trace["role"]) == {"caller", "worker", "measuring"}
    first = {}
    for ev, t in zip(trace["event"], trace["t"]):
        first.setdefault(ev, t)
    steps = ["sweep called", "measuring processes started", "Dask imported", "cluster started", "tasks submitted",
             "task started", "configuration sent", "configuration received", "configuration done",
             "configuration measured", "row written", "results collected", "sweep returns"]
    missing = [s for s in steps if s not in first]
    assert not missing, missing
    assert [first[s] for s in steps] == sorted(first[s] for s in steps), trace[["s", "role", "event"]]
    # each measuring process: started by the caller, ready, taken by its worker, one configuration each at least
    measuring = trace[trace["role"] == "measuring"]
    assert measuring["pid"].nunique() == 2
    for pid, g in measuring.groupby("pid"):
        events = list(g["event"])
        assert events[0] == "measuring process running" and events[-1] == "measuring process exits", events
        got = events.index("configuration received")
        assert {"prepared", "worker connected"} <= set(events[:got]), events
    assert set(trace.loc[trace["event"] == "measuring process adopted", "measuring_pid"]) == set(measuring["pid"])
    # the cluster closed before the sweep returned: no process of it is left
    closed = trace.loc[trace["event"] == "cluster closed", "t"]
    assert len(closed) == 1 and closed.iloc[0] <= first["sweep returns"]
    others = set(trace["pid"]) - {os.getpid()}
    assert len(others) == 4 and all(_gone(pid) for pid in others), others


def test_without_the_variable_nothing_is_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv(sweep_trace.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    sweep_trace.mark("anything")
    assert os.listdir(tmp_path) == []


def test_checking_a_distributed_sweeps_arguments_does_not_import_dask():
    # Dask's import (a second or more) overlaps the measuring processes' start only if nothing imports it before
    code = ("import sys, perfkit; from perfkit.bench.distributed import check_devices; "
            "check_devices(['cpu', 'cpu'], None); print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
