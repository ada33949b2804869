"""Validation of a loaded engine plan: what the builder guarantees, checked again before any memory is taken.

A checksum proves that a file is intact, not that it came from perfkit's builder: anyone can edit a
plan and recompute it. :func:`check_plan` therefore refuses every plan the builder could not have
written, with an :class:`EngineFileError` that names the field and its value:

- every number is an ``int`` (never a bool) in a sane range, every name a string;
- bindings: inputs and outputs non-empty, distinct, each a tensor of the matching kind;
- steps: a registered op (plugins by registered name), parameters that pass the op's ``check``
  (tactic layouts included), outputs equal to the op's shape inference, float tensors stored in the
  dtype of the step's precision (reformat layers are ``identity`` steps with a ``dtype``), every
  tensor produced once and before it is read, workspace, flops and bytes as the op computes them;
- weights: exactly the stored tensors (shape and dtype), inside ``weights_bytes``, not overlapping;
- memory: ``weights_bytes``, ``activation_bytes``, ``workspace_bytes`` and ``io_bytes`` equal to
  what the plan implies; activation offsets inside the arena, and no two tensors alive at the same
  step sharing bytes (liveness recomputed).

What this cannot prove: that a plan the builder *could* have written is the one it did. An edit
that stays consistent — another activation kind, a reformat to another dtype the API allows, other
weight values — loads and computes something else. Integrity against such edits needs a signature
from whoever built the engine, which perfkit files do not carry: load engines from sources you trust.
"""
from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np

from ..device.memory import DEFAULT_ALIGNMENT, align
from ..errors import EngineFileError, PluginNotRegisteredError, UnknownOpError
from ..frames.schemas import BUILD_LOG
from ..ops import get_op
from ..ops.base import NHWC, TensorSpec
from ..ops.cuda_gemm import BLAS_WORKSPACE_BYTES
from ..precision import PRECISIONS, STORAGE, as_dtype, is_float
from .plan import FORMAT_VERSION, EnginePlan

DTYPES = ("float32", "float16", "bfloat16", "int32")
KINDS = ("input", "output", "activation", "constant")
DEVICE_KINDS = ("cpu", "cuda")
MAX_DIM = 2**31 - 1
MAX_RANK = 8
MAX_BYTES = 2**48                   # 256 TiB: no size, offset or product of them goes beyond
MEMORY_KEYS = ("weights_bytes", "activation_bytes", "workspace_bytes", "io_bytes")
_EXTRA_INTS = ("fusions", "timing_cache_hits", "blas_workspace_bytes")
_EXTRA_FLOATS = ("tactic_timing_ms", "timing_cache_saved_ms")
#: ops whose check accepts any parameter: the ones they take (others would pass unnoticed)
_ONLY_PARAMS = {"identity": {"dtype"}}
_FIX = "the file was edited or corrupted; rebuild the engine from its network"


def _show(v: Any) -> str:
    try:
        s = repr(v)
    except RecursionError:
        return "a deeply nested value"
    return s if len(s) <= 80 else s[:77] + "..."


def fail(field: str, value: Any, why: str) -> EngineFileError:
    return EngineFileError(f"the engine plan's {field} is {_show(value)}: {why}; {_FIX}")


def _int(v: Any, field: str, lo: int = 0, hi: int = MAX_BYTES) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise fail(field, v, f"expected an int from {lo} to {hi}")
    return v


def _num(v: Any, field: str) -> float:
    if type(v) not in (int, float) or not math.isfinite(v) or v < 0:
        raise fail(field, v, "expected a finite number >= 0")
    return float(v)


def _str(v: Any, field: str) -> str:
    if type(v) is not str:
        raise fail(field, v, "expected a string")
    return v


def _strs(v: Any, field: str, nonempty: bool = False) -> list:
    if type(v) is not list or not all(type(x) is str for x in v):
        raise fail(field, v, "expected a list of strings")
    if nonempty and not v:
        raise fail(field, v, "expected at least one name")
    if len(set(v)) != len(v):
        raise fail(field, v, "names repeat")
    return v


