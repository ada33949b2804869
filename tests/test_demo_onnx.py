"""The demo profiles an ONNX file beside the sample networks (issue 10), and refuses a missing one."""
import os

import pandas as pd
import pytest

import perfkit as pk

pytest.importorskip("onnx")


def test_the_demo_profiles_an_onnx_file_beside_a_sample(tmp_path, capsys):
    import onnx

    from perfkit.demo import demo
    from perfkit.onnx import samples
    path = tmp_path / "tiny_mlp.onnx"
    onnx.save(samples.mlp(sizes=(32, 16, 10)), str(path))
    run_dir = demo("cpu", str(tmp_path / "runs"), [1, 2], ["fp32"], ["mnist_mlp", str(path)], 0.01)
    sweep = pd.read_parquet(os.path.join(run_dir, "sweep.parquet"))
    onnx_name = pk.onnx.load(str(path)).name
    assert set(sweep["model"]) == {"mnist_mlp", onnx_name} and (sweep["error"].fillna("") == "").all()
    layers = pd.read_parquet(os.path.join(run_dir, "engine_layers.parquet"))
    assert (layers.loc[layers["model"] == onnx_name, "source_op"] != "").all()     # ONNX op types carried along
    assert (layers.loc[layers["model"] == "mnist_mlp", "source_op"] == "").all()
    assert onnx_name in open(os.path.join(run_dir, "report.html")).read()


@pytest.mark.parametrize("model, why", [("missing.onnx", "does not exist"), ("resnet_huge", "each model")])
def test_a_model_that_is_neither_a_sample_nor_a_file_is_refused_before_any_folder(tmp_path, model, why):
    from perfkit.demo import demo
    with pytest.raises(pk.PerfkitError, match=why):
        demo("cpu", str(tmp_path / "runs"), [1], ["fp32"], [str(tmp_path / model) if model.endswith(".onnx")
                                                             else model], 0.01)
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")
