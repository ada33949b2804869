"""Crafted engine files with recomputed checksums: every one is refused with a PerfkitError or, when
it loads, computes exactly what the original engine computes (unless only weight values changed).

Each file changes one thing: any field of the plan (a random path through the plan JSON, the
containers included, set to a hostile or plausible value), or a structural edit an attacker would
try (steps reordered, dropped or duplicated, offsets moved onto each other, dtypes flipped, stored
tensors removed, added, reshaped or retyped, memory sizes inflated). The generator is seeded, so
the set of files is the same on every run.
"""
from __future__ import annotations

import copy
import math
import json

import numpy as np
import pytest

import perfkit as pk

import engine_craft as craft

def _small_lenet() -> pk.Network:
    """LeNet's layer types at a tenth of its size, plus a constant and a shuffle."""
    rng = np.random.default_rng(1)
    net = pk.Network("small_lenet")
    x = net.add_input("data", (1, 12, 12))
    x = net.add_convolution(x, 4, 5, rng.normal(0, 0.3, (4, 1, 5, 5)), rng.normal(0, 0.1, 4), name="conv1").output
    x = net.add_pooling(x, "max", 2, 2, name="pool1").output
    x = net.add_fully_connected(x, 16, rng.normal(0, 0.2, (16, 64)), rng.normal(0, 0.1, 16), name="ip1").output
    x = net.add_activation(x, "relu", name="relu1").output
    c = net.add_constant(rng.normal(0, 1, 16).astype(np.float32), name="offset").output
    x = net.add_elementwise(x, c, "sum", name="shift").output
    x = net.add_fully_connected(x, 10, rng.normal(0, 0.3, (10, 16)), rng.normal(0, 0.1, 10), name="ip2").output
    net.mark_output(net.add_softmax(x, 0, name="prob").output)
    return net


def _small_mlp() -> pk.Network:
    rng = np.random.default_rng(2)
    net = pk.Network("small_mlp")
    x = net.add_input("data", (1, 8, 8))
    x = net.add_fully_connected(x, 32, rng.normal(0, 0.2, (32, 64)), rng.normal(0, 0.1, 32), name="ip1").output
    x = net.add_activation(x, "relu", name="relu1").output
    x = net.add_fully_connected(x, 10, rng.normal(0, 0.3, (10, 32)), rng.normal(0, 0.1, 10), name="ip2").output
    net.mark_output(net.add_softmax(x, 0, name="prob").output)
    return net


def _original(tmp, name, net, precision, fusions="none"):
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, precision=precision, fusions=fusions))
    path = tmp / f"{name}.engine"
    eng.save(path)
    x = pk.models.sample_input(net, 2, seed=5)
    meta, plan, tensors = craft.read(path)
    return name, (meta, json.dumps(plan), tensors), x, eng.create_execution_context().execute(x)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    return [_original(d, "small_lenet", _small_lenet(), "fp32"), _original(d, "small_mlp", _small_mlp(), "fp16"),
            _original(d, "small_lenet_fused", _small_lenet(), "fp16", "all")]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("samples")
    return [_original(d, "lenet", pk.models.lenet(), "fp32"), _original(d, "mnist_mlp", pk.models.mnist_mlp(), "fp16")]


