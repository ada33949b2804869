"""Precision as TensorRT means it: fp16/bf16 are allowed per layer by timing, forced by strict types,
stored in their real dtypes, refused when the weights do not fit, and validated when set on a layer."""
import tracemalloc

import numpy as np
import pytest

import perfkit as pk
import perfkit.builder.tactics as tactics
from device_helpers import to_host
from perfkit.device.memory import align
from perfkit.precision import STORAGE, TOLERANCE, bfloat16, convert_weight, is_float, overflow


def fake_timer(monkeypatch, ms_by_precision, reformat_ms=0.001, fail=None):
    """Replaces the builder's measurement: a layer costs ``ms_by_precision[precision]``, a reformat
    ``reformat_ms``; ``fail``: a precision whose runs raise. Returns the list of timed targets."""
    seen = []

    def measure(target, run, device, iterations):
        seen.append(target)
        if target.layer.startswith("reformat"):
            return reformat_ms
        if target.precision == fail:
            raise TypeError(f"no {fail} kernel")
        return ms_by_precision[target.precision]
    monkeypatch.setattr(tactics, "measure", measure)
    return seen


def precision_rows(eng):
    log = eng.build_log
    return log[(log["phase"] == "precision") & (log["matched"] != "")].set_index("matched")


def fc_net(kernel=None, name="fc"):
    net = pk.Network("fc")
    x = net.add_input("x", (16,))
    k = np.full((8, 16), 0.5, np.float32) if kernel is None else kernel
    y = net.add_fully_connected(x, 8, k, np.zeros(8, np.float32), name=name).output
    net.mark_output(net.add_activation(y, "relu", name="relu").output)
    return net


# --- the choice per layer -------------------------------------------------------------------------

def test_fp32_chosen_per_layer_when_fp16_is_slower(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 4.1})
    net = pk.models.lenet()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, precision="fp16"))
    assert eng.precision == "fp16"                                    # what was requested
    assert set(eng.layers["precision"]) == {"fp32"}                   # what each layer runs in
    rows = precision_rows(eng)
    assert set(rows.index) == set(eng.layers["layer"])                # one row per layer
    for layer, row in rows.iterrows():
        assert row["rule"] == "fp32" and row["outcome"] == "chosen"
        assert row["detail"].startswith("fp16 allowed; fp32 chosen: 4.1x faster on this device"), row["detail"]
    assert not len(eng.build_log.query("phase == 'reformat'"))        # nothing to convert
    assert all(w.dtype == np.float32 for w in eng.weights.values())


def test_fp16_chosen_where_faster_and_fp32_kept_within_noise(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.5})
    eng = pk.Builder("cpu").build(fc_net(), pk.BuilderConfig(precision="fp16", fusions="none"))
    rows = precision_rows(eng)
    assert list(rows["rule"]) == ["fp16", "fp16"]
    assert rows.loc["fc", "detail"].startswith("fp16 allowed; fp16 chosen: 2.0x faster"), rows.loc["fc", "detail"]
    assert eng.weights["fc/kernel"].dtype == np.float16
    # equal times: fp32 stays (a reduced precision must earn its place), and the log says the difference is noise
    for fp16_ms in (1.05, 0.95):
        fake_timer(monkeypatch, {"fp32": 1.0, "fp16": fp16_ms})
        eng = pk.Builder("cpu").build(fc_net(), pk.BuilderConfig(precision="fp16", fusions="none"))
        rows = precision_rows(eng)
        assert list(rows["rule"]) == ["fp32", "fp32"] and rows.loc["fc", "outcome"] == "kept"
        assert "kept fp32: fp16 was not faster beyond noise (10%) in 5 of 5 round(s)" in rows.loc["fc", "detail"]


def test_reformat_cost_decides(monkeypatch):
    # fp16 is a little faster per layer, but a single fp16 layer between fp32 data needs two reformats
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.8}, reformat_ms=0.5)
    eng = pk.Builder("cpu").build(fc_net(), pk.BuilderConfig(precision="fp16", fusions="none"))
    rows = precision_rows(eng)
    assert list(rows["rule"]) == ["fp32", "fp32"]
    # fc would convert its input; relu, a network output, its input and its output
    assert "(fp32 1.000 ms, fp16 1.300 ms incl. 0.500 ms of reformats)" in rows.loc["fc", "detail"]
    assert "(fp32 1.000 ms, fp16 1.800 ms incl. 1.000 ms of reformats)" in rows.loc["relu", "detail"]


