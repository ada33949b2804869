import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

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
    assert files == ["build_log.parquet", "engine_layers.parquet", "latency_vs_batch.png", "layer_timeline_lenet.png",
                     "memory_lenet.png", "profile_lenet", "profile_mnist_mlp", "report.html", "sweep.parquet",
                     "throughput_vs_batch.png", "trace_lenet.json", "trace_mnist_mlp.json"]   # lenet: the most layers
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
    fig, latency = drawn                            # the saved charts: throughput and latency of the sweep just written
    assert latency.axes[0].get_ylabel() == "median latency (ms)"
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    series = sorted(f"{m} {p}" for m in ("mnist_mlp", "lenet") for p in ("fp32", "fp16"))
    drawn_series = sorted(k for k in set(labels) & set(lines) if k.split()[0] in ("mnist_mlp", "lenet"))
    assert drawn_series == series                # one line per model and precision, each in the legend
    for label in series:
        model, precision = label.split()
        want = sweep[(sweep["model"] == model) & (sweep["precision"] == precision)].sort_values("batch_size")
        line = lines[label]
        assert list(line.get_xdata()) == [1, 4] and list(line.get_ydata()) == list(want["throughput_per_s"])
    from matplotlib.image import imread
    height, width = imread(run / "throughput_vs_batch.png").shape[:2]
    assert (width, height) == tuple(round(v * 100) for v in fig.get_size_inches())    # that figure, at 100 dpi
    out = capsys.readouterr().out
    assert "best throughput per model" in out and "mnist_mlp" in out
    assert out.splitlines()[-1] == f"report: {run / 'report.html'}"      # the last line says where the report is


def test_cli_reports_errors_cleanly(capsys):
    from perfkit.cli import main
    assert main(["demo", "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_module_entry_point_info():
    r = subprocess.run([sys.executable, "-m", "perfkit", "info"], capture_output=True, text=True)
    assert r.returncode == 0 and f"perfkit {pk.__version__}" in r.stdout


BAD_ARGV = {
    "unknown model": ["demo", "--models", "nope"],
    "one unknown model among good ones": ["demo", "--models", "mnist_mlp,nope"],
    "letters as batch sizes": ["demo", "--batch-sizes", "a,b"],
    "zero batch size": ["demo", "--batch-sizes", "0"],
    "negative batch size": ["demo", "--batch-sizes", "-4"],
    "fractional batch size": ["demo", "--batch-sizes", "2.5"],
    "empty batch sizes": ["demo", "--batch-sizes", ","],
    "unknown precision": ["demo", "--precisions", "int8"],
    "empty precisions": ["demo", "--precisions", ""],
    "NaN min time": ["demo", "--min-time", "nan"],
    "negative min time": ["demo", "--min-time", "-1"],
    "word min time": ["demo", "--min-time", "long"],
    "unknown device": ["demo", "--device", "tpu"],
    "unknown option": ["demo", "--bogus"],
    "unknown command": ["nope"],
    "no command": [],
    "demo option on info": ["info", "--models", "lenet"],
}


@pytest.mark.parametrize("argv", list(BAD_ARGV.values()), ids=list(BAD_ARGV))
def test_bad_arguments_exit_2_with_one_line_and_leave_no_folder(argv, tmp_path, capsys):
    from perfkit.cli import main
    out = tmp_path / "runs"
    rc = main(argv + ["--out", str(out)] if argv and argv[0] == "demo" else argv)
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfkit") and "error:" in lines[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


def test_out_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    from perfkit.cli import main
    f = tmp_path / "a_file"
    f.write_text("x")
    assert main(["demo", "--out", str(f), "--models", "mlp", "--batch-sizes", "1", "--min-time", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]


def test_module_entry_point_reports_bad_arguments_without_traceback(tmp_path):
    for argv in (["demo", "--models", "nope"], ["demo", "--batch-sizes", "a,b"]):
        r = subprocess.run([sys.executable, "-m", "perfkit", *argv, "--out", str(tmp_path / "runs")],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "runs").exists()


def test_two_runs_in_one_second_get_separate_folders(tmp_path):
    from perfkit.demo import _new_run_dir
    a, b = _new_run_dir(str(tmp_path)), _new_run_dir(str(tmp_path))
    assert a != b and os.path.isdir(a) and os.path.isdir(b)


def test_demo_memory_chart_counts_one_engine_and_its_contexts_alone():
    from perfkit.demo import _own_events
    ev = pd.DataFrame({"action": ["alloc", "alloc", "oom", "free", "alloc", "alloc"],
                       "size_bytes": [100, 50, 1000, 100, 7, 30],
                       "owner": ["engine:m#1", "builder", "context:m#1/ctx1", "engine:m#1", "context:m#1/ctx2",
                                 "context:m#10/ctx1"],                 # another engine whose name starts alike
                       "in_use_bytes": [100, 150, 150, 50, 57, 87]})
    own = _own_events(ev, "engine:m#1")
    assert list(own["owner"]) == ["engine:m#1", "context:m#1/ctx1", "engine:m#1", "context:m#1/ctx2"]
    assert list(own["in_use_bytes"]) == [100, 100, 0, 7]        # a refused request (oom) holds nothing
    assert list(own["peak_bytes"]) == [100, 100, 100, 100]
