"""``perfkit build MODEL -o ENGINE``: build an engine with ``perfkit.Builder`` and save it; print what the builder
did from its build log (fusions, precisions, tactics, memory plan)."""
from __future__ import annotations

import os
from typing import Any

from . import _args as A
from ._files import Outputs
from ..frames.units import human_bytes
from ._report import engine_lines, ms, section, short, table, wrap

EXAMPLES = """examples:
  perfkit build mnist_mlp -o mnist.engine --batch 32
  perfkit build model.onnx -o model.engine --batch 8 --precision fp16 --timing-cache model.cache
  perfkit build lenet -o lenet_nofuse.engine --fusions none --verbose     the whole build log

The engine runs any batch up to --batch. fp16/bf16 are allowed, not imposed: the builder times each layer in
both precisions and keeps the faster (--strict-types forces it). Then: perfkit inspect ENGINE, perfkit run ENGINE."""


def add_parser(sub: Any) -> None:
    from ..precision import PRECISIONS
    p = sub.add_parser("build", help="build an engine from a model and save it, with the build log",
                       description="Build an engine and save it (a safetensors file; nothing in it is executed when "
                                   "loaded). Prints what the builder did.", epilog=EXAMPLES,
                       formatter_class=A.Formatter)
    p.add_argument("model", metavar="MODEL", help="a sample network name or an .onnx file")
    p.add_argument("--shapes", type=A.shapes, default=None, metavar="S", help="per-sample dims of an ONNX model's inputs that are symbolic beyond the batch, NAME:D1xD2[,...] (trtexec's --shapes without the batch, which --batch gives)")
    p.add_argument("-o", "--output", type=A.output_path, required=True, metavar="ENGINE", help="engine file to write")
    p.add_argument("--device", metavar="D",
                   type=A.device, default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--cpu-threads", type=A.count, default=None, metavar="N", help="BLAS threads of the CPU device "
                   "(default: the *_NUM_THREADS environment, else the cores other processes leave free)")
    p.add_argument("--batch", type=A.count, default=1, help="max batch size: the engine runs any batch up to it")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="precision allowed for the layers")
    p.add_argument("--strict-types", action="store_true", help="force --precision on every layer (no timing)")
    p.add_argument("--tf32", action="store_true", help="let fp32 layers' matrix products use TF32 Tensor Cores "
                                                        "(CUDA; off by default, as in PyTorch; trtexec has it on "
                                                        "unless --noTF32)")
    p.add_argument("--fusions", default="all", metavar="all|none|R[,R...]",
                   help="fusion rules to apply: all, none, or rule names (see perfkit.builder.passes.RULE_NAMES)")
    p.add_argument("--tactics", choices=("time", "default"), default="time",
                   help="time every candidate implementation and keep the fastest, or take the default")
    p.add_argument("--timing-cache", type=A.output_path, metavar="F", help="timing cache file: read if present, "
                   "written after the build")
    p.add_argument("--verbose", action="store_true", help="print the whole build log")
    p.set_defaults(func=command)


def command(args: Any) -> None:
    from ..builder import Builder, BuilderConfig
    from . import _model
    _model.not_an_input(args.output, "-o", [args.model])
    if args.timing_cache:
        _model.not_an_input(args.timing_cache, "--timing-cache", [args.model, args.output])
    net = _model.network(args.model, args.shapes)
    fusions = args.fusions if args.fusions in ("all", "none") else [f.strip() for f in args.fusions.split(",")
                                                                      if f.strip()]
    config = BuilderConfig(max_batch_size=args.batch, precision=args.precision, strict_types=args.strict_types, tf32=args.tf32,
                           fusions=fusions, tactics=args.tactics, timing_cache=_model.timing_cache(args.timing_cache))
    dev = _model.device(args.device, args.cpu_threads)
    print(f"perfkit build: {net.name} ({len(net.layers)} layers) on {dev.spec} ({dev.name})")
    engine = Builder(dev).build(net, config)
    for line in build_report(engine, len(net.layers), args.verbose):
        print(line)
    with Outputs() as outs:
        engine.save(outs.file(args.output))
        outs.commit()
    print(section("Saved"))
    print(f"  {args.output}: {human_bytes(os.path.getsize(args.output))}, engine id {engine.id}; run it with "
          f"`perfkit run {args.output}`, look inside with `perfkit inspect {args.output}`")


def phase_times(log: Any) -> Any:
    """Per builder phase of a ``build_log`` frame, in build order: its rows (``size``) and the wall time the
    builder spent in it (``sum``, ms). A tactic's chosen / rejected row holds the time that tactic measured,
    not time spent, so it is left out: the tactic phase's time is on its summary row, and tactics timed while
    choosing the precision are on the precision rows (counted once). Engines built before 2026-11-29 22:00
    UTC also put the reused tactics' time on the summary row, so their tactic phase counts it a second time."""
    spent = log[~((log["phase"] == "tactic") & log["outcome"].isin(["chosen", "rejected"]))]
    return spent.groupby("phase", sort=False)["time_ms"].agg(["size", "sum"])


def build_report(engine: Any, network_layers: int | None, verbose: bool, summary: bool = True) -> list:
    """The build log read aloud: (with ``summary``, the engine in one paragraph,) phases and their time, each fusion,
    the precision decisions, the tactics chosen, the memory plan; ``verbose`` adds every row of the log."""
    log = engine.build_log
    lines = [section("Build")] + engine_lines(engine, network_layers) if summary else []
    phases = phase_times(log)
    lines += wrap("; ".join(f"{ph} {ms(r['sum'])}" for ph, r in phases.iterrows()), "  ", "Time by phase: ")
    fusion = log[log["phase"] == "fusion"]
    if len(fusion):
        lines.append(section("Fusions"))
        lines += table([{"outcome": r.outcome, "rule": r.rule, "layers": r.matched, "became": r.produced or "-",
                         "why": short(r.detail, 70)} for r in fusion.itertuples()],
                       ["outcome", "rule", "layers", "became", "why"])
    lines.append(section("Precision"))
    for r in log[log["phase"].isin(["precision", "reformat"])].itertuples():
        lines += wrap(r.detail, "    ", f"  {r.matched or r.rule}: ", prose=True)
    tactic = log[(log["phase"] == "tactic") & log["outcome"].isin(["chosen", "cached"])]
    if len(tactic):
        lines.append(section("Tactics"))
        rejected = log[(log["phase"] == "tactic") & (log["outcome"] == "rejected")].groupby("matched").size()
        lines += table([{"layer": r.matched, "tactic": r.rule, "outcome": r.outcome,
                         "rejected": int(rejected.get(r.matched, 0)), "why": short(r.detail, 70)}
                        for r in tactic.itertuples()], ["layer", "tactic", "outcome", "rejected", "why"],
                       right=("rejected",))
    lines.append(section("Memory plan"))
    for r in log[log["phase"].isin(["memory_plan", "weights"])].itertuples():
        lines += wrap(r.detail, "    ", f"  {r.rule}: ", prose=True)
    if verbose:
        lines += log_lines(log)
    return lines


def log_lines(log: Any) -> list:
    """Every row of a build log as a table."""
    return [section("Build log")] + table([{"step": r.step, "phase": r.phase, "rule": r.rule, "matched": r.matched,
                         "produced": r.produced, "time": ms(r.time_ms), "outcome": r.outcome, "detail": r.detail}
                        for r in log.itertuples()],
                       ["step", "phase", "rule", "matched", "produced", "time", "outcome", "detail"],
                       right=("step", "time"))
