"""perfkit's local workers forked from a server that imported their modules first (perfkit.bench.worker_fork,
off by default): the workers are the server's children, start with their modules already imported, and get
the caller's current environment, less what it dropped; a fork server started for something else is left
alone; without it, Dask's nanny spawns them as before; a worker closes its measuring process as it closes."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")
two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a 2-worker CPU cluster needs 2 cores")

from perfkit.bench import distributed as dist, local_cluster  # noqa: E402
from perfkit.bench import worker_fork  # noqa: E402


def _origin():
    from perfkit.bench import worker_prepare
    return {"ppid": os.getppid(), "imported_by_parent": worker_prepare.IMPORTED_BY == os.getppid(),
            "later": os.environ.get("PERFKIT_TEST_SET_LATER"), "dropped": os.environ.get("PERFKIT_TEST_DROPPED"),
            "device": os.environ.get("PERFKIT_WORKER_DEVICE")}


def _cluster_origins():
    cluster, client = local_cluster.start_local_cluster(dist.resolve_devices(["cpu", "cpu"]))
    try:
        return list(client.run(_origin).values())
    finally:
        client.close()
        cluster.close()


@two_cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_workers_are_forked_from_a_server_that_imported_their_modules(monkeypatch):
    from multiprocessing import forkserver
    monkeypatch.setattr(worker_fork, "ENABLED", True)
    monkeypatch.setenv("PERFKIT_TEST_DROPPED", "stale")
    if worker_fork._running_pid() is None:          # the first in this process: started with the variable set
        assert worker_fork.start_server()
    else:                                           # started before: as if the variable had been set then
        monkeypatch.setitem(worker_fork._server_environ, "PERFKIT_TEST_DROPPED", "stale")
    # a forked worker inherits the server's environment: what the caller set since must come from it as it is now,
    # and what the caller dropped since must go
    monkeypatch.setenv("PERFKIT_TEST_SET_LATER", "yes")
    monkeypatch.delenv("PERFKIT_TEST_DROPPED")
    origins = _cluster_origins()
    server = forkserver._forkserver._forkserver_pid
    assert server and server == worker_fork._server_pid and server != os.getpid()
    assert [o["ppid"] for o in origins] == [server, server], (origins, server)
    assert all(o["imported_by_parent"] for o in origins), origins    # their modules came with the fork
    assert all(o["later"] == "yes" and o["dropped"] is None and o["device"] == "cpu" for o in origins), origins


@two_cores
def test_by_default_the_nanny_spawns_its_workers():
    assert worker_fork.ENABLED is False
    origins = _cluster_origins()
    assert [o["ppid"] for o in origins] == [os.getpid()] * 2, origins
    assert not any(o["imported_by_parent"] for o in origins), origins


_FOREIGN = """
import multiprocessing, os
from multiprocessing import forkserver
from perfkit.bench import distributed as dist, local_cluster, worker_fork
multiprocessing.get_context("forkserver").set_forkserver_preload(["__main__"])
forkserver.ensure_running()                 # a fork server of the caller's own, without perfkit's modules
worker_fork.ENABLED = True
assert not worker_fork.wanted()
cluster, client = local_cluster.start_local_cluster(dist.resolve_devices(["cpu", "cpu"]))
try:
    parents = set(client.run(os.getppid).values())
finally:
    client.close()
    cluster.close()
print("spawned" if parents == {os.getpid()} else f"forked {parents}")
"""


@two_cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_a_fork_server_started_for_something_else_is_left_alone(tmp_path):
    script = tmp_path / "foreign.py"
    script.write_text("if __name__ == '__main__':\n" + "".join("    " + line + "\n" for line in _FOREIGN.splitlines()))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "spawned"


def test_a_worker_closes_its_measuring_process_as_it_closes():
    # a worker forked from the fork server skips its exit handlers (Python < 3.13): the plugin's teardown closes the
    # measuring process and waits for it, as the exit handler would
    import asyncio

    from perfkit.bench import measure_process
    from perfkit.bench.worker_prepare import PrepareMeasuring
    measure_process._start("cpu")
    child = measure_process._child
    assert child is not None and child.alive()
    try:
        asyncio.run(PrepareMeasuring().teardown(None))
        assert measure_process._child is None and child.proc.poll() is not None
    finally:
        measure_process._close()


@two_cores
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_a_changed_perfkit_starts_the_fork_server_afresh(monkeypatch):
    # a notebook that edits or reinstalls perfkit: workers forked from the old server would run the old code
    monkeypatch.setattr(worker_fork, "ENABLED", True)
    assert worker_fork.start_server()
    before = worker_fork._server_pid
    assert worker_fork.start_server() and worker_fork._server_pid == before        # unchanged: kept
    root, newest = worker_fork._fingerprint()
    monkeypatch.setattr(worker_fork, "_fingerprint", lambda: (root, newest + 1.0))
    origins = _cluster_origins()
    after = worker_fork._server_pid
    assert after not in (None, before) and [o["ppid"] for o in origins] == [after, after], (before, after, origins)
