"""``perfkit run MODEL``: trtexec for perfkit. Builds (or loads) an engine per precision and batch size, measures
it with ``perfkit.bench.measure`` (``bench.throughput`` with worker threads), profiles it layer by layer with
``perfkit.profile``, prints a trtexec-shaped report and writes what was asked for."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from . import _args as A
from ._files import Outputs
from ._progress import Progress
from ._report import engine_lines, figures, findings, layer_profile, performance, section, wrap
from ._run_outputs import results_row, stage_config_outputs, stage_out_folder, summary_table

EXAMPLES = """examples:
  perfkit run mnist_mlp                                 a sample network, fp32, batch 1, 3 s on the default device
  perfkit run model.onnx --batch 1,8,32 --precision fp32,fp16 --duration-s 1
  perfkit run resnet_small --device cuda --batch 8 --streams 4 --threads 2 --no-transfers
  perfkit run mnist.engine --batch 4 --dump-profile     an engine saved by `perfkit build` or --save-engine
  perfkit run lenet --export-times times.json --export-profile profile.json --export-trace trace.json --out runs/lenet
  perfkit run lenet --save-engine lenet.engine --timing-cache lenet.cache

Several precisions or batch sizes give several configurations: each gets its own engine (built for exactly
that batch, as the guide advises) and files named <name>.<precision>.b<batch>.<ext>. Latency is timed on the
device (H2D + compute + D2H, as trtexec); every figure comes with its interval, its spread and, when the
machine disturbed it, a sentence saying so."""


def add_parser(sub: Any) -> None:
    from ..precision import PRECISIONS
    p = sub.add_parser("run", help="build or load an engine, measure latency and throughput like trtexec",
                       description="Measure a model like trtexec: throughput, latency statistics, enqueue/H2D/"
                                   "compute/D2H, the per-layer profile and diagnoses.",
                       epilog=EXAMPLES, formatter_class=A.Formatter)
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a sample network name, an .onnx file or a saved engine file")
    g = p.add_argument_group("model and build")
    g.add_argument("--load-engine", type=A.input_file, metavar="F", help="run the engine saved in F (instead of MODEL)")
    g.add_argument("--shapes", type=A.shapes, default=None, metavar="S", help="per-sample dims of an ONNX model's inputs that are symbolic beyond the batch, NAME:D1xD2[,...] (trtexec's --shapes without the batch, which --batch gives)")
    g.add_argument("--device", metavar="D",
                   type=A.device, default=None, help="cpu, cuda, cuda:N or auto (default: auto; an "
                   "engine file: the kind it was built for)")
    g.add_argument("--cpu-threads", type=A.count, default=None, metavar="N", help="BLAS threads of the CPU device "
                   "(default: the *_NUM_THREADS environment, else the cores other processes leave free)")
    g.add_argument("--batch", type=A.comma_list(int, what="batch size"), default=None, metavar="B[,B...]",
                   help="batch sizes, comma-separated (default: 1, or the batch an ONNX file fixes; an engine "
                   "file: its max batch size)")
    g.add_argument("--precision", type=A.comma_list(str, PRECISIONS, "precision"), default=None, metavar="P[,P...]",
                   help=f"precisions allowed when building, from {', '.join(PRECISIONS)} (default: fp32)")
    g.add_argument("--inputs", type=A.input_file, metavar="F.npz", help="time with these inputs (a NumPy .npz, one "
                   "array per input named after it, at least the largest batch of samples; trtexec --loadInputs) "
                   "instead of random ones")
    g.add_argument("--timing-cache", type=A.output_path, metavar="F", help="timing cache file: read if present, "
                   "written after the build (a rebuild skips the tactic timing it holds)")
    g.add_argument("--save-engine", type=A.output_path, metavar="F", help="save the engine built to F")
    t = p.add_argument_group("timing")
    t.add_argument("--warmup-ms", metavar="MS", type=A.milliseconds, default=200.0, help="warm-up before timing, in ms")
    t.add_argument("--iterations", metavar="N", type=A.count, default=10, help="at least this many timed inferences")
    t.add_argument("--duration-s", metavar="S", type=A.seconds, default=3.0, help="and for at least this many seconds")
    t.add_argument("--percentiles", type=A.comma_list(float, what="percentile"), default=[90.0, 95.0, 99.0],
                   metavar="P[,P...]", help="latency percentiles to report (default: 90,95,99)")
    t.add_argument("--streams", metavar="N",
                   type=A.count, default=1, help="inferences in flight: one execution context and "
                   "one stream each (guide 2.2)")
    t.add_argument("--threads", metavar="M",
                   type=A.count, default=None, help="worker threads feeding the streams (each owns "
                   "its streams and waits only on them; perfkit.bench.throughput); default: one host thread")
    t.add_argument("--graph", action=argparse.BooleanOptionalAction, default=True,
                   help="replay each context as a CUDA graph once warm (default: on; no effect on the CPU)")
    t.add_argument("--no-transfers", action="store_true", help="leave out the H2D and D2H copies (data already "
                   "on the device)")
    r = p.add_argument_group("profile and outputs")
    r.add_argument("--dump-profile", action="store_true", help="print every layer of the per-layer profile "
                   "(without it: the 5 slowest)")
    r.add_argument("--no-profile", action="store_true", help="skip the per-layer profiling pass")
    r.add_argument("--profile-iterations", metavar="N",
                   type=A.count, default=10, help="inferences of the profiling pass")
    r.add_argument("--export-profile", type=A.output_path, metavar="F", help="per-layer times as trtexec "
                   "--exportProfile JSON")
    r.add_argument("--export-times", type=A.output_path, metavar="F", help="per-inference times as trtexec "
                   "--exportTimes JSON")
    r.add_argument("--export-trace", type=A.output_path, metavar="F", help="Chrome trace-event JSON (open in "
                   "Perfetto): the timed inferences, a lane per stream, then the profiled ones layer by layer")
    r.add_argument("--export-layer-info", type=A.output_path, metavar="F", help="the engine's layers (precision, "
                   "tactic, fused members), bindings and memory plan as JSON (trtexec --exportLayerInfo)")
    r.add_argument("--export-output", type=A.output_path, metavar="F.npz", help="the outputs of one inference on "
                   "the timed inputs, one array per output (trtexec --exportOutput; compare them with another runtime)")
    r.add_argument("--out", type=A.output_dir, metavar="DIR", help="write the frames (parquet) into the new "
                   "folder DIR: results, queries, summary, diagnoses, engine layers, build log, profile")
    r.add_argument("--verbose", action="store_true", help="also print what the builder did and every figure of "
                   "the measurement with its meaning")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=command)


@dataclass
class Config:
    precision: str
    batch: int
    engine: Any = None
    network_layers: int | None = None
    result: Any = None
    run: Any = None
    diagnoses: Any = None
    row: Any = None            # its results row and engine frames, kept when the engine is let go
    frames: Any = None


def command(args: Any) -> None:
    plan = _checked(args)
    several = len(plan["configs"]) > 1
    print(f"perfkit run: {plan['label']} on {plan['device'].spec} ({plan['device'].name})")
    _print_settings(args, plan)
    with Progress(len(plan["configs"]), "perfkit run", args.progress) as bar, Outputs() as outs:
        for cfg in plan["configs"]:
            _one(args, plan, cfg, bar)
            stage_config_outputs(outs, args, cfg, several, plan["inputs"])
            _release(cfg, args, plan)
            bar.step()
        rows = [cfg.row for cfg in plan["configs"]]
        if several:
            print(section("Summary"))
            for line in summary_table(rows):
                print(line)
        if args.out:
            stage_out_folder(outs, args, plan, rows)
        written = outs.commit()
    if written:
        print(section("Files"))
        for w in written:
            print(f"  {w}")
    if args.out and not args.no_profile:
        first = plan["configs"][0]
        print(f"Explore a profile in a notebook: perfkit.widgets.ProfileExplorer(perfkit.load_run("
              f"{os.path.join(args.out, f'{first.precision}_b{first.batch}', 'profile')!r}))")


def _release(cfg: Config, args: Any, plan: dict) -> None:
    """Keeps what the summary and --out need of a configuration and lets go of the engine built for it (and of the
    profiled context that refers to it), so that device memory holds one configuration's engine at a time."""
    cfg.row = results_row(plan, cfg, args)
    cfg.frames = {"engine_layers": cfg.engine.layers, "build_log": cfg.engine.build_log}
    if cfg.network_layers is not None:          # built here (a loaded engine serves every configuration)
        if cfg.run is not None:
            from ..profiling import RunData
            cfg.run = RunData(dict(cfg.run.frames), dict(cfg.run.meta), list(cfg.run.messages))
        cfg.engine = None