def _shape(v: Any, field: str, lo: int) -> tuple:
    if type(v) is not list or len(v) > MAX_RANK:
        raise fail(field, v, f"expected a list of at most {MAX_RANK} dimensions")
    for d in v:
        _int(d, field, lo, MAX_DIM)
    if math.prod(v) > MAX_BYTES:
        raise fail(field, v, "the shape holds more elements than any device")
    return tuple(v)


def _nbytes(shape: tuple, dtype: str) -> int:
    return math.prod(shape) * as_dtype(dtype).itemsize


def check_plan(plan: EnginePlan, weights: dict) -> None:
    """Raises :class:`EngineFileError` unless ``plan`` (with the stored ``weights``) is one the builder could write."""
    _check_header(plan)
    _check_tensors(plan)
    _check_weights(plan, weights)
    life = _check_steps(plan, weights)
    _check_memory(plan, life)


def _check_header(p: EnginePlan) -> None:
    _str(p.name, "name")
    if p.device_kind not in DEVICE_KINDS:
        raise fail("device_kind", p.device_kind, f"expected one of {DEVICE_KINDS}")
    _str(p.device_name, "device_name")
    if p.precision not in PRECISIONS:
        raise fail("precision", p.precision, f"expected one of {PRECISIONS}")
    _int(p.max_batch_size, "max_batch_size", 1, MAX_DIM)
    _strs(p.inputs, "inputs", nonempty=True)
    _strs(p.outputs, "outputs", nonempty=True)
    both = sorted(set(p.inputs) & set(p.outputs))
    if both:
        raise fail("inputs/outputs", both, "a tensor cannot be both an input and an output")
    if type(p.tensors) is not dict or type(p.weights) is not dict:
        raise fail("tensors/weights", type(p.tensors).__name__, "expected objects")
    if type(p.steps) is not list or not p.steps:
        raise fail("steps", p.steps, "expected a non-empty list of steps")
    if type(p.memory) is not dict or sorted(p.memory) != sorted(MEMORY_KEYS):
        raise fail("memory", p.memory, f"expected exactly the keys {MEMORY_KEYS}")
    for k in MEMORY_KEYS:
        _int(p.memory[k], f"memory.{k}")
    if type(p.build_config) is not dict:
        raise fail("build_config", p.build_config, "expected an object")
    _num(p.build_time_ms, "build_time_ms")
    _str(p.perfkit_version, "perfkit_version")
    if type(p.format_version) is not int or p.format_version != FORMAT_VERSION:
        raise fail("format_version", p.format_version, f"expected {FORMAT_VERSION}")
    if type(p.extra) is not dict:
        raise fail("extra", p.extra, "expected an object")
    for k in _EXTRA_INTS:
        if k in p.extra:
            _int(p.extra[k], f"extra.{k}")
    for k in _EXTRA_FLOATS:
        if k in p.extra:
            _num(p.extra[k], f"extra.{k}")
    ops = p.extra.get("source_ops", {})
    if type(ops) is not dict or not all(type(k) is str and type(v) is str for k, v in ops.items()):
        raise fail("extra.source_ops", ops, "expected an object of layer name -> op type (strings)")
    _check_build_log(p.build_log)


def _check_build_log(rows: Any) -> None:
    if type(rows) is not list:
        raise fail("build_log", rows, "expected a list of rows")
    types = {"int64": (int,), "string": (str,), "float64": (int, float)}
    for i, r in enumerate(rows):
        if type(r) is not dict or sorted(r) != sorted(BUILD_LOG.names):
            raise fail(f"build_log[{i}]", r, f"expected an object with the keys {BUILD_LOG.names}")
        for c in BUILD_LOG.columns:
            v = r[c.name]
            if type(v) not in types[c.dtype] or (c.dtype != "string" and not math.isfinite(v)) \
                    or (c.dtype == "int64" and abs(v) > MAX_BYTES):
                raise fail(f"build_log[{i}].{c.name}", v, f"expected a {c.dtype} value")


