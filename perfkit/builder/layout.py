"""The builder's layout pass: channels-last (NHWC) tensors around the layers whose tactic wants them, and the
reformat layers between layouts (guide chapter 3, as TensorRT inserts reformatting layers between formats).

After tactic selection a layer may run a tactic that reads and writes channels-last memory (``Op.tactic_layouts``:
cuDNN's convolution). Every output of such a layer is stored NHWC; each of its data inputs must be NHWC too. Where
a tensor's layout is not the one its consumer needs, one reformat layer (an ``identity`` step, a strided copy)
converts it, once per tensor and layout, placed just before the first layer that needs it; network outputs are
always in the default layout. Chains of cuDNN convolutions (a ResNet's blocks, residual sums included) so run in
NHWC end to end, with reformat layers only where a pooling layer, a fully connected layer or the network's own
input and output meet them. Nothing changes when no layer chose such a tactic (every CPU engine).
"""
from __future__ import annotations

from ..ops import get_op
from ..ops.base import NHWC
from .graph import Graph, Node


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
    # network outputs keep the default layout: the producer writes an internal NHWC tensor, a reformat copies it
    tail = []
    for t in g.outputs:
        if layouts.get(t):
            producer = next(n for n in g.nodes if t in n.outputs)
            internal = f"{t} [{layouts[t]}]"
            producer.outputs = [internal if o == t else o for o in producer.outputs]
            for n in g.nodes:
                n.inputs = [internal if i == t else i for i in n.inputs]
            g.tensors[internal] = g.tensors[t]
            layouts[internal] = layouts.pop(t)
            tail.append(Node(f"reformat {t} -> nchw", "identity", {}, {}, [internal], [t], producer.precision, []))
            rows.append(("reformat", producer.name, tail[-1].name, f"NHWC -> NCHW for output {t}"))
    converted: dict = {}                    # (tensor, layout) -> the tensor holding it in that layout
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
                                  n.precision, []))
                rows.append(("reformat", t, nodes[-1].name,
                             f"{(have or 'nchw').upper()} -> {(want or 'nchw').upper()} for {n.name}"))
                converted[key] = name
            new_inputs.append(converted[key])
        n.inputs = new_inputs
        nodes.append(n)
    g.nodes = nodes + tail
    return layouts, rows


def layout_summary(layouts: dict, rows: list, g: Graph) -> str:
    """One sentence for the build log's layout row."""
    nodes = sum(1 for n in g.nodes if wanted_layout(n) == NHWC)
    return (f"{nodes} layer(s) run channels-last (NHWC): {len(layouts)} tensor(s) stored NHWC, "
            f"{len(rows)} reformat layer(s) between layouts")
