"""data/sample_cnn.onnx is what data/make_sample_onnx.py writes (so notebooks and the CLI have an ONNX file
without a download), and it imports, builds and matches onnxruntime."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("onnx")

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "data", "sample_cnn.onnx")


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_onnx", os.path.join(ROOT, "data", "make_sample_onnx.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_sample_is_what_the_script_writes(tmp_path):
    out = _script().write(str(tmp_path / "again.onnx"))
    assert open(out, "rb").read() == open(SAMPLE, "rb").read(), "run python data/make_sample_onnx.py and commit"
    assert os.path.getsize(SAMPLE) < 200_000


def test_the_sample_imports_and_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    frame = po.check(SAMPLE)
    assert frame["supported"].all() and len(frame) == 32
    net = po.network_from(SAMPLE)
    assert net.name == "sample_cnn" and net.import_info.batch == "symbolic"
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = ort.InferenceSession(SAMPLE, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, tactics="default"))
    y = eng.create_execution_context().execute({"x": x})["fc"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_sweep_and_fusion_benefit_take_the_onnx_path():
    sweep = pk.sweep(SAMPLE, batch_sizes=[1], device="cpu", min_time_s=0.0, min_iterations=1, rounds=2,
                     progress=False)
    assert list(sweep["model"]) == ["sample_cnn"] and (sweep["error"] == "").all()
    benefit = pk.analysis.fusion_benefit(SAMPLE, pk.BuilderConfig(max_batch_size=1), device="cpu", min_time_s=0.0,
                                         rounds=1, progress=False)
    assert benefit["rule"].iloc[0] == "(all rules)" and {"conv_relu", "conv_scale"} <= set(benefit["rule"])
