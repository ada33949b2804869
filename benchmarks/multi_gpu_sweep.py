"""The same sweep on one GPU and on every GPU of this host (pk.sweep(..., devices=...), issue 13).

Usage:  python3 benchmarks/multi_gpu_sweep.py [--models mnist_mlp,lenet,resnet_small,transformer_encoder]
            [--batches 1,8,32,128,256] [--precisions fp32,fp16] [--min-time 0.5] [--skip-client]
            [--skip-drift] [--pairs N] [--cpu N] [--method-control] [--chip-control] [--timing-cache]
            [--skip-warmup] [--trace] [--handoff-control N] [--fork-control N]

The default is close to the issue's case: the sample networks over 5 batch sizes x 2 precisions (40
configurations; bf16 is left out by default because CUDA devices keep bf16-allowed layers in fp32, so those
engines would repeat the fp32 ones: add it with --precisions fp32,fp16,bf16). The script runs the sweep
four times (two on one GPU, two on all), so expect about three times the one-GPU sweep in all
(--skip-client and --skip-drift leave out two runs). Each line is printed as its run ends.

Needs only perfkit and dask[distributed] (no network: the local cluster listens on 127.0.0.1).

1. A warm-up sweep on cuda:0 in a separate process (every configuration once, untimed here), so that
   CuPy's on-disk kernel cache holds every kernel before anything is timed and neither run pays for
   compiling (a warm-up at the smallest batch only left kernels of other shapes to the first timed run);
   it also imports Dask distributed, so that its bytecode is compiled as an installed package's is.
2. The sweep on one GPU: ``pk.sweep(nets, device="cuda:0")`` in this process (what a user runs without
   this feature), timed end to end.
3. The sweep on every GPU: ``pk.sweep(nets, devices="all", out=FOLDER)``, timed end to end, including the
   start of the local cluster (one worker process per GPU) and its shut-down.
4. The same on a cluster already running (``devices=client``), which is what a notebook that keeps its
   cluster pays per sweep.
5. The one-GPU sweep again, so that a drift of the machine between the runs shows (the ratio uses the
   mean of both one-GPU runs).
6. With ``--pairs N``, N-1 more pairs of one-GPU and all-GPU sweeps, their order alternating: the ratio's
   median and range over the pairs (single pairs of the same code gave 0.53-0.64x on two H200s).

7. Controls, for rows that disagree: ``--method-control`` times the one-device sweep one configuration per
   call, as a worker does; ``--chip-control`` runs it on the second GPU in this process (two GPUs of one
   model are two chips); ``--timing-cache`` makes every sweep build from the timing cache the warm-up
   fills, so that every run times the same engines. Agreement is also split by GPU (UUID) and by engine
   (``tactics_id``): rows timed on the other GPU, or of an engine whose builder chose other tactics, can
   differ by more than their intervals with nothing wrong in the worker.

Prints the wall times, the ratios (the issue's target: at most 0.6x on 2 GPUs, end to end), which GPU
measured how many configurations, and per configuration whether the two measurements agree: their
order-statistic intervals (at least 95%) overlap. ``--cpu N`` runs the same comparison with N CPU workers
(each pinned to its share of the cores) against one process with as many BLAS threads as each worker has:
a check of the mechanics on a machine without GPUs, not a performance figure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def _sweep_timed(label: str, nets: list, **kw):
    import perfkit as pk
    arrived: list = []
    t0 = time.perf_counter()
    frame = pk.sweep(nets, progress=False, on_row=lambda r: arrived.append(
        (time.perf_counter() - t0, r["device"], (r["model"], r["precision"], int(r["batch_size"])))), **kw)
    wall = time.perf_counter() - t0
    frame.attrs["arrived"] = arrived
    failed = int((frame["error"] != "").sum())
    print(f"{label:<44} {wall:8.1f} s   {len(frame)} configurations{f', {failed} failed' if failed else ''}",
          flush=True)
    if "devices" in kw and arrived:      # where a distributed sweep's time beyond the work goes
        per = {}
        for t, d, _ in arrived:
            per.setdefault(d, []).append(t)
        print("    rows arrived: " + "; ".join(f"{d} first {min(v):.1f} s, last {max(v):.1f} s ({len(v)})"
                                          for d, v in sorted(per.items()))
              + f"; the sweep returned {wall - max(t for t, _, _ in arrived):.1f} s after the last row", flush=True)
        for note in frame.attrs.get("disturbances", []):
            print(f"    note: {note}", flush=True)
    return frame, wall


def _durations(arrived: list) -> dict:
    """Per configuration, the seconds from the previous row of its device (or from the call) to its own,
    and whether it was its device's first row: what it took where each device's rows come one by one."""
    last: dict = {}
    out = {}
    for t, d, key in sorted(arrived):
        out[key] = (t - last.get(d, 0.0), d not in last)
        last[d] = t
    return out


def _time_split(one, many, n_workers: int) -> None:
    """Per network, the device time the sweep over all devices spent (each configuration's time on its
    device, summed) against the one-device sweep's (which builds a network's configurations and then
    times them together, so its rows arrive per network): where the all-devices sweep spends more than
    the one-device sweep, builds and the rest apart. A device's first configuration carries the start
    (cluster, worker, measuring process): listed on its own, and named beside the network it falls in (the
    one-device sweep's own start falls in its first network)."""
    arr1, arrn = one.attrs.get("arrived", []), many.attrs.get("arrived", [])
    if len({d for _, d, _ in arrn}) < n_workers:
        print("\ntime split: not computed (the rows do not name their worker: CPU workers are all 'cpu')")
        return
    t1, prev = {}, 0.0
    for t, _, (model, _, _) in sorted(arr1):
        if model not in t1:
            t1[model] = 0.0
        t1[model] += t - prev
        prev = t
    dn = _durations(arrn)
    print("\ntime split, all devices against one device (device seconds, from the rows' arrival times):")
    for key, (t, first) in sorted(dn.items(), key=lambda kv: kv[1][0]):
        if first:
            print(f"  first row of its device {key}: {t:.2f} s after the call (start included)")
    for frame in (one, many):
        frame["_build_s"] = frame["build_time_ms"].fillna(0.0) / 1e3
    b1 = one.groupby("model")["_build_s"].sum()
    bn = many.groupby("model")["_build_s"].sum()
    for model in t1:
        tn = sum(t for (m, _, _), (t, _) in dn.items() if m == model)
        starts = [t for (m, _, _), (t, first) in dn.items() if m == model and first]
        where = f" ({len(starts)} first row(s) of {sum(starts):.1f} s in it, start included)" if starts else ""
        print(f"  {model:<20} one device {t1[model]:6.1f} s (builds {b1.get(model, 0.0):5.1f} s), all devices "
              f"{tn:6.1f} s (builds {bn.get(model, 0.0):5.1f} s): {tn / t1[model]:.2f}x{where}")
    for frame in (one, many):
        frame.drop(columns="_build_s", inplace=True)


def _agreement(one, many) -> tuple:
    key = ["model", "precision", "batch_size"]
    m = one.merge(many, on=key, suffixes=("_1", "_n"))
    if "tactics_id_1" in m.columns:
        known = (m["tactics_id_1"].fillna("") != "") & (m["tactics_id_n"].fillna("") != "")
        m["engine"] = np.where(~known, "", np.where(m["tactics_id_1"] == m["tactics_id_n"], "same", "other"))
    ok = (m["latency_ci_low_ms_1"] <= m["latency_ci_high_ms_n"]) & (m["latency_ci_low_ms_n"] <= m["latency_ci_high_ms_1"])
    m["agree"] = np.where(m["latency_ci_low_ms_1"].isna() | m["latency_ci_low_ms_n"].isna(), "no interval",
                          np.where(ok, "yes", "NO"))
    m["ratio"] = m["latency_median_ms_n"] / m["latency_median_ms_1"]
    return m, int(ok.sum())


def _told_apart(one, many) -> str:
    """What perfkit's compare() says of the two sweeps: configurations whose ratio's 95% interval excludes 1
    and which are at least 3% apart (its 'differ significantly'), out of those compared."""
    from perfkit.frames.stats import RATIO_NOISE_PCT, ratio_from_intervals, ratio_significant
    m = one.merge(many, on=["model", "precision", "batch_size"], suffixes=("_a", "_b"))
    cols = ("latency_median_ms", "latency_ci_low_ms", "latency_ci_high_ms")
    got = [ratio_from_intervals(*(float(r[f"{c}_{s}"]) for s in "ab" for c in cols)) for _, r in m.iterrows()]
    ratios = [g[0] for g in got]
    apart = int(ratio_significant(*zip(*got)).sum()) if got else 0
    return (f"compare() tells apart {apart} of {len(m)} (interval excludes 1 and at least {RATIO_NOISE_PCT:g}% "
            f"apart); median ratio {float(np.nanmedian(ratios)) if ratios else float('nan'):.3f}")


def _agreement_split(m) -> str:
    """How many rows agree, apart by whether both sides timed one GPU (its UUID) and one engine (tactics_id):
    what tells the GPUs' own difference and the builder's choices from the worker's."""
    parts = []
    if "gpu_uuid_1" in m.columns and m["gpu_uuid_1"].notna().any():
        same = m["gpu_uuid_1"] == m["gpu_uuid_n"]
        for label, rows in (("same GPU", m[same]), ("other GPU", m[~same])):
            if len(rows):
                parts.append(f"{label}: {(rows['agree'] == 'yes').sum()} of {len(rows)} agree "
                             f"(median ratio {rows['ratio'].median():.3f})")
    if "engine" in m.columns:
        for label in ("same", "other"):
            rows = m[m["engine"] == label]
            if len(rows):
                parts.append(f"{label} engine: {(rows['agree'] == 'yes').sum()} of {len(rows)} agree "
                             f"(median ratio {rows['ratio'].median():.3f})")
    return "; ".join(parts)


def _fork_server_libraries(pid) -> str:
    """Whether perfkit's fork server (which every forked worker copies) has a CUDA library loaded: it must
    not, or each worker would inherit a CUDA driver set up before it chose its GPU."""
    if pid is None:
        return "fork server: none started (the workers were spawned)"
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
    except OSError as exc:
        return f"fork server {pid}: its mappings cannot be read ({exc})"
    found = sorted({os.path.basename(line.split()[-1]) for line in maps.splitlines()
                    if any(lib in line for lib in ("libcuda.", "libcudart", "libcublas", "libcudnn", "libnvidia-ml"))})
    return f"fork server {pid}: CUDA libraries loaded: {', '.join(found) if found else 'none'}"


def _flag_control(what: str, module, n: int, nets: list, devices, tmp: str, common: dict) -> dict:
    """n alternating pairs of the all-devices sweep with ``module.ENABLED`` True and False: each run's wall time
    and its last device's first row, by "with" and "without"."""
    got = {"with": [], "without": []}
    before = module.ENABLED
    for k in range(2 * n):
        name = ("with", "without")[(k + k // 2) % 2]          # with, without, without, with, ...
        module.ENABLED = name == "with"
        try:
            frame, wall = _sweep_timed(f"devices={devices!r}, {name} {what}", nets, devices=devices,
                                       out=os.path.join(tmp, f"{module.__name__.rsplit('.', 1)[-1]}{k}"), **common)
        finally:
            module.ENABLED = before
        firsts = {}
        for t, d, _ in frame.attrs["arrived"]:
            firsts[d] = min(t, firsts.get(d, t))
        got[name].append((wall, max(firsts.values()) if firsts else float("nan")))
    return got


def main() -> None:
    import perfkit as pk
    from perfkit.bench import sweep_trace
    from perfkit.bench.distributed import resolve_devices
    from perfkit.bench.local_cluster import start_local_cluster
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sweep_timeline
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="mnist_mlp,lenet,resnet_small,transformer_encoder")
    p.add_argument("--batches", default="1,8,32,128,256")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--min-time", type=float, default=0.5, help="timed seconds per configuration (all rounds)")
    p.add_argument("--skip-client", action="store_true", help="leave out the run on an already running cluster")
    p.add_argument("--skip-drift", action="store_true", help="leave out the second one-device run")
    p.add_argument("--pairs", type=int, default=1, help="one-device and all-devices sweeps in N pairs (order "
                   "alternating): the ratio's median and range over them, since one pair moved by 0.53-0.64x")
    p.add_argument("--cpu", type=int, default=0, help="N CPU workers instead of the GPUs (mechanics check)")
    p.add_argument("--method-control", action="store_true", help="also time the one-device sweep one configuration "
                   "per call, as a worker does (the one-device sweep times a network's configurations in "
                   "interleaved rounds): whether that method, not the worker, explains rows that disagree")
    p.add_argument("--chip-control", action="store_true", help="also run the one-device sweep on the second GPU in "
                   "this process: how far two GPUs of one model differ with no worker involved")
    p.add_argument("--timing-cache", action="store_true", help="the warm-up fills a timing cache that every sweep "
                   "then builds from (sweep(timing_cache=...)), so that every run times the same engines")
    p.add_argument("--handoff-control", type=int, default=0, metavar="N", help="also N alternating pairs of the "
                   "all-devices sweep with and without measuring processes started by the caller before the cluster "
                   "(perfkit.bench.measure_handoff): wall time and each device's first row")
    p.add_argument("--trace", action="store_true", help="record the first all-devices sweep's events in every "
                   "process (perfkit.bench.sweep_trace) and print where its start, steady state and end go")
    p.add_argument("--fork-control", type=int, default=0, metavar="N", help="also N alternating pairs of the "
                   "all-devices sweep with workers forked from perfkit's fork server and spawned by Dask's nanny "
                   "(perfkit.bench.worker_fork; the server, once started, stays for the later 'with' runs, as in "
                   "a notebook)")
    p.add_argument("--skip-warmup", action="store_true", help="leave out the warm-up (CuPy's kernel cache is "
                   "already filled on this machine)")
    a = p.parse_args()
    nets = [pk.models.SAMPLES[m]() for m in a.models.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    precisions = a.precisions.split(",")
    common = {"batch_sizes": batches, "precisions": precisions, "min_time_s": a.min_time}
    if a.cpu:
        devices = ["cpu"] * a.cpu
        per_worker = len(os.sched_getaffinity(0)) // a.cpu
        single = pk.get_device("cpu", threads=per_worker)
        what = f"{a.cpu} CPU workers of {per_worker} core(s) against one process with {per_worker} BLAS thread(s)"
        n_workers = a.cpu
    else:
        from perfkit.device.cuda import cuda_device_count
        gpus = cuda_device_count()
        if gpus < 2:
            raise SystemExit(f"this machine has {gpus} visible GPU(s); the comparison needs 2 or more "
                             "(or pass --cpu N for the mechanics on CPU workers)")
        devices = "all"
        n_workers = gpus
        single = pk.get_device("cuda:0")
        what = f"{gpus} GPUs ({single.name}) against cuda:0 alone"
    print(f"# multi-GPU sweep, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {what}; "
          f"{len(nets)} networks x {len(batches)} batch sizes x {len(precisions)} precisions "
          f"= {len(nets) * len(batches) * len(precisions)} configurations, min_time_s={a.min_time:g}", flush=True)
    tmp = tempfile.mkdtemp(prefix="perfkit_multi_gpu_")
    cache = os.path.join(tmp, "timing.cache") if a.timing_cache else None
    if cache:
        common["timing_cache"] = cache
    try:
        if not a.skip_warmup or cache:
            t0 = time.perf_counter()
            # `import distributed`: where Dask was installed without its bytecode compiled (pip --no-compile, as the
            # device's set-up does), the first process to import it compiles it, which an installed Dask never
            # pays; this process does it here, not the first all-devices sweep
            subprocess.run([sys.executable, "-c", "import distributed, perfkit as pk; "
                            "pk.sweep([pk.models.SAMPLES[m]() for m in "
                            f"{a.models.split(',')!r}], batch_sizes={batches!r}, precisions={precisions!r}, "
                            f"device={single.spec!r}, min_time_s=0.0, min_iterations=1, progress=False, "
                            f"timing_cache={cache!r})"], check=True)
            print(f"{'warm-up, another process (kernel cache' + (', timing cache' if cache else '') + ')':<44} "
                  f"{time.perf_counter() - t0:8.1f} s", flush=True)
        one_a, t_one_a = _sweep_timed("one device (in this process)", nets, device=single, **common)
        trace = os.path.join(tmp, "trace.jsonl") if a.trace else None
        if trace:
            os.environ[sweep_trace.ENV] = trace
        try:
            many, t_many = _sweep_timed(f"devices={devices!r} (cluster start included)", nets, devices=devices,
                                        out=os.path.join(tmp, "all"), **common)
        finally:
            os.environ.pop(sweep_trace.ENV, None)
        if trace:
            print(sweep_timeline.summary(sweep_trace.read(trace)), flush=True)
        warm = t_warm = None
        if not a.skip_client:
            t0 = time.perf_counter()
            cluster, client = start_local_cluster(resolve_devices(devices))
            print(f"{'local cluster start':<44} {time.perf_counter() - t0:8.1f} s", flush=True)
            try:
                warm, t_warm = _sweep_timed("devices=<Client> (cluster already running)", nets, devices=client,
                                            out=os.path.join(tmp, "client"), **common)
            finally:
                client.close()
                cluster.close()
        one_b, t_one_b = (None, t_one_a) if a.skip_drift else \
            _sweep_timed("one device again (drift check)", nets, device=single, **common)
        one_c = None
        if a.method_control:
            t0 = time.perf_counter()
            one_c = pd.concat([pk.sweep([net], batch_sizes=[b], precisions=[pr], device=single, min_time_s=a.min_time,
                                        progress=False, timing_cache=cache)
                               for net in nets for pr in precisions for b in batches], ignore_index=True)
            print(f"{'one device, one configuration per call':<44} {time.perf_counter() - t0:8.1f} s", flush=True)
        from perfkit.bench import measure_handoff, worker_fork
        controls = {}
        for what, module, n in (("the hand-off", measure_handoff, a.handoff_control),
                                ("forked workers", worker_fork, a.fork_control)):
            if n:
                controls[what] = _flag_control(what, module, n, nets, devices, tmp, common)
        if a.fork_control:
            print(_fork_server_libraries(worker_fork._server_pid), flush=True)
        chip = None
        if a.chip_control and not a.cpu:
            chip, _ = _sweep_timed("one device, the second GPU (chip control)", nets, device="cuda:1", **common)
        pairs = [(t_one_a, t_many)]
        for k in range(1, a.pairs):          # more pairs, their order alternating, so that a drift cancels
            runs = [("one", lambda: _sweep_timed(f"pair {k + 1}: one device", nets, device=single, **common)),
                    ("all", lambda: _sweep_timed(f"pair {k + 1}: devices={devices!r}", nets, devices=devices,
                                                 out=os.path.join(tmp, f"pair{k}"), **common))]
            got = dict((name, run()[1]) for name, run in (runs if k % 2 == 0 else runs[::-1]))
            pairs.append((got["one"], got["all"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cols = [c for c in ("device", "host", "gpu_name", "gpu_uuid", "driver_version") if c in many.columns]
    print("\nconfigurations per worker device:")
    print(many.groupby(cols, dropna=False).size().to_string())
    for name, frame in (("end to end", many), ("running cluster", warm)):
        if frame is None:
            continue
        m, n = _agreement(one_a, frame)
        print(f"\nper configuration, one device vs all ({name}): {n} of {len(m)} agree (95% intervals overlap)")
        print(f"    by GPU and engine: {_agreement_split(m)}")
        print(f"    {_told_apart(one_a, frame)}")
        if name == "end to end":
            show = m[["model", "precision", "batch_size", "latency_median_ms_1", "latency_ci_low_ms_1",
                      "latency_ci_high_ms_1", "device_n", "latency_median_ms_n", "latency_ci_low_ms_n",
                      "latency_ci_high_ms_n", "ratio", "agree"]]
            print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if one_b is not None:
        m, n = _agreement(one_a, one_b)
        print(f"\ncontrol, one device vs itself (second run): {n} of {len(m)} agree")
    if one_c is not None:
        for label, x, y in (("one device interleaved vs one at a time", one_a, one_c),
                            ("one device one at a time vs all devices", one_c, many)):
            m, n = _agreement(x, y)
            gpu_bound = m[m["latency_median_ms_1"] > 0.9]["ratio"]
            print(f"\nmethod control, {label}: {n} of {len(m)} agree; median ratio {m['ratio'].median():.3f}, "
                  f"GPU-bound (> 0.9 ms) {gpu_bound.median() if len(gpu_bound) else float('nan'):.3f}")
            print(f"    by GPU and engine: {_agreement_split(m)}")
            print(f"    {_told_apart(x, y)}")
    if chip is not None:
        m, n = _agreement(one_a, chip)
        gpu_bound = m[m["latency_median_ms_1"] > 0.9]["ratio"]
        print(f"\nchip control, cuda:0 vs cuda:1 both in this process: {n} of {len(m)} agree; median ratio "
              f"{m['ratio'].median():.3f}, GPU-bound (> 0.9 ms) {gpu_bound.median() if len(gpu_bound) else float('nan'):.3f}")
        print(f"    by engine: {_agreement_split(m.drop(columns=['gpu_uuid_1', 'gpu_uuid_n'], errors='ignore'))}")
    # last, after the long per-configuration table, so that the tail of the output holds the figures
    t_one = (t_one_a + t_one_b) / 2
    _time_split(one_a, many, n_workers)
    if "build_time_ms" in many.columns:     # where a worker's configuration takes longer: its build, or the rest
        b1, bn = one_a["build_time_ms"].sum() / 1e3, many["build_time_ms"].sum() / 1e3
        print(f"\nbuild time, all configurations: one device {b1:.1f} s, all devices {bn:.1f} s ({bn / b1:.2f}x); "
              f"outside builds: one device {t_one_a - b1:.1f} s, all devices {t_many * n_workers - bn:.1f}"
              " s of device time (wall x devices)")
    basis = "the one-device run" if one_b is None else "mean of both one-device runs"
    print(f"\nratio, all devices / one device ({basis}, {t_one:.1f} s{', warm timing cache' if cache else ''}):")
    print(f"  end to end, cluster start included: {t_many / t_one:.2f}x   (target <= 0.6x on 2 GPUs)")
    if t_warm is not None:
        print(f"  cluster already running:            {t_warm / t_one:.2f}x")
    if one_b is not None:
        print(f"  one-device drift between its runs:  {t_one_b / t_one_a:.2f}x")
    for what, got in controls.items():
        med = {n: np.median(np.array(v), axis=0) for n, v in got.items()}
        print(f"  {what} control ({len(got['with'])} each, medians): with {med['with'][0]:.1f} s wall, last "
              f"device's first row {med['with'][1]:.2f} s; without {med['without'][0]:.1f} s, "
              f"{med['without'][1]:.2f} s")
    if len(pairs) > 1:
        ratios = sorted(m / o for o, m in pairs)
        print("  per pair (one device, all devices, ratio): "
              + "; ".join(f"{o:.1f} s, {m:.1f} s, {m / o:.2f}x" for o, m in pairs)
              + f"\n  median of {len(pairs)} pairs: {float(np.median(ratios)):.2f}x "
              f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}x)")


if __name__ == "__main__":     # the local cluster's workers start by spawning: guard the entry point
    main()
