"""Frames of throughput under load (guide 2.1, 2.2 and chapter 5): streams and threads, the dynamic
batcher, load generation, the batching simulator and host<->device transfers."""
from __future__ import annotations

from .schemas import _s

THROUGHPUT = _s(
    "throughput", "One row per (streams, threads) configuration of a throughput sweep (guide 2.2), timed in "
                  "interleaved rounds.",
    ("run_id", "string", "", "sweep run"),
    ("engine", "string", "", "engine (network) name"),
    ("device", "string", "", "device spec"),
    ("precision", "string", "", "engine precision"),
    ("batch_size", "int64", "", "samples per inference"),
    ("streams", "int64", "", "execution contexts, each on its own stream"),
    ("threads", "int64", "", "worker threads feeding them (each owns at least one context)"),
    ("rounds", "int64", "", "interleaved timing rounds"),
    ("queries", "int64", "", "timed inferences over all rounds"),
    ("throughput_per_s", "float64", "1/s", "samples per second: median over the rounds"),
    ("throughput_ci_low_per_s", "float64", "1/s", "95% interval of that median: low (NaN below 6 rounds)", True),
    ("throughput_ci_high_per_s", "float64", "1/s", "95% interval of that median: high (NaN below 6 rounds)", True),
    ("speedup", "float64", "", "throughput over the 1-stream, 1-thread configuration's (median of per-round "
                               "ratios; NaN when that configuration was not swept)", True),
    ("latency_median_ms", "float64", "ms", "device-timed latency per query (H2D + compute + D2H): median"),
    ("latency_median_ci_low_ms", "float64", "ms", "95% interval of the median latency: low", True),
    ("latency_median_ci_high_ms", "float64", "ms", "95% interval of the median latency: high", True),
    ("latency_p99_ms", "float64", "ms", "99th percentile of the latency"),
    ("in_flight_mean", "float64", "", "queries in flight on average (1 = no overlap)", True),
    ("overlap_pct", "float64", "%", "share of the time with two or more queries in flight", True),
    ("blas_threads", "int64", "", "BLAS threads per stream on the CPU device (0 on a GPU)"),
    ("host_load_1m", "float64", "", "host 1-minute load average before timing", True),
    ("host_other_busy_cores", "float64", "", "cores other processes kept busy while timing (NaN where unknown)",
     True),
)

BATCHER_REQUESTS = _s(
    "batcher_requests", "One row per request a DynamicBatcher served (guide 2.1).",
    ("request", "int64", "", "request number, in submission order"),
    ("rows", "int64", "", "samples in the request"),
    ("batch", "int64", "", "number of the batch that ran it"),
    ("batch_size", "int64", "", "samples in that batch (all its requests)"),
    ("engine_batch_size", "int64", "", "max batch size of the engine the batch ran on (the smallest that fits)"),
    ("instance", "int64", "", "batcher instance (worker thread and its contexts) that ran the batch"),
    ("trigger", "string", "", "why the batch started: full, timeout (max_delay_ms passed), drain (close) or "
                              "busy (an instance freed with requests waiting past their delay)"),
    ("submit_ns", "int64", "ns", "perf_counter_ns when the request was submitted"),
    ("start_ns", "int64", "ns", "when its batch started running"),
    ("end_ns", "int64", "ns", "when its batch's results were ready"),
    ("queue_ms", "float64", "ms", "submission to batch start"),
    ("compute_ms", "float64", "ms", "the batch's run (copy in, network, copy out)"),
    ("latency_ms", "float64", "ms", "submission to result"),
)

LOAD_REQUESTS = _s(
    "load_requests", "One row per request of a load test against a DynamicBatcher (perfkit.bench.load).",
    ("run_id", "string", "", "load run"),
    ("request", "int64", "", "request number, in submission order"),
    ("client", "int64", "", "client thread (closed loop) or 0 (open loop: one generator)"),
    ("scheduled_ns", "int64", "ns", "when the arrival process scheduled it (open loop) or the client was ready"),
    ("submit_ns", "int64", "ns", "when it was submitted"),
    ("late_ms", "float64", "ms", "submission after its scheduled time (the generator falling behind)"),
    ("start_ns", "int64", "ns", "when its batch started running"),
    ("end_ns", "int64", "ns", "when its result was ready"),
    ("queue_ms", "float64", "ms", "submission to batch start"),
    ("batch", "int64", "", "number of the batch it ran in"),
    ("batch_size", "int64", "", "samples in the batch it ran in"),
    ("engine_batch_size", "int64", "", "max batch size of the engine that ran it"),
    ("compute_ms", "float64", "ms", "the batch's run"),
    ("latency_ms", "float64", "ms", "submission to result"),
)

BATCHING_SIMULATION = _s(
    "batching_simulation", "Latency and throughput of opportunistic batching against the maximum delay T "
                           "(guide 2.1): predicted by simulate_batching, or measured by load (source).",
    ("source", "string", "", "simulated or measured"),
    ("delay_ms", "float64", "ms", "maximum delay T a batch waits for more requests"),
    ("arrival_rate_per_s", "float64", "1/s", "offered requests per second"),
    ("max_batch_size", "int64", "", "largest batch"),
    ("requests", "int64", "", "requests simulated or measured"),
    ("latency_p50_ms", "float64", "ms", "median request latency (submission to result)"),
    ("latency_p99_ms", "float64", "ms", "99th percentile of the request latency"),
    ("latency_mean_ms", "float64", "ms", "mean request latency"),
    ("throughput_per_s", "float64", "1/s", "requests completed per second"),
    ("mean_batch", "float64", "", "mean samples per batch"),
    ("utilisation_pct", "float64", "%", "share of the time the engine was running a batch"),
    ("stable", "bool", "", "the arrival rate is below what the engine serves at max_batch_size (otherwise the "
                           "queue grows without bound and the latencies depend on how long it ran)"),
)

TRANSFERS = _s(
    "transfers", "Host<->device copy time and bandwidth per size, from pageable and from pinned (page-locked) "
                 "host memory (guide chapter 5).",
    ("device", "string", "", "device spec"),
    ("direction", "string", "", "h2d (host to device) or d2h (device to host)"),
    ("memory", "string", "", "host memory: pageable or pinned"),
    ("size_bytes", "int64", "B", "bytes per copy"),
    ("repeats", "int64", "", "timed copies"),
    ("time_median_ms", "float64", "ms", "copy time: median"),
    ("time_ci_low_ms", "float64", "ms", "95% interval of the median copy time: low", True),
    ("time_ci_high_ms", "float64", "ms", "95% interval of the median copy time: high", True),
    ("bandwidth_gb_s", "float64", "GB/s", "size over the median time (10^9 bytes per second)"),
    ("bandwidth_ci_low_gb_s", "float64", "GB/s", "bandwidth at the high end of the time interval", True),
    ("bandwidth_ci_high_gb_s", "float64", "GB/s", "bandwidth at the low end of the time interval", True),
)

LOAD_SCHEMAS = (THROUGHPUT, BATCHER_REQUESTS, LOAD_REQUESTS, BATCHING_SIMULATION, TRANSFERS)
