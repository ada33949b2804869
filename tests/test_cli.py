import os
import subprocess
import sys

import numpy as np
import pandas as pd

import perfkit as pk
from perfkit.frames import SWEEP, BUILD_LOG


def test_demo_writes_frames_and_chart(tmp_path, capsys, monkeypatch):
    import perfkit.plots
    from perfkit.cli import main
    drawn, plot_sweep = [], perfkit.plots.plot_sweep
    monkeypatch.setattr(perfkit.plots, "plot_sweep", lambda *a, **k: drawn.append(plot_sweep(*a, **k)) or drawn[-1])
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
    assert np.allclose(sweep["throughput_per_s"], sweep["batch_size"] / sweep["latency_median_ms"] * 1e3)
    BUILD_LOG.validate(pd.read_parquet(run / "build_log.parquet"))
    from perfkit.frames import ENGINE_LAYERS
    layers = ENGINE_LAYERS.validate(pd.read_parquet(run / "engine_layers.parquet"))
    assert {"model", "engine_precision"} <= set(layers.columns)
    (fig,) = drawn                                  # the saved chart: throughput of the sweep just written
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(f"{m} {p}" for m in ("mnist_mlp", "lenet") for p in ("fp32", "fp16"))
    for line, label in zip(ax.lines, labels):
        model, precision = label.split()
        want = sweep[(sweep["model"] == model) & (sweep["precision"] == precision)].sort_values("batch_size")
        assert list(line.get_xdata()) == [1, 4] and list(line.get_ydata()) == list(want["throughput_per_s"])
    from matplotlib.image import imread
    height, width = imread(run / "throughput_vs_batch.png").shape[:2]
    assert (width, height) == tuple(round(v * 110) for v in fig.get_size_inches())    # that figure, at 110 dpi
    out = capsys.readouterr().out
    assert "best throughput per model" in out and "mnist_mlp" in out


def test_cli_reports_errors_cleanly(capsys):
    from perfkit.cli import main
    assert main(["demo", "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_module_entry_point_info():
    r = subprocess.run([sys.executable, "-m", "perfkit", "info"], capture_output=True, text=True)
    assert r.returncode == 0 and f"perfkit {pk.__version__}" in r.stdout
