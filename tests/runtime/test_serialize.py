import json
import struct

import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_save_load_bit_identical(device, tmp_path, precision):
    net = pk.models.resnet_small()
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=4, precision=precision))
    x = pk.models.sample_input(net, 4, seed=3)
    before = to_host(eng.create_execution_context().execute(x)["prob"])
    engine_id = eng.save(tmp_path / "r.engine")
    loaded = pk.load_engine(tmp_path / "r.engine", device=device)
    after = to_host(loaded.create_execution_context().execute(x)["prob"])
    np.testing.assert_array_equal(before, after)
    assert loaded.id == engine_id and len(engine_id) == 12
    assert list(loaded.build_log["phase"]) == list(eng.build_log["phase"])
    assert loaded.device_memory_bytes == eng.device_memory_bytes


def test_file_is_standard_safetensors(tmp_path):
    from safetensors.numpy import load_file
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(fusions="none"))
    eng.save(tmp_path / "m.engine")
    tensors = load_file(str(tmp_path / "m.engine"))
    np.testing.assert_array_equal(tensors["ip1/kernel"], eng.host_weights()["ip1/kernel"])
    raw = (tmp_path / "m.engine").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]                 # nothing but the JSON header and the raw tensors:
    header = json.loads(raw[8:8 + n])                   # each tensor's bytes, back to back, fill the rest
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert set(header) - {"__metadata__"} == set(tensors)




@pytest.fixture(scope="module")
def engine_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("e") / "m.engine"
    net = pk.Network("small")
    x = net.add_input("x", (6,))
    y = net.add_fully_connected(x, 4, np.arange(24, dtype=np.float32).reshape(4, 6) / 24, np.ones(4))
    net.mark_output(net.add_activation(y, "relu").output)
    pk.Builder("cpu").build(net).save(path)
    return path.read_bytes()


