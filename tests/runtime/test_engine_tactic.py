"""engine.layers names the tactic the builder chose for each step; engine_layers frames saved before the
column existed still load."""
from pathlib import Path

import pytest

import perfkit as pk
from perfkit.frames import ENGINE_LAYERS
from perfkit.models import lenet, sample_input

RECORDED = Path(__file__).resolve().parents[2] / "data" / "h200_2026-11-29" / "profile_lenet"


@pytest.fixture(scope="module")
def engine():
    return pk.Builder(pk.get_device("cpu", threads=1)).build(lenet(), pk.BuilderConfig(max_batch_size=2))


def test_each_layer_names_the_tactic_the_build_log_chose(engine):
    layers = ENGINE_LAYERS.validate(engine.layers, strict=True)
    log = engine.build_log
    chosen = log[(log["phase"] == "tactic") & (log["outcome"] == "chosen")]
    want = dict(zip(chosen["produced"], chosen["rule"]))
    assert want, "lenet has layers with several tactics"
    got = dict(zip(layers["layer"], layers["tactic"]))
    assert {k: got[k] for k in want} == want
    # a layer without a choice of implementation (softmax) has an empty tactic, not a missing value
    assert got["prob"] == "" and not layers["tactic"].isna().any()


def test_a_profiled_run_saves_the_tactic_and_recorded_runs_without_it_load(engine, tmp_path):
    ctx = engine.create_execution_context()
    with pk.profile(ctx) as run:
        ctx.execute(sample_input(lenet(), 2))
    back = pk.profiling.load_run(run.save(tmp_path / "run")).frames["engine_layers"]
    assert list(back["tactic"]) == list(engine.layers["tactic"])
    recorded = pk.profiling.load_run(RECORDED)         # a run saved before the column existed: the same without it
    frames = {**recorded.frames, "engine_layers": recorded.frames["engine_layers"].drop(columns="tactic")}
    saved = pk.profiling.RunData(frames, recorded.meta, recorded.messages).save(tmp_path / "old")
    old = pk.profiling.load_run(saved)
    assert "tactic" not in old.frames["engine_layers"] and len(old.frames["engine_layers"]) == 6
    ENGINE_LAYERS.validate(old.frames["engine_layers"], strict=True)
