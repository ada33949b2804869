"""Constant folding at import: a node whose inputs are all known is evaluated with ONNX's NumPy reference
implementation; ``Shape`` of a run-time tensor is its static shape, the batch dimension a marker."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .values import BATCH

# never folded: randomness, control flow with subgraphs, ops with state
FOLD_REFUSED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                "Bernoulli", "If", "Loop", "Scan", "SequenceMap"}
MAX_FOLDED = 1 << 28          # elements a folded tensor may have (a malformed ConstantOfShape cannot eat the host)
_SHAPE_TAKERS = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1}


def shape_of(ctx: Any, values: Any, t: Any) -> np.ndarray:
    full = np.array(values.full_shape(t), dtype=np.int64)
    if ctx.op_type == "Size":
        if values.lead:
            ctx.fail("Size of a batched tensor depends on the batch size, known only at run time")
        return np.array(int(np.prod(full)), dtype=np.int64)
    start, end = ctx.int_attr("start", 0), ctx.int_attr("end", None)
    return full[start:end]


def _expected_size(ctx: Any, ins: list) -> int:
    op = ctx.op_type
    if op in _SHAPE_TAKERS and len(ins) > _SHAPE_TAKERS[op] and ins[_SHAPE_TAKERS[op]] is not None:
        shape = np.asarray(ins[_SHAPE_TAKERS[op]]).reshape(-1)
        if op == "Tile" and ins[0] is not None:
            return int(np.prod(np.asarray(ins[0]).shape)) * int(np.prod(np.abs(shape)))
        base = int(np.prod(np.asarray(ins[0]).shape)) if op == "Expand" and ins[0] is not None else 1
        return max(int(np.prod(np.abs(shape).astype(np.float64))), base)
    if op == "Range" and len(ins) == 3 and all(v is not None for v in ins):
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in ins)
        return 0 if delta == 0 else max(0, math.ceil((limit - start) / delta))
    shapes = [np.shape(v) for v in ins if v is not None]
    try:
        if op in _BROADCASTING and shapes:
            return math.prod(np.broadcast_shapes(*shapes))
        if op in ("MatMul", "Gemm") and len(shapes) >= 2 and min(map(len, shapes[:2])) >= 1:
            a, b = shapes[0], shapes[1]
            return math.prod(a[:-1] or (1,)) * math.prod(b[-1:]) * max(1, math.prod(b[:-2]))
        if op == "Pad" and len(ins) > 1 and ins[1] is not None:
            pads = np.abs(np.asarray(ins[1]).reshape(-1)).astype(np.float64)
            rank = len(shapes[0])
            return int(np.prod([d + pads[i] + pads[i + len(pads) // 2] if i < len(pads) // 2 else d
                                for i, d in enumerate(shapes[0])] or [1])) if rank else 1
        if op in ("Resize", "Upsample") and ins:
            sizes = ins[3] if op == "Resize" and len(ins) > 3 else None
            scales = ins[2] if op == "Resize" and len(ins) > 2 else (ins[1] if len(ins) > 1 else None)
            if sizes is not None and np.size(sizes):
                return math.prod(int(abs(v)) for v in np.asarray(sizes).reshape(-1))
            if scales is not None and np.size(scales):
                return int(math.prod(shapes[0]) * math.prod(abs(float(v)) for v in np.asarray(scales).reshape(-1)))
        if op == "OneHot" and len(ins) > 1 and ins[1] is not None:
            return math.prod(shapes[0]) * int(abs(float(np.asarray(ins[1]).reshape(-1)[0])))
    except (ValueError, OverflowError, IndexError):
        return 0                     # shapes that do not broadcast: ONNX's evaluator says why
    return 0


# operators whose output has the broadcast shape of their inputs
_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less",
                 "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod", "BitShift", "PRelu"}


def _one_node_model(node: Any, opset: int) -> Any:
    """``node`` alone in a model of the file's opset (a bare node would be evaluated at the newest opset)."""
    from onnx import helper
    vi = [helper.make_empty_tensor_value_info(n) for n in node.input if n]
    vo = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
    g = helper.make_graph([node], "fold", vi, vo)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def fold_node(ctx: Any, ins: list, opset: int) -> list:
    """The node's outputs as NumPy arrays (every input is a constant)."""
    from onnx.reference import ReferenceEvaluator
    op = ctx.op_type
    if op in _SHAPE_TAKERS and len(ins) > _SHAPE_TAKERS[op] and ins[_SHAPE_TAKERS[op]] is not None:
        # a shape holding the run-time batch: the constant is the same for every sample, so 1 there
        k = _SHAPE_TAKERS[op]
        s = np.asarray(ins[k])
        if s.dtype.kind in "iu" and (s == BATCH).any():
            ins = list(ins)
            ins[k] = np.where(s == BATCH, 1, s).astype(s.dtype)
    size = _expected_size(ctx, ins)
    if size > MAX_FOLDED:
        ctx.fail(f"folding it would make a tensor of more than {MAX_FOLDED} elements", malformed=True)
    if size > 1 << 24:
        from ..arguments import fits_in_host_memory
        fits_in_host_memory(8 * size, f"folding node {ctx.label} ({op}) at import", "free host memory")
    node = ctx.node
    feeds = {n: np.asarray(v) for n, v in zip(node.input, ins) if n}
    try:
        outs = ReferenceEvaluator(_one_node_model(node, opset)).run(None, feeds)
    except Exception as exc:
        ctx.fail(f"cannot be evaluated at import on its constant inputs ({type(exc).__name__}: "
                 f"{str(exc).splitlines()[0][:300] if str(exc) else ''})", malformed=True)
    result = []
    for o in outs:
        if isinstance(o, (list, tuple)) or o is None:
            ctx.fail("has outputs that are not tensors (sequences or optionals are not supported)")
        a = np.asarray(o)
        if a.size > MAX_FOLDED:
            ctx.fail(f"folding it made a tensor of {a.size} elements (the limit is {MAX_FOLDED})", malformed=True)
        if a.dtype.kind not in "biuf":
            ctx.fail(f"folds to a tensor of dtype {a.dtype}; perfkit imports numeric tensors only")
        result.append(a)
    return result