def _checked(args: Any) -> dict:
    """Every argument checked, the model resolved and the device opened, before anything is built or timed."""
    from ..errors import ArgumentError
    from . import _model
    if args.model and args.load_engine:
        raise ArgumentError("give MODEL or --load-engine, not both")
    if not args.model and not args.load_engine:
        raise ArgumentError("give a MODEL (a sample network, an .onnx file or an engine file) or --load-engine F")
    if args.no_profile:
        for flag in ("dump_profile", "export_profile"):
            if getattr(args, flag):
                raise ArgumentError(f"--{flag.replace('_', '-')} needs the per-layer profile; leave out --no-profile")
    if args.threads is not None and args.threads > args.streams:
        raise ArgumentError(f"--threads {args.threads} is more than --streams {args.streams}: each worker thread owns "
                            "at least one stream; raise --streams or lower --threads")
    if args.threads is not None:
        from .. import bench
        if not hasattr(bench, "throughput"):
            raise ArgumentError("--threads needs perfkit.bench.throughput, which this perfkit lacks; leave out "
                                "--threads")
    named = [(f, getattr(args, f)) for f in ("export_profile", "export_times", "export_trace", "export_layer_info",
                                             "export_output", "save_engine", "out", "timing_cache") if getattr(args, f)]
    for i, (f, target) in enumerate(named):
        for g, other in named[:i]:
            if os.path.abspath(target) == os.path.abspath(other):
                raise ArgumentError(f"--{g.replace('_', '-')} and --{f.replace('_', '-')} both name {target!r}; give "
                                    "each output its own file")
        _model.not_an_input(target, f"--{f.replace('_', '-')}", [args.model, args.load_engine, args.inputs])
    engine_file = args.load_engine or (args.model if _model.is_engine_file(args.model) else None)
    if engine_file:
        for flag in ("precision", "timing_cache", "save_engine", "shapes"):
            if getattr(args, flag):
                raise ArgumentError(f"--{flag.replace('_', '-')} applies when building, and {engine_file!r} is an "
                                    "engine file that is run as built; leave it out or give the ONNX model or "
                                    "sample name instead")
        engine = _model.engine(engine_file, args.device, args.cpu_threads)
        batches = args.batch or [engine.max_batch_size]
        too_big = [b for b in batches if b > engine.max_batch_size]
        if too_big:
            raise ArgumentError(f"--batch {too_big[0]} is more than the max batch size {engine.max_batch_size} that "
                                f"{engine_file!r} was built for; give a batch up to {engine.max_batch_size} or "
                                "rebuild with `perfkit build ... --batch N`")
        configs = [Config(engine.precision, b, engine) for b in batches]
        specs = [(n, engine.get_binding_shape(n), engine.get_binding_dtype(n)) for n in engine.input_names]
        return {"configs": configs, "device": engine.device, "label": f"{engine.name} (engine file {engine_file})",
                "model": engine.name, "network": None, "inputs": _inputs(args, specs, batches)}
    net = _model.network(args.model, args.shapes)
    dev = _model.device(args.device, args.cpu_threads)
    configs = [Config(p, b, network_layers=len(net.layers)) for p in (args.precision or ["fp32"])
               for b in (args.batch or [_model.default_batch(net)])]
    kind = "ONNX model" if args.model.lower().endswith(".onnx") else "sample network"
    specs = [(t.name, t.shape, t.dtype) for t in net.inputs]
    return {"configs": configs, "device": dev, "label": f"{net.name} ({kind})", "model": net.name, "network": net,
            "inputs": _inputs(args, specs, [c.batch for c in configs]), "cache": _model.timing_cache(args.timing_cache)}