def _mutations(blob, rng):
    n = struct.unpack("<Q", blob[:8])[0]
    out = []
    for cut in sorted(set(rng.integers(0, len(blob), 60).tolist()) | {0, 4, 7, 8, 8 + n // 2, 8 + n, len(blob) - 1}):
        out.append(("truncate", blob[:cut]))
    for pos in rng.integers(0, len(blob), 200).tolist():
        b = bytearray(blob)
        b[pos] ^= 1 << int(rng.integers(0, 8))
        out.append((f"flip@{pos}", bytes(b)))
    for pos in rng.integers(8 + n, len(blob), 40).tolist():       # inside the weights
        b = bytearray(blob)
        b[pos] = (b[pos] + 1) % 256
        out.append((f"weight@{pos}", bytes(b)))
    header = json.loads(blob[8:8 + n])
    meta = header["__metadata__"]
    plan = json.loads(meta["plan"])

    def rewrite(h):
        hb = json.dumps(h).encode()
        hb += b" " * (-len(hb) % 8)
        return struct.pack("<Q", len(hb)) + hb + blob[8 + n:]
    edits = [("version", {**meta, "format_version": "99"}), ("format", {**meta, "format": "other"}),
             ("no plan", {k: v for k, v in meta.items() if k != "plan"}),
             ("batch", {**meta, "plan": json.dumps({**plan, "max_batch_size": 64})}),
             ("device", {**meta, "plan": json.dumps({**plan, "device_kind": "cuda"})}),
             ("checksum", {**meta, "checksum": "f" * 64}), ("short checksum", {**meta, "checksum": "abc"})]
    for what, m in edits:
        out.append((f"edit {what}", rewrite({**header, "__metadata__": m})))
    out.append(("no metadata", rewrite({k: v for k, v in header.items() if k != "__metadata__"})))
    out.append(("appended", blob + b"\0" * 16))
    out.append(("not json", struct.pack("<Q", 4) + b"\xff\xfe{}" + blob[8 + n:]))
    out.append(("huge header", struct.pack("<Q", 2**62) + blob[8:]))
    return out


def test_every_mutation_raises_a_perfkit_error(engine_bytes, tmp_path):
    rng = np.random.default_rng(7)
    mutations = _mutations(engine_bytes, rng)
    assert len(mutations) > 250
    path = tmp_path / "bad.engine"
    for what, blob in mutations:
        path.write_bytes(blob)
        with pytest.raises(pk.PerfkitError):
            pk.load_engine(path, device="cpu")
            raise AssertionError(f"mutation {what} loaded without error")


def test_errors_say_what_happened(engine_bytes, tmp_path):
    p = tmp_path / "e.engine"
    p.write_bytes(engine_bytes[:20])
    with pytest.raises(pk.EngineFileError, match="truncated"):
        pk.load_engine(p)
    b = bytearray(engine_bytes)
    b[-1] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(pk.EngineChecksumError, match="corrupted or edited"):
        pk.load_engine(p)
    with pytest.raises(pk.EngineFileError, match="cannot read"):
        pk.load_engine(tmp_path / "missing.engine")


def test_version_and_device_errors(tmp_path):
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp())
    eng.plan.format_version = 1
    eng.save(tmp_path / "m.engine")
    blob = (tmp_path / "m.engine").read_bytes()
    p = tmp_path / "v.engine"
    p.write_bytes(blob.replace(b'"format_version":"1"', b'"format_version":"7"'))
    with pytest.raises(pk.EngineVersionError, match="version '7'.*Rebuild"):
        pk.load_engine(p)


def test_wrong_device_kind(tmp_path):
    from perfkit.runtime import serialize
    pk.Builder("cpu").build(pk.models.mnist_mlp()).save(tmp_path / "m.engine")
    plan, weights, _ = serialize.read_engine_file(tmp_path / "m.engine")
    plan.device_kind, plan.device_name = "cuda", "NVIDIA H200"          # as if built on a GPU
    pk.Engine(plan, weights, pk.get_device("cpu"), pk.get_device("cpu").allocator).save(tmp_path / "c.engine")
    with pytest.raises(pk.EngineDeviceError, match="built for cuda .*cannot run on cpu.*Builder"):
        pk.load_engine(tmp_path / "c.engine", device="cpu")
    if not pk.cuda_available():
        with pytest.raises(pk.EngineDeviceError, match="not available here"):
            pk.load_engine(tmp_path / "c.engine")


def test_plugin_must_be_registered_to_load(tmp_path):
    pk.register_plugin("twice", lambda shapes, p: shapes[0], impl=lambda xp, ins, p: ins[0] * p["k"], replace=True)
    net = pk.Network("pl")
    x = net.add_input("x", (3,))
    net.mark_output(net.add_plugin("twice", [x], {"k": 2.0}).output)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    eng.save(tmp_path / "p.engine")
    np.testing.assert_array_equal(pk.load_engine(tmp_path / "p.engine").create_execution_context()
                                  .execute({"x": np.ones((2, 3), np.float32)})[eng.output_names[0]], 2)
    pk.unregister_plugin("twice")
    try:
        with pytest.raises(pk.PluginNotRegisteredError, match="plugin 'twice' is not registered.*register_plugin"):
            pk.load_engine(tmp_path / "p.engine")
    finally:
        pk.register_plugin("twice", lambda shapes, p: shapes[0], impl=lambda xp, ins, p: ins[0] * p["k"], replace=True)


# crafted plans with recomputed checksums: each names the field it breaks ------------------------------

def _craft_cases(plan, tensors):
    """(what, edit of plan/tensors in place, text the error must contain)."""
    first_w = next(k for k in sorted(plan["weights"]) if len(plan["weights"][k]["shape"]) > 1)
    act = next(k for k, t in plan["tensors"].items() if t["kind"] == "activation")
    return [
        ("wrong stored shape", lambda p, t: t.__setitem__(first_w, t[first_w].reshape(-1)), first_w),
        ("plan and stored shape both changed",
         lambda p, t: (t.__setitem__(first_w, t[first_w].reshape(-1)),
                       p["weights"][first_w].__setitem__("shape", [int(t[first_w].size)])), "steps"),
        ("unknown op", lambda p, t: p["steps"][0].__setitem__("type", "nope"), "'nope'"),
        ("negative dim", lambda p, t: p["tensors"][act]["shape"].__setitem__(0, -4), "shape"),
        ("huge dim", lambda p, t: p["tensors"][act]["shape"].__setitem__(0, 2**40), "shape"),
        ("bool dim", lambda p, t: p["tensors"][act]["shape"].__setitem__(0, True), "shape"),
        ("missing weight", lambda p, t: t.pop(first_w), first_w),
        ("extra weight", lambda p, t: t.__setitem__("extra", np.ones(3, np.float32)), "extra"),
        ("dtype mismatch", lambda p, t: p["tensors"][act].__setitem__("dtype", "float16"), act),
        ("weights_bytes 6 GiB", lambda p, t: p["memory"].__setitem__("weights_bytes", 6 << 30), "weights_bytes"),
        ("activation_bytes grown", lambda p, t: p["memory"].__setitem__("activation_bytes",
                                                                        p["memory"]["activation_bytes"] + 256),
         "activation_bytes"),
        ("io_bytes", lambda p, t: p["memory"].__setitem__("io_bytes", 0), "io_bytes"),
        ("no steps", lambda p, t: p.__setitem__("steps", []), "steps"),
        ("steps reversed", lambda p, t: p["steps"].reverse(), "before any step writes it"),
        ("input also output", lambda p, t: p.__setitem__("outputs", p["inputs"]), "both an input and an output"),
        ("no outputs", lambda p, t: p.__setitem__("outputs", []), "outputs"),
        ("weights overlap", lambda p, t: [w.__setitem__("offset", 0) for w in p["weights"].values()], "overlaps"),
        ("precision int8", lambda p, t: p["steps"][0].__setitem__("precision", "int8"), "int8"),
        ("string batch", lambda p, t: p.__setitem__("max_batch_size", "2"), "max_batch_size"),
        ("step name not a string", lambda p, t: p["steps"][0].__setitem__("name", 3), "name"),
        ("build log row", lambda p, t: p["build_log"][0].__setitem__("time_ms", "fast"), "build_log"),
    ]


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lenet") / "o.engine"
    pk.Builder("cpu").build(pk.models.lenet(), pk.BuilderConfig(max_batch_size=2, fusions="none")).save(path)
    return path


@pytest.mark.parametrize("case", range(21))
def test_crafted_plan_field_is_named(lenet_file, tmp_path, case):
    import engine_craft as craft
    from perfkit.device.memory import CountingAllocator
    meta, plan, tensors = craft.read(lenet_file)
    what, edit, needle = _craft_cases(plan, tensors)[case]
    edit(plan, tensors)
    craft.write(tmp_path / "c.engine", meta, plan, tensors)
    counting = CountingAllocator(pk.get_device("cpu").allocator)
    with pytest.raises(pk.EngineFileError) as info:
        pk.load_engine(tmp_path / "c.engine", device="cpu", allocator=counting)
    assert needle in str(info.value) and "rebuild" in str(info.value).lower(), (what, str(info.value))
    assert counting.peak_bytes == 0, f"{what}: {counting.peak_bytes} bytes allocated before refusing"


def test_save_into_missing_directory(tmp_path):
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp())
    target = tmp_path / "nope" / "m.engine"
    with pytest.raises(pk.EngineFileError, match=r"directory .*nope.* does not exist.*makedirs"):
        eng.save(target)
    assert not (tmp_path / "nope").exists() and list(tmp_path.iterdir()) == []
