"""The builder's layout pass: channels-last tensors around layers whose tactic wants them, reformat layers between
layouts, and engines that keep them through save and load. On the CPU with a test op whose ``nhwc`` tactic
refuses any tensor that is not channels-last, so every check here also proves the views are NHWC."""
from __future__ import annotations

import json

import numpy as np
import pytest

import perfkit as pk
from perfkit.builder import tactics
from perfkit.errors import EngineFileError
from perfkit.ops import base
from perfkit.ops.base import Op, TacticUnavailable, TensorSpec
from perfkit.ops.convolution import Convolution


class NhwcRelu(Op):
    type = "nhwc_relu_test"
    short = "nrelu"
    tactic_names = ("plain", "nhwc")
    tactic_layouts = {"nhwc": "nhwc"}
    refuse = False

    def check(self, params, weights):
        params.setdefault("tactic", "plain")
        return params

    def infer(self, params, inputs, weights):
        return [TensorSpec(inputs[0].shape, inputs[0].dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        if params["tactic"] == "nhwc":
            if NhwcRelu.refuse:
                raise TacticUnavailable("no plan for this shape (test)")
            for a in (x, out):
                assert a.transpose(0, 2, 3, 1).flags.c_contiguous, a.strides
        np.maximum(x, 0, out=out)


@pytest.fixture
def nhwc_op(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, NhwcRelu.type, NhwcRelu())
    monkeypatch.setattr(NhwcRelu, "refuse", False)
    # deterministic choice: the nhwc tactic is the faster one, and a reformat costs little
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        (run(), 0.1 if target.type == "identity" else 1.0 if target.tactic == "nhwc" else 2.0)[1])


def _net():
    net = pk.Network("layouts")
    x = net.add_input("x", (4, 5, 6))
    r1 = net.add_layer(NhwcRelu.type, [x], {}, name="r1").outputs[0]
    r2 = net.add_layer(NhwcRelu.type, [r1], {}, name="r2").outputs[0]
    net.mark_output(r2, "out1")
    pool = net.add_pooling(r1, "max", 2, name="pool")
    net.mark_output(pool, "out2")
    return net


def _reference(x):
    r = np.maximum(x, 0)
    b, c, h, w = r.shape
    pool = r[:, :, :h // 2 * 2, :w // 2 * 2].reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return r, pool


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_nhwc_tactics_get_channels_last_tensors_and_reformat_layers(nhwc_op, tmp_path, precision):
    dev = pk.get_device("cpu")
    eng = pk.Builder(dev).build(_net(), pk.BuilderConfig(max_batch_size=3, precision=precision, strict_types=True))
    steps = {s.name: s for s in eng.plan.steps}
    assert steps["r1"].params["tactic"] == steps["r2"].params["tactic"] == "nhwc"
    lay = {n: t.layout for n, t in eng.plan.tensors.items()}
    assert lay[steps["r1"].outputs[0]] == lay[steps["r2"].outputs[0]] == "nhwc"
    assert lay["x"] == lay["out1"] == lay["out2"] == ""           # bindings keep the default layout
    assert lay[steps["pool"].inputs[0]] == ""
    log = eng.build_log
    rows = [d for d in log[log["phase"] == "reformat"]["detail"] if "NHWC" in d]     # fp16 adds dtype reformats
    # in fp16 the output's layout reformat feeds its dtype reformat (fp16 -> the declared float32)
    last = "output out1" if precision == "fp32" else "reformat out1 -> float32"
    assert sorted(rows) == sorted(["NCHW -> NHWC for r1", "NHWC -> NCHW for pool", f"NHWC -> NCHW for {last}"])
    assert "2 layer(s) run channels-last" in log.query("phase == 'layout' and rule == 'channels-last'")["detail"].iloc[0]
    assert sum(s.type == "identity" and "dtype" not in s.params for s in eng.plan.steps) == 3
    layers = eng.layers.set_index("layer")["layout"]           # engine.layers says which layers run NHWC
    assert layers["r1"] == layers["r2"] == "nhwc" and layers["pool"] == ""
    reformats = eng.layers.query("type == 'identity'")["layout"].tolist()
    assert sorted(r for r in reformats if r) == ["nchw -> nhwc", "nhwc -> nchw", "nhwc -> nchw"]
    # fp16-exact values: ReLU and max pooling then give the same numbers in either precision
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6)).astype(np.float16).astype(np.float32)
    want_r, want_pool = _reference(x)
    ctx = eng.create_execution_context()
    for b in (3, 1):                                     # a smaller batch slices the same NHWC views
        got = ctx.execute({"x": x[:b]})
        np.testing.assert_array_equal(got["out1"], want_r[:b])
        np.testing.assert_array_equal(got["out2"], want_pool[:b])
    ctx.close()
    path = tmp_path / "e.engine"
    eng.save(path)
    loaded = pk.load_engine(path, dev)
    assert {n: t.layout for n, t in loaded.plan.tensors.items()} == lay
    c2 = loaded.create_execution_context()
    np.testing.assert_array_equal(c2.execute({"x": x})["out1"], want_r)
    c2.close()


