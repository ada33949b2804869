"""Crafting engine files as an attacker would: edit the plan or the tensors, recompute the checksum.

The writer here is independent of perfkit's: it uses the safetensors library and the documented
checksum rule (SHA-256 of the whole file with the checksum field zeroed).
"""
from __future__ import annotations

import copy
import hashlib
import json
import struct

import numpy as np

ZEROS = "0" * 64


def read(path) -> tuple[dict, dict, dict]:
    """(metadata, plan JSON, tensors) of an engine file."""
    from safetensors import deserialize
    import ml_dtypes
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    meta = json.loads(blob[8:8 + n])["__metadata__"]
    codes = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "BF16": ml_dtypes.bfloat16}
    tensors = {k: np.frombuffer(bytes(v["data"]), codes[v["dtype"]]).reshape(v["shape"]).copy()
               for k, v in deserialize(blob)}
    return meta, json.loads(meta["plan"]), tensors


def write(path, meta: dict, plan: dict, tensors: dict, checksum: bool = True) -> None:
    """Writes a file with ``plan`` and ``tensors``; ``checksum``: recompute it (else keep the old one)."""
    from safetensors.numpy import save
    m = dict(meta)
    m["plan"] = json.dumps(plan)
    if checksum:
        m["checksum"] = ZEROS
    blob = bytearray(save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=m))
    if checksum:
        digest = hashlib.sha256(blob).hexdigest().encode()
        pos = blob.index(b'"checksum":"' + ZEROS.encode()) + len('"checksum":"')
        blob[pos:pos + 64] = digest
    with open(path, "wb") as f:
        f.write(blob)


def leaf_paths(node, prefix=()) -> list:
    """Every path into the plan (dict keys and list indices), containers included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += leaf_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += leaf_paths(v, prefix + (i,))
    return out


def get(node, path):
    for k in path:
        node = node[k]
    return node


def put(node, path, value):
    get(node, path[:-1])[path[-1]] = value


ODD_VALUES = [-1, 0, 1, 3, 7, 255, 256, 2**31, 2**40, 2**63, -2**40, True, False, 2.5, 1e300, float("nan"),
              "banana", "", None, [], {}, [1, 2], {"a": 1}, "float16", "float32", "int32", "bfloat16", "fp16",
              "bf16", "fp32", "identity", "plugin", "relu", "activation", "constant", "input", "output"]


def mutate_value(rng, value, siblings: list):
    """A plausible or hostile replacement for ``value``."""
    r = rng.random()
    if isinstance(value, bool) or value is None:
        return ODD_VALUES[rng.integers(len(ODD_VALUES))]
    if isinstance(value, int) and r < 0.6:
        return int(value + rng.choice([-256, -1, 1, 2, 256, 6 << 30, -value - 1, value]))
    if isinstance(value, float) and r < 0.6:
        return float(value * rng.choice([0.0, -1.0, 0.5, 2.0, 1e30]))
    if isinstance(value, str) and r < 0.5 and siblings:
        return siblings[rng.integers(len(siblings))]
    if isinstance(value, list) and value and r < 0.7:
        v = list(value)
        op = rng.integers(5)
        if op == 0:
            v.reverse()
        elif op == 1:
            del v[rng.integers(len(v))]
        elif op == 2:
            v.append(copy.deepcopy(v[rng.integers(len(v))]))
        elif op == 3:
            i = rng.integers(len(v))
            v[i] = mutate_value(rng, v[i], siblings)
        else:
            rng.shuffle(v)
        return v
    if isinstance(value, dict) and value and r < 0.7:
        v = dict(value)
        keys = list(v)
        op = rng.integers(3)
        if op == 0:
            del v[keys[rng.integers(len(keys))]]
        elif op == 1:
            v["unexpected"] = 1
        else:
            k = keys[rng.integers(len(keys))]
            v[k] = mutate_value(rng, v[k], siblings)
        return v
    return copy.deepcopy(ODD_VALUES[rng.integers(len(ODD_VALUES))])
