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
    layout: str = ""       # "" row-major per sample; "nhwc": a (C, H, W) activation stored channels-last


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
        d = asdict(self)
        for t in d["tensors"].values():     # only channels-last tensors say so: files stay readable by older perfkit
            if not t["layout"]:
                del t["layout"]
        return d

    @classmethod
    def from_json(cls, d: Any) -> "EnginePlan":
        """Rebuilds a plan from parsed JSON (raises EngineFileError when a field is missing or unknown).

        Only the structure is checked here; :func:`perfkit.runtime.plan_check.check_plan` checks
        every value as the builder would have produced it.
        """
        try:
            kw = dict(_obj(d, "plan"))
            kw["tensors"] = {k: TensorPlan(**_obj(v, f"tensors[{k!r}]")) for k, v in _obj(d["tensors"], "tensors").items()}
            kw["steps"] = [StepPlan(**_obj(s, f"steps[{i}]")) for i, s in enumerate(_list(d["steps"], "steps"))]
            kw["weights"] = {k: WeightPlan(**_obj(v, f"weights[{k!r}]")) for k, v in _obj(d["weights"], "weights").items()}
            return cls(**kw)
        except EngineFileError:
            raise
        except (KeyError, TypeError) as exc:
            raise EngineFileError(f"the engine plan is malformed ({type(exc).__name__}: {exc}); "
                                  "the file is corrupted or was not written by perfkit: rebuild the engine") from None


def _obj(v: Any, field: str) -> dict:
    if not isinstance(v, dict):
        raise EngineFileError(f"the engine plan's {field} is a {type(v).__name__}, not an object; the file is "
                              "corrupted or was not written by perfkit: rebuild the engine")
    return v


def _list(v: Any, field: str) -> list:
    if not isinstance(v, list):
        raise EngineFileError(f"the engine plan's {field} is a {type(v).__name__}, not a list; the file is "
                              "corrupted or was not written by perfkit: rebuild the engine")
    return v