def _inputs(args: Any, specs: list, batches: list) -> Any:
    from . import _model
    return _model.inputs_file(args.inputs, specs, max(batches)) if args.inputs else None


def _print_settings(args: Any, plan: dict) -> None:
    dev = plan["device"]
    print(section("Device"))
    for line in wrap("; ".join(f"{k} {v}" for k, v in dev.info().items()), "  ", "  "):
        print(line)
    graphs = "n/a on the CPU" if dev.kind == "cpu" else ("on" if args.graph else "off")
    threads = f"{args.threads} worker thread(s)" if args.threads else "one host thread"
    print(section("Options"))
    print(f"Precisions: {', '.join(dict.fromkeys(c.precision for c in plan['configs']))}; batch sizes: "
          f"{', '.join(str(b) for b in dict.fromkeys(c.batch for c in plan['configs']))}; streams: {args.streams} "
          f"({threads}); CUDA graphs: {graphs}")
    print(f"Warm-up {args.warmup_ms:g} ms, then at least {args.iterations} inferences and {args.duration_s:g} s; "
          f"transfers: {'none (inputs stay on the device)' if args.no_transfers else 'H2D and D2H from pinned memory'}"
          f"; percentiles: {', '.join(f'{p:g}' for p in args.percentiles)}")


def _one(args: Any, plan: dict, cfg: Config, bar: Any) -> None:
    from ..builder import Builder, BuilderConfig
    title = f"{plan['model']} {cfg.precision} batch {cfg.batch}"
    if cfg.engine is None:
        bar.phase(f"{cfg.precision} batch {cfg.batch}: building")
        config = BuilderConfig(max_batch_size=cfg.batch, precision=cfg.precision, timing_cache=plan["cache"])
        cfg.engine = Builder(plan["device"]).build(plan["network"], config)
    print(section(f"{title}: engine"))
    for line in engine_lines(cfg.engine, cfg.network_layers):
        print(line)
    if args.verbose and cfg.network_layers is not None:
        from .build import build_report
        for line in build_report(cfg.engine, cfg.network_layers, False, summary=False):
            print(line)
    ctx = cfg.engine.create_execution_context(cuda_graph=args.graph)
    try:
        bar.phase(f"{cfg.precision} batch {cfg.batch}: measuring for {args.duration_s:g} s")
        cfg.result = _measure(args, ctx, cfg, plan["inputs"])
        kind = plan["device"].kind
        print(section(f"{title}: performance summary"))
        for line in performance(cfg.result, args.percentiles, kind):
            print(line)
        cfg.diagnoses = cfg.result.diagnoses
        for line in findings(cfg.diagnoses, plan.setdefault("explained", set())):
            print(line)
        if args.verbose:
            print(section(f"{title}: every figure of the measurement"))
            for line in figures(cfg.result.summary):
                print(line)
        if not args.no_profile:
            bar.phase(f"{cfg.precision} batch {cfg.batch}: profiling")
            cfg.run = _profile(ctx, cfg, args.profile_iterations, plan["inputs"])
            print(section(f"{title}: per-layer profile ({args.profile_iterations} inferences, separate from the "
                          "timing above)"))
            for line in layer_profile(cfg.run, None if args.dump_profile else 5):
                print(line)
    finally:
        ctx.close()


