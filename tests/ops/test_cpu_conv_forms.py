"""Every CPU convolution tactic (im2col, taps, sample, batched) against the float64 oracle of the unfused
layers (convolution, bias, power, residual sum, activation), at fp32 and fp16 tolerances, on odd shapes:
stride, padding, dilation, groups, depthwise, rectangular kernels, batch 1 and above. The op runs in an
Env whose workspace is exactly what its ``workspace()`` declared, in strict mode: an undeclared
temporary fails the test."""
import numpy as np
import pytest

import perfkit as pk
from perfkit.ops import conv_forms, get_op
from perfkit.ops.base import TensorSpec
from op_harness import DTYPES, run_op
from oracles import activation as act_oracle
from oracles import assert_close, conv2d

# (C, H, W), K, kernel, stride, padding, dilation, groups
SHAPES = [
    ((4, 9, 8), 8, 3, 1, 1, 1, 1),            # 3x3 "same": the wide form
    ((4, 9, 8), 8, 1, 1, 0, 1, 1),            # 1x1: direct
    ((4, 9, 8), 6, 1, 2, 0, 1, 1),            # 1x1 stride 2: exact, no padding
    ((3, 11, 10), 5, 7, 2, 3, 1, 1),          # a stem: 7x7 stride 2, padding 3
    ((4, 9, 8), 8, 3, 2, 1, 2, 1),            # stride and dilation
    ((4, 9, 7), 8, 3, 1, 2, 2, 1),            # wide with dilation: the tail past the last row
    ((4, 9, 8), 8, (3, 2), (2, 1), (1, 0), 1, 1),
    ((4, 9, 8), 8, (1, 3), 1, (0, 1), 1, 1),  # 1x3: wide with a one-row kernel
    ((4, 6, 7), 8, 3, 1, 1, 1, 2),            # groups
    ((6, 7, 7), 6, 3, 1, 1, 1, 6),            # depthwise
    ((6, 7, 7), 12, 3, 2, 1, 1, 6),           # depthwise, channel multiplier 2, stride 2
    ((4, 9, 8), 8, 5, 3, 2, 1, 1),
    ((4, 5, 5), 8, 5, 1, 0, 1, 1),            # kernel as large as the input: 1x1 output
]

