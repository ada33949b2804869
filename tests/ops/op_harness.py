"""Runs one op with one tactic in an Env that holds exactly the workspace its ``workspace()`` declares
for the CPU, in strict mode (an undeclared temporary raises), on inputs stored in a precision."""
import numpy as np

from perfkit.ops import Env, get_op
from perfkit.ops.base import TensorSpec
from perfkit.ops.env import ALIGN

DTYPES = {"fp32": np.float32, "fp16": np.float16}


def run_op(op_type, tactic, precision, inputs, params, weights=None):
    """``op_type``'s output for the host arrays ``inputs`` (batch first), stored in ``precision``."""
    op = get_op(op_type)
    dt = DTYPES[precision]
    weights = {k: np.asarray(v, np.float32) for k, v in (weights or {}).items()}
    p = op.check(dict(params), dict(weights))
    weights = {k: np.asarray(v).astype(dt) for k, v in weights.items()}
    ins = [TensorSpec(a.shape[1:], np.dtype(dt).name) for a in inputs]
    (out_spec,) = op.infer(p, ins, weights)
    assert tactic in op.applicable_tactics(p, ins), (tactic, op.applicable_tactics(p, ins))
    p, weights = op.prepare_tactic(tactic, p, weights)
    batch = inputs[0].shape[0]
    ws = op.workspace(p, ins, [out_spec], batch, "cpu")
    buf = np.full(ws + ALIGN, 255, np.uint8)                 # garbage (NaN) where nothing was written
    offset = (-buf.ctypes.data) % ALIGN
    env = Env(np, "cpu", buf[offset:offset + ws] if ws else None)
    env.strict = True
    out = np.full((batch,) + out_spec.shape, np.nan, dt)
    with np.errstate(over="ignore"):
        op.compute(env, [a.astype(dt) for a in inputs], [out], p, weights)
    return out