def _measure(args: Any, ctx: Any, cfg: Config, inputs: Any) -> Any:
    from .. import bench
    given = {"inputs": inputs} if inputs is not None else {}
    if args.threads is not None:
        return bench.throughput(cfg.engine, cfg.batch, streams=args.streams, threads=args.threads,
                                duration_s=args.duration_s, warmup_ms=args.warmup_ms,
                                include_transfers=not args.no_transfers, percentiles=tuple(args.percentiles),
                                cuda_graph=args.graph, **given)
    return bench.measure(ctx, cfg.batch, warmup_ms=args.warmup_ms, iterations=args.iterations,
                         duration_s=args.duration_s, percentiles=tuple(args.percentiles),
                         include_transfers=not args.no_transfers, streams=args.streams, **given)


def _profile(ctx: Any, cfg: Config, iterations: int, inputs: Any) -> Any:
    """A separate profiling pass (trtexec's --separateProfileRun): layer times, memory events, GPU samples, and the
    same inferences unprofiled as the baseline that says what profiling cost."""
    from ..models import sample_input
    from ..profiling import profile
    dev = ctx.device
    x = {k: v[:cfg.batch] for k, v in inputs.items()} if inputs is not None else sample_input(cfg.engine, cfg.batch)
    if dev.kind != "cpu":
        x = {k: dev.to_device(v) for k, v in x.items()}
    ctx.execute(x)
    ctx.execute(x)             # warm: on CUDA the second call captures the graph that later calls replay
    with profile(ctx) as run:
        for _ in range(iterations):
            ctx.execute(x)
    return run

