"""The importer: graph inputs -> network inputs, nodes in order (aliased, folded at import, or converted
into layers), graph outputs marked; ``check`` mode records every node instead of stopping at the first."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NetworkDefinitionError, PerfkitError
from ..network import Network
from .errors import OnnxFileError, UnsupportedOnnxError, require_onnx
from .fold import FOLD_REFUSED, fold_node, shape_of
from .info import ImportInfo
from .node import NodeContext
from .reader import check_structure, node_label, ordered_nodes, read_model, to_array
from .registry import CONVERTERS, supported_ops
from .values import Values, is_tensor

MIN_OPSET = 7
REMOVED = {"Identity": "identity", "Dropout": "dropout (inference)"}
ELEM_DTYPES = {1: "float32", 10: "float16", 11: "float32", 6: "int32", 7: "int32", 5: "int32", 4: "int32",
               3: "int32", 2: "int32", 12: "int32", 9: "int32"}   # double -> float32, bool/(u)int8..int64 -> int32
_FAILED = object()


class Importer:
    def __init__(self, model: Any, batch: Any = "auto", name: str | None = None, input_shapes: dict | None = None,
                 check: bool = False):
        self.onnx = require_onnx()
        self.proto, source = read_model(model)
        self.check_mode = check
        self.converted_from = None
        self.layer_types: dict[str, str] = {}
        self.rows: list[dict] = []
        if self.proto.functions:            # model-local functions (newer exporters): inlined into the graph
            self.proto = _inline(self.onnx, self.proto)
        self.opset = self._opset()          # may replace self.proto (an old opset converted)
        g = self.proto.graph
        if not g.output:
            raise OnnxFileError("the graph has no outputs; an ONNX model names at least one")
        known = {t.name for t in g.initializer} | {i.name for i in g.input}
        self.order = ordered_nodes(g, known)            # undefined values and cycles, named, before the checker
        self._inferred_proto = check_structure(self.onnx, self.proto)
        net_name = name or g.name or (source.rsplit("/", 1)[-1].rsplit(".", 1)[0] if "/" in source or
                                      source.endswith(".onnx") else "onnx_model")
        self.net = Network(net_name if net_name.strip() else "onnx_model")
        self.info = ImportInfo(source=source, producer=" ".join(p for p in (self.proto.producer_name,
                               self.proto.producer_version) if p), opset=self.opset, converted_from=self.converted_from)
        self.input_shapes = dict(input_shapes or {})
        self._reserved = {o.name for o in g.output} | {i.name for i in g.input}
        self._constants(g)
        runtime = [i for i in g.input if i.name not in self.values]
        self._inputs(runtime, batch)
        self._labels = {id(n): node_label(n, i) for i, n in enumerate(g.node)}
        self._consumed = {n for node in g.node for n in node.input if n} | {o.name for o in g.output}

    # set-up ----------------------------------------------------------------------------------------
    def _opset(self) -> int:
        newest = self.onnx.defs.onnx_opset_version()
        ops = {o.domain: o.version for o in self.proto.opset_import}
        v = ops.get("", ops.get("ai.onnx"))
        if v is None:
            raise OnnxFileError("the model imports no version of the default ONNX operator set (opset_import "
                                "lacks domain '')")
        if 1 <= v < MIN_OPSET and self.proto.graph.node:
            # an old export (opset 1..6): ONNX's version converter rewrites it to opset 7, node by node
            try:
                from onnx import version_converter
                converted = version_converter.convert_version(self.proto, MIN_OPSET)
            except Exception as exc:
                raise UnsupportedOnnxError(f"the model uses opset {v}; perfkit imports opsets {MIN_OPSET} to {newest}, "
                                           f"and ONNX's version converter could not raise it to {MIN_OPSET} "
                                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})",
                                           opset=v) from None
            _drop_legacy_attributes(self.onnx, converted, MIN_OPSET)
            self.proto = converted
            self.converted_from = int(v)
            return MIN_OPSET
        if not MIN_OPSET <= v <= newest:
            raise UnsupportedOnnxError(f"the model uses opset {v}; perfkit imports opsets {MIN_OPSET} to {newest} (the "
                                       "newest the installed onnx knows); convert it with "
                                       "onnx.version_converter.convert_version", opset=v)
        return int(v)

    def _constants(self, g: Any) -> None:
        self.values = Values(self, 1, None)
        if g.sparse_initializer:
            raise UnsupportedOnnxError(f"sparse initializer {g.sparse_initializer[0].name!r}: perfkit imports dense "
                                       "initializers only", opset=self.opset)
        for t in g.initializer:
            if t.name in self.values:
                raise OnnxFileError(f"initializer {t.name!r} is defined twice")
            self.values[t.name] = to_array(t, "initializer")

    def _inputs(self, runtime: list, batch: Any) -> None:
        dims = {}
        for vi in runtime:
            tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            if tt is None or not tt.HasField("shape"):
                raise UnsupportedOnnxError(f"graph input {vi.name!r} has no tensor shape; perfkit needs the shape of "
                                           "every input (give per-sample shapes with input_shapes=)", opset=self.opset)
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else
                             (d.dim_param or "?") for d in tt.shape.dim]
        lead, max_batch, kind = 1, None, "symbolic"
        if batch is None:
            lead, max_batch, kind = 0, 1, "none"
        else:
            if any(len(d) == 0 for d in dims.values()):
                scalar = next(n for n, d in dims.items() if not d)
                raise UnsupportedOnnxError(f"graph input {scalar!r} is a scalar, so it has no batch dimension: load "
                                           "with batch=None (the model's shapes are then per sample)", opset=self.opset)
            fixed = {d[0] for d in dims.values() if isinstance(d[0], int)}
            if len(fixed) > 1:
                raise UnsupportedOnnxError("graph inputs disagree on the batch dimension (leading dims "
                                           f"{ {n: d[0] for n, d in dims.items()} }); load with batch=None if the "
                                           "leading dims are not a batch", opset=self.opset)
            if batch == "auto":
                if fixed:
                    max_batch, kind = fixed.pop(), "fixed"
            else:
                max_batch, kind = int(batch), "given"
        self.values.lead, self.values.fixed_batch = lead, (max_batch if kind == "fixed" else None)
        self.info.batch, self.info.max_batch_size = kind, max_batch
        for vi in runtime:
            elem = vi.type.tensor_type.elem_type
            dtype = ELEM_DTYPES.get(elem)
            self.info.input_dtypes[vi.name] = self._np_name(elem)
            if dtype is None:
                kind = self.onnx.TensorProto.DataType.Name(elem) if elem in self.onnx.TensorProto.DataType.values() \
                    else f"{elem} (undefined)"
                raise UnsupportedOnnxError(f"graph input {vi.name!r} has element type {kind}; "
                                           "perfkit inputs are float32, float16 (float64 kept as float32), "
                                           "booleans or integers up to 32 bits (kept as int32)",
                                           opset=self.opset)
            shape = dims[vi.name][lead:]
            if vi.name in self.input_shapes:
                shape = list(self.input_shapes[vi.name])
            if any(not isinstance(d, int) for d in shape) or not shape:
                what = "is a scalar" if not shape else f"has symbolic dimensions {dims[vi.name]}"
                raise UnsupportedOnnxError(f"graph input {vi.name!r} {what}; perfkit needs fixed per-sample shapes: "
                                           f"pass input_shapes={{{vi.name!r}: (...)}} (per sample, without the batch)",
                                           opset=self.opset)
            self.values[vi.name] = self.net.add_input(vi.name, tuple(shape), dtype)

    def _np_name(self, elem: int) -> str:
        try:
            return self.onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "?"
        except Exception:
            return "?"

    # layers --------------------------------------------------------------------------------------
    def layer_name(self, base: str, part: str | None, own: tuple = ()) -> str:
        """A unique layer name: ``base`` or ``base/part``; graph input and output names are kept for the
        tensors they name (``own``: the node's outputs, whose names its last layer may take)."""
        name = base if part is None else f"{base}/{part}"
        taken = self.net._layer_names
        tensors = self.net._tensors
        cand, i = name, 2
        while cand in taken or cand in tensors or (cand in self._reserved and cand not in own):
            cand, i = f"{name}_{i}", i + 1
        return cand

    def add(self, ctx: NodeContext, method: str, *args: Any, part: str | None = None, exact: str | None = None,
            **kw: Any) -> Any:
        name = self.layer_name(exact, None) if exact is not None else \
            self.layer_name(ctx.base, part, tuple(ctx.node.output))
        try:
            layer = getattr(self.net, method)(*args, name=name, **kw)
        except NetworkDefinitionError as exc:
            ctx.fail(f"perfkit's {method[4:]} layer refused it: {exc}")
        self.layer_types[layer.name] = layer.type
        source = getattr(ctx, "source", ctx.op_type)          # a function body's layers: the outer op
        layer.source_op = source
        self.info.layer_ops[layer.name] = source
        self.info.layer_nodes[layer.name] = getattr(ctx, "outer_name", ctx.node.name or ctx.base)
        return layer

    # nodes ---------------------------------------------------------------------------------------
    def run(self) -> Network:
        for node in self.order:
            self._node(node)
        self._outputs()
        self.net.import_info = self.info
        return self.net

    def _context(self, node: Any) -> NodeContext:
        label = self._labels[id(node)]
        base = node.name or next((o for o in node.output if o), node.op_type)
        try:
            version = self.onnx.defs.get_schema(node.op_type, self.opset, node.domain or "").since_version
        except Exception:
            version = 0
        return NodeContext(self, node, label, base, version)

    def _node(self, node: Any) -> None:
        ctx = self._context(node)
        failed_in = [n for n in node.input if n and self.values.table.get(n) is _FAILED]
        if failed_in:
            self._record(ctx, supported_ops().get(node.op_type) is not None, f"not checked further: reads "
                         f"{failed_in[0]!r}, computed by a node perfkit cannot import")
            for o in node.output:
                if o:
                    self.values[o] = _FAILED
            return
        try:
            self._convert(ctx)
            self._record(ctx, True, "")
        except PerfkitError as exc:
            if not self.check_mode or isinstance(exc, OnnxFileError):
                raise
            self._record(ctx, False, str(exc).split(": ", 1)[-1] if str(exc).startswith("node ") else str(exc))
            self._stand_ins(ctx)

    def _convert(self, ctx: NodeContext) -> None:
        node = ctx.node
        if node.domain not in ("", "ai.onnx"):
            ctx.fail(f"operator domain {node.domain!r} is not supported; perfkit imports the default ONNX domain")
        ins = [self.values[n] if n else None for n in node.input]
        if node.op_type in REMOVED:
            self._remove(ctx, ins)
            return
        runtime = [v for v in ins if v is not None and is_tensor(v)]
        if node.op_type in ("Shape", "Size") and runtime:
            ctx.output(shape_of(ctx, self.values, runtime[0]))
            self.info.removed.append((ctx.base, node.op_type, "folded at import (static shape)"))
            return
        if not runtime and node.op_type not in FOLD_REFUSED:
            for i, v in enumerate(fold_node(ctx, ins, self.opset)):
                ctx.output(v, i)
            self.info.removed.append((ctx.base, node.op_type, "folded at import (constant inputs)"))
            return
        conv = CONVERTERS.get(node.op_type)
        if conv is None and self._expand(ctx):
            return
        if conv is None:
            ctx.fail(f"operator {node.op_type!r} is not supported (on run-time tensors); supported: "
                     f"{', '.join(sorted(CONVERTERS))}, and operators ONNX defines as functions of these")
        unknown = sorted(set(ctx.attrs) - set(conv.attrs))
        if unknown:
            ctx.fail(f"attribute(s) {', '.join(unknown)} not supported; {node.op_type} supports "
                     f"{', '.join(sorted(conv.attrs)) or 'no attributes'}")
        if ctx.version < conv.since:
            ctx.fail(f"{node.op_type} version {ctx.version} is not supported; perfkit supports it from opset "
                     f"{conv.since}")
        try:
            conv.fn(ctx)
        except PerfkitError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
                ArithmeticError) as exc:
            ctx.fail(f"malformed node ({type(exc).__name__}: {exc})", malformed=True)
        for o in node.output:
            if o and o not in self.values:
                ctx.fail(f"output {o!r} is not supported (perfkit computes only the node's main outputs)")

    def _expand(self, ctx: NodeContext) -> bool:
        """Converts a node through its ONNX function body (see expand.py); False when it has none."""
        from .expand import body_opset, expanded_nodes, function_body
        found = function_body(self.onnx, ctx.node, self.opset)
        if found is None or getattr(ctx, "depth", 0) > 4:
            return False
        schema, body = found
        outer, self.opset = self.opset, body_opset(body, self.opset)
        try:
            for inner in expanded_nodes(self.onnx, ctx.node, schema, body, ctx.base):
                self._labels[id(inner)] = repr(inner.name)
                sub = self._context(inner)
                sub.source, sub.depth = getattr(ctx, "source", ctx.op_type), getattr(ctx, "depth", 0) + 1
                sub.outer_name = getattr(ctx, "outer_name", ctx.node.name or ctx.base)
                try:
                    self._convert(sub)
                except UnsupportedOnnxError as exc:
                    ctx.fail(f"its ONNX function body does not import: {exc}")
        finally:
            self.opset = outer
        self.info.removed.append((ctx.base, ctx.op_type, "expanded into its ONNX function body"))
        return True

    def _remove(self, ctx: NodeContext, ins: list) -> None:
        node = ctx.node
        if node.op_type == "Dropout":
            if len(node.output) > 1 and node.output[1] in self._consumed:
                ctx.fail("Dropout's mask output is not supported (inference: the mask is all ones; remove its users)")
            mode = ins[2] if len(ins) > 2 else None
            if mode is not None and (is_tensor(mode) or bool(np.asarray(mode).reshape(-1)[0])):
                ctx.fail("Dropout in training mode is not supported (perfkit runs inference: training_mode must be "
                         "a constant false)")
        ctx.output(ins[0])
        self.info.removed.append((ctx.base, node.op_type, f"removed: {REMOVED[node.op_type]}"))

    def _record(self, ctx: NodeContext, ok: bool, reason: str) -> None:
        self.rows.append({"node": ctx.node.name or ctx.base, "op_type": ctx.op_type,
                          "domain": ctx.node.domain or "ai.onnx", "opset": self.opset,
                          "supported": ok, "reason": reason})

    def _stand_ins(self, ctx: NodeContext) -> None:
        """After a failed node (check mode): its outputs become network inputs where ONNX's shape inference
        knows their shapes, so later nodes are still checked; otherwise they are marked failed."""
        known = self._inferred()
        for o in ctx.node.output:
            if not o:
                continue
            info = known.get(o)
            lead = self.values.lead
            if info is not None and len(info[0]) > lead and all(isinstance(d, int) and d > 0 for d in info[0][lead:]):
                try:
                    self.values[o] = self.net.add_input(self.layer_name(o, None), tuple(info[0][lead:]), info[1])
                    continue
                except PerfkitError:
                    pass
            self.values[o] = _FAILED

    def _inferred(self) -> dict:
        if not hasattr(self, "_shapes"):
            self._shapes = {}
            inferred = self._inferred_proto
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
                tt = vi.type.tensor_type
                dtype = ELEM_DTYPES.get(tt.elem_type)
                if dtype and tt.HasField("shape"):
                    self._shapes[vi.name] = ([d.dim_value if d.HasField("dim_value") else None
                                              for d in tt.shape.dim], dtype)
        return self._shapes

    # outputs ---------------------------------------------------------------------------------------
    def _outputs(self) -> None:
        names = [vi.name for vi in self.proto.graph.output]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise OnnxFileError(f"graph output(s) {', '.join(map(repr, twice))} listed more than once")
        for vi in self.proto.graph.output:
            v = self.values.table.get(vi.name)
            elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
            self.info.output_dtypes[vi.name] = self._np_name(elem)
            if v is _FAILED:
                continue
            if v is None:
                raise OnnxFileError(f"graph output {vi.name!r} is not computed by any node")
            if not is_tensor(v):
                if self.check_mode:
                    continue
                raise UnsupportedOnnxError(f"graph output {vi.name!r} is a constant (it depends on no input); "
                                           "perfkit's outputs are computed from inputs", opset=self.opset)
            other = self.net._tensors.get(vi.name)
            if other is not None and other is not v and other not in self.net.inputs and other not in self.net.outputs:
                self.net.rename_tensor(other, self.layer_name(f"{vi.name}/inner", None))   # the name is the output's
            if v in self.net.inputs and v.name == vi.name:
                raise UnsupportedOnnxError(f"graph output {vi.name!r} is the graph input of the same name; perfkit's "
                                           "outputs are computed by layers and need names of their own",
                                           opset=self.opset)
            if v in self.net.outputs or v in self.net.inputs or v.name != vi.name and vi.name in self.net._tensors:
                layer = self.net.add_identity(v, name=self.layer_name(f"{vi.name}/copy", None))
                self.info.layer_ops[layer.name] = "Identity"
                self.info.layer_nodes[layer.name] = vi.name
                v = layer.output
            self.net.mark_output(v, name=vi.name)


def _drop_legacy_attributes(onnx: Any, proto: Any, opset: int) -> None:
    """Attributes the version converter carries over although the operator at ``opset`` no longer has them
    (``is_test``, ``broadcast``, ``consumed_inputs``): their meaning is already in the converted graph."""
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            known = onnx.defs.get_schema(node.op_type, opset).attributes
        except Exception:
            continue
        keep = [a for a in node.attribute if a.name in known]
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)


def _inline(onnx: Any, proto: Any) -> Any:
    try:
        from onnx import inliner
        return inliner.inline_local_functions(proto)
    except Exception as exc:
        raise OnnxFileError(f"the model's local functions could not be inlined ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
