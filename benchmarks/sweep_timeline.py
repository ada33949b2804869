"""Where a distributed sweep's start, steady state and end go, from its trace (perfkit.bench.sweep_trace).

Usage:  PERFKIT_SWEEP_TRACE=/tmp/trace.jsonl python3 my_sweep.py; python3 benchmarks/sweep_timeline.py /tmp/trace.jsonl
        (benchmarks/multi_gpu_sweep.py --trace does both for its first all-devices sweep)

Prints, for the last sweep in the trace, in seconds after its first step ("sweep called"): the caller's steps (measuring processes, cluster, client, tasks),
each measuring process's start and readiness, each worker's process start, plugin, hand-off and first task;
then per worker the time between configurations that is not the measuring process's (the dispatch of the
next task, the hand-over of the configuration and of its result, the row's write); then the end (last row,
results, the cluster's close, the return).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def summary(trace: pd.DataFrame) -> str:
    if trace.empty or "sweep called" not in set(trace["event"]):
        return "trace: no sweep in it"
    calls = trace.loc[trace["event"] == "sweep called", "t"]
    t0 = float(calls.iloc[-1])              # the file is appended to: the last sweep in it (its workers are new)
    s = trace[trace["t"] >= t0]
    s = s.assign(s=s["t"] - t0)
    lines = [f"the last of {len(calls)} sweeps in the trace" if len(calls) > 1 else "one sweep in the trace",
             "start (s after sweep_distributed's first step, 'sweep called'):"]
    caller = s[s["role"] == "caller"]
    for ev in ("measuring processes started", "Dask imported", "cluster started", "client connected", "networks scattered",
               "tasks submitted"):
        got = caller[caller["event"] == ev]
        if len(got):
            lines.append(f"  caller     {ev:<32} {got['s'].iloc[0]:6.2f}")
    for pid, g in s[s["role"] == "measuring"].groupby("pid"):
        ev = {e: float(g.loc[g["event"] == e, "s"].iloc[0]) for e in g["event"].unique()}   # each kind's first
        parts = [f"{e} {ev[e]:.2f}" for e in ("measuring process running", "prepared", "worker connected",
                                                 "configuration received") if e in ev]
        lines.append(f"  measuring  pid {pid}: " + ", ".join(parts))
    workers = s[s["role"] == "worker"]
    for pid, g in workers.groupby("pid"):
        first = {e: float(g.loc[g["event"] == e, "s"].iloc[0]) for e in g["event"].unique()}
        born = g["process_started"].dropna() if "process_started" in g else pd.Series(dtype=float)
        parts = [f"process {float(born.iloc[0]) - t0:.2f}"] if len(born) else []
        parts += [f"{e} {first[e]:.2f}" for e in ("worker_prepare imported", "worker plugin setup", "measuring process adopted",
                                                   "measuring process not adopted", "worker device ready",
                                                   "task started", "configuration sent", "configuration measured",
                                                   "row written") if e in first]
        lines.append(f"  worker     pid {pid}: " + ", ".join(parts))
    lines.append("steady state, per worker (medians over its configurations, ms; sum in s):")
    meas = s[s["role"] == "measuring"]
    for pid, g in workers.groupby("pid"):
        g = g.reset_index(drop=True)
        starts = g.index[g["event"] == "task started"].tolist()
        gaps, pre, write, measured = [], [], [], []
        prev_end = None
        for i in starts:
            ev = {}
            for j in range(i, len(g)):
                e = g.at[j, "event"]
                if j > i and e == "task started":
                    break
                ev.setdefault(e, float(g.at[j, "s"]))
            if prev_end is not None:
                gaps.append(ev["task started"] - prev_end)
            if "configuration sent" in ev and "configuration measured" in ev:
                pre.append(ev["configuration sent"] - ev["task started"])
                measured.append(ev["configuration measured"] - ev["configuration sent"])
                end = ev.get("row written", ev["configuration measured"])
                write.append(end - ev["configuration measured"])
                prev_end = end
        if not measured:
            continue
        over = np.array(gaps) if gaps else np.array([0.0])
        lines.append(f"  worker pid {pid}: {len(measured)} configurations; between tasks {np.median(over) * 1e3:.1f} ms "
                     f"(sum {over.sum():.2f} s), task start to hand-over {np.median(pre) * 1e3:.1f} ms (sum {sum(pre):.2f} s), "
                     f"writing the row {np.median(write) * 1e3:.1f} ms (sum {sum(write):.2f} s)")
    for pid, g in meas.groupby("pid"):
        rec = g.loc[g["event"] == "configuration received", "s"].to_numpy()
        done = g.loc[g["event"] == "configuration done", "s"].to_numpy()
        n = min(len(rec), len(done))
        if n:
            lines.append(f"  measuring pid {pid}: {n} configurations, {float((done[:n] - rec[:n]).sum()):.2f} s "
                         "received to done")
    lines.append("end:")
    written = workers.loc[workers["event"] == "row written", "s"]
    if len(written):
        lines.append(f"  last row written                 {written.max():6.2f}")
    for ev in ("collection ended", "cluster closed", "sweep returns"):
        got = caller[caller["event"] == ev]
        if len(got):
            lines.append(f"  caller     {ev:<21} {got['s'].iloc[-1]:6.2f}")
    return "\n".join(lines)


def main() -> None:
    from perfkit.bench.sweep_trace import read
    print(summary(read(sys.argv[1])))


if __name__ == "__main__":
    main()