def test_a_chain_of_slightly_faster_layers_takes_fp16_together(monkeypatch):
    # alone, each layer loses to the reformat it needs (0.7 + 0.5 > 1.0); as a chain of six, all in
    # fp16 cost 6 x 0.7 + 2 x 0.5 = 5.2 ms against 6.0 ms in fp32
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.7}, reformat_ms=0.5)
    eng = pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(precision="fp16"))
    rows = precision_rows(eng)
    assert len(rows) == 6 and set(rows["rule"]) == {"fp16"}
    first = rows.iloc[0]["detail"]
    assert first.startswith("fp16 allowed; fp16 chosen: the timed layers all in fp16 take 5.200 ms, chosen one by "
                            "one 6.000 ms; this layer alone (fp32 1.000 ms, fp16 1.200 ms incl. 0.500 ms"), first
    assert len(eng.build_log.query("phase == 'reformat'")) == 2


def test_strict_types_force_the_requested_precision(monkeypatch):
    seen = fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 4.1})
    eng = pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2, precision="fp16",
                                                                      strict_types=True))
    assert set(eng.layers.query("type != 'identity'")["precision"]) == {"fp16"}
    rows = precision_rows(eng)
    assert set(rows["detail"]) == {"fp16 strict (strict_types=True)"} and set(rows["outcome"]) == {"forced"}
    assert {t.precision for t in seen} == {"fp16"}                    # only tactics were timed, in fp16
    reformats = list(eng.build_log.query("phase == 'reformat'")["detail"])
    assert len(reformats) == 2 and reformats[0].startswith("float32 -> float16 for conv1")
    assert reformats[1] == "float16 -> float32 for output prob"


def test_a_precision_that_fails_falls_back_to_fp32(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.5}, fail="fp16")
    eng = pk.Builder("cpu").build(fc_net(), pk.BuilderConfig(precision="fp16", fusions="none"))
    assert "fp32 chosen: fp16 failed on cpu (TypeError: no fp16 kernel)" in precision_rows(eng).loc["fc", "detail"]


def test_a_forced_precision_that_fails_is_a_build_error(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.5}, fail="fp16")
    with pytest.raises(pk.BuildError, match=r"layer 'conv1.*' \(convolution\) cannot run in fp16 on cpu: "
                                            r"TypeError: no fp16 kernel; .*without strict_types"):
        pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(precision="fp16", strict_types=True,
                                                                    fusions="none"))


def test_without_timing_the_device_declaration_decides(monkeypatch):
    dev = pk.get_device("cpu")
    assert dev.fast_fp16 is False and dev.fast_bf16 is False
    cfg = pk.BuilderConfig(precision="fp16", tactics="default", fusions="none")
    eng = pk.Builder(dev).build(fc_net(), cfg)
    assert precision_rows(eng).loc["fc", "detail"] == ("fp16 allowed; fp32 kept without timing "
                                                       "(tactics='default'): cpu declares no fast fp16")
    monkeypatch.setattr(dev, "fast_fp16", True)
    eng = pk.Builder(dev).build(fc_net(), cfg)
    assert precision_rows(eng).loc["fc", "rule"] == "fp16"


def test_timing_cache_serves_the_precision_choice(monkeypatch, tmp_path):
    seen = fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 3.0})
    cache = pk.TimingCache(tmp_path / "t.cache")
    cfg = pk.BuilderConfig(max_batch_size=2, precision="fp16", timing_cache=cache)
    first = pk.Builder("cpu").build(pk.models.lenet(), cfg)
    n_first = len([t for t in seen if not t.layer.startswith("reformat")])
    assert n_first
    second = pk.Builder("cpu").build(pk.models.lenet(), cfg)
    assert len([t for t in seen if not t.layer.startswith("reformat")]) == n_first   # nothing timed again
    assert list(first.layers["precision"]) == list(second.layers["precision"])


def test_a_build_whose_tactics_all_came_from_the_precision_choice_saves_its_timing_cache(tmp_path):
    """Every layer of the MNIST MLP with a choice of tactics was timed while choosing its precision and its
    tactic reused from there: the cache file must still be written (it once was only when the tactic phase
    timed something itself), so the next build reads it instead of timing again."""
    path = tmp_path / "mnist.cache"
    cfg = pk.BuilderConfig(max_batch_size=4, precision="fp16", timing_cache=str(path))
    first = pk.Builder("cpu").build(pk.models.mnist_mlp(), cfg)
    summary = first.build_log.query("phase == 'tactic' and outcome == 'done'")["detail"].iloc[0]
    assert summary.startswith("0 layer(s) timed") and "chosen from the timings the precision choice made" in summary
    assert path.exists()
    second = pk.Builder("cpu").build(pk.models.mnist_mlp(), cfg)
    assert second.plan.extra["tactic_timing_ms"] == 0 and second.plan.extra["timing_cache_hits"] > 0


# --- storage ---------------------------------------------------------------------------------------