def _check_tensors(p: EnginePlan) -> None:
    b = p.max_batch_size
    for key, t in p.tensors.items():
        f = f"tensors[{key!r}]"
        if t.name != key:
            raise fail(f"{f}.name", t.name, "it differs from the tensor's key")
        _shape(t.shape, f"{f}.shape", 1)
        if t.dtype not in DTYPES:
            raise fail(f"{f}.dtype", t.dtype, f"expected one of {DTYPES}")
        if t.kind not in KINDS:
            raise fail(f"{f}.kind", t.kind, f"expected one of {KINDS}")
        _int(t.offset, f"{f}.offset")
        if b * _nbytes(tuple(t.shape), t.dtype) > MAX_BYTES:
            raise fail(f"{f}.shape", t.shape, f"at max_batch_size {b} it needs more bytes than any device has")
        want = "input" if key in p.inputs else "output" if key in p.outputs else None
        if (want or t.kind) != t.kind or (want is None and t.kind in ("input", "output")):
            raise fail(f"{f}.kind", t.kind, f"the plan's bindings make it {want or 'an activation or constant'}")
        if t.kind != "activation" and t.offset != 0:
            raise fail(f"{f}.offset", t.offset, "only activations have an arena offset")
        if t.layout not in ("", NHWC) or (t.layout and (t.kind != "activation" or len(t.shape) != 3)):
            raise fail(f"{f}.layout", t.layout, "expected '' or, for a (C, H, W) activation, 'nhwc'")
    for n in p.inputs + p.outputs:
        if n not in p.tensors:
            raise fail("inputs/outputs", n, "the binding has no tensor in the plan")


def _check_weights(p: EnginePlan, stored: dict) -> None:
    if sorted(p.weights) != sorted(stored):
        missing, extra = sorted(set(p.weights) - set(stored)), sorted(set(stored) - set(p.weights))
        raise fail("weights", {"missing": missing, "not in the plan": extra},
                   "the stored tensors differ from the plan's weights")
    ranges = []
    for key, w in p.weights.items():
        f = f"weights[{key!r}]"
        if w.key != key:
            raise fail(f"{f}.key", w.key, "it differs from the weight's key")
        shape = _shape(w.shape, f"{f}.shape", 0)
        if w.dtype not in DTYPES:
            raise fail(f"{f}.dtype", w.dtype, f"expected one of {DTYPES}")
        arr = stored[key]
        if tuple(arr.shape) != shape or arr.dtype != as_dtype(w.dtype):
            raise fail(f"{f}", {"shape": w.shape, "dtype": w.dtype},
                       f"the stored tensor has shape {list(arr.shape)} and dtype {arr.dtype}")
        offset = _int(w.offset, f"{f}.offset")
        if offset % DEFAULT_ALIGNMENT:
            raise fail(f"{f}.offset", offset, f"weights start at multiples of {DEFAULT_ALIGNMENT} bytes")
        ranges.append((offset, offset + arr.nbytes, key))
    ranges.sort()
    for (lo0, hi0, k0), (lo1, hi1, k1) in zip(ranges, ranges[1:]):
        if lo1 < hi0:
            raise fail(f"weights[{k1!r}].offset", lo1, f"it overlaps weight {k0!r} ({lo0}..{hi0})")
    implied = max((align(hi - lo) + lo for lo, hi, _ in ranges), default=0)
    if p.memory["weights_bytes"] != implied:
        raise fail("memory.weights_bytes", p.memory["weights_bytes"], f"the weights take {implied} bytes")
    for t in p.tensors.values():
        if t.kind == "constant":
            w = p.weights.get(f"constant/{t.name}")
            if w is None or list(w.shape) != list(t.shape) or w.dtype != t.dtype:
                raise fail(f"tensors[{t.name!r}]", t.kind, "a constant needs a stored weight of its shape and dtype")


