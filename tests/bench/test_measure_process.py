"""A sweep worker's measuring child (perfkit.bench.measure_process): it measures what the worker's thread
would, a child that dies ends only its configuration, errors come back as text, an orphan stops."""
import os
import signal
import subprocess
import sys
import time

import pytest

import perfkit as pk
from perfkit.bench import measure_handoff as mh
from perfkit.bench import measure_process as mp

FAST = {"min_time_s": 0.02, "min_iterations": 3, "rounds": 3, "max_cv_pct": 10.0}


def _payload(device="cpu", batch=2):
    return {"net": pk.models.mlp((16, 24, 4), seed=3, name="tiny_m"), "batch": batch, "precision": "fp32",
            "device": device, "opts": FAST, "layers": False, "run_id": "r1", "label": "cpu"}


@pytest.fixture
def child():
    c = mp.Child()
    yield c
    c.close()


def test_the_child_measures_a_configuration_and_reports_its_slices(child):
    slices = []
    frame = child.measure(_payload(), lambda: slices.append(1))
    assert len(frame) == 1 and frame["error"].iloc[0] == "" and frame["model"].iloc[0] == "tiny_m"
    assert int(frame["batch_size"].iloc[0]) == 2 and frame["latency_median_ms"].iloc[0] > 0
    timed = 2 if frame["remeasured"].iloc[0] else 1          # a spread above max_cv_pct times it once more
    assert len(slices) == FAST["rounds"] * timed and frame["run_id"].iloc[0] == "r1"
    again = child.measure(_payload(batch=4), None)        # the same process measures the next one
    assert int(again["batch_size"].iloc[0]) == 4 and child.alive()


def test_a_child_killed_while_measuring_fails_only_that_configuration(child):
    def kill():
        if child.alive():
            os.kill(child.proc.pid, signal.SIGKILL)
    with pytest.raises(mp.MeasureProcessError, match="killed by signal 9 while getting ready or measuring"):
        child.measure(_payload(), kill)
    assert not child.alive()
    fresh = mp.Child()                  # what measure() starts for the next configuration
    try:
        assert fresh.measure(_payload(), None)["error"].iloc[0] == ""
    finally:
        fresh.close()


def test_a_child_ignores_ctrl_c_and_one_stopped_by_a_shutdown_is_not_a_failed_configuration(child):
    # Ctrl-C reaches the whole process group: the child goes on (its worker's shutdown ends it) ...
    sent = []

    def interrupt():
        if not sent:
            sent.append(os.kill(child.proc.pid, signal.SIGINT))
    assert child.measure(_payload(), interrupt)["error"].iloc[0] == "" and sent and child.alive()

    # ... and one stopped by SIGTERM says so, marked interrupted (no row is kept; resume measures it), and the
    # mark survives Dask's pickling of task errors
    def stop():
        if child.alive():
            os.kill(child.proc.pid, signal.SIGTERM)
    with pytest.raises(mp.MeasureProcessError, match="stopped by SIGTERM") as err:
        child.measure(_payload(), stop)
    assert err.value.interrupted and "out of host" not in err.value.text
    import pickle
    assert pickle.loads(pickle.dumps(err.value)).interrupted


def test_an_error_in_the_child_comes_back_as_its_type_and_message(child):
    with pytest.raises(mp.MeasureProcessError) as err:
        child.measure(_payload(device="cuda:97"), None)
    assert err.value.text.startswith(("DeviceError", "ArgumentError")), err.value.text
    assert child.alive() and child.measure(_payload(), None)["error"].iloc[0] == ""


def test_a_child_whose_worker_died_stops():
    code = ("from perfkit.bench import measure_process as m; import os; c = m.Child(); "
            "print(c.proc.pid, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/status").read().split("State:")[1].split()[0]
        except (OSError, IndexError):
            return                          # gone
        if state == "Z":
            return                          # ended, waiting for its new parent to reap it
        time.sleep(0.1)
    pytest.fail(f"the orphaned measuring process {pid} is still running")


