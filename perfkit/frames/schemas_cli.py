"""Frames the ``perfkit`` command writes beside the ones the Python API already declares."""
from __future__ import annotations

from .schemas import _s

RUN_RESULTS = _s(
    "run_results", "One row per configuration (precision, batch size) of a `perfkit run`: its headline figures. "
                   "Also a column latency_p<P>_ms per percentile asked for (--percentiles).",
    ("model", "string", "", "network (or engine) name"),
    ("device", "string", "", "device spec, e.g. cpu or cuda:0"),
    ("precision", "string", "", "precision allowed when the engine was built"),
    ("engine_precision", "string", "", "the engine's precision (as built or loaded)"),
    ("batch_size", "int64", "", "samples per inference"),
    ("streams", "int64", "", "execution contexts in flight, one stream each"),
    ("threads", "int64", "", "worker threads feeding the streams (0: one host thread, perfkit.bench.measure)"),
    ("include_transfers", "bool", "", "each inference copied its inputs in and its outputs out"),
    ("engine_id", "string", "", "short content hash of the engine ('' for one built and not saved)"),
    ("device_memory_bytes", "int64", "B", "engine plus one context, as the builder predicted"),
    ("queries", "float64", "", "timed inferences"),
    ("throughput_per_s", "float64", "1/s", "samples per second over the wall time"),
    ("throughput_qps", "float64", "1/s", "inferences per second", True),
    ("latency_min_ms", "float64", "ms", "device-timed latency (H2D + compute + D2H): fastest"),
    ("latency_mean_ms", "float64", "ms", "mean"),
    ("latency_median_ms", "float64", "ms", "median"),
    ("latency_median_ci_low_ms", "float64", "ms", "95% confidence interval of the median: low", True),
    ("latency_median_ci_high_ms", "float64", "ms", "that interval's high end", True),
    ("latency_max_ms", "float64", "ms", "slowest", True),
    ("latency_std_ms", "float64", "ms", "standard deviation", True),
    ("host_latency_median_ms", "float64", "ms", "host wall clock from submission to observed completion", True),
    ("enqueue_median_ms", "float64", "ms", "host time to submit one inference", True),
    ("h2d_median_ms", "float64", "ms", "input copy", True),
    ("compute_median_ms", "float64", "ms", "network execution", True),
    ("d2h_median_ms", "float64", "ms", "output copy", True),
    ("total_host_wall_ms", "float64", "ms", "wall time of the timed phase", True),
    ("copy_share_pct", "float64", "%", "H2D + D2H share of a query's device-timed latency (median over queries)",
     True),
    ("host_load_1m", "float64", "", "host 1-minute load average before timing (NaN where unknown)", True),
    ("host_cpus", "float64", "", "CPU cores this process may use (NaN where unknown)", True),
    ("host_other_busy_cores", "float64", "", "cores other processes kept busy while timing (NaN where unknown)",
     True),
    ("disturbed", "bool", "", "a sign that the measurement was disturbed (unstable, host load, contention, "
                              "throttling); the diagnoses frame explains each"),
    ("findings", "string", "", "every finding of the diagnoses, joined by ', ' ('' when none)"),
)
