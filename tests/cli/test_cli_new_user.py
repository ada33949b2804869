"""What a first trial of the command found (trtexec habits, ONNX inputs with symbolic dims beyond the batch,
--out in folders that do not exist yet, the demo with an ONNX file), end to end through subprocess."""
import json
import os

import pytest

from cli_helpers import QUICK, cli, everything, one_error_line

onnx = pytest.importorskip("onnx")


def dynamic_seq_model(path):
    """x: (N, seq, 16) with a symbolic seq -> MatMul 16x8 -> Relu."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
                           helper.make_node("Relu", ["h"], ["y"], name="act")], "dyn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "seq", 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "seq", 8])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_symbolic_dims_beyond_the_batch_are_given_with_shapes(tmp_path):
    dynamic_seq_model(tmp_path / "dyn.onnx")
    r = cli(tmp_path, "run", "dyn.onnx", "--batch", "2", *QUICK, "--no-profile")
    assert r.returncode == 2 and "--shapes" in one_error_line(r.stderr)          # the error names the option to use
    r = cli(tmp_path, "run", "dyn.onnx", "--shapes", "x:5x16", "--batch", "2", *QUICK, "--no-profile",
            "--export-times", "new/sub/times.json")
    assert r.returncode == 0, r.stderr
    times = json.load(open(tmp_path / "new" / "sub" / "times.json"))     # --out-style folders made on success
    assert times and "latencyMs" in times[0]


def test_a_failed_command_makes_no_folder(tmp_path):
    r = cli(tmp_path, "run", "mnist_mlp", "--batch", "2", *QUICK, "--inputs", "missing.npz",
            "--export-times", "made/not/t.json")
    assert r.returncode == 2 and everything(tmp_path) == set()


@pytest.mark.parametrize("flag, hint", [("--fp16", "--precision fp16"), ("--saveEngine=m.engine", "--save-engine"),
                                        ("--onnx=m.onnx", "give the .onnx path itself")])
def test_trtexec_flags_get_a_hint(tmp_path, flag, hint):
    r = cli(tmp_path, "run", "mnist_mlp", flag)
    assert r.returncode == 2 and hint in one_error_line(r.stderr)


def test_the_demo_takes_an_onnx_file(tmp_path):
    from perfkit.onnx import samples
    onnx.save(samples.mlp(sizes=(32, 16, 10)), str(tmp_path / "tiny.onnx"))
    r = cli(tmp_path, "demo", "--device", "cpu", "--out", "runs", "--batch-sizes", "1", "--precisions", "fp32",
            "--models", "tiny.onnx", "--min-time", "0.01", timeout=300)
    assert r.returncode == 0, r.stderr
    (run,) = os.listdir(tmp_path / "runs")
    assert os.path.isfile(tmp_path / "runs" / run / "report.html")


def test_a_finding_is_explained_once_per_command():
    import pandas as pd

    from perfkit.cli._report import findings
    d = pd.DataFrame({"finding": ["unstable"], "severity": ["warning"],
                      "explanation": ["latency varied by 4.4% (above 2.5%): stop other work, or measure longer."]})
    seen: set = set()
    first, second = "\n".join(findings(d, seen)), "\n".join(findings(d.assign(explanation=[
        "latency varied by 7.0% (above 2.5%): stop other work, or measure longer."]), seen))
    assert "stop other work" in first and "4.4%" in first
    assert "stop other work" not in second and "7.0%" in second and "advice above" in second
    assert "stop other work" in "\n".join(findings(d))                 # without the set: always in full