def _check_steps(p: EnginePlan, stored: dict) -> dict:
    """Walks the steps in order; returns the lifetimes (first write, last read) of the activations."""
    ready = set(p.inputs) | {n for n, t in p.tensors.items() if t.kind == "constant"}
    produced: set = set()
    used = set(p.inputs) | set(p.outputs)
    used_weights = {f"constant/{n}" for n, t in p.tensors.items() if t.kind == "constant"}
    life: dict = {}
    names: set = set()
    workspace = 0
    for i, s in enumerate(p.steps):
        f = f"steps[{i}]"
        _str(s.name, f"{f}.name")
        if s.name in names:
            raise fail(f"{f}.name", s.name, "two steps have this name")
        names.add(s.name)
        f = f"steps[{i}] ({s.name!r})"
        _str(s.type, f"{f}.type")
        if type(s.params) is not dict or type(s.weights) is not dict:
            raise fail(f"{f}.params/weights", type(s.params).__name__, "expected objects")
        if s.precision not in PRECISIONS:
            raise fail(f"{f}.precision", s.precision, f"expected one of {PRECISIONS}")
        if type(s.inputs) is not list or not all(type(x) is str for x in s.inputs):
            raise fail(f"{f}.inputs", s.inputs, "expected a list of strings")
        _strs(s.outputs, f"{f}.outputs", nonempty=True)
        _strs(s.origin, f"{f}.origin")
        for wname, key in s.weights.items():
            if type(key) is not str or key not in p.weights:
                raise fail(f"{f}.weights[{wname!r}]", key, "not a weight of the plan")
            used_weights.add(key)
        for t in s.inputs:
            if t not in p.tensors:
                raise fail(f"{f}.inputs", t, "no such tensor in the plan")
            if t not in ready:
                raise fail(f"{f}.inputs", t, "the tensor is read before any step writes it")
            if t in life:
                life[t][1] = i
        for t in s.outputs:
            if t not in p.tensors:
                raise fail(f"{f}.outputs", t, "no such tensor in the plan")
            if t in ready:
                raise fail(f"{f}.outputs", t, "the tensor is an input, a constant, or written by an earlier step")
            ready.add(t)
            produced.add(t)
            if p.tensors[t].kind == "activation":
                life[t] = [i, i]
        used.update(s.inputs, s.outputs)
        workspace = max(workspace, _check_op(p, i, s, f, stored))
    needed = set(p.outputs)
    for i in range(len(p.steps) - 1, -1, -1):       # dead layers: the builder removes them
        s = p.steps[i]
        if not needed & set(s.outputs):
            raise fail(f"steps[{i}] ({s.name!r}).outputs", s.outputs, "no later step reads them and none is an "
                       "output of the engine")
        needed.update(s.inputs)
    for n in p.outputs:
        if n not in produced:
            raise fail("outputs", n, "no step writes this output")
    unused = sorted(set(p.tensors) - used)
    if unused:
        raise fail("tensors", unused, "no step uses these tensors")
    extra = sorted(set(p.weights) - used_weights)
    if extra:
        raise fail("weights", extra, "no step or constant uses these weights")
    blas = p.extra.get("blas_workspace_bytes", 0)
    if blas not in ((0, BLAS_WORKSPACE_BYTES) if p.device_kind == "cuda" else (0,)):
        raise fail("extra.blas_workspace_bytes", blas, "not a size the builder gives cuBLAS")
    if p.memory["workspace_bytes"] != align(workspace) + blas:
        raise fail("memory.workspace_bytes", p.memory["workspace_bytes"],
                   f"the steps need {align(workspace) + blas} bytes")
    return {k: tuple(v) for k, v in life.items()}