@pytest.mark.gpu
@pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")
def test_preparing_on_a_gpu_loads_the_tactics_libraries_for_the_thread_that_builds():
    """What a measuring child does while its cluster starts, in a fresh process (as a child is): cuDNN's handle
    for this thread and device (the one its builds look up and reuse) exists afterwards."""
    from perfkit.ops import cuda_cudnn
    if cuda_cudnn.unavailable_reason() is not None:
        pytest.skip(cuda_cudnn.unavailable_reason())
    code = ("import cupy; from perfkit.bench import measure_process as mp; from perfkit.ops import cuda_cudnn; "
            "mp.prepare('cuda:0'); d = cupy.cuda.runtime.getDevice(); h = getattr(cuda_cudnn._LOCAL, 'handles', {}); "
            "print(d in h)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True", out.stdout


# processes the sweep's caller starts before its cluster, which a worker adopts (perfkit.bench.measure_handoff)

@pytest.fixture
def handoff():
    from perfkit.bench.distributed_host import ENV_DEVICE
    from perfkit.bench.measure_handoff import Handoff
    h = Handoff([("cpu", {ENV_DEVICE: "cpu"})])
    yield h
    h.close()


def _offer(h, i=0):
    from perfkit.bench import measure_handoff as mh
    env = h.env[i]
    return mh.Offer(env[mh.ENV_ADDRESS], bytes.fromhex(env[mh.ENV_KEY]), int(env[mh.ENV_PID]),
                    os.path.dirname(env[mh.ENV_ADDRESS]))


def test_a_worker_adopts_the_process_the_caller_started_and_measures_in_it(handoff, monkeypatch):
    for k, v in handoff.env[0].items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(mp, "_child", None)
    monkeypatch.setattr(mp, "_adopting", None)
    mp.prestart("cpu")
    frame = mp.measure(_payload(), None)
    child = mp._child
    try:
        assert isinstance(child, mh.Adopted) and child.pid == handoff.procs[0].pid
        assert frame["error"].iloc[0] == "" and frame["model"].iloc[0] == "tiny_m"
        assert mp.measure(_payload(batch=4), None)["batch_size"].iloc[0] == 4 and mp._child is child
    finally:
        child.close()
    handoff.procs[0].wait(30)                    # it ends on its worker's closed connection


def test_a_second_worker_offered_a_taken_process_starts_its_own_child(handoff):
    from perfkit.bench import measure_handoff as mh
    first = mh.connect(_offer(handoff))
    assert first is not None
    t0 = time.monotonic()
    assert mh.connect(_offer(handoff)) is None   # a worker its nanny restarted: the process is taken
    assert time.monotonic() - t0 < 5
    first[0].close()


def _adopted(handoff):
    from perfkit.bench import measure_handoff as mh
    conn, pid = mh.connect(_offer(handoff))
    return mh.Adopted(conn, pid, _offer(handoff).folder)


@pytest.mark.parametrize("sig, said, interrupted", [
    (signal.SIGTERM, "stopped by SIGTERM", True),                       # a shutdown: not a failed configuration
    (signal.SIGKILL, "ended while getting ready or measuring", False)])  # killed: only that configuration fails
def test_an_adopted_process_that_ends_while_measuring(handoff, sig, said, interrupted):
    child = _adopted(handoff)

    def end():
        if child.alive():
            os.kill(child.pid, sig)
    with pytest.raises(mp.MeasureProcessError, match=said) as err:
        child.measure(_payload(), end)
    assert err.value.interrupted == interrupted and not child.alive()


def test_processes_no_worker_took_end_with_the_handoff_and_leave_no_folder(handoff):
    proc, folder = handoff.procs[0], handoff.folders[0]
    assert proc.poll() is None and os.path.isdir(folder)
    t0 = time.monotonic()
    handoff.close()
    assert proc.poll() is not None and not os.path.exists(folder)
    assert time.monotonic() - t0 < mp.CLOSE_S - 1       # ended at once, not after the grace adopted ones get


def test_an_adopted_process_whose_worker_died_mid_configuration_stops(handoff):
    # the worker asks for a minute of timing and dies after the first slice: the process stops (its next report
    # finds nobody to read it, or its watch sees the worker gone), not a minute later
    env = {**os.environ, **handoff.env[0], "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = ("from perfkit.bench import measure_handoff as mh; import os, time, perfkit as pk; "
            "got = mh.connect(mh.offered()); print(got[1], flush=True); "
            "got[0].send(('measure', {'net': pk.models.mlp((16, 24, 4), seed=3, name='tiny_m'), 'batch': 2, "
            "'precision': 'fp32', 'device': 'cpu', 'opts': {'min_time_s': 60.0, 'min_iterations': 3, 'rounds': 3, "
            "'max_cv_pct': 10.0}, 'layers': False, 'run_id': 'r', 'label': 'cpu'})); "
            "got[0].recv(); os._exit(0)")                  # after its first timing slice
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert int(out.stdout.split()[-1]) == handoff.procs[0].pid
    handoff.procs[0].wait(30)                    # its worker is gone: it stops


def test_the_watch_of_an_adopted_process_ends_it_when_its_worker_is_gone():
    # a configuration whose single slice or build takes minutes reports nothing meanwhile: only the watch ends it
    code = ("import subprocess, sys; from perfkit.bench import measure_handoff as mh; "
            "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.3)']); "
            "mh._watch_worker(worker.pid)")
    out = subprocess.run([sys.executable, "-c", code], timeout=30,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert out.returncode == 3


def test_an_adopted_process_ignores_ctrl_c(handoff):
    child = _adopted(handoff)
    sent = []

    def interrupt():
        if not sent:
            sent.append(os.kill(child.pid, signal.SIGINT))
    try:
        assert child.measure(_payload(), interrupt)["error"].iloc[0] == "" and sent and child.alive()
    finally:
        child.close()
