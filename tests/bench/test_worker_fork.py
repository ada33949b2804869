"""perfkit's local workers forked from a server that imported their modules first (perfkit.bench.worker_fork):
the workers are the server's children, start with their modules already imported, and get the caller's
current environment; with the fork server off, Dask's nanny spawns them as before."""
import os

import pytest

pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a 2-worker CPU cluster needs 2 cores")

from perfkit.bench import distributed as dist  # noqa: E402
from perfkit.bench import sweep_trace, worker_fork  # noqa: E402


def _origin():
    from perfkit.bench import worker_prepare
    return {"ppid": os.getppid(), "imported_by_parent": worker_prepare.IMPORTED_BY == os.getppid(),
            "later": os.environ.get("PERFKIT_TEST_SET_LATER"), "trace": os.environ.get(sweep_trace.ENV),
            "gpu": os.environ.get("PERFKIT_WORKER_DEVICE")}


def _cluster_origins():
    cluster, client = dist.start_local_cluster(dist.resolve_devices(["cpu", "cpu"]))
    try:
        return list(client.run(_origin).values())
    finally:
        client.close()
        cluster.close()


def test_workers_are_forked_from_a_server_that_imported_their_modules(monkeypatch):
    from multiprocessing import forkserver
    monkeypatch.setattr(worker_fork, "ENABLED", True)
    worker_fork.start_server().join()
    # set after the server started: a forked worker inherits the server's environment, so it must come from the
    # caller as it is now; and a trace the caller does not ask for is off in the workers
    monkeypatch.setenv("PERFKIT_TEST_SET_LATER", "yes")
    monkeypatch.delenv(sweep_trace.ENV, raising=False)
    origins = _cluster_origins()
    server = forkserver._forkserver._forkserver_pid
    assert server and server != os.getpid()
    assert [o["ppid"] for o in origins] == [server, server], (origins, server)
    assert all(o["imported_by_parent"] for o in origins), origins    # their modules came with the fork
    assert all(o["later"] == "yes" and not o["trace"] and o["gpu"] == "cpu" for o in origins), origins


def test_without_the_fork_server_the_nanny_spawns_its_workers(monkeypatch):
    monkeypatch.setattr(worker_fork, "ENABLED", False)
    origins = _cluster_origins()
    assert [o["ppid"] for o in origins] == [os.getpid()] * 2, origins
    assert not any(o["imported_by_parent"] for o in origins), origins
