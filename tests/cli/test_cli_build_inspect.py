"""``perfkit build`` and ``perfkit inspect``, and the round trip build -> inspect -> run --load-engine."""
import json

import numpy as np
import pytest

import perfkit as pk
from cli_helpers import QUICK, cli, one_error_line


@pytest.mark.slow
def test_round_trip_build_inspect_run(tmp_path):
    b = cli(tmp_path, "build", "lenet", "-o", "lenet.engine", "--batch", "4", "--device", "cpu")
    assert b.returncode == 0, b.stderr
    for text in ("=== Build ===", "=== Fusions ===", "=== Precision ===", "=== Tactics ===", "=== Memory plan ===",
                 "lenet.engine:"):
        assert text in b.stdout, text
    engine = pk.load_engine(tmp_path / "lenet.engine")
    assert engine.max_batch_size == 4 and engine.id in b.stdout
    fused = engine.build_log.query("phase == 'fusion' and outcome == 'fused'")
    assert all(name in b.stdout for name in fused["produced"])

    i = cli(tmp_path, "inspect", "lenet.engine")
    assert i.returncode == 0, i.stderr
    for r in engine.layers.itertuples():              # every layer with its precision, tactic and fused members
        line = next(line for line in i.stdout.splitlines() if line.split()[:2] == [str(r.index), r.layer.split()[0]])
        assert r.precision in line and (r.tactic or "-") in line
        if r.origin != r.layer:
            assert line.rstrip().endswith(r.origin)
    assert "=== Memory plan" in i.stdout and "verified" in i.stdout

    j = cli(tmp_path, "inspect", "lenet.engine", "--json", "--build-log")
    doc = json.loads(j.stdout)
    assert [x["layer"] for x in doc["layers"]] == list(engine.layers["layer"])
    assert doc["memory"] == engine.memory and doc["max_batch_size"] == 4 and doc["sha256"].startswith(engine.id)
    assert len(doc["build_log"]) == len(engine.build_log)
    plan = doc["memory_plan"]                             # tensors alive at the same time never share bytes
    for a in plan:
        for c in plan:
            if a is not c:
                la, ha = map(int, a["live_layers"].split("-"))
                lc, hc = map(int, c["live_layers"].split("-"))
                if not (ha < lc or hc < la):
                    assert a["offset"] + a["bytes"] <= c["offset"] or c["offset"] + c["bytes"] <= a["offset"]
    assert max(a["offset"] + a["bytes"] for a in plan) <= engine.memory["activations"]

    r = cli(tmp_path, "run", "--load-engine", "lenet.engine", *QUICK, "--export-times", "t.json")
    assert r.returncode == 0, r.stderr
    assert "lenet (engine file lenet.engine)" in r.stdout and "lenet fp32 batch 4" in r.stdout   # its max batch
    assert len(json.loads((tmp_path / "t.json").read_text())) >= 5


def test_build_options_reach_the_builder(tmp_path, capsys):
    from perfkit.cli import main
    assert main(["build", "mnist_mlp", "-o", str(tmp_path / "a.engine"), "--device", "cpu", "--fusions", "none",
                 "--tactics", "default", "--precision", "fp16", "--strict-types", "--verbose"]) == 0
    out = capsys.readouterr().out
    e = pk.load_engine(tmp_path / "a.engine")
    compute = e.layers[~e.layers["layer"].str.startswith("reformat ")]
    assert len(compute) == len(pk.models.mnist_mlp().layers)            # nothing fused
    assert set(compute["precision"]) == {"fp16"}                         # forced everywhere
    assert "=== Build log ===" in out and e.build_log["detail"].iloc[0] in out


def test_timing_cache_makes_the_second_build_skip_timing(tmp_path, capsys):
    from perfkit.cli import main
    cache = str(tmp_path / "t.cache")
    for n in range(2):
        assert main(["build", "mnist_mlp", "-o", str(tmp_path / f"{n}.engine"), "--device", "cpu", "--batch", "8",
                     "--timing-cache", cache]) == 0
        capsys.readouterr()
    second = pk.load_engine(tmp_path / "1.engine").build_log
    assert (second.query("phase == 'tactic'")["outcome"] == "cached").any()


def test_a_damaged_engine_file_is_one_line(tmp_path):
    e = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig())
    e.save(tmp_path / "m.engine")
    blob = bytearray((tmp_path / "m.engine").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "bad.engine").write_bytes(bytes(blob))
    for argv in (["inspect", "bad.engine"], ["run", "bad.engine", *QUICK]):
        r = cli(tmp_path, *argv)
        assert r.returncode == 2 and "checksum" in one_error_line(r.stderr) and r.stdout == ""


def test_inspect_needs_no_device_of_the_engine_kind(tmp_path, capsys, monkeypatch):
    from perfkit.cli import main
    e = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    e.save(tmp_path / "m.engine")
    import perfkit.device
    monkeypatch.setattr(perfkit.device, "get_device", lambda *a, **k: (_ for _ in ()).throw(AssertionError("device")))
    assert main(["inspect", str(tmp_path / "m.engine")]) == 0
    assert "2-layer MLP (ip1 + relu1 + ip2)" in capsys.readouterr().out
    assert np.isfinite(e.device_memory_bytes)


def test_time_by_phase_counts_each_millisecond_once():
    """A build that chooses fp16 by timing: the tactics it timed then are reused, not timed again, and the
    time by phase (perfkit build's report) adds up to no more than the build took (it once counted the
    tactic timing twice, and each candidate's own measured time as builder time)."""
    from perfkit.cli.build import phase_times
    eng = pk.Builder("cpu").build(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=4, precision="fp16"))
    log = eng.build_log
    assert (log["phase"] == "precision").sum() > 1
    summary = log[(log["phase"] == "tactic") & (log["outcome"] == "done")]
    assert len(summary) == 1 and "chosen from the timings the precision choice made" in summary["detail"].iloc[0]
    phases = phase_times(log)
    assert phases["sum"].sum() <= eng.build_time_ms
    assert phases.loc["tactic", "sum"] == summary["time_ms"].iloc[0]
