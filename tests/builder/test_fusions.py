"""Every fusion rule: a positive test (fused, and outputs equal the unfused reference) and a negative
test for each of the guide's conditions (not fused, with the reason in the build log)."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import STRICT, to_host
from oracles import assert_close, depth, reference_forward


def build(net, device="cpu", fusions="all", batch=3, precision="fp32", **kw):
    strict = STRICT if precision != "fp32" else {}     # fp16/bf16 fusions run in that precision
    return pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=batch, fusions=fusions, precision=precision,
                                                          **strict, **kw))


def rows(eng, rule, outcome):
    log = eng.build_log
    return log[(log["phase"] == "fusion") & (log["rule"] == rule) & (log["outcome"] == outcome)]


def assert_fused(net, rule, device="cpu", expect_layers=None, precision="fp32", **kw):
    eng = build(net, device, precision=precision, **kw)
    assert len(rows(eng, rule, "fused")), eng.build_log[["rule", "matched", "outcome", "detail"]].to_string()
    if expect_layers is not None:
        assert list(eng.layers["layer"]) == expect_layers
    x = pk.models.sample_input(net, 3, seed=11)
    ref = reference_forward(net, x)
    got = eng.create_execution_context().execute(x)
    for k in ref:
        assert_close(to_host(got[k]), ref[k], precision, f"{rule}/{k}", depth=depth(net))
    unfused = build(net, device, fusions="none", precision=precision)
    assert len(eng.layers) < len(unfused.layers) or rule == "reduce_to_pooling"
    return eng


def assert_not_fused(net, rule, reason, **kw):
    eng = build(net, **kw)
    assert not len(rows(eng, rule, "fused"))
    r = rows(eng, rule, "not fused")
    assert len(r) and r["detail"].str.contains(reason, regex=False).any(), \
        eng.build_log[["rule", "matched", "outcome", "detail"]].to_string()
    return eng


def conv_net(rng, *tail, c=4, k=6, hw=7):
    net = pk.Network("c")
    x = net.add_input("x", (c, hw, hw))
    y = net.add_convolution(x, k, 3, rng.standard_normal((k, c, 3, 3)) * 0.3, rng.standard_normal(k), padding=1,
                            name="conv").output
    return net, x, y


# --- the guide's MNIST example ---------------------------------------------------------------------

def test_mnist_shows_the_guides_fusions(device):
    eng = build(pk.models.mnist_mlp(), device)
    assert list(eng.layers["layer"]) == ["2-layer MLP (ip1 + relu1 + ip2)", "prob"]    # the guide's label, and its layers
    assert eng.layers.loc[0, "origin"] == "ip1, relu1, ip2"
    log = eng.build_log.query("phase == 'fusion' and outcome == 'fused'")
    assert list(log["produced"]) == ["ip1 + relu1", "2-layer MLP (ip1 + relu1 + ip2)"]
    assert list(log["matched"]) == ["ip1, relu1", "ip1 + relu1, ip2"]
    none = build(pk.models.mnist_mlp(), device, fusions="none")
    assert list(none.layers["layer"]) == ["ip1", "relu1", "ip2", "prob"]
    only = build(pk.models.mnist_mlp(), device, fusions={"fc_relu"})
    assert list(only.layers["layer"]) == ["ip1 + relu1", "ip2", "prob"]


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(pk.BuildError, match="unknown fusion rule.*conv_relu"):
        pk.BuilderConfig(fusions={"conv_relux"})


# --- convolution and fully connected --------------------------------------------------------------

def test_conv_relu(device, rng):
    net, x, y = conv_net(rng)
    net.mark_output(net.add_activation(y, "relu", name="relu").output)
    assert_fused(net, "conv_relu", device, ["conv + relu"])
    for precision in ("fp16", "bf16"):
        if precision == "bf16" and not pk.get_device(device).runs_bf16:
            continue                        # strict bf16 is refused there (test_precision checks the error)
        assert_fused(net, "conv_relu", device, precision=precision)


def test_conv_other_activation_not_fused(rng):
    net, x, y = conv_net(rng)
    net.mark_output(net.add_activation(y, "tanh", name="tanh").output)
    assert_not_fused(net, "conv_relu", "only ReLU fuses")


def test_fc_relu_and_fc_with_other_activation_becomes_mlp(device, rng):
    net = pk.Network("f")
    x = net.add_input("x", (12,))
    y = net.add_fully_connected(x, 5, rng.standard_normal((5, 12)), rng.standard_normal(5), name="fc").output
    net.mark_output(net.add_activation(y, "relu", name="relu").output)
    assert_fused(net, "fc_relu", device, ["fc + relu"])
    net2 = pk.Network("f2")
    x = net2.add_input("x", (12,))
    y = net2.add_fully_connected(x, 5, rng.standard_normal((5, 12)), name="fc").output
    net2.mark_output(net2.add_activation(y, "sigmoid", name="sig").output)
    eng = assert_fused(net2, "mlp_create", device, ["1-layer MLP (fc + sig)"])
    assert list(rows(eng, "fc_relu", "not fused")["detail"]) == ["the activation is sigmoid; only ReLU fuses into "
                                                                 "a fully_connected"]


def test_conv_scale_folds_batch_norm(device, rng):
    net, x, y = conv_net(rng)
    y = net.add_scale(y, "channel", shift=rng.standard_normal(6), scale=rng.uniform(0.5, 2, 6), name="bn").output
    net.mark_output(net.add_activation(y, "relu", name="relu").output)
    assert_fused(net, "conv_scale", device, ["conv + bn + relu"])


def test_conv_scale_with_constant_power(device, rng):
    net, x, y = conv_net(rng)
    y = net.add_activation(y, "relu", name="pre").output        # keep the power's base positive
    y = net.add_convolution(y, 3, 1, rng.uniform(0.1, 0.5, (3, 6, 1, 1)), np.ones(3), name="conv2").output
    net.mark_output(net.add_scale(y, "uniform", scale=[1.5], power=[2.0], name="sq").output)
    assert_fused(net, "conv_scale", device)


@pytest.mark.parametrize("mode,power,reason", [
    ("channel", np.array([1, 2, 1, 1, 1, 1.0]), "non-constant power"),
    ("elementwise", None, "element-wise"),
])
def test_conv_scale_negative(rng, mode, power, reason):
    net, x, y = conv_net(rng)
    shape = (6,) if mode == "channel" else (6, 7, 7)
    net.mark_output(net.add_scale(y, mode, scale=np.full(shape, 2.0), power=power, name="s").output)
    assert_not_fused(net, "conv_scale", reason)


def test_conv_sum(device, rng):
    net, x, y = conv_net(rng, c=6)
    s = net.add_elementwise(y, x, "sum", name="add").output
    net.mark_output(net.add_activation(s, "relu", name="relu").output)
    eng = assert_fused(net, "conv_sum", device, ["conv + add + relu"])
    assert eng.layers.loc[0, "inputs"] == "x, x"


def test_conv_sum_with_batch_broadcast_constant(device, rng):
    net, x, y = conv_net(rng)
    c = net.add_constant(rng.standard_normal((6, 7, 7)).astype(np.float32), name="c")
    net.mark_output(net.add_elementwise(y, c.output, "sum", name="add").output)
    assert_fused(net, "conv_sum", device)


def test_conv_sum_broadcast_not_fused(rng):
    net, x, y = conv_net(rng)
    c = net.add_constant(np.ones((6, 1, 1), np.float32), name="c")
    net.mark_output(net.add_elementwise(y, c.output, "sum", name="add").output)
    assert_not_fused(net, "conv_sum", "broadcasts")


def test_resnet_block_fuses_to_three_layers(device):
    eng = build(pk.models.resnet_small(), device)
    names = list(eng.layers["layer"])
    assert "s1b1_conv2 + s1b1_bn2 + s1b1_add + s1b1_relu2" in names
    assert "s2b1_proj + s2b1_proj_bn" in names
    assert not any(t == "scale" for t in eng.layers["type"])
    assert len(names) == 1 + 3 * 2 * 2 + 2 + 2 + 1       # stem, 6 blocks x 2 convs, 2 projections, gap, fc, prob


# --- scale, shuffle, reduce -----------------------------------------------------------------------

def test_scale_activation(device, rng):
    net = pk.Network("s")
    x = net.add_input("x", (3, 4))
    y = net.add_scale(x, "channel", shift=[0.1, 0.2, 0.3], scale=[1.0, 2.0, -1.0], name="scale").output
    net.mark_output(net.add_activation(y, "tanh", name="tanh").output)
    assert_fused(net, "scale_activation", device, ["scale + tanh"])


def test_identity_scale_erased(device, rng):
    net = pk.Network("s")
    x = net.add_input("x", (3, 4))
    y = net.add_scale(x, "channel", shift=np.zeros(3), scale=np.ones(3), power=np.ones(3), name="noop").output
    net.mark_output(net.add_activation(y, "tanh", name="tanh").output)
    assert_fused(net, "erase_identity_scale", device, ["tanh"])


def test_identity_scale_kept_when_it_is_an_output(rng):
    net = pk.Network("s")
    x = net.add_input("x", (3, 4))
    net.mark_output(net.add_scale(x, "uniform", shift=[0.0], name="noop").output)
    assert_not_fused(net, "erase_identity_scale", "network output")


def test_shuffle_shuffle_merges(device, rng):
    net = pk.Network("sh")
    x = net.add_input("x", (2, 3, 4))
    y = net.add_shuffle(x, first_transpose=(1, 0, 2), name="s1").output
    net.mark_output(net.add_shuffle(y, first_transpose=(0, 2, 1), reshape=(3, 8), name="s2").output)
    assert_fused(net, "shuffle_shuffle", device, ["s1 + s2"])


def test_shuffle_shuffle_cancel_out(device, rng):
    net = pk.Network("sh")
    x = net.add_input("x", (2, 3, 4))
    y = net.add_shuffle(x, first_transpose=(1, 2, 0), name="s1").output
    y = net.add_shuffle(y, first_transpose=(2, 0, 1), name="s2").output
    net.mark_output(net.add_activation(y, "relu", name="relu").output)
    eng = assert_fused(net, "shuffle_shuffle", device, ["relu"])
    assert rows(eng, "shuffle_shuffle", "fused")["produced"].iloc[0] == "(nothing)"


def test_shuffle_shuffle_two_reshapes(device, rng):
    net = pk.Network("sh")
    x = net.add_input("x", (2, 3, 4))
    y = net.add_shuffle(x, reshape=(6, 4), second_transpose=(1, 0), name="s1").output
    net.mark_output(net.add_shuffle(y, first_transpose=(1, 0), reshape=(4, 6), name="s2").output)
    assert_fused(net, "shuffle_shuffle", device, ["s1 + s2"])
    bad = pk.Network("sh2")
    x = bad.add_input("x", (2, 3, 4))
    y = bad.add_shuffle(x, reshape=(6, 4), name="s1").output
    bad.mark_output(bad.add_shuffle(y, first_transpose=(1, 0), reshape=(24,), name="s2").output)
    assert_not_fused(bad, "shuffle_shuffle", "not the inverse")


def test_shuffle_reduce(device, rng):
    net = pk.Network("sr")
    x = net.add_input("x", (2, 3, 4))
    y = net.add_shuffle(x, first_transpose=(2, 0, 1), name="perm").output
    net.mark_output(net.add_reduce(y, "max", axes=(1,), keep_dims=True, name="red").output)
    assert_fused(net, "shuffle_reduce", device, ["perm + red"])


@pytest.mark.parametrize("reshape,keep,reason", [((6, 4), True, "reshapes"), (None, False, "keep dimensions")])
def test_shuffle_reduce_negative(rng, reshape, keep, reason):
    net = pk.Network("sr")
    x = net.add_input("x", (2, 3, 4))
    y = net.add_shuffle(x, first_transpose=(1, 0, 2), reshape=reshape, name="perm").output
    net.mark_output(net.add_reduce(y, "sum", axes=(0,), keep_dims=keep, name="red").output)
    assert_not_fused(net, "shuffle_reduce", reason)


def test_reduce_to_pooling(device, rng):
    net = pk.Network("gap")
    x = net.add_input("x", (3, 5, 6))
    net.mark_output(net.add_reduce(x, "avg", axes=(1, 2), keep_dims=True, name="gap").output)
    eng = assert_fused(net, "reduce_to_pooling", device, ["gap"])
    assert eng.layers.loc[0, "type"] == "pooling"
    net2 = pk.Network("gap2")
    x = net2.add_input("x", (3, 5, 6))
    net2.mark_output(net2.add_reduce(x, "avg", axes=(-2, -1), keep_dims=False, name="gap").output)
    assert_not_fused(net2, "reduce_to_pooling", "does not keep dimensions")


def _reduction_net(kind, rng):
    net = pk.Network(kind)
    x = net.add_input("x", (4, 5))
    if kind == "l1_norm":
        y = net.add_reduce(net.add_unary(x, "abs", name="abs").output, "sum", (1,), name="sum").output
    elif kind == "sum_squares":
        sq = net.add_elementwise(x, x, "prod", name="sq").output
        y = net.add_reduce(sq, "sum", (1,), True, name="sum").output
    elif kind == "l2_norm":
        sq = net.add_elementwise(x, x, "prod", name="sq").output
        y = net.add_unary(net.add_reduce(sq, "sum", (0, 1), name="sum").output, "sqrt", name="sqrt").output
    elif kind == "log_sum":
        pos = net.add_unary(x, "cosh", name="cosh").output        # positive, and no fusion of its own
        y = net.add_unary(net.add_reduce(pos, "sum", (1,), name="sum").output, "log", name="log").output
    else:
        e = net.add_unary(x, "exp", name="exp").output
        y = net.add_unary(net.add_reduce(e, "sum", (1,), name="sum").output, "log", name="log").output
    net.mark_output(y)
    return net


@pytest.mark.parametrize("kind,layers", [("l1_norm", ["abs + sum"]), ("sum_squares", ["sq + sum"]),
                                         ("l2_norm", ["sq + sum + sqrt"]), ("log_sum", ["cosh", "sum + log"]),
                                         ("log_sum_exp", ["exp + sum + log"])])
def test_reduction_fusions(device, rng, kind, layers):
    eng = assert_fused(_reduction_net(kind, rng), kind, device, layers)
    assert eng.layers["type"].iloc[-1] == "reduce"


def test_sum_of_squares_needs_a_sum(rng):
    net = pk.Network("ln")
    x = net.add_input("x", (4, 5))
    sq = net.add_elementwise(x, x, "prod", name="sq").output
    net.mark_output(net.add_reduce(sq, "avg", (1,), name="mean").output)
    assert_not_fused(net, "sum_squares", "only a sum of squares")


# --- MLP ------------------------------------------------------------------------------------------

def _matmul_chain(rng, n, width=8, act=True, seq=4):
    net = pk.Network("mm")
    x = net.add_input("x", (seq, width))
    for i in range(n):
        w = net.add_constant((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), name=f"w{i}")
        x = net.add_matrix_multiply(x, w.output, name=f"mm{i}").output
        b = net.add_constant(rng.standard_normal((1, width)).astype(np.float32) * 0.1, name=f"b{i}")
        x = net.add_elementwise(x, b.output, "sum", name=f"bias{i}").output
        if act:
            x = net.add_activation(x, "tanh", name=f"act{i}").output
    net.mark_output(x)
    return net


def test_matmul_mlp_absorbs_bias_activation_and_gemms(device, rng):
    eng = assert_fused(_matmul_chain(rng, 3), "mlp_create", device,
                       ["3-layer MLP (mm0 + ... + act2, 9 fused)"])
    absorbed = rows(eng, "mlp_absorb", "fused")                  # each activation and each following GEMM
    assert list(absorbed["produced"]) == ["1-layer MLP (mm0 + bias0 + act0)", "2-layer MLP (mm0 + ... + bias1, 5 fused)",
                                          "2-layer MLP (mm0 + ... + act1, 6 fused)",
                                          "3-layer MLP (mm0 + ... + bias2, 8 fused)",
                                          "3-layer MLP (mm0 + ... + act2, 9 fused)"]
    assert eng.layers.loc[0, "origin"] == "mm0, bias0, act0, mm1, bias1, act1, mm2, bias2, act2"


def test_mlp_layer_limit(rng):
    net = _matmul_chain(rng, 33, act=False)
    eng = build(net)
    assert any(r for r in rows(eng, "mlp_absorb", "not fused")["detail"] if "limit is 31" in r)
    assert list(eng.layers["layer"]) == ["31-layer MLP (mm0 + ... + bias30, 62 fused)",    # 33 GEMMs: 31,
                                         "2-layer MLP (mm31 + bias31 + mm32 + bias32)"]     # then the other 2


def test_mlp_width_limit(rng):
    net = _matmul_chain(rng, 2, width=16)
    assert_not_fused(net, "mlp_create", "over the shared-memory limit", mlp_max_width_product=16 * 16 - 1)
    net2 = _matmul_chain(rng, 2, width=16)
    eng = build(net2, mlp_max_width_product=16 * 16)
    assert eng.layers["layer"].iloc[0] == "2-layer MLP (mm0 + ... + act1, 6 fused)"


def test_fc_scale_shift_and_fc_fc(device, rng):
    net = pk.Network("fs")
    x = net.add_input("x", (2, 3))
    y = net.add_fully_connected(x, 5, rng.standard_normal((5, 6)), name="fc1").output
    y = net.add_scale(y, "channel", shift=rng.standard_normal(5), name="shift").output
    y = net.add_fully_connected(y, 4, rng.standard_normal((4, 5)), rng.standard_normal(4), name="fc2").output
    net.mark_output(net.add_activation(y, "elu", name="elu").output)
    eng = assert_fused(net, "mlp_create", device, ["2-layer MLP (fc1 + shift + fc2 + elu)"])
    assert eng.layers.loc[0, "origin"] == "fc1, shift, fc2, elu"


def test_mlp_rejects_bias_after_activation_and_non_2d(rng):
    net = pk.Network("m")
    x = net.add_input("x", (4, 8))
    w = net.add_constant(rng.standard_normal((8, 8)).astype(np.float32), name="w")
    y = net.add_matrix_multiply(x, w.output, name="mm").output
    y = net.add_activation(y, "tanh", name="tanh").output
    b = net.add_constant(np.ones((1, 8), np.float32), name="b")
    net.mark_output(net.add_elementwise(y, b.output, "sum", name="bias").output)
    assert_not_fused(net, "mlp_absorb", "after the activation")
    net3 = pk.Network("m3")
    x = net3.add_input("x", (2, 4, 8))
    w = net3.add_constant(rng.standard_normal((8, 8)).astype(np.float32), name="w")
    y = net3.add_matrix_multiply(x, w.output, name="mm").output
    net3.mark_output(net3.add_activation(y, "tanh", name="tanh").output)
    assert_not_fused(net3, "mlp_create", "not strictly 2-D")


def test_fusion_removes_intermediate_buffers():
    net = pk.models.resnet_small()
    fused, unfused = build(net, batch=8), build(net, fusions="none", batch=8)

    def planned(e):
        return sum(t.kind == "activation" for t in e.plan.tensors.values())
    assert planned(fused) < planned(unfused) / 2
    assert fused.memory["activations"] <= unfused.memory["activations"]
    mnist, mnist_none = build(pk.models.mnist_mlp(), batch=8), build(pk.models.mnist_mlp(), fusions="none", batch=8)
    assert mnist.memory["activations"] < mnist_none.memory["activations"]   # the MLP keeps ip1's output in workspace


def test_precision_override_blocks_fusion(rng):
    net, x, y = conv_net(rng)
    r = net.add_activation(y, "relu", name="relu")
    net.mark_output(r.output)
    eng = build(net, layer_precisions={"relu": "fp16"})
    assert_not = rows(eng, "conv_relu", "not fused")
    assert assert_not["detail"].str.contains("different precision").any()


def gelu_written_out(half=0.5, extra_reader=False):
    """PyTorch's GELU below ONNX opset 20: x/sqrt2 -> erf -> +1 -> *x -> *0.5 (then a tanh, so the GELU is
    not the output)."""
    net = pk.Network("g")
    x = net.add_input("x", (4, 6))
    d = net.add_scale(x, "uniform", scale=[1 / np.sqrt(2)], name="div").output
    e = net.add_unary(d, "erf", name="erf").output
    a = net.add_scale(e, "uniform", shift=[1.0], name="add").output
    m = net.add_elementwise(x, a, "prod", name="mul").output
    h = net.add_scale(m, "uniform", scale=[half], name="half").output
    net.mark_output(net.add_activation(h, "tanh", name="tanh").output)
    if extra_reader:
        net.mark_output(net.add_activation(a, "relu", name="other").output)
    return net


def test_gelu_written_out_becomes_one_activation(device, rng):
    eng = assert_fused(gelu_written_out(), "gelu_erf", device)
    assert "div + erf + add + mul + half" in list(eng.layers["layer"])
    assert (eng.layers["type"] == "activation").sum() == 2 and "unary" not in set(eng.layers["type"])


@pytest.mark.parametrize("net, reason", [(lambda: gelu_written_out(half=0.25), None),
                                         (lambda: gelu_written_out(extra_reader=True), "read by 2 layers")])
def test_gelu_not_fused_when_the_constants_or_the_readers_differ(net, reason):
    eng = build(net())
    assert not len(rows(eng, "gelu_erf", "fused"))
    if reason:
        assert rows(eng, "gelu_erf", "not fused")["detail"].str.contains(reason).any()