def test_a_plan_whose_layouts_disagree_with_its_steps_is_refused(nhwc_op):
    from perfkit.runtime.plan_check import check_plan
    dev = pk.get_device("cpu")
    eng = pk.Builder(dev).build(_net(), pk.BuilderConfig(max_batch_size=2, tactics="time"))
    stored = eng.host_weights()
    check_plan(eng.plan, stored)                          # as built: accepted
    plan = pk.runtime.plan.EnginePlan.from_json(json.loads(json.dumps(eng.plan.to_json())))
    r1_out = next(s for s in plan.steps if s.name == "r1").outputs[0]
    plan.tensors[r1_out].layout = ""
    with pytest.raises(EngineFileError, match="layout"):
        check_plan(plan, stored)
    plan.tensors[r1_out].layout = "nchw4"
    with pytest.raises(EngineFileError, match="layout"):
        check_plan(plan, stored)


def test_no_layout_rows_when_no_tactic_wants_one():
    eng = pk.Builder(pk.get_device("cpu")).build(pk.models.resnet_small(), pk.BuilderConfig(max_batch_size=2))
    assert not (eng.build_log["phase"] == "layout").any()
    assert {t.layout for t in eng.plan.tensors.values()} == {""}


def test_a_tactic_that_cannot_run_is_dropped_with_its_reason(nhwc_op):
    NhwcRelu.refuse = True
    eng = pk.Builder(pk.get_device("cpu")).build(_net(), pk.BuilderConfig(max_batch_size=2, tactics="time"))
    log = eng.build_log
    rows = log[(log["phase"] == "tactic") & (log["rule"] == "nhwc")]
    assert (rows["outcome"] == "rejected").all() and rows["detail"].str.contains("no plan for this shape").all()
    assert {s.params.get("tactic") for s in eng.plan.steps if s.type == NhwcRelu.type} == {"plain"}
    assert not (log["phase"] == "layout").any()


def test_cudnn_is_never_offered_on_the_cpu_and_its_kernel_layout_round_trips():
    op = Convolution()
    params = op.check({"num_output_maps": 8, "kernel_size": 3, "padding": 1},
                      {"kernel": np.zeros((8, 4, 3, 3), np.float16)})
    specs = [TensorSpec((4, 10, 10), "float16")]
    assert "cudnn" in op.applicable_tactics(params, specs)
    assert "cudnn" not in op.applicable_tactics(params, [TensorSpec((4, 10, 10), "float32")])
    assert op.tactic_unavailable("cudnn", "cpu") == "runs on cuda devices only"
    cfg = pk.BuilderConfig(max_batch_size=2, tactics="time")
    assert "cudnn" not in tactics.candidate_tactics(op, params, specs, pk.get_device("cpu"), cfg, 2)
    k = np.arange(8 * 4 * 9, dtype=np.float16).reshape(8, 4, 3, 3)
    p2, w2 = op.prepare_tactic("cudnn", params, {"kernel": k})
    assert w2["kernel"].shape == (8, 3, 3, 4) and np.array_equal(w2["kernel"], k.transpose(0, 2, 3, 1))
    assert op.infer(p2, specs, w2)[0].shape == (8, 10, 10)
    _, w3 = op.prepare_tactic("im2col", p2, w2)
    assert np.array_equal(w3["kernel"], k)


