"""``perfkit run``: the trtexec-shaped report, the files it exports, and several configurations."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from cli_helpers import QUICK, cli, everything
from perfkit.frames import QUERIES


def test_run_end_to_end_report_and_every_export(tmp_path):
    r = cli(tmp_path, "run", "lenet", "--batch", "2", *QUICK, "--iterations", "20", "--export-times", "times.json",
            "--export-profile", "profile.json", "--export-trace", "trace.json", "--save-engine", "lenet.engine",
            "--export-layer-info", "layers.json", "--out", "out")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for text in ("perfkit run: lenet (sample network) on cpu", "=== lenet fp32 batch 2: performance summary ===",
                 "Throughput:", "samples/s", "Latency (device-timed): min = ", "percentile(90%) = ",
                 "percentile(99%) = ", "Median interval: ", "(95% confidence, order statistics)", "Enqueue Time:",
                 "H2D Latency:",
                 "Compute Time:", "D2H Latency:", "Total Host Walltime:", "Disturbed:", "per-layer profile",
                 "=== Files ==="):
        assert text in out, text
    assert "Traceback" not in r.stderr
    queries = QUERIES.validate(pd.read_parquet(tmp_path / "out" / "fp32_b2" / "queries.parquet"))
    assert (queries["batch_size"] == 2).all() and len(queries) >= 20

    times = json.loads((tmp_path / "times.json").read_text())          # trtexec --exportTimes: one per query
    assert len(times) == len(queries)
    assert set(times[0]) >= {"startEnqMs", "endEnqMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "endToEndMs"}
    assert np.allclose([t["latencyMs"] for t in times], queries["latency_ms"])

    engine = pk.load_engine(tmp_path / "lenet.engine")                   # the engine that was measured
    names = list(engine.layers["layer"])
    info = json.loads((tmp_path / "layers.json").read_text())           # trtexec --exportLayerInfo
    assert [x["layer"] for x in info["layers"]] == names and info["memory"] == engine.memory
    assert [x["tactic"] for x in info["layers"]] == list(engine.layers["tactic"])
    profile = json.loads((tmp_path / "profile.json").read_text())        # trtexec --exportProfile
    assert profile[0] == {"count": 10}
    assert [p["name"] for p in profile[1:]] == names                     # every engine layer, in order
    assert sum(p["percentage"] for p in profile[1:]) == pytest.approx(100)
    trace = json.loads((tmp_path / "trace.json").read_text())
    layer_slices = [e for e in trace["traceEvents"] if e.get("cat") == "layer"]
    assert {e["name"] for e in layer_slices} == set(names) and len(layer_slices) == 10 * len(names)
    query_slices = [e for e in trace["traceEvents"] if e.get("cat") == "query"]
    assert len(query_slices) == len(queries) + 10           # the timed inferences, then the profiled ones
    first_layer = min(e["ts"] for e in layer_slices)
    timed = [e for e in query_slices if int(e["name"].split()[1]) < len(queries)]
    assert len(timed) == len(queries) and max(e["ts"] + e["dur"] for e in timed) <= first_layer

    from perfkit.frames.schemas_cli import RUN_RESULTS
    results = RUN_RESULTS.validate(pd.read_parquet(tmp_path / "out" / "results.parquet"))
    assert [c for c in results.columns if c not in RUN_RESULTS.names] == ["latency_p90_ms", "latency_p95_ms",
                                                                         "latency_p99_ms"]
    summary = pd.read_parquet(tmp_path / "out" / "fp32_b2" / "summary.parquet").set_index("metric")["value"]
    assert len(results) == 1 and results.loc[0, "batch_size"] == 2 and results.loc[0, "precision"] == "fp32"
    assert results.loc[0, "throughput_per_s"] == summary["throughput_per_s"]
    assert results.loc[0, "latency_median_ms"] == pytest.approx(queries["latency_ms"].median())
    assert results.loc[0, "engine_id"] == engine.id
    run = pk.load_run(tmp_path / "out" / "fp32_b2" / "profile")
    assert run.layers["iteration"].nunique() == 10 and set(run.layers["layer"]) == set(names)
    assert json.loads((tmp_path / "out" / "command.json").read_text())["configurations"] == ["fp32_b2"]
    assert not [p for p in everything(tmp_path) if "partial" in p]       # every staged name was renamed


def test_several_configurations_get_their_own_files_and_a_summary(tmp_path, capsys):
    from perfkit.cli import main
    rc = main(["run", "mnist_mlp", "--batch", "1,3", "--precision", "fp32,fp16", *QUICK, "--no-profile",
               "--export-times", str(tmp_path / "t.json"), "--save-engine", str(tmp_path / "m.engine")])
    out = capsys.readouterr().out
    assert rc == 0
    assert sorted(os.listdir(tmp_path)) == sorted(f"{stem}.{p}.b{b}.{ext}" for p in ("fp32", "fp16") for b in (1, 3)
                                                  for stem, ext in (("t", "json"), ("m", "engine")))
    for p in ("fp32", "fp16"):
        for b in (1, 3):
            e = pk.load_engine(tmp_path / f"m.{p}.b{b}.engine")
            assert e.max_batch_size == b and e.precision == p       # each configuration its own engine
    summary = out[out.index("=== Summary ==="):]
    assert len([line for line in summary.splitlines() if line.strip().startswith(("fp32", "fp16"))]) == 4
    assert "Highest throughput:" in summary
    assert "per-layer profile" not in out                           # --no-profile


def test_dump_profile_lists_every_layer_and_default_the_slowest_five(tmp_path, capsys):
    from perfkit.cli import main
    e = pk.Builder("cpu").build(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=1))
    e.save(tmp_path / "r.engine")
    n = len(e.layers)
    assert n > 5

    def profile_rows(argv):
        assert main(["run", str(tmp_path / "r.engine"), *QUICK, *argv]) == 0
        text = capsys.readouterr().out
        block = text[text.index("per-layer profile"):].splitlines()[2:]
        return [line for line in block if line.rstrip().endswith("%") and "layer sum" not in line], text

    rows, text = profile_rows([])
    assert len(rows) == 5 and f"(5 slowest of {n} layers; --dump-profile lists every layer)" in text
    rows, _ = profile_rows(["--dump-profile"])
    assert len(rows) == n
    assert [int(r.split()[0]) for r in rows] == list(range(n))                          # in execution order
    assert [r.split()[1] for r in rows] == [name.split()[0] for name in e.layers["layer"]]


def test_threads_run_through_bench_throughput_with_one_stream_per_context(tmp_path, capsys):
    from perfkit import bench
    if not hasattr(bench, "throughput"):
        pytest.skip("perfkit.bench.throughput is not in this tree yet")
    from perfkit.cli import main
    rc = main(["run", "mnist_mlp", "--batch", "2", *QUICK, "--streams", "2", "--threads", "2", "--no-profile",
               "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "streams: 2 (2 worker thread(s))" in out
    q = pd.read_parquet(tmp_path / "o" / "fp32_b2" / "queries.parquet")
    assert set(q["stream"]) == {0, 1}
    assert pd.read_parquet(tmp_path / "o" / "results.parquet").loc[0, "threads"] == 2
    assert "Disturbed: " in out
    assert os.path.exists(tmp_path / "o" / "fp32_b2" / "diagnoses.parquet")
    summary = pd.read_parquet(tmp_path / "o" / "fp32_b2" / "summary.parquet").set_index("metric")["value"]
    import re
    blas = int(re.search(r"(\d+) BLAS thread\(s\) per stream", out).group(1))
    assert blas == summary["blas_threads"]                 # not the 2 worker threads throughput() also reports


def test_no_transfers_and_streams_reach_measure(tmp_path, monkeypatch, capsys):
    from perfkit import bench
    from perfkit.cli import main
    seen = {}
    real = bench.measure

    def spy(ctx, batch, **kw):
        seen.update(kw, batch=batch)
        return real(ctx, batch, **kw)
    monkeypatch.setattr(bench, "measure", spy)
    assert main(["run", "mnist_mlp", "--batch", "4", *QUICK, "--streams", "3", "--no-transfers", "--no-profile",
                 "--percentiles", "50,99.9"]) == 0
    out = capsys.readouterr().out
    assert seen == {"batch": 4, "warmup_ms": 5.0, "iterations": 5, "duration_s": 0.03, "percentiles": (50.0, 99.9),
                    "include_transfers": False, "streams": 3}
    assert "percentile(99.9%) = " in out and "transfers: none" in out


def test_a_failure_midway_leaves_no_file_and_no_folder(tmp_path, monkeypatch, capsys):
    from perfkit import bench
    from perfkit.cli import main
    calls = []
    real = bench.measure

    def second_fails(ctx, batch, **kw):
        calls.append(batch)
        if len(calls) == 2:
            raise pk.ExecutionError("the device went away")
        return real(ctx, batch, **kw)
    monkeypatch.setattr(bench, "measure", second_fails)
    rc = main(["run", "mnist_mlp", "--batch", "1,2", *QUICK, "--export-times", str(tmp_path / "t.json"),
               "--export-profile", str(tmp_path / "p.json"), "--save-engine", str(tmp_path / "e.engine"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "the device went away" in err and len(err.strip().splitlines()) == 1
    assert everything(tmp_path) == set()                    # the first configuration's files were not kept either

    def interrupted(ctx, batch, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "measure", interrupted)
    assert main(["run", "mnist_mlp", *QUICK, "--out", str(tmp_path / "o")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert everything(tmp_path) == set()


def test_out_may_be_an_existing_empty_folder(tmp_path, capsys):
    from perfkit.cli import main
    (tmp_path / "o").mkdir()
    assert main(["run", "mnist_mlp", *QUICK, "--no-profile", "--out", str(tmp_path / "o")]) == 0
    assert sorted(os.listdir(tmp_path / "o")) == ["command.json", "fp32_b1", "results.parquet"]


def test_progress_goes_to_stderr_when_asked_and_never_into_the_report(tmp_path):
    r = cli(tmp_path, "run", "mnist_mlp", *QUICK, "--no-profile", "--progress")
    assert r.returncode == 0
    # a bar of one configuration (0/1 or 1/1: tqdm draws the last step only if its refresh interval passed)
    assert "perfkit run" in r.stderr and "measuring for 0.03 s" in r.stderr and "/1 [" in r.stderr
    assert "\r" not in r.stdout and "it/s" not in r.stdout
    quiet = cli(tmp_path, "run", "mnist_mlp", *QUICK, "--no-profile")       # stderr not a terminal: no bar
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_verbose_adds_the_build_and_every_figure_with_its_meaning(capsys):
    from perfkit.cli import main
    assert main(["run", "mnist_mlp", *QUICK, "--no-profile", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "=== Fusions ===" in out and "=== Tactics ===" in out and "=== Device ===" in out
    block = out[out.index("every figure of the measurement"):].splitlines()
    assert any(line.split()[0] == "throughput_per_s" and "samples per second" in line for line in block[2:])


def test_inputs_from_a_file_are_what_is_timed_and_profiled(tmp_path, monkeypatch, capsys):
    from perfkit import bench, profiling
    from perfkit.cli import main
    x = np.random.default_rng(3).standard_normal((5, 1, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "in.npz", data=x)
    seen, real = [], bench.measure

    def spy(ctx, batch, **kw):
        seen.append(kw["inputs"])
        return real(ctx, batch, **kw)
    monkeypatch.setattr(bench, "measure", spy)
    executed, real_profile = [], profiling.profile

    def profile_spy(ctx, *a, **k):
        real_execute = ctx.execute
        ctx.execute = lambda inputs, *b, **c: executed.append(inputs["data"].copy()) or real_execute(inputs, *b, **c)
        return real_profile(ctx, *a, **k)
    import perfkit.profiling as pp
    monkeypatch.setattr(pp, "profile", profile_spy)
    assert main(["run", "mnist_mlp", "--batch", "2", *QUICK, "--inputs", str(tmp_path / "in.npz")]) == 0, \
        capsys.readouterr().err
    assert len(seen) == 1 and np.array_equal(seen[0]["data"], x)
    assert executed and all(np.array_equal(e, x[:2]) for e in executed)


def test_cpu_threads_sets_the_blas_threads_measured_with(tmp_path):
    r = cli(tmp_path, "run", "mnist_mlp", *QUICK, "--no-profile", "--cpu-threads", "2", "--out", "o")
    assert r.returncode == 0, r.stderr
    summary = pd.read_parquet(tmp_path / "o" / "fp32_b1" / "summary.parquet").set_index("metric")["value"]
    assert summary["threads"] == 2 and "2 BLAS thread(s) per stream" in r.stdout


def test_each_built_engine_is_let_go_once_its_configuration_is_done(tmp_path, capsys, monkeypatch):
    import gc
    import weakref

    from perfkit import builder
    from perfkit.cli import main
    built, real = [], builder.Builder.build

    def keep_a_weak_reference(self, *a, **k):
        e = real(self, *a, **k)
        built.append(weakref.ref(e))
        return e
    monkeypatch.setattr(builder.Builder, "build", keep_a_weak_reference)
    alive_when_next_built = []
    real_measure = __import__("perfkit").bench.measure

    def measure(ctx, batch, **kw):
        gc.collect()
        alive_when_next_built.append(sum(r() is not None for r in built))
        return real_measure(ctx, batch, **kw)
    monkeypatch.setattr(__import__("perfkit").bench, "measure", measure)
    assert main(["run", "mnist_mlp", "--batch", "1,2,3", *QUICK, "--out", str(tmp_path / "o")]) == 0
    assert alive_when_next_built == [1, 1, 1]            # the earlier configurations' engines were freed
    assert pk.load_run(tmp_path / "o" / "fp32_b3" / "profile").layers["iteration"].nunique() == 10