def test_bf16_is_stored_as_bfloat16_and_takes_half_the_memory():
    net = pk.models.mnist_mlp()
    cfg = dict(max_batch_size=4, strict_types=True)
    e32 = pk.Builder("cpu").build(net, pk.BuilderConfig(precision="fp32", **cfg))
    e16 = pk.Builder("cpu").build(net, pk.BuilderConfig(precision="fp16", **cfg))
    ebf = pk.Builder("cpu").build(net, pk.BuilderConfig(precision="bf16", **cfg))
    assert {w.dtype for w in ebf.weights.values()} == {bfloat16}
    inner = [t for t in ebf.plan.tensors.values() if t.kind == "activation"]
    assert inner and {t.dtype for t in inner} == {"bfloat16"}
    half = sum(align(int(np.prod(w.shape)) * 2) for w in e32.plan.weights.values())
    assert ebf.memory["weights"] == half == e16.memory["weights"] < e32.memory["weights"]
    assert ebf.memory == e16.memory                                   # two bytes a value, like fp16
    x = pk.models.sample_input(net, 4)
    ref = e32.create_execution_context().execute(x)["prob"]
    got = ebf.create_execution_context().execute(x)["prob"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=TOLERANCE["bf16"].rtol, atol=TOLERANCE["bf16"].atol)


def test_weights_are_converted_once_at_build_time(monkeypatch):
    """Weights are stored in the dtype of the precision their layer runs in, once; running converts
    no weight (on the CPU, an fp16 request whose fp16 GEMM is slow keeps the GEMM in fp32)."""
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 4.0})
    net = pk.Network("big")
    x = net.add_input("x", (1024,))
    w = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32) * 0.01
    net.mark_output(net.add_fully_connected(x, 1024, w, name="fc").output)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1, precision="fp16"))
    assert eng.weights["fc/kernel"].dtype == np.float32
    assert eng.memory["weights"] == sum(align(a.nbytes) for a in eng.weights.values())
    ctx = eng.create_execution_context()
    xin = {"x": np.ones((1, 1024), np.float32)}
    ctx.execute(xin)
    tracemalloc.start()
    for _ in range(3):
        ctx.execute(xin)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < w.nbytes // 4, peak              # no float32 (4 MiB) or float16 (2 MiB) copy of the weight


def test_convert_weight_and_overflow_helpers():
    w = np.array([1.0, -70000.0, 65519.0, np.inf], np.float32)
    assert overflow(w, "fp16") == (1, 70000.0)     # 65519 rounds to 65504; inf was inf already
    assert overflow(w, "bf16") == (0, 0.0) and overflow(w, "fp32") == (0, 0.0)
    assert overflow(np.array([3.4e38], np.float32), "bf16") == (1, pytest.approx(3.4e38))
    assert convert_weight(w, "bf16").dtype == bfloat16 and convert_weight(w, "fp16").dtype == np.float16
    assert convert_weight(np.arange(3, dtype=np.int32), "fp16").dtype == np.int32
    assert is_float(bfloat16) and is_float("float16") and not is_float("int32")
    assert STORAGE == {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# --- weights a precision cannot hold ---------------------------------------------------------------

@pytest.mark.parametrize("precision,big", [("fp16", 1e5), ("bf16", 3.4e38)])
def test_overflowing_weights_refused_under_strict_types(precision, big):
    k = np.full((8, 16), 0.5, np.float32)
    k[3, 4] = big
    with pytest.raises(pk.BuildError) as info:
        pk.Builder("cpu").build(fc_net(k), pk.BuilderConfig(precision=precision, strict_types=True, fusions="none"))
    msg = str(info.value)
    assert "layer 'fc'" in msg and "weight 'kernel'" in msg and f"beyond the {precision} range" in msg
    assert "layer_precisions={'fc': 'fp32'}" in msg and "without strict_types" in msg
    # a precision set on the layer itself is forced too
    with pytest.raises(pk.BuildError, match="weight 'kernel'"):
        pk.Builder("cpu").build(fc_net(k), pk.BuilderConfig(layer_precisions={"fc": precision}, fusions="none"))


def test_overflowing_weights_keep_their_layer_in_fp32(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 0.5})          # fp16 would win everywhere
    k = np.full((8, 16), 0.5, np.float32)
    k[0, 0] = 1e5
    net = fc_net(k)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(precision="fp16", fusions="none"))
    rows = precision_rows(eng)
    assert rows.loc["fc", "rule"] == "fp32" and rows.loc["relu", "rule"] == "fp16"
    assert rows.loc["fc", "detail"] == ("fp16 allowed; fp32 kept: weight 'kernel' has 1 value(s) beyond the fp16 "
                                        "range (largest magnitude 1e+05 > 6.55e+04)")
    x = np.full((1, 16), 1e-3, np.float32)
    out = eng.create_execution_context().execute({"x": x})["relu"]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], 100.0 + 15 * 0.5e-3, rtol=1e-3)


