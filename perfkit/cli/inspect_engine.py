"""``perfkit inspect ENGINE``: what an engine file holds — inputs and outputs, every layer with its precision,
tactic and the network layers fused into it, the memory plan (the activation arena, tensor by tensor), the build
settings and fusions. Reads and verifies the file only: no device is needed and no weight is uploaded."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import _args as A
from ._report import memory_line, section, table, wrap
from ..frames.units import human_bytes

EXAMPLES = """examples:
  perfkit inspect mnist.engine
  perfkit inspect model.onnx                        which nodes import, into which layers, and why not
  perfkit inspect model.engine --build-log          also the builder's log, row by row
  perfkit inspect model.engine --json               the same as JSON (pipe it to jq)"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show an engine file's layers, precisions, tactics, memory plan and fusions",
                       description="Show what an engine file holds. The file is verified (checksum, plan) but not "
                                   "loaded onto a device.", epilog=EXAMPLES, formatter_class=A.Formatter)
    p.add_argument("engine", type=A.input_file, metavar="ENGINE", help="an engine file (perfkit build / "
                   "--save-engine), or an .onnx file: which nodes perfkit imports, into which layers")
    p.add_argument("--build-log", action="store_true", help="also print the build log, row by row")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=command)


class PlanView:
    """An engine's description read from its plan alone: the Engine's own ``layers``, ``build_log`` and ``memory``
    properties, without a device or weights."""

    def __init__(self, plan: Any):
        self.plan = plan

    from ..runtime.engine import Engine as _E
    name, id, max_batch_size, precision = _E.name, _E.id, _E.max_batch_size, _E.precision
    layers, build_log, memory, device_memory_bytes = _E.layers, _E.build_log, _E.memory, _E.device_memory_bytes
    build_time_ms = _E.build_time_ms
    del _E


def memory_plan(plan: Any) -> list:
    """One row per activation tensor of the arena: its offset and bytes at the max batch size and the layers
    (execution indices) from the one that writes it to the last that reads it."""
    from ..builder.memory_plan import lifetimes_of
    from ..precision import as_dtype
    arena = {n for n, t in plan.tensors.items() if t.kind == "activation"}
    life = lifetimes_of(plan.steps, arena)
    rows = []
    for name in sorted(arena, key=lambda n: (plan.tensors[n].offset, n)):
        t = plan.tensors[name]
        nbytes = plan.max_batch_size * int(np.prod(t.shape, dtype=np.int64)) * as_dtype(t.dtype).itemsize
        first, last = life.get(name, (-1, -1))
        rows.append({"tensor": name, "offset": int(t.offset), "bytes": int(nbytes), "dtype": t.dtype,
                     "shape": str(tuple(t.shape)), "written_by": plan.steps[first].name if first >= 0 else "",
                     "live_layers": f"{first}-{last}" if first >= 0 else ""})
    return rows


def command(args: Any) -> None:
    from ..runtime.serialize import read_engine_file
    if args.engine.lower().endswith(".onnx"):
        if args.build_log:
            from ..errors import ArgumentError
            raise ArgumentError("--build-log shows an engine's build log, and an ONNX file has none yet: build it "
                                "first (perfkit build model.onnx -o model.engine) and inspect the engine")
        return _onnx(args)
    plan, weights, checksum = read_engine_file(args.engine)
    view = PlanView(plan)
    if args.json:
        doc = {"file": args.engine, "bytes": os.path.getsize(args.engine), "sha256": checksum,
               **describe(view, args.build_log)}
        print(json.dumps(doc, indent=1, default=str))
        return
    for line in report(args.engine, plan, view, checksum, args.build_log):
        print(line)


def describe(engine: Any, build_log: bool = False) -> dict:
    """An engine (or a PlanView of its file) as JSON-able data: header, bindings, memory, build settings, every layer
    (precision, tactic, fused members), the memory plan (and the build log): ``inspect --json`` and ``perfkit run
    --export-layer-info`` (trtexec --exportLayerInfo)."""
    plan = engine.plan
    doc = {"name": plan.name, "device_kind": plan.device_kind, "device_name": plan.device_name,
           "precision": plan.precision, "max_batch_size": plan.max_batch_size, "perfkit_version": plan.perfkit_version,
           "format_version": plan.format_version, "build_time_ms": plan.build_time_ms,
           "inputs": _bindings(plan, plan.inputs), "outputs": _bindings(plan, plan.outputs),
           "memory": engine.memory, "device_memory_bytes": engine.device_memory_bytes,
           "build_config": plan.build_config, "layers": engine.layers.to_dict("records"),
           "memory_plan": memory_plan(plan)}
    if build_log:
        doc["build_log"] = engine.build_log.to_dict("records")
    return doc


def _bindings(plan: Any, names: list) -> list:
    return [{"name": n, "shape": list(plan.tensors[n].shape), "dtype": plan.tensors[n].dtype} for n in names]


