"""The distributed sweep's trace (perfkit.bench.sweep_trace): every process of the sweep records its steps,
in causal order, under its own role; the sweep's argument check does not import Dask; the sweep returns with
its processes ended; perfkit's scheduler and nannies do not poll the GPUs for Dask's dashboard."""
import json
import os
import subprocess
import sys

import pytest

import perfkit as pk
from perfkit.bench import sweep_trace

pytest.importorskip("distributed")
two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a 2-worker CPU cluster needs 2 cores")
FAST = {"min_time_s": 0.03, "min_iterations": 3, "rounds": 6, "progress": False}


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _roles(trace):
    """Each process's role: one per process, and ``caller`` for this process only."""
    per_pid = trace.groupby("pid")["role"].unique()
    assert all(len(r) == 1 for r in per_pid), per_pid
    roles = {pid: r[0] for pid, r in per_pid.items()}
    assert {pid for pid, r in roles.items() if r == "caller"} == {os.getpid()}, roles
    return roles


@two_cores
def test_every_process_of_a_distributed_sweep_traces_its_steps_in_order(tmp_path, monkeypatch):
    from perfkit.bench import measure_handoff
    monkeypatch.setattr(measure_handoff, "ENABLED", True)      # the GPU workers' way, on CPU workers
    path = str(tmp_path / "trace.jsonl")
    monkeypatch.setenv(sweep_trace.ENV, path)
    net = pk.models.mlp((16, 24, 4), seed=3, name="tiny_trace")
    frame = pk.sweep(net, batch_sizes=[1, 2], precisions=["fp32"], devices=["cpu", "cpu"], out=tmp_path / "d", **FAST)
    assert len(frame) == 2 and (frame["error"] == "").all()
    trace = sweep_trace.read(path)
    assert trace.attrs["damaged_lines"] == 0
    roles = _roles(trace)
    assert sorted(roles.values()) == ["caller", "measuring", "measuring", "worker", "worker"]
    first = {}
    for ev, t in zip(trace["event"], trace["t"]):
        first.setdefault(ev, t)
    # one chain of cause and effect ("tasks submitted" is not in it: a worker may start a task before the caller
    # has submitted the last one)
    steps = ["sweep called", "measuring processes started", "Dask imported", "cluster started", "task started",
             "configuration sent", "configuration received", "configuration done", "configuration measured",
             "row written", "collection ended", "sweep returns"]
    missing = [s for s in steps if s not in first]
    assert not missing, missing
    assert [first[s] for s in steps] == sorted(first[s] for s in steps), trace[["s", "role", "event"]]
    # each measuring process: started by the caller, ready and taken by its worker before its first configuration
    measuring = trace[trace["role"] == "measuring"]
    for pid, g in measuring.groupby("pid"):
        events = list(g["event"])
        assert events[0] == "measuring process running" and events[-1] == "measuring process exits", events
        got = events.index("configuration received")
        assert {"prepared", "worker connected"} <= set(events[:got]), events
    assert set(trace.loc[trace["event"] == "measuring process adopted", "measuring_pid"]) == set(measuring["pid"])
    # the cluster closed before the sweep returned: no process of it is left
    closed = trace[trace["event"] == "cluster closed"]
    assert len(closed) == 1 and closed["t"].iloc[0] <= first["sweep returns"] and closed["failed"].isna().all()
    others = set(trace["pid"]) - {os.getpid()}
    assert len(others) == 4 and all(_gone(pid) for pid in others), others


def test_a_users_own_cluster_traces_its_tasks_as_the_workers(tmp_path, monkeypatch):
    # a user's workers carry none of perfkit's variables: the task's own steps still say they are the worker's
    from distributed import Client, LocalCluster
    path = str(tmp_path / "trace.jsonl")
    monkeypatch.setenv(sweep_trace.ENV, path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) \
            as cluster, Client(cluster) as client:
        frame = pk.sweep(pk.models.mlp((8, 8, 2), seed=1, name="tiny_own"), batch_sizes=[1], devices=client, **FAST)
    assert (frame["error"] == "").all()
    trace = sweep_trace.read(path)
    roles = _roles(trace)
    tasks = trace[trace["event"].isin(["task started", "configuration sent", "configuration measured"])]
    assert len(tasks) == 3 and {roles[p] for p in tasks["pid"]} == {"worker"}, tasks


def test_without_the_variable_nothing_is_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv(sweep_trace.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    sweep_trace.mark("anything")
    assert os.listdir(tmp_path) == []


def test_an_unwritable_trace_is_said_once_and_a_damaged_line_is_left_out(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(sweep_trace.ENV, str(tmp_path / "no" / "such" / "folder" / "t.jsonl"))
    monkeypatch.setattr(sweep_trace, "_warned", False)
    with caplog.at_level("WARNING", logger="perfkit"):
        sweep_trace.mark("one")
        sweep_trace.mark("two")
    assert [r.getMessage().count("cannot write") for r in caplog.records] == [1]
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv(sweep_trace.ENV, str(path))
    sweep_trace.mark("whole", t="not the time")            # a field cannot overwrite the event's own keys
    with open(path, "a") as f:
        f.write('{"t": 1.0, "pid": 3, "ro')                 # a write cut short
    trace = sweep_trace.read(str(path))
    assert list(trace["event"]) == ["whole"] and trace.attrs["damaged_lines"] == 1
    assert isinstance(trace["t"].iloc[0], float)


def test_checking_a_distributed_sweeps_arguments_does_not_import_dask():
    # Dask's import (a second or more) overlaps the measuring processes' start only if nothing imports it before
    code = ("import sys, perfkit; from perfkit.bench.distributed import check_devices; "
            "check_devices(['cpu', 'cpu'], None); print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().replace("'", '"')) == []


@two_cores
def test_perfkits_scheduler_and_nannies_poll_no_gpu_for_dasks_dashboard():
    from perfkit.bench import distributed as dist, local_cluster
    cluster, client = local_cluster.start_local_cluster(dist.resolve_devices(["cpu", "cpu"]))
    try:
        monitors = [cluster.scheduler.periodic_callbacks["monitor"]] + \
            [w.periodic_callbacks["monitor"] for w in cluster.workers.values() if "monitor" in w.periodic_callbacks]
    finally:
        client.close()
        cluster.close()
    assert {m.callback_time for m in monitors} == {5000}