def _check_op(p: EnginePlan, i: int, s: Any, f: str, stored: dict) -> int:
    """Runs the step through its op as the builder did; returns the step's workspace bytes."""
    try:
        op = get_op(s.type)
    except UnknownOpError:
        raise fail(f"{f}.type", s.type, "no op of this type is registered") from None
    allowed = _ONLY_PARAMS.get(s.type)
    if allowed is not None and not set(s.params) <= allowed:
        raise fail(f"{f}.params", s.params, f"a {s.type} layer takes only {sorted(allowed)}")
    n_in = len(s.inputs)
    if n_in < op.min_inputs or (op.max_inputs is not None and n_in > op.max_inputs):
        raise fail(f"{f}.inputs", s.inputs, f"a {s.type} layer takes {op.min_inputs} to {op.max_inputs} inputs")
    ins = [TensorSpec(tuple(p.tensors[t].shape), p.tensors[t].dtype, p.tensors[t].kind == "constant")
           for t in s.inputs]
    outs = [TensorSpec(tuple(p.tensors[t].shape), p.tensors[t].dtype) for t in s.outputs]
    weights = {k: stored[v] for k, v in s.weights.items()}
    try:
        inferred, params = _replay(op, s.params, weights, ins, p.device_kind)
        # the builder computed these on its own parameters, which a fusion may have left as lists where
        # the op's check makes tuples: either form is what the builder could have written
        forms = (params, s.params)
        wss = [op.workspace(q, ins, outs, p.max_batch_size, p.device_kind) for q in forms]
        costs = [op.cost(q, ins, outs, weights) for q in forms]
    except PluginNotRegisteredError:
        raise
    except EngineFileError:
        raise
    except Exception as exc:              # the op's own checks, or whatever a crafted value breaks in them
        raise fail(f"{f}.params", s.params, f"the {s.type} op refuses it ({type(exc).__name__}: {exc})") from None
    if [(tuple(o.shape), o.dtype) for o in inferred] != [(o.shape, o.dtype) for o in outs]:
        raise fail(f"{f}.outputs", {t: [p.tensors[t].shape, p.tensors[t].dtype] for t in s.outputs},
                   f"the op infers {[(list(o.shape), o.dtype) for o in inferred]}")
    want = op.tactic_layouts.get(params.get("tactic"), "")
    for t in s.inputs + s.outputs:       # a reformat (identity) converts layouts; any other step reads its own
        have = p.tensors[t].layout
        if have != want and p.tensors[t].kind != "constant" and not (s.type == "identity" and not want):
            raise fail(f"tensors[{t!r}].layout", have, f"step {s.name!r} ({s.type}, tactic "
                       f"{params.get('tactic')!r}) reads and writes {want or 'the default layout'}")
    storage = STORAGE[s.precision]
    for wname, arr in weights.items():
        if is_float(arr.dtype) and arr.dtype.name != storage:
            raise fail(f"weights[{s.weights[wname]!r}].dtype", arr.dtype.name, f"step {s.name!r} runs in "
                       f"{s.precision}, which stores {storage}")
    reformat = s.type == "identity" and s.params.get("dtype") is not None
    for t, spec in zip(s.inputs + s.outputs, ins + outs):
        if is_float(spec.dtype) and spec.dtype != storage and not (reformat and t in s.inputs):
            raise fail(f"tensors[{t!r}].dtype", spec.dtype, f"step {s.name!r} runs in {s.precision}, "
                       f"which stores {storage}")
    if type(s.workspace_bytes) is not int or s.workspace_bytes not in wss:
        raise fail(f"{f}.workspace_bytes", s.workspace_bytes, f"the op needs {wss[0]} bytes")
    if type(s.flops) not in (int, float) or type(s.bytes) not in (int, float) \
            or not any(float(c.flops) == s.flops and float(c.bytes) == s.bytes for c in costs):
        raise fail(f"{f}.flops/bytes", [s.flops, s.bytes], f"the op computes {[costs[0].flops, costs[0].bytes]}")
    s.params = params          # as the op's check left them (tuples where JSON has lists), as in a built engine
    return s.workspace_bytes


