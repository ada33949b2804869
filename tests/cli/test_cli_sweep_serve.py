"""``perfkit sweep`` and ``perfkit serve-bench`` end to end, and MODEL given as an ONNX file."""
import os

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from cli_helpers import QUICK, cli, everything
from perfkit.frames import SWEEP


def test_sweep_writes_the_frame_and_its_plots(tmp_path):
    r = cli(tmp_path, "sweep", "mnist_mlp", "lenet", "--device", "cpu", "--batch", "1,4", "--min-time-s", "0.02",
            "--rounds", "2", "--latency-budget-ms", "50", "--out", "s")
    assert r.returncode == 0, r.stderr
    frame = SWEEP.validate(pd.read_parquet(tmp_path / "s" / "sweep.parquet"))
    assert sorted(zip(frame["model"], frame["batch_size"])) == [("lenet", 1), ("lenet", 4), ("mnist_mlp", 1),
                                                                 ("mnist_mlp", 4)]
    assert sorted(os.listdir(tmp_path / "s")) == ["latency_vs_batch.png", "sweep.parquet", "throughput_vs_batch.png",
                                                 "throughput_vs_latency.png"]
    for r_ in frame.itertuples():            # each configuration printed as it finished, with its figures
        line = next(line for line in r.stdout.splitlines()
                    if line.split()[:3] == [r_.model, "fp32", str(r_.batch_size)])
        assert f"{r_.throughput_per_s:.1f}" in line
    assert "=== Highest throughput per model ===" in r.stdout


def test_sweep_layers_and_default_folder(tmp_path, capsys, monkeypatch):
    from perfkit.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "lenet", "--device", "cpu", "--batch", "1,2", "--min-time-s", "0.01", "--rounds", "2",
                 "--layers"]) == 0
    (folder,) = os.listdir(tmp_path)
    assert folder.startswith("sweep-lenet-")
    files = os.listdir(tmp_path / folder)
    assert {"sweep_layers.parquet", "layers_vs_batch_lenet_fp32.png"} <= set(files)
    layers = pd.read_parquet(tmp_path / folder / "sweep_layers.parquet")
    assert set(layers["batch_size"]) == {1, 2}


def test_serve_bench_measures_and_predicts_each_delay(tmp_path):
    from perfkit import bench
    if not hasattr(bench, "DynamicBatcher"):
        pytest.skip("perfkit.bench.DynamicBatcher is not in this tree yet")
    r = cli(tmp_path, "serve-bench", "mnist_mlp", "--device", "cpu", "--engines", "1,4", "--rate", "400",
            "--max-delay-ms", "0,2", "--duration-s", "0.3", "--out", "o")
    assert r.returncode == 0, r.stderr
    measured = pd.read_parquet(tmp_path / "o" / "measured.parquet")
    simulated = pd.read_parquet(tmp_path / "o" / "simulated.parquet")
    assert list(measured["delay_ms"]) == [0.0, 2.0] and list(simulated["delay_ms"]) == [0.0, 2.0]
    assert (measured["source"] == "measured").all() and (measured["max_batch_size"] == 4).all()
    requests = pd.read_parquet(tmp_path / "o" / "requests.parquet")
    assert (requests["batch_size"] <= 4).all() and set(requests["delay_ms"]) == {0.0, 2.0}
    curve = pd.read_parquet(tmp_path / "o" / "latency_by_batch.parquet")
    assert list(curve["batch_size"]) == [1, 2, 4]
    assert "batching_400_per_s.png" in os.listdir(tmp_path / "o")
    table = r.stdout[r.stdout.index("=== Batching against the delay T"):].splitlines()
    assert len([line for line in table if line.strip().startswith("400 ")]) == 2


def test_serve_bench_closed_loop_without_simulation(tmp_path, capsys):
    from perfkit import bench
    if not hasattr(bench, "DynamicBatcher"):
        pytest.skip("perfkit.bench.DynamicBatcher is not in this tree yet")
    from perfkit.cli import main
    assert main(["serve-bench", "mnist_mlp", "--device", "cpu", "--engines", "2", "--pattern", "closed",
                 "--concurrency", "4", "--max-delay-ms", "1", "--requests", "40", "--no-simulate"]) == 0
    out = capsys.readouterr().out
    assert "closed" in out and "pred." not in out
    for argv in (["--pattern", "closed", "--rate", "10"], ["--rate", "10", "--concurrency", "2"], ["--max-batch", "9"]):
        assert main(["serve-bench", "mnist_mlp", "--device", "cpu", "--engines", "2", *argv]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert everything(tmp_path) == set()


def _tiny_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="fc"),
         helper.make_node("Relu", ["h"], ["y"], name="act")],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(8, np.float32), "B")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return w