def _chain(n):
    net = pk.Network("chain")
    t = net.add_input("x", (4, 5, 6))
    for i in range(n):
        # a parameter of its own: identical layers would share one timing
        t = net.add_layer(NhwcRelu.type, [t], {"k": i}, name=f"r{i}").outputs[0]
    net.mark_output(t, "y")
    return net


def _timed(monkeypatch, layer_ms, reformat_ms):
    """Fake timings: ``layer_ms[layer][tactic]``, every reformat ``reformat_ms``."""
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        reformat_ms if target.type == "identity" else layer_ms[target.layer][target.tactic])


def test_a_layer_slower_alone_in_nhwc_joins_its_neighbours_when_that_saves_reformats(nhwc_op, monkeypatch):
    # r1 alone is faster in the default layout, but switching it would cost two reformats (0.3 ms each)
    _timed(monkeypatch, {"r0": {"plain": 1.0, "nhwc": 0.5}, "r1": {"plain": 1.0, "nhwc": 1.1},
                         "r2": {"plain": 1.0, "nhwc": 0.5}}, 0.3)
    eng = pk.Builder("cpu").build(_chain(3), pk.BuilderConfig(max_batch_size=2))
    assert [s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type] == ["nhwc"] * 3
    log = eng.build_log
    switched = log[(log["phase"] == "layout") & (log["outcome"] == "chosen")]
    assert switched["matched"].tolist() == ["r1"] and "instead of plain" in switched["detail"].iloc[0]
    assert sum(s.type == "identity" for s in eng.plan.steps) == 2       # into NHWC once, out once


def test_reformats_that_cost_more_than_they_save_keep_the_default_layout(nhwc_op, monkeypatch):
    _timed(monkeypatch, {f"r{i}": {"plain": 1.0, "nhwc": 0.9} for i in range(3)}, 0.5)
    eng = pk.Builder("cpu").build(_chain(3), pk.BuilderConfig(max_batch_size=2))
    assert {s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type} == {"plain"}
    assert {t.layout for t in eng.plan.tensors.values()} == {""}
    summary = eng.build_log.query("phase == 'layout' and rule == 'tactics and reformats'")["detail"].iloc[0]
    assert "3 layer(s) with a channels-last tactic; 3 switched" in summary


def test_a_tensor_read_by_two_nhwc_layers_is_reformatted_once(nhwc_op, monkeypatch):
    # x feeds r0 and r1. Default layout: 2.0 + 2.0 = 4.0 ms. Channels-last: 0.4 + 0.4, one reformat of x and one
    # of each output = 3.8 ms: better only if x's reformat is counted once (twice would make it 4.8)
    _timed(monkeypatch, {"r0": {"plain": 2.0, "nhwc": 0.4}, "r1": {"plain": 2.0, "nhwc": 0.4}}, 1.0)
    net = pk.Network("fan_out")
    x = net.add_input("x", (4, 5, 6))
    for i in range(2):
        net.mark_output(net.add_layer(NhwcRelu.type, [x], {"k": i}, name=f"r{i}").outputs[0], f"y{i}")
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    assert {s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type} == {"nhwc"}
    rows = [d for d in eng.build_log.query("phase == 'reformat'")["detail"] if d.startswith("NCHW -> NHWC")]
    assert rows == ["NCHW -> NHWC for r0"]            # one reformat of x serves both layers


def test_an_nhwc_output_also_read_inside_is_copied_once_and_right_away(nhwc_op):
    net = pk.Network("output_read_inside")
    x = net.add_input("x", (4, 6, 6))
    y0 = net.add_layer(NhwcRelu.type, [x], {}, name="r0").outputs[0]
    net.mark_output(y0, "y0")
    net.mark_output(net.add_pooling(y0, "max", 2, name="pool"), "y1")
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    names = [s.name for s in eng.plan.steps]
    assert names == ["reformat x -> nhwc", "r0", "reformat y0 -> nchw", "pool"], names
    assert next(s for s in eng.plan.steps if s.name == "pool").inputs == ["y0"]     # it reads the output itself
    v = np.random.default_rng(1).standard_normal((2, 4, 6, 6)).astype(np.float32)
    got = eng.create_execution_context().execute({"x": v})
    want_r, want_pool = _reference(v)
    np.testing.assert_array_equal(got["y0"], want_r)
    np.testing.assert_array_equal(got["y1"], want_pool)


