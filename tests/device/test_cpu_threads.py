"""The CPU device sizes its BLAS threads: threads= is honoured inside the computation (threadpoolctl reads
it between the layers), streams share the threads, and every measurement records the count."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import perfkit as pk
from perfkit.bench import rounds as rounds_mod


def _blas_threads():
    """The threads of NumPy's BLAS, the one perfkit's CPU engine computes with (its wheel's, inside the numpy
    package), as threadpoolctl reads them; of every BLAS with threads to size where none is NumPy's own
    (a system NumPy linked to the system's BLAS). The device sizes the others too
    (test_a_blas_loaded_after_the_first_look_is_sized_too); they do not decide these tests."""
    libs = [i for i in threadpool_info() if i["user_api"] == "blas" and i.get("threading_layer") != "disabled"]
    own = [i for i in libs if "numpy" in i["filepath"]]
    return [i["num_threads"] for i in (own or libs)]


class ThreadSpy:
    """A step hook: the BLAS threads in force as each layer starts, read inside the inference."""

    def __init__(self):
        self.seen = []

    def enter(self, index, step):
        self.seen.extend(_blas_threads())

    def exit(self, index, step):
        return None


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """The default-thread probe sees no other process busy (tests/device/test_cpu_contention.py covers it)."""
    from perfkit.device import host as cpu_mod
    monkeypatch.setattr(cpu_mod, "probe_other_busy_cores", lambda: 0.0)


@pytest.fixture
def cpu():
    dev = pk.get_device("cpu")
    yield dev
    dev.threads = None                      # the shared device back to its default for the other tests


def _context(dev, batch=4):
    net = pk.models.mnist_mlp()
    return pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=batch)).create_execution_context(), net


@pytest.mark.skipif(not _blas_threads(), reason="NumPy without a BLAS that threadpoolctl knows")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_are_in_force_inside_the_computation(cpu, threads):
    ctx, net = _context(cpu)
    assert pk.get_device("cpu", threads=threads) is cpu and cpu.threads == threads
    spy = ThreadSpy()
    ctx.step_hooks = [spy]
    ctx.execute(pk.models.sample_input(net, 4))
    assert spy.seen and set(spy.seen) == {threads}, threadpool_info()


@pytest.mark.skipif(not _blas_threads(), reason="NumPy without a BLAS that threadpoolctl knows")
def test_the_device_puts_its_threads_back_when_something_else_changed_them(cpu):
    from threadpoolctl import threadpool_limits
    cpu.threads = 2
    threadpool_limits(1, user_api="blas")               # another library changed the process's pools
    assert cpu.apply_threads() == 2 and set(_blas_threads()) == {2}, threadpool_info()


def _no_thread_env(monkeypatch):
    from perfkit.device.host import THREAD_ENV
    for name in THREAD_ENV:
        monkeypatch.delenv(name, raising=False)


def test_default_is_the_cores_the_process_may_use_and_streams_share_them(cpu, monkeypatch):
    import os
    _no_thread_env(monkeypatch)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    cpu.threads = None
    assert cpu.threads == 6
    assert [cpu.blas_threads(s) for s in (1, 2, 3, 4, 6, 12)] == [6, 3, 2, 1, 1, 1]
    cpu.threads = 2
    assert cpu.threads == 2 and cpu.info()["threads"] == 2


@pytest.mark.parametrize("env, want", [({"OPENBLAS_NUM_THREADS": "1"}, 1), ({"OMP_NUM_THREADS": "3"}, 3),
                                       ({"OMP_NUM_THREADS": "2,1", "MKL_NUM_THREADS": ""}, 2),
                                       ({"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"}, 1),
                                       ({"OMP_NUM_THREADS": "lots"}, 6)])
def test_the_threads_set_in_the_environment_are_the_default_and_threads_wins(cpu, monkeypatch, env, want):
    import os
    _no_thread_env(monkeypatch)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cpu.threads = None
    assert cpu.threads == want and cpu.info()["threads"] == want
    if _blas_threads():
        assert cpu.apply_threads() == want and set(_blas_threads()) == {want}, threadpool_info()  # in force
    assert pk.get_device("cpu", threads=2).threads == 2                          # an explicit count wins


def test_bad_thread_counts_are_refused_and_change_nothing(cpu):
    cpu.threads = 2
    for bad in (0, -1, 2.5, True, "2", 10 ** 6):
        with pytest.raises(pk.PerfkitError, match="threads"):
            pk.get_device("cpu", threads=bad)
    assert cpu.threads == 2
    if pk.cuda_available():
        with pytest.raises(pk.DeviceError, match="CPU"):
            pk.get_device("cuda", threads=2)


def test_measure_with_two_streams_gives_each_its_share_and_records_it(cpu):
    cpu.threads = 2
    ctx, _ = _context(cpu)
    m = pk.bench.measure(ctx, iterations=4, duration_s=0.0, warmup_ms=0, streams=2)
    assert m.meta["threads"] == 1 and m.value("threads") == 1
    assert "host_load_1m" in m.meta and m.value("host_cpus") >= 1
    one = pk.bench.measure(ctx, iterations=4, duration_s=0.0, warmup_ms=0)
    assert one.meta["threads"] == 2
    assert cpu.apply_threads() == 2                      # measure() restored the device's own count


def test_sweep_rows_and_runs_record_the_threads(cpu, monkeypatch):
    cpu.threads = 1
    monkeypatch.setattr(rounds_mod, "time_slice", lambda *a: np.array([1.0]))
    frame = pk.sweep(pk.models.mnist_mlp(), (2,), device="cpu", min_time_s=0.0, min_iterations=1, rounds=1)
    assert frame["threads"].tolist() == [1]
    pk.frames.SWEEP.validate(frame, strict=True)
    ctx, net = _context(cpu)
    with pk.profile(ctx, memory=False, gpu_metrics=False) as run:
        ctx.execute(pk.models.sample_input(net, 4))
    assert run.meta["threads"] == 1 and run.overview_values()["threads"] == 1.0


class _FakeLib:
    def __init__(self, threads, threading_layer="pthreads", filepath="/site-packages/other/libopenblas.so"):
        self.threads = threads
        self.threading_layer = threading_layer
        self.filepath = filepath

    def get_num_threads(self):
        return self.threads

    def set_num_threads(self, n):
        self.threads = n


def test_a_blas_loaded_after_the_first_look_is_sized_too(monkeypatch):
    """A second OpenBLAS that arrives with a later import (SciPy's, PyTorch's) gets the threads as well:
    the device once kept the libraries it found first and left a later one at its own count. A serial
    build, which has no threads to size, is left alone."""
    import threadpoolctl
    from perfkit.device.host import _Blas
    loaded = [_FakeLib(4), _FakeLib(1, threading_layer="disabled")]        # the second is a serial build

    class Controller:
        def select(self, user_api):
            assert user_api == "blas"
            return type("Selection", (), {"lib_controllers": list(loaded)})()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Controller)
    blas = _Blas()
    blas.apply(2)
    assert [lib.threads for lib in loaded] == [2, 1]
    loaded.append(_FakeLib(1, filepath="/site-packages/numpy.libs/libscipy_openblas64_.so"))   # NumPy's own,
    blas.apply(3)                                   # arriving late (through ctypes: no module was imported)
    assert [lib.threads for lib in loaded] == [3, 1, 3] and blas.current() == 3
    loaded[0].threads = 7                           # the foreign library changed by its owner
    assert blas.current() == 3                      # the count in force is NumPy's BLAS's
