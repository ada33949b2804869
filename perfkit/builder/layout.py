"""The builder's layout pass: channels-last (NHWC) tensors around the layers whose tactic wants them, and the
reformat layers between layouts (guide chapter 3, as TensorRT inserts reformatting layers between formats).

After tactic selection a layer may run a tactic that reads and writes channels-last memory (``Op.tactic_layouts``:
cuDNN's convolution). Every output of such a layer is stored NHWC; each of its data inputs must be NHWC too. Where
a tensor's layout is not the one its consumer needs, one reformat layer (an ``identity`` step, a strided copy)
converts it, once per tensor and layout, placed just before the first layer that needs it; network outputs are
always in the default layout. Chains of cuDNN convolutions (a ResNet's blocks, residual sums included) so run in
NHWC end to end (a pooling layer between them too, with its ``kernel_nhwc`` tactic), with reformat layers only
where a fully connected layer, another layer without a channels-last tactic or the network's own input and output
meet them. Nothing changes when no layer chose such a tactic (every CPU engine).
"""
from __future__ import annotations

from typing import Any

from ..ops import get_op
from ..ops.base import NHWC, nhwc_empty
from ..precision import PRECISION_OF
from . import tactics
from .graph import Graph, Node

#: passes of single-layer switches at most (each pass tries every layer once)
MAX_PASSES = 8


def wanted_layout(n: Node) -> str:
    """The layout a node's data inputs and outputs must have: "nhwc", or "" (the default)."""
    return get_op(n.type).tactic_layouts.get(n.params.get("tactic"), "")


def assign_layouts(g: Graph) -> tuple[dict, list]:
    """Returns ``({tensor: "nhwc"}, build-log rows (rule, matched, produced, detail))`` and inserts the reformat
    nodes into ``g``."""
    wants = {n.name: wanted_layout(n) for n in g.nodes}
    if not any(wants.values()):
        return {}, []
    layouts: dict = {}
    rows: list = []
    for n in g.nodes:
        if wants[n.name]:
            for t in n.outputs:
                layouts[t] = wants[n.name]
    # network outputs keep the default layout: the producer writes an internal NHWC tensor, and a reformat right
    # after it writes the output, which layers wanting the default layout then read (one copy, freed early)
    converted: dict = {}                    # (tensor, layout) -> the tensor holding it in that layout
    after: dict = {}                        # producer name -> reformat nodes that go right after it
    for t in g.outputs:
        if layouts.get(t):
            producer = next(n for n in g.nodes if t in n.outputs)
            internal = f"{t} [{layouts[t]}]"
            producer.outputs = [internal if o == t else o for o in producer.outputs]
            for n in g.nodes:
                n.inputs = [internal if i == t else i for i in n.inputs]
            g.tensors[internal] = g.tensors[t]
            layouts[internal] = layouts.pop(t)
            after.setdefault(producer.name, []).append(
                Node(f"reformat {t} -> nchw", "identity", {}, {}, [internal], [t], _precision(g, t), []))
            rows.append(("reformat", producer.name, after[producer.name][-1].name, f"NHWC -> NCHW for output {t}"))
            converted[(internal, "")] = t
    nodes: list = []
    for n in g.nodes:
        want = wants[n.name]
        new_inputs = []
        for t in n.inputs:
            have = layouts.get(t, "")
            if t in g.constants or have == want:
                new_inputs.append(t)
                continue
            key = (t, want)
            if key not in converted:
                name = f"{t} [{want or 'nchw'}]"
                g.tensors[name] = g.tensors[t]
                if want:
                    layouts[name] = want
                nodes.append(Node(f"reformat {t} -> {want or 'nchw'}", "identity", {}, {}, [t], [name],
                                  _precision(g, t), []))
                rows.append(("reformat", t, nodes[-1].name,
                             f"{(have or 'nchw').upper()} -> {(want or 'nchw').upper()} for {n.name}"))
                converted[key] = name
            new_inputs.append(converted[key])
        n.inputs = new_inputs
        nodes.append(n)
        nodes.extend(after.get(n.name, []))
    g.nodes = nodes
    return layouts, rows


