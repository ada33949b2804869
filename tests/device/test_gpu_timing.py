"""The builder's GPU timing on CUDA (device/gpu_timing.py, builder/tactics.py measure): the host's launch time is
hidden behind a spin kernel, so a run that spends 3 ms on the host before 100 us of GPU work measures about
100 us; work that synchronises gets a figure without inflating the wait for every later layer."""
import time

import numpy as np
import pytest

import perfkit as pk

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not pk.cuda_available(), reason="no CUDA GPU/CuPy")]


@pytest.fixture(autouse=True)
def _fresh_wait():
    from perfkit.device import gpu_timing
    gpu_timing._state["wait_ns"] = gpu_timing.FIRST_WAIT_NS
    yield
    gpu_timing._state["wait_ns"] = gpu_timing.FIRST_WAIT_NS


def _slow_launch(us: int):
    from perfkit.device.gpu_timing import _spin_kernel
    spin = _spin_kernel()

    def run():
        time.sleep(0.003)                       # a slow launch: Python, a library's planning
        spin((1,), (1,), (np.uint64(us * 1000),))   # then the GPU work
    return run


def test_host_time_before_the_work_is_not_measured():
    from perfkit.device import gpu_timing
    dev = pk.get_device("cuda")
    samples = [gpu_timing.gpu_ms(_slow_launch(100), dev) for _ in range(5)]
    assert 0.09 < float(np.median(samples)) < 0.5, samples
    assert gpu_timing._state["wait_ns"] > 3_000_000   # the wait grew to cover the 3 ms launch


def test_the_builders_measure_takes_gpu_time_where_graphs_replay():
    from perfkit.builder import tactics
    dev = pk.get_device("cuda")
    if not tactics.gpu_clock(dev):
        pytest.skip("no CUDA graphs here: the builder times from the host")
    ms = tactics.measure(None, _slow_launch(100), dev, 3)
    assert 0.09 < ms < 0.5, ms


def test_work_that_synchronises_gets_a_figure_and_leaves_the_wait_as_it_was():
    from perfkit.device import gpu_timing
    dev = pk.get_device("cuda")
    before = gpu_timing._state["wait_ns"]
    ms = gpu_timing.gpu_ms(dev.synchronize, dev)   # cannot be hidden: the last sample stands
    assert ms >= 0.0
    assert gpu_timing._state["wait_ns"] == before
