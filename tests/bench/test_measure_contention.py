"""measure() and profile runs record the cores other processes kept busy while they timed, and say
'contended' when those and the BLAS threads outnumber the cores (injected snapshots; the real probe is
tested in tests/device/test_cpu_contention.py)."""
import importlib

import pytest

import perfkit as pk
import perfkit.profiling.run as run_mod
from perfkit.models import mnist_mlp

measure_mod = importlib.import_module("perfkit.bench.measure")    # the module, not the function it exports


@pytest.fixture
def engine():
    return pk.Builder(pk.get_device("cpu", threads=2)).build(mnist_mlp(), pk.BuilderConfig(max_batch_size=4))


@pytest.mark.parametrize("busy, said", [(1.2, True), (0.0, False)])
def test_measure_names_a_contended_host(monkeypatch, engine, busy, said):
    monkeypatch.setattr(measure_mod, "other_busy_cores", lambda a, b: busy)
    monkeypatch.setattr(measure_mod, "host_load", lambda: {"host_load_1m": 0.5, "host_cpus": 2})
    m = pk.bench.measure(engine.create_execution_context(), 4, iterations=5, duration_s=0.0, warmup_ms=0,
                         gpu_metrics=False)
    assert m.summary.set_index("metric").loc["host_other_busy_cores", "value"] == busy
    assert ("contended" in set(m.diagnoses["finding"])) is said


@pytest.mark.parametrize("busy, said", [(1.2, True), (0.0, False)])
def test_a_profile_run_names_a_contended_host(monkeypatch, engine, busy, said, tmp_path):
    monkeypatch.setattr(run_mod, "other_busy_cores", lambda a, b: busy)
    monkeypatch.setattr(run_mod, "host_load", lambda: {"host_load_1m": 0.5, "host_cpus": 2})
    ctx = engine.create_execution_context()
    x = pk.models.sample_input(mnist_mlp(), 4)
    with pk.profile(ctx, memory=False) as run:
        for _ in range(3):
            ctx.execute(x)
    assert run.overview_values()["host_other_busy_cores"] == busy
    assert ("contended" in set(run.disturbances()["finding"])) is said
    again = pk.load_run(run.save(tmp_path / "run"))           # saved with the run, checked on load
    assert again.overview_values()["host_other_busy_cores"] == busy


def test_streams_that_outnumber_the_cores_are_named_as_perfkit_s_own_doing():
    # perfkit run --streams 4 on 2 cores, nothing else running: the fix is fewer streams, not a quiet machine
    from perfkit.profiling.summary import _contended
    (finding,) = _contended({"host_other_busy_cores": 0.0, "host_cpus": 2, "threads": 4, "device": "cpu"})
    assert finding[0] == "contended"
    assert "perfkit itself ran 4 BLAS threads" in finding[3] and "fewer streams" in finding[3]
    assert "other processes kept" not in finding[3]
    (busy,) = _contended({"host_other_busy_cores": 1.5, "host_cpus": 2, "threads": 2, "device": "cpu"})
    assert busy[3].startswith("other processes kept 1.5 of 2 cores busy")      # a busy neighbour: as before
