"""Epilogues: work a fused layer does on its output in place, right after its main pass.

A fused convolution or fully connected layer applies, in this order, a power (from a folded Scale),
a residual sum (from a fused ElementWise sum) and an activation — on the output it has just written,
without another layer, another buffer or another read of its inputs.
"""
from __future__ import annotations

from ..errors import NetworkDefinitionError
from .activation import ACTIVATIONS, activate, activation_scratch


def check_epilogue(params: dict) -> dict:
    act = params.get("activation")
    if act is not None:
        if not isinstance(act, dict) or act.get("kind") not in ACTIVATIONS:
            raise NetworkDefinitionError(f"epilogue activation must be a dict with kind in {list(ACTIVATIONS)}, got {act!r}")
        da, db, _ = ACTIVATIONS[act["kind"]]
        params["activation"] = {"kind": act["kind"], "alpha": float(act.get("alpha", da)),
                                "beta": float(act.get("beta", db))}
    else:
        params["activation"] = None
    p = params.get("power")
    params["power"] = None if p is None or float(p) == 1.0 else float(p)
    return params


def epilogue_scratch(params: dict, count: int, dtype) -> list:
    """Bytes of the scratch arrays :func:`apply_epilogue` carves for an output of ``count`` values."""
    act = params.get("activation")
    return [] if not act or act["kind"] == "relu" else activation_scratch(act["kind"], count, dtype)


def apply_epilogue(env, out, params: dict, residual=None) -> None:
    xp = env.xp
    if params.get("power") is not None:
        # one operation: NumPy's float16/bfloat16 loops compute each value in float32 and round once
        xp.power(out, params["power"], out=out)
    if residual is not None:
        xp.add(out, residual, out=out)
    act = params.get("activation")
    if act:
        if act["kind"] == "relu":
            xp.maximum(out, 0, out=out)
        else:
            activate(env, act["kind"], out, out, act["alpha"], act["beta"])


def epilogue_flops(params: dict, n: int) -> float:
    act = params.get("activation")
    return float(n * ((ACTIVATIONS[act["kind"]][2] if act else 0) + (10 if params.get("power") else 0)))