def _structural(rng, plan: dict, tensors: dict) -> tuple[str, bool]:
    """One structural edit, in place; returns (what, only values changed: weights or numeric parameters)."""
    steps, tens, weights, mem = plan["steps"], plan["tensors"], plan["weights"], plan["memory"]
    acts = [k for k, t in tens.items() if t["kind"] == "activation"]
    keys = sorted(weights)
    kind = int(rng.integers(20))
    if kind == 0 and len(steps) > 1:
        i = int(rng.integers(len(steps) - 1))
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
        return f"swap steps {i},{i + 1}", False
    if kind == 1:
        del steps[int(rng.integers(len(steps)))]
        return "drop a step", False
    if kind == 2:
        plan["steps"] = []
        return "no steps", False
    if kind == 3:
        i = int(rng.integers(len(steps)))
        steps.insert(i, copy.deepcopy(steps[i]))
        return "duplicate a step", False
    if kind == 4 and len(acts) > 1:
        a, b = rng.choice(acts, 2, replace=False)
        tens[a]["offset"] = tens[b]["offset"]
        return f"activation {a} onto {b}", False
    if kind == 5 and len(keys) > 1:
        a, b = rng.choice(keys, 2, replace=False)
        weights[a]["offset"] = weights[b]["offset"]
        return f"weight {a} onto {b}", False
    if kind == 6:
        t = rng.choice(sorted(tens))
        tens[t]["dtype"] = rng.choice([d for d in ("float32", "float16", "int32", "bfloat16") if d != tens[t]["dtype"]])
        return f"tensor {t} dtype", False
    if kind == 7:
        t = rng.choice(sorted(tens))
        j = int(rng.integers(len(tens[t]["shape"])))
        tens[t]["shape"][j] = int(rng.choice([0, -3, 2**40, tens[t]["shape"][j] + 1]))
        return f"tensor {t} shape", False
    if kind == 8:
        k = rng.choice(keys)
        del tensors[k]
        return f"stored {k} missing", False
    if kind == 9:
        tensors["extra/kernel"] = np.ones((4, 4), np.float32)
        if rng.random() < 0.5:
            weights["extra/kernel"] = {"key": "extra/kernel", "shape": [4, 4], "dtype": "float32",
                                       "offset": mem["weights_bytes"]}
            mem["weights_bytes"] += 256
        return "extra weight", False
    if kind == 10:
        k = rng.choice(keys)
        arr = tensors[k]
        tensors[k] = arr.reshape(-1)[::-1].reshape(arr.shape[::-1]).copy() if arr.ndim > 1 else \
            np.concatenate([arr, arr[:1]])
        if rng.random() < 0.5:
            weights[k]["shape"] = list(tensors[k].shape)
        return f"stored {k} reshaped", False
    if kind == 11:
        k = rng.choice(keys)
        new = {np.dtype(np.float32): np.float16, np.dtype(np.float16): np.float32}.get(tensors[k].dtype, np.float32)
        tensors[k] = tensors[k].astype(new)
        if rng.random() < 0.5:
            weights[k]["dtype"] = np.dtype(new).name
        return f"stored {k} retyped", False
    if kind == 12:
        mem["weights_bytes"] = 6 << 30
        return "weights_bytes 6 GiB", False
    if kind == 13:
        mem[rng.choice(sorted(mem))] += int(rng.choice([256, -256, 1 << 30]))
        return "memory size", False
    if kind == 14:
        s = steps[int(rng.integers(len(steps)))]
        s["type"] = rng.choice(["nope", "identity", "activation", "softmax", "plugin", "fully_connected"])
        return f"step {s['name']} type", False
    if kind == 15:
        s = steps[int(rng.integers(len(steps)))]
        s["precision"] = rng.choice([p for p in ("fp32", "fp16", "bf16", "int8") if p != s["precision"]])
        return f"step {s['name']} precision", False
    if kind == 16:
        plan["inputs"], plan["outputs"] = plan["outputs"], plan["inputs"]
        return "inputs <-> outputs", False
    if kind == 17:
        k = rng.choice(keys)
        flat = tensors[k].reshape(-1).copy()       # a copy: the original's arrays are shared
        flat[int(rng.integers(flat.size))] += 1
        tensors[k] = flat.reshape(tensors[k].shape)
        return f"weight value {k}", True
    if kind == 18:
        s = steps[int(rng.integers(len(steps)))]
        if s["inputs"]:
            s["inputs"][0] = rng.choice(sorted(tens))
        return f"step {s['name']} reads another tensor", False
    plan["max_batch_size"] = int(rng.choice([0, 1, 3, 64, 2**31]))
    return "max_batch_size", False


def _mutate(rng, plan: dict, tensors: dict) -> tuple[str, bool]:
    if rng.random() < 0.45:
        return _structural(rng, plan, tensors)
    paths = [p for p in craft.leaf_paths(plan) if p and not (p[0] == "build_log" and len(p) > 1 and p[1] > 1)]
    path = paths[int(rng.integers(len(paths)))]
    value = craft.get(plan, path)
    siblings = sorted({v for v in (craft.get(plan, q) for q in paths if q[-1:] == path[-1:]) if isinstance(v, str)})
    new = craft.mutate_value(rng, value, siblings)
    craft.put(plan, path, new)
    # a layer's numeric parameter (a folded power, an activation's alpha) is a value like a weight's:
    # an engine with another value is still one the builder could write, and it computes otherwise
    numeric = path[0] == "steps" and "params" in path and all(
        v is None or (type(v) in (int, float) and math.isfinite(v)) for v in (value, new))
    return "/".join(map(str, path)), numeric


def _same(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def _fuzz(originals, path, n_files: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    raw, silent, loaded, refused = [], [], 0, 0
    for i in range(n_files):
        name, (meta, plan_json, tensors), x, ref = originals[i % len(originals)]
        plan, tensors = json.loads(plan_json), dict(tensors)
        what, weights_only = _mutate(rng, plan, tensors)
        craft.write(path, meta, plan, tensors)
        try:
            out = pk.load_engine(path, device="cpu").create_execution_context().execute(x)
        except pk.PerfkitError:
            refused += 1
            continue
        except Exception as exc:                          # noqa: BLE001 - the point of the test
            raw.append(f"{name} #{i} {what}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        loaded += 1
        if not weights_only and not _same(out, ref):
            silent.append(f"{name} #{i} {what}")
    assert not raw, f"{len(raw)} raw exceptions, e.g. {raw[:5]}"
    assert not silent, f"{len(silent)} files loaded and computed something else, e.g. {silent[:5]}"
    return refused, loaded


def test_5000_crafted_files_are_refused_or_compute_the_same(small, tmp_path):
    refused, loaded = _fuzz(small, tmp_path / "crafted.engine", 5000, seed=2024)
    assert refused > 2500 and loaded > 250, (refused, loaded)      # the generator exercises both outcomes


def test_crafted_sample_engines(samples, tmp_path):
    refused, loaded = _fuzz(samples, tmp_path / "crafted.engine", 300, seed=7)
    assert refused > 150 and loaded > 10, (refused, loaded)
