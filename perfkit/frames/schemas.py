"""Every frame perfkit produces, declared once: column, dtype, unit, meaning.

Producers build frames through :meth:`Schema.frame`; consumers may rely on every declared column.
Column names are snake_case with a unit suffix (``_ns``, ``_ms``, ``_bytes``, ``_pct``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import PerfkitError


class SchemaError(PerfkitError, ValueError):
    """A frame does not match its declared schema."""


DTYPES = ("int64", "float64", "string", "bool")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str          # pandas dtype: int64, float64, string, bool
    unit: str           # "" when dimensionless
    meaning: str
    nullable: bool = False  # may hold missing values (NaN / <NA>); every other column is always filled
    optional: bool = False  # added after frames were recorded: absent from those (and from rows that lack it)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SchemaError(f"a column needs a non-empty string name, not {self.name!r}")
        if self.dtype not in DTYPES:
            raise SchemaError(f"column {self.name!r}: dtype must be one of {DTYPES}, not {self.dtype!r}")
        if not isinstance(self.unit, str) or not isinstance(self.meaning, str):
            raise SchemaError(f"column {self.name!r}: unit and meaning are strings ('' when none)")
        if not isinstance(self.nullable, bool):
            raise SchemaError(f"column {self.name!r}: nullable must be True or False, not {self.nullable!r}")
        if not isinstance(self.optional, bool):
            raise SchemaError(f"column {self.name!r}: optional must be True or False, not {self.optional!r}")


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SchemaError(f"a schema needs a non-empty string name, not {self.name!r}")
        if not isinstance(self.columns, (tuple, list)) or not self.columns or \
                not all(isinstance(c, Column) for c in self.columns):
            raise SchemaError(f"schema {self.name!r}: columns must be a non-empty tuple of Column, "
                              f"not {self.columns!r}")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"schema {self.name!r} declares a column twice: {names}")
        if not isinstance(self.doc, str):
            raise SchemaError(f"schema {self.name!r}: doc must be a string")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def frame(self, rows: Iterable[Mapping[str, Any]] = (), attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
        if rows is None or isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise SchemaError(f"rows for frame {self.name!r} must be an iterable of mappings (one per row), "
                              f"not {type(rows).__name__}")
        rows = list(rows)
        if not all(isinstance(r, Mapping) for r in rows):
            raise SchemaError(f"rows for frame {self.name!r} must be mappings of column name to value")
        if attrs is not None and not isinstance(attrs, Mapping):
            raise SchemaError(f"attrs for frame {self.name!r} must be a mapping or None, not {type(attrs).__name__}")
        # an optional column is left out when no row has it (rows made before it was declared)
        cols = [c for c in self.columns if not (rows and c.optional and not any(c.name in r for r in rows))]
        missing = [c.name for c in cols if rows and any(c.name not in r for r in rows)]
        if missing:
            raise SchemaError(f"rows for frame {self.name!r} lack columns {missing}")
        extra = sorted({k for r in rows for k in r} - set(self.names))
        if extra:
            raise SchemaError(f"rows for frame {self.name!r} have undeclared columns {extra}; "
                              f"declare them in perfkit/frames/schemas.py")
        df = pd.DataFrame(rows, columns=[c.name for c in cols])
        for c in cols:
            df[c.name] = df[c.name].astype(c.dtype)
        df.attrs.update(dict(attrs or {}))
        df.attrs["schema"] = self.name
        return df

    def validate(self, df: Any, strict: bool = False) -> pd.DataFrame:
        """Checks that ``df`` has every declared column (``optional`` ones may be absent) with its dtype
        and no missing values where the column is not ``nullable``; ``strict`` also refuses undeclared columns and
        infinite floats (for frames read back from files). Returns ``df``."""
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"frame {self.name!r} must be a pandas DataFrame, not {type(df).__name__}")
        missing = [c.name for c in self.columns if c.name not in df.columns and not c.optional]
        if missing:
            raise SchemaError(f"frame {self.name!r} lacks columns {missing}")
        if strict:
            extra = [c for c in df.columns if c not in self.names]
            if extra:
                raise SchemaError(f"frame {self.name!r} has undeclared columns {extra}")
        for c in self.columns:
            if c.optional and c.name not in df.columns:
                continue
            col = df[c.name]
            if not isinstance(col, pd.Series) or str(col.dtype) != c.dtype:
                raise SchemaError(f"frame {self.name!r}: column {c.name!r} has dtype "
                                  f"{getattr(col, 'dtype', type(col).__name__)}, declared {c.dtype}")
            if not c.nullable:
                n = int(col.isna().sum())
                if n:
                    raise SchemaError(f"frame {self.name!r}: column {c.name!r} has {n} missing value(s); it is "
                                      "always filled (declared not nullable)")
            if strict and c.dtype == "float64" and bool(np.isinf(col.to_numpy(dtype=np.float64)).any()):
                raise SchemaError(f"frame {self.name!r}: column {c.name!r} holds infinite values")
        return df

    def describe(self) -> pd.DataFrame:
        return pd.DataFrame([{"column": c.name, "dtype": c.dtype, "unit": c.unit, "meaning": c.meaning,
                              "nullable": c.nullable} for c in self.columns])


def _s(name: str, doc: str, *cols: tuple) -> Schema:
    return Schema(name, tuple(Column(*c) for c in cols), doc)


BUILD_LOG = _s(
    "build_log", "One row per builder step: what it did, to which layers, and how long it took.",
    ("step", "int64", "", "position of the row in the build"),
    ("phase", "string", "", "builder phase: validate, dead_layers, constant_folding, fusion, precision, reformat, "
                            "tactic, layout (channels-last tensors), memory_plan, weights"),
    ("rule", "string", "", "the rule or action applied within the phase"),
    ("matched", "string", "", "network layers the step looked at, joined by ', '"),
    ("produced", "string", "", "engine layer or tensor the step produced ('' when none)"),
    ("layers_before", "int64", "", "layer count before the step"),
    ("layers_after", "int64", "", "layer count after the step"),
    ("time_ms", "float64", "ms", "wall time spent in the step; on a tactic's chosen / rejected row, the time "
                                 "that tactic measured for the layer (the phase's time spent is on its 'done' row)"),
    ("outcome", "string", "", "done; fusion: fused / not fused; tactic: chosen / rejected / cached"),
    ("detail", "string", "", "a plain-language explanation of the outcome"),
)

ENGINE_LAYERS = _s(
    "engine_layers", "One row per engine layer (execution step), in execution order.",
    ("index", "int64", "", "execution order"),
    ("layer", "string", "", "engine layer name (fused layers join original names with ' + '; an MLP fusion: "
                                 "'2-layer MLP (ip1 + relu1 + ip2)')"),
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
    # added with issue 9 (optional: engine_layers frames saved before lack it)
    ("tactic", "string", "", "the implementation the builder chose for the layer (fastest timed, cached or the "
                             "default); empty where the op has a single implementation", False, True),
    # added with issue 10 (optional)
    ("source_op", "string", "", "op types in the imported model (ONNX) of the network layers this engine layer "
                                "computes, joined by ', '; empty for networks written with the API", False, True),
    # added with issue 11 (optional)
    ("layout", "string", "", "memory layout the layer reads and writes: 'nhwc' (channels-last, e.g. cuDNN's "
                             "convolutions), 'nchw -> nhwc' / 'nhwc -> nchw' for a reformat layer between layouts, "
                             "'' for the default row-major layout", False, True),
)

SWEEP = _s(
    "sweep", "Latency and throughput of one engine per (model, precision, batch size).",
    ("run_id", "string", "", "identifier of the run that produced the row"),
    ("model", "string", "", "network name"),
    ("device", "string", "", "device spec, e.g. cpu or cuda:0"),
    ("precision", "string", "", "fp32, fp16 or bf16"),
    ("batch_size", "int64", "", "samples per inference"),
    ("iterations", "int64", "", "timed inferences (0 when the configuration failed)"),
    ("latency_mean_ms", "float64", "ms", "mean host-timed latency of a synchronous inference", True),
    ("latency_median_ms", "float64", "ms", "median latency (in sweeps with rounds: the median of the round medians)",
     True),
    ("latency_p90_ms", "float64", "ms", "90th percentile latency", True),
    ("latency_min_ms", "float64", "ms", "fastest inference", True),
    ("latency_max_ms", "float64", "ms", "slowest inference", True),
    ("throughput_per_s", "float64", "1/s", "samples per second: batch_size / median latency", True),
    ("device_memory_bytes", "int64", "B", "engine plus one context: weights, activations, workspace, I/O "
                                          "(0 when the build failed)"),
    ("weights_bytes", "int64", "B", "weights on the device"),
    ("activation_bytes", "int64", "B", "activation arena of one context (after liveness reuse)"),
    ("build_time_ms", "float64", "ms", "time to build the engine", True),
    # added with interleaved rounds (optional: frames recorded before lack them; NaN where a configuration failed)
    ("rounds", "int64", "", "interleaved timing rounds the row's numbers come from", False, True),
    ("latency_ci_low_ms", "float64", "ms", "confidence interval (at least 95%, order statistics) of the median of the "
                                           "round medians: low (NaN below 6 rounds); it holds this run's rounds, not "
                                           "what moves between runs or processes (a repeat can land outside it)",
     True, True),
    ("latency_ci_high_ms", "float64", "ms", "that interval's high end", True, True),
    ("latency_cv_pct", "float64", "%", "robust coefficient of variation of the round medians (IQR / 1.349 / median; "
                                       "recorded before issue 9's review: std / mean)", True, True),
    ("unstable", "bool", "", "the round medians spread wider than the sweep's max_cv_pct (after re-measuring)",
     False, True),
    ("remeasured", "bool", "", "the first measurement was unstable, so the configuration was timed again", False, True),
    ("host_load_1m", "float64", "", "host 1-minute load average read before the row's timing rounds (NaN where "
                                    "unknown; recorded before issue 9's review: after them)",
     True, True),
    ("host_cpus", "int64", "", "CPU cores this process may run on: compare host_load_1m with it", False, True),
    ("gpu_sm_clock_mhz", "float64", "MHz", "lowest GPU SM clock read (NVML) after the row's slices (NaN off CUDA)",
     True, True),
    ("gpu_throttle", "string", "", "throttle reasons NVML reported during the row's slices, joined by '|' "
                                   "('' none, missing off CUDA)", True, True),
    ("error", "string", "", "why the configuration failed ('' when it was measured)", False, True),
    ("threads", "int64", "", "BLAS threads the CPU device timed the row with (0 on CUDA)", False, True),
    ("latency_ci_level_pct", "float64", "%", "coverage the latency interval reaches (96.9 at 6 rounds; NaN where "
                                             "there is none)", True, True),
    ("layers_error", "string", "", "why the row's layers could not be profiled (sweep(layers=True)); '' when "
                                   "they were or were not asked for. The timing stands.", False, True),
    ("host_other_busy_cores", "float64", "", "cores other processes kept busy while the row was timed (/proc/stat "
                                             "less this process; NaN where unknown)", True, True),
    # added with issue 13 (where the row was timed, so rows from different machines stay comparable)
    ("host", "string", "", "host name of the machine that timed the row", False, True),
    ("gpu_name", "string", "", "GPU model the row was timed on (CUDA device name); missing off CUDA", True, True),
    ("gpu_uuid", "string", "", "that GPU's UUID ('GPU-...'), which tells GPUs of one model apart; missing off CUDA",
     True, True),
    ("driver_version", "string", "", "NVIDIA driver version; missing off CUDA", True, True),
    ("cpu_name", "string", "", "host CPU model (/proc/cpuinfo 'model name'; platform.processor() elsewhere)",
     False, True),
    ("cpu_cores", "string", "", "cores the timing process could run on, as ranges ('0-3,8'): a distributed sweep "
                                "pins each CPU worker to its own", False, True),
    ("perfkit_version", "string", "", "perfkit version that timed the row", False, True),
    ("library_versions", "string", "", "versions of the libraries the timing ran on, 'name version' joined by ', ' "
                                       "(python, numpy, and where used cupy, the CUDA runtime, nvmath-python, cudnn)",
     False, True),
    ("tactics_id", "string", "", "short hash of the builder's choices (each layer's type, precision, tactic and "
                                 "layout; Engine.tactics_id): rows with equal values ran engines of the same choices. Builds "
                                 "that time tactics may choose differently from run to run; sweep(timing_cache=...) "
                                 "takes each layer's tactic from one timing. '' where the build failed", False, True),
)

SWEEP_LAYERS = _s(
    "sweep_layers", "Per-layer times of each sweep configuration (sweep(..., layers=True)): one row per engine "
    "layer per (model, precision, batch size), from a profiled pass after the configuration was timed.",
    ("run_id", "string", "", "identifier of the sweep that produced the row"),
    ("model", "string", "", "network name"),
    ("device", "string", "", "device spec, e.g. cpu or cuda:0"),
    ("precision", "string", "", "precision the engine was built for (fp32, fp16, bf16)"),
    ("batch_size", "int64", "", "samples per inference"),
    ("index", "int64", "", "layer position in execution order"),
    ("layer", "string", "", "engine layer name (fused layers join original names with ' + '; an MLP fusion: "
                                 "'2-layer MLP (ip1 + relu1 + ip2)')"),
    ("type", "string", "", "layer type"),
    ("layer_precision", "string", "", "precision the builder chose for this layer"),
    ("count", "int64", "", "profiled executions of the layer"),
    ("median_ms", "float64", "ms", "median duration of the layer"),
    ("ci_low_ms", "float64", "ms", "confidence interval (at least 95%, order statistics) of that median, low end"),
    ("ci_high_ms", "float64", "ms", "that interval's high end"),
    ("pct", "float64", "%", "share of the sum of the layers' medians"),
    ("flops", "float64", "flop", "floating-point operations per sample"),
    ("bytes", "float64", "B", "bytes read and written per sample"),
    ("ci_level_pct", "float64", "%", "coverage the interval reaches (96.9 with 6 executions)", True, True),
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
    ("latency_delta_ms", "float64", "ms", "latency with the rule off minus latency with all rules: the median over "
                                          "the interleaved rounds of the two latencies' difference in each round"),
    ("latency_delta_pct", "float64", "%", "that difference as a percentage of the fully fused latency"),
    ("device_memory_bytes", "int64", "B", "engine plus one context with the rule off"),
    ("memory_delta_bytes", "int64", "B", "device memory with the rule off minus with all rules"),
    # added with intervals (optional: frames recorded before lack them)
    ("latency_delta_ci_low_ms", "float64", "ms", "confidence interval (at least 95%, order statistics) of the median "
                                                 "paired round difference: low (NaN below 6 rounds)", True, True),
    ("latency_delta_ci_high_ms", "float64", "ms", "that interval's high end", True, True),
    ("significant", "bool", "", "the interval of the difference excludes 0 (a sign test of the paired round "
                                "differences at 5%): the rule's effect is beyond the noise", False, True),
    ("latency_delta_ci_level_pct", "float64", "%", "coverage the interval reaches (96.9 at 6 rounds; NaN where there "
                                                   "is none)", True, True),
)

LAYER_TIMES = _s(
    "layer_times", "One row per engine layer per profiled inference (IProfiler's report, with timestamps).",
    ("run_id", "string", "", "profiling run"),
    ("iteration", "int64", "", "inference number within the run, from 0"),
    ("index", "int64", "", "layer position in execution order"),
    ("layer", "string", "", "engine layer name"),
    ("type", "string", "", "layer type"),
    ("start_ns", "int64", "ns", "layer start on the perf_counter_ns timeline (GPU events aligned to it)"),
    ("end_ns", "int64", "ns", "layer end on the same timeline"),
    ("ms", "float64", "ms", "layer duration as reported to the profiler"),
    ("stream", "string", "", "stream the layer ran on"),
    ("context", "string", "", "execution context name"),
    ("batch_size", "int64", "", "samples in the inference"),
    ("precision", "string", "", "layer precision"),
    ("clock", "string", "", "host (perf_counter_ns when the stream reached the layer), cuda_event (events "
                            "between eagerly launched layers) or cuda_graph (globaltimer stamps written "
                            "between the layers of a replayed CUDA graph)"),
)

MEMORY_EVENTS = _s(
    "memory_events", "Every allocation and free seen by a TrackingAllocator (guide 1.6), in order.",
    ("ts_ns", "int64", "ns", "perf_counter_ns of the event"),
    ("action", "string", "", "alloc, free or oom"),
    ("ptr", "int64", "", "address of the block (0 for oom)"),
    ("size_bytes", "int64", "B", "bytes of the block"),
    ("requested_bytes", "int64", "B", "bytes asked for"),
    ("tag", "string", "", "weights, activations, workspace, io or user"),
    ("owner", "string", "", "builder, engine:<name> or context:<name> ('' for user allocations)"),
    ("layer", "string", "", "engine layer running on the allocating thread at the time ('' if none)"),
    ("thread", "string", "", "name of the allocating thread"),
    ("in_use_bytes", "int64", "B", "bytes held through this allocator after the event"),
    ("peak_bytes", "int64", "B", "highest in_use_bytes so far"),
)

QUERIES = _s(
    "queries", "One row per timed inference of a measurement (trtexec's per-query times, guide 1.2-1.3).",
    ("run_id", "string", "", "measurement run"),
    ("query", "int64", "", "inference number"),
    ("stream", "int64", "", "stream index the inference ran on"),
    ("batch_size", "int64", "", "samples in the inference"),
    ("enqueue_start_ns", "int64", "ns", "host perf_counter_ns when the inference was submitted"),
    ("enqueue_end_ns", "int64", "ns", "host time when submission returned"),
    ("end_ns", "int64", "ns", "host time when the host saw the inference complete"),
    ("enqueue_ms", "float64", "ms", "host time spent submitting"),
    ("h2d_ms", "float64", "ms", "host-to-device input copy (device timer; 0 on the CPU)"),
    ("compute_ms", "float64", "ms", "network execution (device timer; NaN when no layer of the call was timed)",
     True),
    ("d2h_ms", "float64", "ms", "device-to-host output copy (device timer; 0 on the CPU)"),
    ("latency_ms", "float64", "ms", "h2d + compute + d2h on the device timer (NaN when compute is)", True),
    ("host_latency_ms", "float64", "ms", "host wall clock from submission to observed completion (NaN when an "
                                         "enqueued call's end was not observed)", True),
)

GPU_SAMPLES = _s(
    "gpu_samples", "NVML samples taken by a background thread during a run.",
    ("ts_ns", "int64", "ns", "perf_counter_ns of the sample"),
    ("gpu", "int64", "", "GPU index"),
    ("util_gpu_pct", "float64", "%", "GPU utilisation over the driver's last sample period"),
    ("util_mem_pct", "float64", "%", "memory-controller utilisation"),
    ("mem_used_bytes", "int64", "B", "device memory in use (all processes)"),
    ("sm_clock_mhz", "float64", "MHz", "SM clock"),
    ("mem_clock_mhz", "float64", "MHz", "memory clock"),
    ("power_w", "float64", "W", "board power draw"),
    ("power_limit_w", "float64", "W", "enforced power limit"),
    ("temperature_c", "float64", "C", "GPU temperature"),
    ("throttle_reasons", "string", "", "active clock-throttle reasons, joined by '|' ('' when none)"),
)

KERNELS = _s(
    "kernels", "GPU work recorded by CUPTI activity tracing (kernels, memsets, copies), mapped back to "
    "engine layers.",
    ("name", "string", "", "kernel name ('[memset N B]' / '[memcpy KIND N B]' for other work)"),
    ("kind", "string", "", "kernel, memset or memcpy"),
    ("start_ns", "int64", "ns", "kernel start on the perf_counter_ns timeline"),
    ("end_ns", "int64", "ns", "kernel end"),
    ("ms", "float64", "ms", "kernel duration"),
    ("stream", "int64", "", "CUDA stream id"),
    ("correlation_id", "int64", "", "CUPTI correlation id"),
    ("layer", "string", "", "engine layer that launched the kernel ('' if unknown)"),
    ("iteration", "int64", "", "profiled inference the kernel belongs to (-1 if unknown)"),
)

LAYER_SUMMARY = _s(
    "layer_summary", "Per-layer statistics of a profile (trtexec --dumpProfile, PyTorch key_averages).",
    ("layer", "string", "", "engine layer (or layer type when grouped by type)"),
    ("type", "string", "", "layer type"),
    ("count", "int64", "", "timed executions"),
    ("total_ms", "float64", "ms", "sum of durations"),
    ("mean_ms", "float64", "ms", "mean duration"),
    ("median_ms", "float64", "ms", "median duration"),
    ("p90_ms", "float64", "ms", "90th percentile"),
    ("min_ms", "float64", "ms", "shortest"),
    ("max_ms", "float64", "ms", "longest"),
    ("std_ms", "float64", "ms", "standard deviation of the durations"),
    ("median_ci_low_ms", "float64", "ms", "95 % confidence interval of the median, lower end (order statistics)"),
    ("median_ci_high_ms", "float64", "ms", "95 % confidence interval of the median, upper end"),
    ("pct", "float64", "%", "share of the total of all layers"),
)

DIAGNOSES = _s(
    "diagnoses", "Findings of a measurement, each with a plain explanation and the figure behind it.",
    ("finding", "string", "", "enqueue_bound, h2d_bound, d2h_bound, unstable, throttled, power_capped, profiling_overhead"),
    ("severity", "string", "", "info or warning"),
    ("value", "float64", "", "the figure that triggered the finding"),
    ("threshold", "float64", "", "the threshold it crossed"),
    ("explanation", "string", "", "what it means and what to do"),
)

SCHEMAS = {s.name: s for s in (BUILD_LOG, ENGINE_LAYERS, SWEEP, SWEEP_LAYERS, ENGINE_DISPATCH, FUSION_BENEFIT, LAYER_TIMES,
                               MEMORY_EVENTS, QUERIES, GPU_SAMPLES, KERNELS, LAYER_SUMMARY, DIAGNOSES)}

# schemas kept in files of their own (they import _s from here, so they are read after it is defined)
from . import schemas_cli, schemas_load, schemas_onnx  # noqa: E402

for _module in (schemas_load, schemas_onnx, schemas_cli):
    SCHEMAS.update({s.name: s for s in vars(_module).values() if isinstance(s, Schema)})


def get_schema(name: str) -> Schema:
    if not isinstance(name, str):
        raise SchemaError(f"a schema name is a string such as 'sweep', not {name!r}; declared: {', '.join(SCHEMAS)}")
    try:
        return SCHEMAS[name]
    except KeyError:
        raise SchemaError(f"no frame schema named {name!r}; declared: {', '.join(SCHEMAS)}") from None