def report(path: str, plan: Any, view: Any, checksum: str, build_log: bool) -> list:
    layers = view.layers
    lines = [f"perfkit inspect: {path} ({human_bytes(os.path.getsize(path))}, sha256 {checksum[:12]}…, verified)",
             section("Engine")]
    lines += wrap(f"{plan.name}: built for {plan.device_kind} ({plan.device_name}) by perfkit {plan.perfkit_version} "
                  f"(format {plan.format_version}) in {plan.build_time_ms:.1f} ms; {plan.precision} allowed, max batch "
                  f"{plan.max_batch_size}; {len(layers)} layer{'s' if len(layers) != 1 else ''}; {memory_line(view)}", "  ", "  ")
    cfg = plan.build_config
    from ..builder.passes import RULE_NAMES
    shown_cfg = {**cfg, "fusions": "all" if sorted(cfg.get("fusions", [])) == sorted(RULE_NAMES) else
                 ",".join(cfg.get("fusions", [])) or "none"}
    lines += wrap(", ".join(f"{k}={v}" for k, v in shown_cfg.items() if k != "layer_precisions" or v), "  ",
                  "  build settings: ")
    lines.append(section("Bindings (per sample; the batch dimension is implicit)"))
    lines += table([{"binding": b["name"], "kind": kind, "shape": str(tuple(b["shape"])), "dtype": b["dtype"]}
                    for kind, names in (("input", plan.inputs), ("output", plan.outputs))
                    for b in _bindings(plan, names)], ["binding", "kind", "shape", "dtype"])
    lines.append(section("Layers (execution order)"))
    nhwc = bool((layers["layout"] != "").any())            # a layout column only where a layer runs channels-last
    lines += table([{"#": r.index, "layer": r.layer, "type": r.type, "precision": r.precision,
                     "tactic": r.tactic or "-", "layout": r.layout or "-", "output": r.output_shapes,
                     "MFLOP/sample": f"{r.flops / 1e6:.3f}",
                     "weights": human_bytes(r.weights_bytes), "workspace": human_bytes(r.workspace_bytes),
                     "fused network layers": r.origin if r.origin != r.layer else ""}
                    for r in layers.itertuples()],
                   ["#", "layer", "type", "precision", "tactic"] + (["layout"] if nhwc else [])
                   + ["output", "MFLOP/sample", "weights", "workspace", "fused network layers"],
                   right=("#", "MFLOP/sample", "weights", "workspace"))
    counts = layers[layers["type"] != "identity"]["precision"].value_counts()
    lines.append("  precisions: " + ", ".join(f"{int(n)} layer(s) in {p}" for p, n in counts.items()))
    lines.append(section(f"Memory plan (activation arena at batch {plan.max_batch_size}; tensors whose lifetimes do "
                         "not overlap share bytes)"))
    rows = memory_plan(plan)
    if rows:
        lines += table([{**r, "offset": human_bytes(r["offset"]), "bytes": human_bytes(r["bytes"])} for r in rows],
                       ["tensor", "offset", "bytes", "dtype", "shape", "written_by", "live_layers"],
                       right=("offset", "bytes"))
        total = sum(r["bytes"] for r in rows)
        lines.append(f"  arena {human_bytes(view.memory['activations'])} (aligned) holds {len(rows)} tensor(s) of "
                     f"{human_bytes(total)} in all")
    else:
        lines.append("  no activation tensors (every layer writes an output binding)")
    log = view.build_log
    fusion = log[log["phase"] == "fusion"]
    if len(fusion):
        lines.append(section("Fusions"))
        for r in fusion.itertuples():
            lines += wrap(f"{r.matched} -> {r.produced or '-'} ({r.detail})", "      ", f"  {r.outcome:<9} {r.rule}: ",
                          prose=True)
    if build_log:
        from .build import log_lines
        lines += log_lines(log)
    return lines


def _onnx(args: Any) -> None:
    """``perfkit inspect model.onnx``: which nodes perfkit imports, into what, and why not (perfkit.onnx.check);
    then the imported network's layers when every node is supported."""
    from ..onnx import check, network_from
    nodes = check(args.engine)
    if args.json:
        print(json.dumps({"file": args.engine, "nodes": nodes.to_dict("records")}, indent=1, default=str))
        return
    bad = nodes[~nodes["supported"]]
    print(f"perfkit inspect: {args.engine} (ONNX, {human_bytes(os.path.getsize(args.engine))}): {len(nodes)} nodes, "
          f"{len(nodes) - len(bad)} supported" + (f", {len(bad)} not" if len(bad) else ""))
    print(section("Nodes (graph order)"))
    for line in table([{"node": r.node, "op": r.op_type, "domain": r.domain, "opset": r.opset,
                        "supported": "yes" if r.supported else "NO", "became": r.became or ""}
                       for r in nodes.itertuples()], ["node", "op", "domain", "opset", "supported", "became"],
                      right=("opset",)):
        print(line)
    if len(bad):
        print(section("Not supported"))
        for r in bad.itertuples():
            for line in wrap(r.reason, "    ", f"  {r.node} ({r.op_type}): ", prose=True):
                print(line)
        return
    net = network_from(args.engine)
    info = net.import_info
    print(section("Imported network (per sample; the batch dimension is implicit)"))
    batch = {"symbolic": "symbolic batch (choose it with --batch)", "none": "no batch dimension",
             "fixed": f"fixed batch {info.max_batch_size}"}.get(info.batch, info.batch)
    print(f"  {net.name}: opset {info.opset}, producer {info.producer or 'unknown'}, {batch}; {len(net.layers)} layers"
          + (f"; removed {len(info.removed)} node(s)" if info.removed else ""))
    summary = net.summary()
    for line in table(summary.astype(str).to_dict("records"), list(summary.columns)):
        print(line)