def choose_layouts(g: Graph, device: Any, batch: int, log: Any, cache: Any = None) -> None:
    """Re-decides, on total time with reformats, the tactic of every layer that timed a channels-last tactic
    and one in the default layout (see the module docstring); logs each layer it switches and a summary.
    ``cache``: the build's :class:`~perfkit.TimingCache`, which also keeps the reformats' times, so that a
    build from a warm cache makes the same choice without timing anything."""
    cands = {}
    for n in g.nodes:
        op = get_op(n.type)
        nhwc = {t: ms for t, ms in n.tactic_times.items() if op.tactic_layouts.get(t)}
        plain = {t: ms for t, ms in n.tactic_times.items() if not op.tactic_layouts.get(t)}
        if nhwc and plain:
            cands[n.name] = (min(plain, key=plain.get), min(nhwc, key=nhwc.get))
    if not cands:
        return
    reformat_ms: dict = {}
    own = {n.name: n.params.get("tactic") for n in g.nodes}

    def total(assign: dict) -> float:
        layout, ms, reformats = {}, 0.0, set()
        for n in g.nodes:
            tactic = assign.get(n.name, own[n.name])
            if n.name in cands:
                ms += n.tactic_times[tactic]
            want = get_op(n.type).tactic_layouts.get(tactic, "")
            for t in n.inputs:
                if t not in g.constants and layout.get(t, "") != want:
                    reformats.add((t, want))        # one reformat per tensor and layout, as assign_layouts makes
            for t in n.outputs:
                layout[t] = want
        reformats |= {(t, "") for t in g.outputs if layout.get(t)}
        return ms + sum(_reformat_ms(g, t, device, batch, reformat_ms, cache) for t, _ in reformats)

    starts = [{k: own[k] for k in cands}, {k: v[1] for k, v in cands.items()}, {k: v[0] for k, v in cands.items()}]
    best, best_ms = None, float("inf")
    for assign in starts:
        ms = total(assign)
        for _ in range(MAX_PASSES):
            improved = False
            for name, (plain, nhwc) in cands.items():
                trial = {**assign, name: nhwc if assign[name] == plain else plain}
                trial_ms = total(trial)
                if trial_ms < ms:
                    assign, ms, improved = trial, trial_ms, True
            if not improved:
                break
        if ms < best_ms:
            best, best_ms = assign, ms
    before = total({k: own[k] for k in cands})
    switched = 0
    for n in g.nodes:
        if n.name in cands and best[n.name] != own[n.name]:
            t = best[n.name]
            n.params, n.weights = get_op(n.type).prepare_tactic(t, n.params, n.weights)
            switched += 1
            log.add("layout", t, n.name, n.name, len(g.nodes), len(g.nodes), n.tactic_times[t],
                    f"{t} ({n.tactic_times[t]:.3f} ms) instead of {own[n.name]} ({n.tactic_times[own[n.name]]:.3f} "
                    "ms alone): fewer reformats between layouts over the whole engine", "chosen")
    log.add("layout", "tactics and reformats", "", "", len(g.nodes), len(g.nodes), 0.0,
            f"{len(cands)} layer(s) with a channels-last tactic; {switched} switched; layers and reformats "
            f"{best_ms:.3f} ms against {before:.3f} ms with each layer's own fastest tactic (at batch {batch}, "
            f"{len(reformat_ms)} reformat shape(s) weighed)")


def _reformat_ms(g: Graph, t: str, device: Any, batch: int, known: dict, cache: Any = None) -> float:
    """Milliseconds of one layout reformat of tensor ``t`` at ``batch``: measured once per shape and dtype in a
    build (``known``), and kept in the timing cache ``cache`` when there is one."""
    spec = g.tensors[t]
    key = (tuple(spec.shape), spec.dtype)
    if key not in known:
        if len(spec.shape) != 3:
            known[key] = float("inf")           # no channels-last form: such a layout is never chosen
            return known[key]
        precision = PRECISION_OF.get(spec.dtype, "fp32")
        sig = tactics.signature_of(device, precision, "layout_reformat", {}, [spec], [False], {}, batch)
        kept = tactics.cached_reformat_ms(cache, sig)
        if kept is not None:
            known[key] = kept
            return kept
        xp = device.xp
        src = xp.zeros((batch,) + tuple(spec.shape), spec.dtype)
        dst = nhwc_empty(xp, src.shape, spec.dtype)
        target = tactics.Target(f"reformat {t}", "identity", precision, "", [src], [dst])
        known[key] = tactics.measure(target, lambda: dst.__setitem__(Ellipsis, src), device, 3)
        tactics.keep_reformat_ms(cache, sig, known[key])
    return known[key]


def _precision(g: Graph, t: str) -> str:
    """A layout reformat copies ``t`` as it is stored: it runs in the precision of that dtype (the consumer may
    be a precision reformat that runs in another)."""
    return PRECISION_OF.get(g.tensors[t].dtype, "fp32")


def layout_summary(layouts: dict, rows: list, g: Graph) -> str:
    """One sentence for the build log's layout row."""
    nodes = sum(1 for n in g.nodes if wanted_layout(n) == NHWC)
    return (f"{nodes} layer(s) run channels-last (NHWC): {len(layouts)} tensor(s) stored NHWC, "
            f"{len(rows)} reformat layer(s) between layouts")