def test_an_onnx_file_as_model(tmp_path):
    w = _tiny_onnx(tmp_path / "tiny.onnx")
    r = cli(tmp_path, "build", "tiny.onnx", "-o", "tiny.engine", "--batch", "4", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    e = pk.load_engine(tmp_path / "tiny.engine")
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    out = next(iter(e.create_execution_context().execute({e.input_names[0]: x}).values()))
    assert np.allclose(out, np.maximum(x @ w, 0), atol=1e-5)     # the file's network, not a sample
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    r = cli(tmp_path, "run", "tiny.onnx", *QUICK, "--batch", "2", "--no-profile", "--inputs", "x.npz",
            "--export-output", "y.npz")
    assert r.returncode == 0 and "tiny (ONNX model)" in r.stdout, r.stderr
    with np.load(tmp_path / "y.npz") as y:                  # trtexec --exportOutput: the file's network on x
        assert list(y.files) == ["y"] and np.allclose(y["y"], np.maximum(x @ w, 0), atol=1e-5)


def test_inspect_an_onnx_file_names_what_imports_and_what_does_not(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from perfkit.cli import main
    _tiny_onnx(tmp_path / "tiny.onnx")
    assert main(["inspect", str(tmp_path / "tiny.onnx")]) == 0
    out = capsys.readouterr().out
    assert "2 nodes, 2 supported" in out and "=== Imported network" in out and "fully_connected" in out
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["h"], name="ok"),
                               helper.make_node("Frobnicate", ["h"], ["y"], name="odd", domain="com.example")],
                              "odd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), tmp_path / "odd.onnx")   # an op no importer knows
    assert main(["inspect", str(tmp_path / "odd.onnx")]) == 0
    out = capsys.readouterr().out
    assert "2 nodes, 1 supported, 1 not" in out and "=== Imported network" not in out
    odd = next(line for line in out.splitlines() if line.split()[:2] == ["odd", "Frobnicate"])
    assert odd.split()[-1] == "NO" and "com.example" in odd
    assert "odd (Frobnicate): operator domain 'com.example'" in out[out.index("=== Not supported ==="):]
    assert main(["run", str(tmp_path / "odd.onnx"), *QUICK]) == 2   # running it is one line naming the node
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Frobnicate" in err


def test_a_sweep_whose_every_configuration_failed_exits_1_and_keeps_its_rows(tmp_path, capsys, monkeypatch):
    from perfkit.cli import main

    def refuse(self, network, config=None):
        raise pk.BuildError("no room for this engine")
    monkeypatch.setattr(pk.Builder, "build", refuse)
    assert main(["sweep", "mnist_mlp", "--device", "cpu", "--batch", "1,2", "--min-time-s", "0.01",
                 "--out", str(tmp_path / "s")]) == 1
    captured = capsys.readouterr()
    assert "every configuration failed" in captured.err and "no room for this engine" in captured.out
    frame = pd.read_parquet(tmp_path / "s" / "sweep.parquet")
    assert len(frame) == 2 and frame["error"].str.contains("no room").all()


def test_an_interrupted_sweep_keeps_the_rows_it_finished(tmp_path, capsys, monkeypatch):
    from perfkit import bench
    from perfkit.cli import main
    real = bench.sweep

    def first_network_then_interrupt(nets, *a, out=None, **k):
        real(nets[:1], *a, out=out, **k)          # the first network's rows reach out, as sweep writes them
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "sweep", first_network_then_interrupt)
    argv = ["sweep", "mnist_mlp", "lenet", "--device", "cpu", "--batch", "1", "--min-time-s", "0.01", "--rounds", "2"]
    assert main(argv + ["--out", str(tmp_path / "s")]) == 130
    assert "finished so far" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["s"] and os.listdir(tmp_path / "s") == ["sweep.parquet"]
    assert list(pd.read_parquet(tmp_path / "s" / "sweep.parquet")["model"]) == ["mnist_mlp"]

    def interrupt_at_once(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "sweep", interrupt_at_once)
    assert main(argv + ["--out", str(tmp_path / "t")]) == 130
    assert os.listdir(tmp_path) == ["s"]                 # nothing finished: no folder


def test_sweep_over_streams_and_threads(tmp_path, capsys):
    from perfkit import bench
    if not hasattr(bench, "throughput_sweep"):
        pytest.skip("perfkit.bench.throughput_sweep is not in this tree yet")
    from perfkit.cli import main
    from perfkit.frames.schemas_load import THROUGHPUT
    assert main(["sweep", "mnist_mlp", "--device", "cpu", "--batch", "2", "--streams", "1,2", "--threads", "1,2",
                 "--min-time-s", "0.02", "--rounds", "2", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    frame = THROUGHPUT.validate(pd.read_parquet(tmp_path / "t" / "throughput.parquet"))
    assert sorted(zip(frame["streams"], frame["threads"])) == [(1, 1), (2, 1), (2, 2)]    # threads <= streams
    assert (frame["batch_size"] == 2).all()
    assert sorted(os.listdir(tmp_path / "t")) == ["throughput.parquet", "throughput_vs_streams_mnist_mlp_fp32_b2.png"]
    assert "saturates at" in out and len([line for line in out.splitlines() if line.rstrip().endswith("%")]) == 3


def test_sweep_devices_spread_the_configurations_through_pk_sweep(tmp_path, capsys, monkeypatch):
    from perfkit import bench
    from perfkit.cli import main
    seen = {}
    real = bench.sweep

    def spy(nets, *a, **k):
        seen.update(k)
        k.pop("devices")
        return real(nets, *a, **{**k, "out": k["out"] + ".parquet"})     # measured here, in this process
    monkeypatch.setattr(bench, "sweep", spy)
    assert main(["sweep", "mnist_mlp", "--batch", "1", "--min-time-s", "0.01", "--rounds", "2", "--devices",
                 "cpu,cpu", "--out", str(tmp_path / "s")]) == 0
    assert seen["devices"] == ["cpu", "cpu"] and seen["out"].endswith(os.sep + "sweep")     # a dataset folder
    assert "devices cpu,cpu (Dask workers)" in capsys.readouterr().out
    for argv in (["--devices", "all", "--device", "cpu"], ["--devices", "cuda:0,gpu"],
                 ["--devices", "all", "--streams", "1"]):
        assert main(["sweep", "mnist_mlp", *argv]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
