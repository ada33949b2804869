import os
import subprocess
import sys

import pandas as pd

import perfkit as pk
from perfkit.frames import SWEEP, BUILD_LOG


def test_demo_writes_frames_and_chart(tmp_path, capsys):
    from perfkit.cli import main
    rc = main(["demo", "--device", "cpu", "--out", str(tmp_path), "--batch-sizes", "1,4", "--precisions", "fp32,fp16",
               "--models", "mnist_mlp,lenet", "--min-time", "0.01"])
    assert rc == 0
    (run,) = list(tmp_path.iterdir())
    files = sorted(os.listdir(run))
    assert files == ["build_log.parquet", "engine_layers.parquet", "profile_lenet", "profile_mnist_mlp", "sweep.parquet",
                     "throughput_vs_batch.png", "trace_lenet.json", "trace_mnist_mlp.json"]
    loaded = pk.load_run(run / "profile_lenet")
    assert loaded.layers["iteration"].nunique() == 10
    import json
    assert any(e.get("cat") == "layer" for e in json.load(open(run / "trace_lenet.json"))["traceEvents"])
    sweep = pd.read_parquet(run / "sweep.parquet")
    assert len(sweep) == 2 * 2 * 2
    assert set(SWEEP.names) <= set(sweep.columns)
    assert (sweep["throughput_per_s"] > 0).all()
    BUILD_LOG.validate(pd.read_parquet(run / "build_log.parquet"))
    from perfkit.frames import ENGINE_LAYERS
    layers = ENGINE_LAYERS.validate(pd.read_parquet(run / "engine_layers.parquet"))
    assert {"model", "engine_precision"} <= set(layers.columns)
    assert (run / "throughput_vs_batch.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "best throughput per model" in out and "mnist_mlp" in out


def test_cli_reports_errors_cleanly(capsys):
    from perfkit.cli import main
    assert main(["demo", "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_module_entry_point_info():
    r = subprocess.run([sys.executable, "-m", "perfkit", "info"], capture_output=True, text=True)
    assert r.returncode == 0 and f"perfkit {pk.__version__}" in r.stdout