def test_a_tactic_whose_workspace_breaks_the_cap_is_not_timed(nhwc_op, monkeypatch):
    # cuDNN's tactic declares 8 MiB of workspace: with max_workspace_bytes below it, the build must still succeed
    monkeypatch.setattr(NhwcRelu, "scratch_bytes", lambda self, params, inputs, outputs, batch:
                        (1 << 20) if params.get("tactic") == "nhwc" else 0, raising=False)
    eng = pk.Builder("cpu").build(_chain(2), pk.BuilderConfig(max_batch_size=2, max_workspace_bytes=4096))
    assert {s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type} == {"plain"}
    eng = pk.Builder("cpu").build(_chain(2), pk.BuilderConfig(max_batch_size=2))          # no cap: it wins
    assert {s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type} == {"nhwc"}


def test_a_layer_whose_tactic_could_not_run_is_served_by_the_timing_cache(nhwc_op, monkeypatch, tmp_path):
    NhwcRelu.refuse = True
    cache = str(tmp_path / "timing.json")
    pk.Builder("cpu").build(_chain(2), pk.BuilderConfig(max_batch_size=2, timing_cache=cache))
    calls = []
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations: calls.append(target) or 1.0)
    eng = pk.Builder("cpu").build(_chain(2), pk.BuilderConfig(max_batch_size=2, timing_cache=cache))
    assert not [c for c in calls if c.type == NhwcRelu.type]       # not timed again
    assert set(eng.build_log.query("phase == 'tactic' and rule == 'plain'")["outcome"]) == {"cached"}


def test_inspect_shows_the_layout_column_only_for_engines_with_nhwc_layers(nhwc_op, tmp_path, capsys):
    from perfkit.cli import main
    path = tmp_path / "e.engine"
    pk.Builder("cpu").build(_net(), pk.BuilderConfig(max_batch_size=2)).save(path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert " layout " in out and "nchw -> nhwc" in out and "nhwc -> nchw" in out
    plain = tmp_path / "plain.engine"
    pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2)).save(plain)
    assert main(["inspect", str(plain)]) == 0
    assert " layout " not in capsys.readouterr().out


def test_a_tactic_whose_library_is_missing_is_not_offered(nhwc_op, monkeypatch):
    # cuDNN's and cuBLASLt's tactics name the library they need (Op.tactic_needs): without it they are not timed
    monkeypatch.setattr(NhwcRelu, "tactic_needs", {"nhwc": lambda: "the test library is not installed"},
                        raising=False)
    assert NhwcRelu().tactic_unavailable("nhwc", "cpu") == "the test library is not installed"
    eng = pk.Builder("cpu").build(_chain(2), pk.BuilderConfig(max_batch_size=2))
    assert {s.params["tactic"] for s in eng.plan.steps if s.type == NhwcRelu.type} == {"plain"}


def test_a_build_from_a_warm_timing_cache_makes_the_same_layout_choice_without_timing(nhwc_op, monkeypatch, tmp_path):
    # the layout choice weighs layer times against reformat times: with the reformats' times cached too, a second
    # build takes both from the cache, so flipping timings cannot flip its choice (the timing cache's promise)
    _timed(monkeypatch, {"r0": {"plain": 1.0, "nhwc": 0.5}, "r1": {"plain": 1.0, "nhwc": 1.1},
                         "r2": {"plain": 1.0, "nhwc": 0.5}}, 0.3)
    path = tmp_path / "layouts.cache"
    first = pk.Builder("cpu").build(_chain(3), pk.BuilderConfig(max_batch_size=2, timing_cache=str(path)))
    measured = []

    def flipped(target, run, device, iterations):         # now the default layout would win everywhere
        measured.append(target.layer)
        return 9.0 if target.type == "identity" else {"plain": 0.1, "nhwc": 1.0}[target.tactic]
    monkeypatch.setattr(tactics, "measure", flipped)
    second = pk.Builder("cpu").build(_chain(3), pk.BuilderConfig(max_batch_size=2, timing_cache=str(path)))
    assert measured == []                                  # neither a layer nor a reformat was timed again
    assert second.tactics_id == first.tactics_id
    assert [s.params["tactic"] for s in second.plan.steps if s.type == NhwcRelu.type] == ["nhwc"] * 3