def _replay(op: Any, params: dict, weights: dict, ins: list, device_kind: str) -> tuple:
    """The op's check and shape inference on the network-layout parameters and weights, then the
    tactic's layout again: the stored step must be exactly what the builder produced from them.
    Returns the inferred output specs and the parameters as the op's check leaves them."""
    tactic = params.get("tactic")
    candidates = [weights]
    if tactic is not None:
        if type(tactic) is not str or tactic not in op.tactic_names:
            raise ValueError(f"tactic {tactic!r} is not one of {op.tactic_names}")
        if op.device_tactics.get(tactic) not in (None, device_kind):
            raise ValueError(f"tactic {tactic!r} runs on {op.device_tactics[tactic]} devices only, and this is a "
                             f"{device_kind} engine")
        for t in (tactic, op.tactic_names[0]):     # the layout change undone, for ops whose tactics change it
            candidates.append(op.prepare_tactic(t, params, weights)[1])
    first_error = None
    for cand in candidates:
        base = copy.deepcopy({k: v for k, v in params.items() if k != "tactic"})
        try:
            checked = op.check(base, dict(cand))
            specs = op.infer(checked, ins, dict(cand))
            final, final_w = op.prepare_tactic(tactic, checked, cand) if tactic is not None else (checked, cand)
        except (PluginNotRegisteredError, EngineFileError):
            raise
        except Exception as exc:
            first_error = first_error or exc
            continue
        if _same_or_defaults_added(final, params) and sorted(final_w) == sorted(weights) and all(
                final_w[k].shape == weights[k].shape and final_w[k].dtype == weights[k].dtype
                and np.array_equal(final_w[k], weights[k]) for k in weights):
            return specs, final
    if first_error is not None:
        raise first_error
    raise ValueError("the parameters or weight layout differ from what the op's check produces")


def _same_or_defaults_added(final: dict, stored: dict) -> bool:
    """Whether the stored parameters are what the op's check makes of them, or those of an engine saved
    before the op gained a parameter with a default: every stored key kept, only new keys added."""
    if _json(final) == _json(stored) is not None:
        return True
    added = set(final) - set(stored)
    return (set(stored) < set(final) and "tactic" not in added      # a tactic is never a default: it sets the layout
            and _json({k: final[k] for k in stored}) == _json(stored) is not None)


def _json(d: dict) -> Any:
    """Canonical JSON text (types kept apart: ``0``, ``0.0`` and ``false`` differ)."""
    try:
        return json.dumps(d, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _check_memory(p: EnginePlan, life: dict) -> None:
    b = p.max_batch_size
    placed = []
    for n, t in p.tensors.items():
        if t.kind != "activation":
            continue
        if n not in life:
            raise fail(f"tensors[{n!r}]", t.kind, "no step writes this activation")
        if t.offset % DEFAULT_ALIGNMENT:
            raise fail(f"tensors[{n!r}].offset", t.offset, f"offsets are multiples of {DEFAULT_ALIGNMENT} bytes")
        size = b * _nbytes(tuple(t.shape), t.dtype)
        placed.append((t.offset, t.offset + align(size), life[n], n))
    arena = max((hi for _, hi, _, _ in placed), default=0)
    if p.memory["activation_bytes"] != arena:
        raise fail("memory.activation_bytes", p.memory["activation_bytes"],
                   f"the activations' offsets and sizes take {arena} bytes")
    placed.sort()
    for i, (lo, hi, (first, last), n) in enumerate(placed):
        for lo2, hi2, (first2, last2), n2 in placed[i + 1:]:
            if lo2 >= hi:
                break
            if not (last < first2 or last2 < first):
                raise fail(f"tensors[{n2!r}].offset", lo2, f"it shares arena bytes with {n!r} while both are alive "
                           f"(steps {first}..{last} and {first2}..{last2})")
    io = sum(align(b * _nbytes(tuple(p.tensors[n].shape), p.tensors[n].dtype)) for n in p.inputs + p.outputs)
    if p.memory["io_bytes"] != io:
        raise fail("memory.io_bytes", p.memory["io_bytes"], f"the inputs and outputs take {io} bytes")
