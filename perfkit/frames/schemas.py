"""Every frame perfkit produces, declared once: column, dtype, unit, meaning.

Producers build frames through :meth:`Schema.frame`; consumers may rely on every declared column.
Column names are snake_case with a unit suffix (``_ns``, ``_ms``, ``_bytes``, ``_pct``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd

from ..errors import PerfkitError


class SchemaError(PerfkitError, ValueError):
    """A frame does not match its declared schema."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str          # pandas dtype: int64, float64, string, bool
    unit: str           # "" when dimensionless
    meaning: str


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple
    doc: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def frame(self, rows: Iterable[Mapping[str, Any]] = (), attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
        rows = list(rows)
        missing = [c for c in self.names if rows and any(c not in r for r in rows)]
        if missing:
            raise SchemaError(f"rows for frame {self.name!r} lack columns {missing}")
        extra = sorted({k for r in rows for k in r} - set(self.names))
        if extra:
            raise SchemaError(f"rows for frame {self.name!r} have undeclared columns {extra}; "
                              f"declare them in perfkit/frames/schemas.py")
        df = pd.DataFrame(rows, columns=self.names)
        for c in self.columns:
            df[c.name] = df[c.name].astype(c.dtype)
        df.attrs.update(dict(attrs or {}))
        df.attrs["schema"] = self.name
        return df

    def validate(self, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.names if c not in df.columns]
        if missing:
            raise SchemaError(f"frame {self.name!r} lacks columns {missing}")
        for c in self.columns:
            if str(df[c.name].dtype) != c.dtype:
                raise SchemaError(f"frame {self.name!r}: column {c.name!r} has dtype {df[c.name].dtype}, "
                                  f"declared {c.dtype}")
        return df

    def describe(self) -> pd.DataFrame:
        return pd.DataFrame([{"column": c.name, "dtype": c.dtype, "unit": c.unit, "meaning": c.meaning}
                             for c in self.columns])


def _s(name: str, doc: str, *cols: tuple) -> Schema:
    return Schema(name, tuple(Column(*c) for c in cols), doc)


BUILD_LOG = _s(
    "build_log", "One row per builder step: what it did, to which layers, and how long it took.",
    ("step", "int64", "", "position of the row in the build"),
    ("phase", "string", "", "builder phase: validate, dead_layers, constant_folding, fusion, precision, reformat, "
                            "tactic, memory_plan, weights"),
    ("rule", "string", "", "the rule or action applied within the phase"),
    ("matched", "string", "", "network layers the step looked at, joined by ', '"),
    ("produced", "string", "", "engine layer or tensor the step produced ('' when none)"),
    ("layers_before", "int64", "", "layer count before the step"),
    ("layers_after", "int64", "", "layer count after the step"),
    ("time_ms", "float64", "ms", "wall time spent in the step"),
    ("outcome", "string", "", "done; fusion: fused / not fused; tactic: chosen / rejected / cached"),
    ("detail", "string", "", "a plain-language explanation of the outcome"),
)

ENGINE_LAYERS = _s(
    "engine_layers", "One row per engine layer (execution step), in execution order.",
    ("index", "int64", "", "execution order"),
    ("layer", "string", "", "engine layer name (fused layers join original names with ' + ')"),
    ("type", "string", "", "layer type"),
    ("precision", "string", "", "fp32, fp16 or bf16"),
    ("inputs", "string", "", "input tensor names, joined by ', '"),
    ("outputs", "string", "", "output tensor names, joined by ', '"),
    ("input_shapes", "string", "", "per-sample input shapes"),
    ("output_shapes", "string", "", "per-sample output shapes"),
    ("origin", "string", "", "network layers this engine layer computes, joined by ', '"),
    ("flops", "float64", "flop", "floating-point operations per sample"),
    ("bytes", "float64", "B", "bytes read and written per sample (activations and weights)"),
    ("weights_bytes", "int64", "B", "bytes of weights the layer reads"),
    ("workspace_bytes", "int64", "B", "scratch memory the layer needs at max_batch_size"),
)

SWEEP = _s(
    "sweep", "Latency and throughput of one engine per (model, precision, batch size).",
    ("run_id", "string", "", "identifier of the run that produced the row"),
    ("model", "string", "", "network name"),
    ("device", "string", "", "device spec, e.g. cpu or cuda:0"),
    ("precision", "string", "", "fp32, fp16 or bf16"),
    ("batch_size", "int64", "", "samples per inference"),
    ("iterations", "int64", "", "timed inferences"),
    ("latency_mean_ms", "float64", "ms", "mean host-timed latency of a synchronous inference"),
    ("latency_median_ms", "float64", "ms", "median latency"),
    ("latency_p90_ms", "float64", "ms", "90th percentile latency"),
    ("latency_min_ms", "float64", "ms", "fastest inference"),
    ("latency_max_ms", "float64", "ms", "slowest inference"),
    ("throughput_per_s", "float64", "1/s", "samples per second: batch_size / median latency"),
    ("device_memory_bytes", "int64", "B", "engine plus one context: weights, activations, workspace, I/O"),
    ("weights_bytes", "int64", "B", "weights on the device"),
    ("activation_bytes", "int64", "B", "activation arena of one context (after liveness reuse)"),
    ("build_time_ms", "float64", "ms", "time to build the engine"),
)

ENGINE_DISPATCH = _s(
    "engine_dispatch", "One row per call to an EngineSet context: which engine ran the batch.",
    ("ts_ns", "int64", "ns", "perf_counter_ns when the call started"),
    ("batch_size", "int64", "", "samples in the call"),
    ("engine_max_batch_size", "int64", "", "max batch size of the engine chosen (the smallest that fits)"),
    ("engine_id", "string", "", "id of that engine"),
    ("latency_ms", "float64", "ms", "host-timed latency of the synchronous call"),
)

FUSION_BENEFIT = _s(
    "fusion_benefit", "What each fusion rule buys: the engine rebuilt with that rule switched off, against all rules on.",
    ("rule", "string", "", "fusion rule switched off ('(all rules)' and '(no rules)' are the references)"),
    ("fusions", "int64", "", "times the rule fused in the fully fused build"),
    ("layers", "int64", "", "engine layers with the rule off"),
    ("latency_ms", "float64", "ms", "median latency with the rule off"),
    ("latency_delta_ms", "float64", "ms", "latency with the rule off minus latency with all rules"),
    ("latency_delta_pct", "float64", "%", "that difference as a percentage of the fully fused latency"),
    ("device_memory_bytes", "int64", "B", "engine plus one context with the rule off"),
    ("memory_delta_bytes", "int64", "B", "device memory with the rule off minus with all rules"),
)

SCHEMAS = {s.name: s for s in (BUILD_LOG, ENGINE_LAYERS, SWEEP, ENGINE_DISPATCH, FUSION_BENEFIT)}


def get_schema(name: str) -> Schema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise SchemaError(f"no frame schema named {name!r}; declared: {', '.join(SCHEMAS)}") from None