# --- validation ------------------------------------------------------------------------------------

def test_layer_precision_is_validated_when_set():
    net = fc_net()
    layer = net.layers[0]
    with pytest.raises(pk.NetworkDefinitionError, match=r"one of \('fp32', 'fp16', 'bf16'\)"):
        layer.precision = "int8"
    with pytest.raises(pk.NetworkDefinitionError):
        layer.precision = 16
    assert layer.precision is None
    layer.precision = "bf16"
    assert layer.precision == "bf16"
    with pytest.raises(pk.PerfkitError, match=r"one of \('fp32', 'fp16', 'bf16'\)"):
        pk.BuilderConfig(layer_precisions={"fc": "int8"})
    with pytest.raises(pk.PerfkitError, match="strict_types"):
        pk.BuilderConfig(strict_types="yes")


# --- tactic timing in the engine's own dtypes ------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tactics_are_timed_in_the_storage_dtype(monkeypatch, precision):
    seen = fake_timer(monkeypatch, {"fp32": 1.0, precision: 1.0})
    pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=3, precision=precision,
                                                                strict_types=True))
    layers = [t for t in seen if not t.layer.startswith("reformat")]
    assert {t.tactic for t in layers} >= {"im2col", "taps"}
    for t in layers:
        assert {a.dtype for a in t.inputs + t.outputs if is_float(a.dtype)} == {np.dtype(STORAGE[precision])}, t.layer
        assert all(a.shape[0] == 3 for a in t.inputs if not t.layer.startswith("reformat") and a.ndim == 4)


def test_tactic_inputs_take_no_float64_host_memory(monkeypatch):
    fake_timer(monkeypatch, {"fp32": 1.0, "fp16": 1.0})
    net = pk.Network("pool")
    x = net.add_input("x", (16, 128, 128))                            # 1 MiB a sample in float32
    net.mark_output(net.add_pooling(x, "max", 2, 2).output)
    batch = 8
    in_bytes = batch * 16 * 128 * 128 * 2                             # float16
    tracemalloc.start()
    pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=batch, precision="fp16", strict_types=True))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # input + its reformat to float16 + pooled output, plus one 4 MiB chunk of draws; a float64 draw
    # of the input alone would be 4x in_bytes
    assert peak < 2 * in_bytes + 4 * (1 << 20) + (1 << 20), (peak, in_bytes)


@pytest.mark.gpu
def test_cuda_precision_declarations_and_bf16_storage():
    if not pk.cuda_available():
        pytest.skip("no CUDA GPU/CuPy")
    dev = pk.get_device("cuda")
    major = int(dev.info()["compute_capability"].split(".")[0])
    assert dev.fast_fp16 == (major >= 7) and dev.fast_bf16 == (major >= 8)
    net = pk.models.mnist_mlp()
    if not dev.runs_bf16:
        with pytest.raises(pk.BuildError, match="cannot run bf16 layers"):
            pk.Builder(dev).build(net, pk.BuilderConfig(precision="bf16", strict_types=True))
        return
    e32 = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=4, precision="fp32"))
    ebf = pk.Builder(dev).build(net, pk.BuilderConfig(max_batch_size=4, precision="bf16", strict_types=True))
    assert {str(w.dtype) for w in ebf.weights.values()} == {"bfloat16"}
    assert ebf.memory["weights"] < 0.51 * e32.memory["weights"]
    x = pk.models.sample_input(net, 4)
    ref = to_host(e32.create_execution_context().execute(x)["prob"])
    got = to_host(ebf.create_execution_context().execute(x)["prob"])
    np.testing.assert_allclose(got, ref, rtol=TOLERANCE["bf16"].rtol, atol=TOLERANCE["bf16"].atol)


def test_a_warm_reduced_precision_build_times_no_dtype_conversion(tmp_path, monkeypatch):
    # the precision vote weighs each layer's time against the dtype conversions around it: those times come
    # from the timing cache too, so a build from a warm cache votes on the same numbers without timing
    from perfkit.builder import tactics
    path = tmp_path / "fp16.cache"
    net = pk.models.mnist_mlp()
    first = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8, precision="fp16", timing_cache=str(path)))
    timed = []
    real = tactics.time_layer

    def recording(layer, *args, **kw):
        timed.append(layer)
        return real(layer, *args, **kw)
    monkeypatch.setattr(tactics, "time_layer", recording)
    second = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=8, precision="fp16", timing_cache=str(path)))
    assert timed == [], timed
    assert second.tactics_id == first.tactics_id
