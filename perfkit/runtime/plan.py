"""The engine plan: everything an engine is, as JSON-able data (the weights travel beside it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import EngineFileError

FORMAT_VERSION = 1


@dataclass
class TensorPlan:
    name: str
    shape: list            # per sample
    dtype: str
    kind: str              # input, output, activation, constant
    offset: int = 0        # activation: arena offset; constant: weight key's offset is in weights


@dataclass
class StepPlan:
    name: str
    type: str
    params: dict
    inputs: list
    outputs: list
    weights: dict          # op weight name -> key in the engine's weight store
    precision: str
    origin: list
    workspace_bytes: int = 0
    flops: float = 0.0
    bytes: float = 0.0


@dataclass
class WeightPlan:
    key: str
    shape: list
    dtype: str
    offset: int


@dataclass
class EnginePlan:
    name: str
    device_kind: str
    device_name: str
    precision: str
    max_batch_size: int
    inputs: list
    outputs: list
    tensors: dict
    steps: list
    weights: dict
    memory: dict           # weights_bytes, activation_bytes, workspace_bytes, io_bytes
    build_config: dict
    build_log: list
    build_time_ms: float
    perfkit_version: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any) -> "EnginePlan":
        """Rebuilds a plan from parsed JSON, checking every field's type (raises EngineFileError)."""
        try:
            if not isinstance(d, dict):
                raise TypeError("the plan is not a JSON object")
            kw = dict(d)
            kw["tensors"] = {k: TensorPlan(**_obj(v)) for k, v in _obj(d["tensors"]).items()}
            kw["steps"] = [StepPlan(**_obj(s)) for s in _list(d["steps"])]
            kw["weights"] = {k: WeightPlan(**_obj(v)) for k, v in _obj(d["weights"]).items()}
            plan = cls(**kw)
            _check_types(plan)
            return plan
        except EngineFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EngineFileError(f"the engine plan is malformed ({type(exc).__name__}: {exc}); "
                                  "the file is corrupted or was not written by perfkit") from None


def _obj(v: Any) -> dict:
    if not isinstance(v, dict):
        raise TypeError(f"expected an object, got {type(v).__name__}")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list):
        raise TypeError(f"expected a list, got {type(v).__name__}")
    return v


def _check_types(p: EnginePlan) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ValueError(what)
    need(isinstance(p.name, str) and isinstance(p.device_kind, str), "name/device_kind")
    need(isinstance(p.max_batch_size, int) and p.max_batch_size >= 1, "max_batch_size")
    need(isinstance(p.inputs, list) and isinstance(p.outputs, list), "inputs/outputs")
    for t in p.tensors.values():
        need(isinstance(t.shape, list) and all(isinstance(d, int) and d > 0 for d in t.shape), f"tensor {t.name} shape")
        need(t.dtype in ("float32", "float16", "bfloat16", "int32"), f"tensor {t.name} dtype")
        need(t.kind in ("input", "output", "activation", "constant"), f"tensor {t.name} kind")
        need(isinstance(t.offset, int) and t.offset >= 0, f"tensor {t.name} offset")
    for n in p.inputs + p.outputs:
        need(n in p.tensors, f"binding {n}")
    for s in p.steps:
        need(isinstance(s.params, dict) and isinstance(s.weights, dict), f"step {s.name}")
        for t in s.inputs + s.outputs:
            need(t in p.tensors, f"step {s.name} tensor {t}")
        for k in s.weights.values():
            need(k in p.weights, f"step {s.name} weight {k}")
        need(isinstance(s.workspace_bytes, int) and s.workspace_bytes >= 0, f"step {s.name} workspace")
    for w in p.weights.values():
        need(isinstance(w.offset, int) and w.offset >= 0, f"weight {w.key} offset")
    for k in ("weights_bytes", "activation_bytes", "workspace_bytes", "io_bytes"):
        need(isinstance(p.memory.get(k), int) and p.memory[k] >= 0, f"memory {k}")