EPILOGUES = [
    {},
    {"bias": True, "activation": "relu"},
    {"bias": True, "residual": True, "activation": "relu"},
    {"bias": True, "power": 2.0, "residual": True},
    {"activation": "leaky_relu"},
    {"bias": True, "activation": "gelu", "residual": True},
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference(x, kernel, bias, residual, stride, padding, dilation, groups, epi):
    """The unfused layers in float64, and each value's sum of |terms| (the tolerance's scale)."""
    y = conv2d(x, kernel, bias, stride, padding, dilation, groups)
    scale = conv2d(np.abs(x), np.abs(kernel), None if bias is None else np.abs(bias), stride, padding, dilation,
                   groups)
    if epi.get("power"):
        scale = 2 * np.abs(y) * scale + 1
        y = y ** epi["power"]
    if residual is not None:
        y = y + residual
        scale = scale + np.abs(residual)
    if epi.get("activation"):
        alpha = 0.1 if epi["activation"] == "leaky_relu" else 0.0
        y = act_oracle(y, epi["activation"], alpha, 0.0)
    return y, scale


@pytest.fixture(params=["default", "wide"], ids=["forms-by-waste", "no-waste-limit"])
def waste(request, monkeypatch):
    """The forms as chosen by their waste limit, and with no limit (small test images would all take the
    exact form otherwise; the wide and phased forms must be right on them too)."""
    if request.param == "wide":
        monkeypatch.setattr(conv_forms, "MAX_WASTE", 1.0)
    return request.param


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[0])) + f"-k{s[2]}s{s[3]}p{s[4]}d{s[5]}g{s[6]}")
def test_every_tactic_matches_the_unfused_oracle(shape, batch, precision, waste):
    (c, h, w), k, ks, stride, pad, dil, groups = shape
    rng = np.random.default_rng(hash((shape[0], k, groups, batch)) % 2 ** 32)
    kh, kw = _pair(ks)
    op = get_op("convolution")
    for e, epi in enumerate(EPILOGUES):
        x = rng.uniform(-1, 1, (batch, c, h, w)).astype(np.float32)
        kernel = (rng.standard_normal((k, c // groups, kh, kw)) * 0.3).astype(np.float32)
        bias = rng.standard_normal(k).astype(np.float32) if epi.get("bias") else None
        params = {"num_output_maps": k, "kernel_size": ks, "stride": stride, "padding": pad, "dilation": dil,
                  "groups": groups, "power": epi.get("power"),
                  "activation": {"kind": epi["activation"], "alpha": 0.1} if epi.get("activation") else None}
        p = op.check(dict(params), {"kernel": kernel})
        out_shape = op.infer(p, [TensorSpec((c, h, w))], {"kernel": kernel})[0].shape
        residual = rng.uniform(-1, 1, (batch,) + out_shape).astype(np.float32) if epi.get("residual") else None
        dt = DTYPES[precision]
        # the oracle sees the values the engine stores
        xs, ks_, bs, rs = (None if a is None else a.astype(dt).astype(np.float64) for a in (x, kernel, bias, residual))
        want, scale = reference(xs, ks_, bs, rs, _pair(stride), _pair(pad), _pair(dil), groups, epi)
        names = op.applicable_tactics(p, [TensorSpec((c, h, w))])
        assert {"sample", "batched"} <= set(names)
        for tactic in names:
            weights = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}
            got = run_op("convolution", tactic, precision, [x] + ([] if residual is None else [residual]), params,
                         weights)
            assert_close(got, want, precision, f"{tactic} epilogue {e} {epi}", scale=scale, depth=2)


@pytest.mark.parametrize("tactic", ["sample", "batched"])
def test_forms_take_no_more_workspace_than_declared_and_one_sample_for_sample(tactic):
    op = get_op("convolution")
    kernel = np.ones((16, 8, 3, 3), np.float32)
    p = op.check({"num_output_maps": 16, "kernel_size": 3, "padding": 1}, {"kernel": kernel})
    p["tactic"] = tactic
    x = TensorSpec((8, 20, 20))
    o = op.infer(p, [x], {"kernel": kernel})
    one, eight = (op.workspace(p, [x], o, b, "cpu") for b in (1, 8))
    if tactic == "sample":
        assert one == eight                      # one sample's columns whatever the batch
    else:
        assert eight > 4 * one
    im2col = op.workspace({**p, "tactic": "im2col"}, [x], o, 8, "cpu")
    assert op.workspace(p, [x], o, 8, None) >= im2col        # on CUDA these run as im2col
    assert op.workspace(p, [x], o, 8, "cuda") == op.workspace({**p, "tactic": "im2col"}, [x], o, 8, "cuda")


@pytest.mark.parametrize("tactic", ["sample", "batched"])
def test_an_engine_with_a_cpu_form_saves_loads_and_matches(tmp_path, monkeypatch, tactic):
    """Through the builder (the tactic forced by a fake measurement), the plan check of a saved engine,
    and the runtime: the resnet sample network agrees with the reference interpreter."""
    from perfkit.builder import tactics
    from oracles import reference_forward
    monkeypatch.setattr(tactics, "measure", lambda target, run, device, iterations:
                        0.5 if target.tactic == tactic else 1.0)
    net = pk.models.resnet_small(width=8, blocks=(1, 1), image=12)
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    convs = [s for s in eng.plan.steps if s.type == "convolution"]
    assert convs and all(s.params["tactic"] == tactic for s in convs)
    eng.save(tmp_path / "e.engine")
    eng = pk.load_engine(tmp_path / "e.engine")
    got = eng.create_execution_context().execute({"data": x})
    want = reference_forward(net, {"data": x})
    for name, v in want.items():
        assert_close(np.asarray(got[name]), v, "fp32", name, depth=12)


@pytest.mark.parametrize("shape,form", [
    (((64, 56, 56), 64, 3, 1, 1), "wide"), (((512, 7, 7), 512, 3, 1, 1), "exact"),   # 9 columns a row for 7
    (((3, 224, 224), 64, 7, 2, 3), "phased"), (((128, 56, 56), 128, 3, 2, 1), "phased"),
    (((512, 14, 14), 512, 3, 2, 1), "phased"), (((256, 56, 56), 512, 1, 2, 0), "exact"),
    (((256, 14, 14), 1024, 1, 1, 0), "direct")])
def test_each_resnet_convolution_takes_the_form_that_wastes_least(shape, form):
    (c, h, w), k, ks, stride, pad = shape
    kernel = np.zeros((k, c, ks, ks), np.float32)
    op = get_op("convolution")
    p = op.check({"num_output_maps": k, "kernel_size": ks, "stride": stride, "padding": pad}, {"kernel": kernel})
    out = op.infer(p, [TensorSpec((c, h, w))], {"kernel": kernel})[0].shape
    plan = conv_forms.plan(p, (c, h, w), out)
    assert plan.form == form
    assert plan.n - out[1] * out[2] <= conv_forms.MAX_WASTE * plan.n
