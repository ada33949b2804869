"""The table of tests/test_bad_arguments.py: for each public callable, a call with good arguments and,
per parameter, the families of bad values tried in its place.

``Case.call(w, kw)`` runs the callable with keyword arguments ``kw`` on the objects of the World
``w``. ``bad`` maps a parameter to a family (label -> value); every value must be refused with a
PerfkitError unless its label is in ``accept`` ("param:label" or "param:*"), in which case it may
also be accepted; nothing else may escape. ``free`` names parameters with no bad values, and why.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable

import numpy as np

import perfkit as pk
from bad_argument_values import (ALLOCATOR, ARRAY, AX, AXIS, CHOICE, CONTEXT, COUNT, COUNT0, DEVICE, FD, FLAG, FRAME,
                                 HUGE, INPUTS, NAME, NETWORK, OPT_COUNT, OPT_NAME, READ_PATH, SECONDS, SHAPE, TENSOR,
                                 WRITE_PATH, Lazy, family)


@dataclasses.dataclass
class Case:
    call: Callable[[Any, dict], Any]
    good: dict
    bad: dict
    accept: frozenset = frozenset()
    free: dict = dataclasses.field(default_factory=dict)


CASES: dict = {}


def case(name: str, call: Callable, good: dict, bad: dict, accept: tuple = (), free: dict | None = None) -> None:
    assert name not in CASES, name
    CASES[name] = Case(call, good, bad, frozenset(accept), free or {})


FLAGS_ANY = ("*:none", "*:text", "*:number")   # truthy/falsy values for bools: refusing them is optional


def on_fresh_network(method: str) -> Callable:
    """Calls ``Network.<method>`` on a fresh network and checks that a refused call left it unchanged."""
    def call(w: Any, kw: dict) -> Any:
        net = w.fresh_net()
        before = (len(net.layers), [t.name for t in net.tensors], len(net.outputs))
        try:
            return getattr(net, method)(**kw)
        except pk.PerfkitError:
            after = (len(net.layers), [t.name for t in net.tensors], len(net.outputs))
            assert after == before, f"a refused {method} changed the network: {before} -> {after}"
            raise
    return call


# the network definition --------------------------------------------------------------------------
case("Network", lambda w, kw: pk.Network(**kw), {"name": "n"}, {"name": NAME})
case("Network.add_input", on_fresh_network("add_input"), {"name": "new", "shape": (3,), "dtype": "float32"},
     {"name": {**NAME, "duplicate": "x"}, "shape": {**SHAPE, **HUGE}, "dtype": {**CHOICE, "float64": "float64"}},
     accept=("shape:huge",))
case("Network.mark_output", on_fresh_network("mark_output"), {"tensor": "x_relu", "name": None},
     {"tensor": {**TENSOR, "an_input": "x"}, "name": {**OPT_NAME, "taken": "x"}}, accept=("tensor:an_input",))
case("Network.rename_tensor", on_fresh_network("rename_tensor"), {"tensor": "x", "new_name": "y"},
     {"tensor": TENSOR, "new_name": {**NAME, "taken": "img", "control_char": "a\nb"}})
case("Network.get_tensor", on_fresh_network("get_tensor"), {"name": "x"}, {"name": CHOICE})
case("Network.get_layer", on_fresh_network("get_layer"), {"name": "x_relu"}, {"name": CHOICE})
case("Network.summary", on_fresh_network("summary"), {}, {})
case("Network.add_layer", on_fresh_network("add_layer"),
     {"op_type": "activation", "inputs": ["x"], "params": {"activation": "relu"}, "weights": None, "name": None},
     {"op_type": CHOICE, "inputs": family(none=None, number=3, unknown=["nope"], too_many=["x", "x"]),
      "params": family(text="x", number=3, unknown_key={"activation": "relu", "nope": 1}),
      "weights": family(text="x", number=3), "name": {**OPT_NAME, "taken": "x_relu"}},
     accept=("params:unknown_key",))
case("Network.add_fully_connected", on_fresh_network("add_fully_connected"),
     {"input": "x", "num_outputs": 3, "kernel": np.ones((3, 4)), "bias": None, "name": None},
     {"input": TENSOR, "num_outputs": {**COUNT, **HUGE}, "kernel": ARRAY, "bias": {k: v for k, v in ARRAY.items() if k != "none"},
      "name": {**OPT_NAME, "taken": "x_relu"}})
case("Network.add_matrix_multiply", on_fresh_network("add_matrix_multiply"),
     {"a": "m", "b": "m", "transpose_a": False, "transpose_b": True, "name": None},
     {"a": TENSOR, "b": {**TENSOR, "mismatched": "x"}, "transpose_a": FLAG, "transpose_b": FLAG, "name": OPT_NAME},
     accept=FLAGS_ANY)
case("Network.add_convolution", on_fresh_network("add_convolution"),
     {"input": "img", "num_output_maps": 3, "kernel_size": 3, "kernel": np.ones((3, 2, 3, 3)), "bias": None,
      "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "name": None},
     {"input": {**TENSOR, "flat": "x"}, "num_output_maps": COUNT, "kernel_size": {**COUNT, "too_large": 9},
      "kernel": ARRAY, "bias": {k: v for k, v in ARRAY.items() if k != "none"}, "stride": COUNT, "padding": {**COUNT0, "huge": 10 ** 6}, "dilation": COUNT,
      "groups": {**COUNT, "not_dividing": 3}, "name": OPT_NAME},
     accept=("padding:huge",))   # a valid definition; refusing its engine is the builder's memory check
case("Network.add_activation", on_fresh_network("add_activation"),
     {"input": "x", "activation": "relu", "alpha": None, "beta": None, "name": None},
     {"input": TENSOR, "activation": CHOICE, "alpha": family(nan=np.nan, text="a", inf=np.inf),
      "beta": family(nan=np.nan, text="a"), "name": OPT_NAME})
case("Network.add_scale", on_fresh_network("add_scale"),
     {"input": "img", "mode": "channel", "shift": np.ones(2), "scale": None, "power": None, "channel_axis": 0,
      "name": None},
     {"input": TENSOR, "mode": CHOICE, "shift": {k: v for k, v in ARRAY.items() if k != "none"},
      "scale": family(text="abc", nan=np.array([np.nan, 1.0]), wrong_length=np.ones(5)),
      "power": family(text="abc", inf=np.array([np.inf, 1.0])), "channel_axis": AXIS, "name": OPT_NAME})
case("Network.add_elementwise", on_fresh_network("add_elementwise"), {"a": "x", "b": "x", "op": "sum", "name": None},
     {"a": TENSOR, "b": {**TENSOR, "mismatched": "img"}, "op": CHOICE, "name": OPT_NAME})
case("Network.add_unary", on_fresh_network("add_unary"), {"input": "x", "op": "exp", "name": None},
     {"input": TENSOR, "op": CHOICE, "name": OPT_NAME})
case("Network.add_reduce", on_fresh_network("add_reduce"),
     {"input": "img", "op": "sum", "axes": (1, 2), "keep_dims": False, "name": None},
     {"input": TENSOR, "op": CHOICE, "axes": {**AXIS, "repeated": (1, 1), "empty": ()}, "keep_dims": FLAG,
      "name": OPT_NAME}, accept=FLAGS_ANY)
case("Network.add_pooling", on_fresh_network("add_pooling"),
     {"input": "img", "pool": "max", "window": 2, "stride": None, "padding": 0, "exclude_padding": True, "name": None},
     {"input": {**TENSOR, "flat": "x"}, "pool": CHOICE, "window": {**COUNT, "too_large": 9},
      "stride": OPT_COUNT, "padding": COUNT0, "exclude_padding": FLAG, "name": OPT_NAME}, accept=FLAGS_ANY)
case("Network.add_shuffle", on_fresh_network("add_shuffle"),
     {"input": "img", "first_transpose": (1, 2, 0), "reshape": (6, -1), "second_transpose": None, "name": None},
     {"input": TENSOR, "first_transpose": family(not_a_permutation=(0, 0, 1), too_short=(0,), text="abc", float=(0.5, 1, 2)),
      "reshape": family(wrong_size=(5, 5), two_inferred=(-1, -1), float_dim=(2.5, -1), bool_dim=(True, -1), text="abc",
                        negative=(-2, 36)),
      "second_transpose": family(not_a_permutation=(1, 1), text="abc"), "name": OPT_NAME})
case("Network.add_concatenation", on_fresh_network("add_concatenation"), {"inputs": ["img", "img"], "axis": 0, "name": None},
     {"inputs": family(none=None, empty=[], number=3, mismatched=["img", "x"], unknown=["nope"]), "axis": AXIS,
      "name": OPT_NAME})
case("Network.add_gather", on_fresh_network("add_gather"), {"data": "x", "indices": "idx", "axis": 0, "name": None},
     {"data": TENSOR, "indices": {**TENSOR, "float_indices": "x"}, "axis": AXIS, "name": OPT_NAME})
case("Network.add_topk", on_fresh_network("add_topk"), {"input": "x", "op": "max", "k": 2, "axis": -1, "name": None},
     {"input": TENSOR, "op": CHOICE, "k": {**COUNT, "larger_than_axis": 5}, "axis": AXIS, "name": OPT_NAME})
case("Network.add_softmax", on_fresh_network("add_softmax"), {"input": "x", "axis": 0, "name": None},
     {"input": TENSOR, "axis": AXIS, "name": OPT_NAME})
case("Network.add_lrn", on_fresh_network("add_lrn"),
     {"input": "img", "window": 3, "alpha": 1e-4, "beta": 0.75, "k": 1.0, "name": None},
     {"input": TENSOR, "window": {**COUNT, "even": 2}, "alpha": family(nan=np.nan, text="a", none=None),
      "beta": family(nan=np.nan, inf=np.inf, text="a"), "k": family(nan=np.nan, text="a", none=None), "name": OPT_NAME})
case("Network.add_padding", on_fresh_network("add_padding"),
     {"input": "img", "pre_padding": (1, 1), "post_padding": 0, "name": None},
     {"input": {**TENSOR, "flat": "x"}, "pre_padding": family(float=(0.5, 1), none=None, text="ab", crop_all=(-6, 0)),
      "post_padding": family(float=(1, 2.5), none=None, bool=(True, 0), crop_all=(0, -7)), "name": OPT_NAME})
case("Network.add_constant", on_fresh_network("add_constant"), {"values": np.ones((1, 4)), "name": None},
     {"values": {k: v for k, v in ARRAY.items() if k != "wrong_shape"}, "name": {**OPT_NAME, "taken": "x"}})
case("Network.add_identity", on_fresh_network("add_identity"), {"input": "x", "dtype": "float16", "name": None},
     {"input": TENSOR, "dtype": {k: v for k, v in CHOICE.items() if k != "none"}, "name": OPT_NAME})
case("Network.add_plugin", on_fresh_network("add_plugin"), {"plugin": "bad_args_double", "inputs": ["x"], "params": None,
                                                         "name": None},
     {"plugin": CHOICE, "inputs": family(none=None, number=3, unknown=["nope"]), "params": family(text="x", number=3),
      "name": OPT_NAME})
case("Layer.get_output", lambda w, kw: w.fresh_net().get_layer("x_relu").get_output(**kw), {"index": 0},
     {"index": family(too_large=5, negative=-5, bool=True, float=0.5, none=None, text="0")})

# the builder and the engine ------------------------------------------------------------------------
case("BuilderConfig", lambda w, kw: pk.BuilderConfig(**kw),
     {"max_batch_size": 2, "precision": "fp16", "layer_precisions": {}, "max_workspace_bytes": None, "fusions": "all",
      "mlp_max_width_product": 1024, "tactics": "default", "timing_cache": None, "tactic_iterations": 1},
     {"max_batch_size": COUNT, "precision": CHOICE,
      "layer_precisions": family(text="fp16", number=3, unknown_precision={"fc1": "int8"}, list=["fc1"]),
      "max_workspace_bytes": {**COUNT0, "negative": -1}, "fusions": family(unknown="nope", unknown_rule={"nope"}, number=3),
      "mlp_max_width_product": COUNT, "tactics": CHOICE, "timing_cache": family(number=3, list=[1]),
      "tactic_iterations": COUNT, "strict_types": FLAG, "tf32": FLAG}, accept=("max_workspace_bytes:none",) + FLAGS_ANY)
case("BuilderConfig.validate", lambda w, kw: pk.BuilderConfig().validate(), {}, {})
case("BuilderConfig.to_dict", lambda w, kw: pk.BuilderConfig().to_dict(), {}, {})
case("Builder", lambda w, kw: pk.Builder(**kw), {"device": "cpu", "allocator": None},
     {"device": DEVICE, "allocator": ALLOCATOR})
case("Builder.build", lambda w, kw: pk.Builder("cpu").build(**kw), {"network": Lazy(lambda w: w.net),
                                                                      "config": Lazy(lambda w: w.config)},
     {"network": {**NETWORK, "cycle": Lazy(lambda w: w.cyclic_net()), "no_outputs": Lazy(lambda w: pk.Network("e"))},
      "config": family(text="fp16", number=3, dict={"max_batch_size": 2},
                       huge_batch=Lazy(lambda w: pk.BuilderConfig(max_batch_size=10 ** 12, tactics="default")),
                       unknown_layer=Lazy(lambda w: pk.BuilderConfig(layer_precisions={"nope": "fp16"})))})
case("TimingCache", lambda w, kw: pk.TimingCache(**kw), {"path": None},
     {"path": family(number=FD, directory=Lazy(lambda w: w.tmp), not_json=Lazy(lambda w: w.text_file))})
case("TimingCache.get", lambda w, kw: pk.TimingCache().get(**kw), {"key": "k"}, {"key": family(none=None, number=3)})
case("TimingCache.put", lambda w, kw: pk.TimingCache().put(**kw), {"key": "k", "entry": {"tactic": "a", "ms": {"a": 1.0}}},
     {"key": family(none=None, number=3), "entry": family(text="x", number=3, none=None)})
case("TimingCache.save", lambda w, kw: pk.TimingCache().save(), {}, {})
case("Engine", lambda w, kw: pk.Engine(**kw), {"plan": Lazy(lambda w: w.engine.plan), "host_weights": Lazy(lambda w: w.host_weights),
                                                "device": Lazy(lambda w: w.engine.device), "allocator": Lazy(lambda w: w.engine.allocator)},
     {"plan": family(none=None, text="plan", dict={}), "host_weights": family(none=None, text="w", empty={}),
      "device": family(none=None, text="cpu"), "allocator": family(none=None, text="x"), "keep_host_weights": FLAG},
     accept=FLAGS_ANY)
case("Engine.get_binding_shape", lambda w, kw: w.engine.get_binding_shape(**kw), {"name": "data"}, {"name": CHOICE})
case("Engine.get_binding_dtype", lambda w, kw: w.engine.get_binding_dtype(**kw), {"name": "output"}, {"name": CHOICE})
case("Engine.create_execution_context", lambda w, kw: w.engine.create_execution_context(**kw).close(),
     {"name": None, "cuda_graph": True}, {"name": OPT_NAME, "cuda_graph": FLAG}, accept=FLAGS_ANY + ("name:empty",))
case("Engine.save", lambda w, kw: w.engine.save(**kw), {"path": Lazy(lambda w: w.tmp + "/saved.engine")},
     {"path": {**WRITE_PATH, "directory": Lazy(lambda w: w.tmp)}})
case("Engine.close", lambda w, kw: w.build_engine().close(), {}, {})
case("load_engine", lambda w, kw: pk.load_engine(**kw), {"path": Lazy(lambda w: w.engine_file), "device": None, "allocator": None},
     {"path": READ_PATH, "device": DEVICE, "allocator": ALLOCATOR})
case("ExecutionContext", lambda w, kw: pk.ExecutionContext(**kw).close(), {"engine": Lazy(lambda w: w.engine), "name": "c",
                                                                         "cuda_graph": True},
     {"engine": family(none=None, text="e", network=Lazy(lambda w: w.net)), "name": NAME, "cuda_graph": FLAG},
     accept=FLAGS_ANY + ("name:empty", "name:number"))
case("ExecutionContext.execute", lambda w, kw: w.ctx.execute(**kw), {"inputs": Lazy(lambda w: w.x), "batch_size": None},
     {"inputs": INPUTS, "batch_size": {**OPT_COUNT, **HUGE, "above_max": 3}})
case("ExecutionContext.enqueue", lambda w, kw: w.enqueue(**kw),
     {"bindings": Lazy(lambda w: w.bindings()), "stream": None, "input_consumed": None, "batch_size": None},
     {"bindings": INPUTS, "stream": family(text="s", number=3),
      "input_consumed": family(text="e", number=3), "batch_size": {**OPT_COUNT, **HUGE}})
case("ExecutionContext.wait_profiles", lambda w, kw: w.ctx.wait_profiles(), {}, {})
case("ExecutionContext.close", lambda w, kw: w.build_engine().create_execution_context().close(), {}, {})
case("EngineSet", lambda w, kw: pk.EngineSet(**kw),
     {"network": Lazy(lambda w: w.net), "batch_sizes": [1, 2], "config": Lazy(lambda w: w.config), "device": None,
      "allocator": None},
     {"network": NETWORK, "batch_sizes": family(empty=[], negative=[-1], float=[2.5], bool=[True], none=None, text="12",
                                               number=4),
      "config": family(text="fp16", number=3), "device": DEVICE, "allocator": ALLOCATOR})
case("EngineSet.engine_for", lambda w, kw: w.es.engine_for(**kw), {"batch": 2}, {"batch": {**COUNT, **HUGE}})
case("EngineSet.create_execution_context", lambda w, kw: w.es.create_execution_context(), {}, {})
case("EngineSetContext.execute", lambda w, kw: w.es.create_execution_context().execute(**kw),
     {"inputs": Lazy(lambda w: w.x), "batch_size": None},
     {"inputs": INPUTS, "batch_size": {**OPT_COUNT, **HUGE}})

# devices, memory and plugins ---------------------------------------------------------------------
case("get_device", lambda w, kw: pk.get_device(**kw), {"spec": "cpu", "threads": None},
     {"spec": DEVICE, "threads": {**OPT_COUNT, **HUGE}})
case("register_plugin", lambda w, kw: w.register(**kw),
     {"name": "bad_args_other", "shape_fn": lambda shapes, params: shapes, "impls": None,
      "impl": lambda xp, ins, params: [ins[0]], "cost_fn": None, "dtype_fn": None, "replace": True},
     {"name": {**NAME, "taken": "bad_args_double"}, "shape_fn": family(none=None, text="f"),
      "impls": family(text="f", unknown_device={"tpu": print}, not_callable={"cpu": 3}),
      "impl": family(text="f", number=3), "cost_fn": family(text="f", number=3), "dtype_fn": family(text="f", number=3),
      "replace": FLAG}, accept=FLAGS_ANY + ("name:taken",))
case("unregister_plugin", lambda w, kw: pk.unregister_plugin(**kw), {"name": "never_registered"},
     {"name": family(none=None, number=3, empty="")})
case("Buffer", lambda w, kw: pk.Buffer(**kw), {"array": np.zeros(64, np.uint8), "device_kind": "cpu"},
     {"array": family(none=None, text="abc", float_array=np.zeros(4)), "device_kind": CHOICE})
case("Buffer.view", lambda w, kw: pk.Buffer(np.zeros(64, np.uint8), "cpu").view(**kw),
     {"offset": 0, "shape": (4,), "dtype": "float32"},
     {"offset": {**COUNT0, "past_end": 64, "misaligned": 1}, "shape": {**SHAPE, "too_large": (100,)},
      "dtype": {k: v for k, v in CHOICE.items() if k != "none"}})
case("CountingAllocator", lambda w, kw: pk.CountingAllocator(**kw), {"base": Lazy(lambda w: w.device.allocator)},
     {"base": ALLOCATOR})
case("CountingAllocator.allocate", lambda w, kw: w.counting.free(w.counting.allocate(**kw)),
     {"size": 256, "alignment": 256, "flags": 0},
     {"size": {**COUNT, **HUGE}, "alignment": {**COUNT, "not_power_of_two": 100}, "flags": COUNT0},
     accept=("size:zero",))
case("CountingAllocator.free", lambda w, kw: w.counting.free(**kw), {"buffer": Lazy(lambda w: w.counting.allocate(64))},
     {"buffer": family(none=None, text="b", foreign=Lazy(lambda w: pk.Buffer(np.zeros(8, np.uint8), "cpu")))})
case("TrackingAllocator", lambda w, kw: pk.TrackingAllocator(**kw), {"base": None, "device": None, "max_events": 10},
     {"base": ALLOCATOR, "device": DEVICE, "max_events": COUNT})
case("TrackingAllocator.allocate", lambda w, kw: w.tracking.free(w.tracking.allocate(**kw)),
     {"size": 256, "alignment": 256, "flags": 0},
     {"size": {**COUNT, **HUGE}, "alignment": {**COUNT, "not_power_of_two": 100}, "flags": COUNT0},
     accept=("size:zero",))
case("TrackingAllocator.free", lambda w, kw: w.tracking.free(**kw), {"buffer": Lazy(lambda w: w.tracking.allocate(64))},
     {"buffer": family(none=None, text="b", foreign=Lazy(lambda w: pk.Buffer(np.zeros(8, np.uint8), "cpu")))})
case("TrackingAllocator.record_external", lambda w, kw: w.tracking.record_external(**kw),
     {"action": "alloc", "ptr": 1, "size": 8, "tag": "user", "owner": ""},
     {"action": CHOICE, "ptr": family(none=None, text="p", float=1.5), "size": {**COUNT0, "negative": -8},
      "tag": family(none=None, number=3), "owner": family(none=None, number=3)})
case("TrackingAllocator.reset_peak", lambda w, kw: w.tracking.reset_peak(), {}, {})
case("TrackingAllocator.mark", lambda w, kw: w.tracking.mark(), {}, {})
case("TrackingAllocator.events_since", lambda w, kw: w.tracking.events_since(**kw), {"mark": 0},
     {"mark": {**COUNT0, "negative": -1}})
case("TrackingAllocator.live", lambda w, kw: w.tracking.live(), {}, {})

# profiling --------------------------------------------------------------------------------------
PROFILE_GOOD = {"context": Lazy(lambda w: w.ctx), "layers": True, "memory": True, "gpu_metrics": True, "kernels": False,
                "nvtx": False, "baseline": True, "interval_ms": 10.0}
PROFILE_BAD = {"context": CONTEXT, "layers": FLAG, "memory": {**FLAG, "unknown_mode": "some"}, "gpu_metrics": FLAG,
               "kernels": FLAG, "nvtx": FLAG, "baseline": FLAG, "interval_ms": {**SECONDS, "zero": 0.0}}


def profiled(w: Any, kw: dict) -> Any:
    with pk.profile(**kw) as run:
        w.ctx.execute(w.x)
    return run


case("profile", profiled, PROFILE_GOOD, PROFILE_BAD, accept=FLAGS_ANY)
case("Run", lambda w, kw: pk.profiling.Run(**kw), PROFILE_GOOD, PROFILE_BAD, accept=FLAGS_ANY)
case("Run.start", lambda w, kw: w.fresh_run().start().stop(), {}, {})
case("Run.stop", lambda w, kw: w.fresh_run().start().stop(**kw), {"baseline": False}, {"baseline": FLAG},
     accept=FLAGS_ANY)
case("RunData", lambda w, kw: pk.profiling.RunData(**kw).overview(),
     {"frames": Lazy(lambda w: dict(w.run.frames)), "meta": Lazy(lambda w: dict(w.run.meta)), "messages": []},
     {"frames": family(none=None, text="f", empty={}), "meta": family(none=None, text="m"),
      "messages": family(none=None, text="m", number=3)}, accept=("messages:text",))
case("RunData.summary", lambda w, kw: w.run.summary(**kw), {"by": "type", "sort": "total_ms"},
     {"by": CHOICE, "sort": {k: v for k, v in CHOICE.items() if k not in ("none", "empty")}})
case("RunData.overview_values", lambda w, kw: w.run.overview_values(), {}, {})
case("RunData.overview", lambda w, kw: w.run.overview(), {}, {})
case("RunData.save", lambda w, kw: w.run.save(**kw), {"directory": Lazy(lambda w: w.new_path("saved_run"))},
     {"directory": {**WRITE_PATH, "a_file": Lazy(lambda w: w.text_file)}},
     accept=("directory:missing_parent",))   # save creates the folders it needs
for _export in ("export_chrome_trace", "export_profile", "export_times"):
    case(f"RunData.{_export}", lambda w, kw, _m=_export: getattr(w.run, _m)(**kw),
         {"path": Lazy(lambda w: w.new_path("out.json"))}, {"path": {**WRITE_PATH, "directory": Lazy(lambda w: w.tmp)}})
case("load_run", lambda w, kw: pk.load_run(**kw), {"directory": Lazy(lambda w: w.run_dir)},
     {"directory": {**READ_PATH, "empty_dir": Lazy(lambda w: w.empty_dir)}})
case("LayerTimer", lambda w, kw: pk.LayerTimer(**kw), {"run_id": "r"}, {"run_id": family(number=3, list=["r"])},
     accept=("run_id:*",))   # a label copied into the frame
case("LayerTimer.report_layer_time", lambda w, kw: pk.LayerTimer().report_layer_time(**kw),
     {"layer_name": "fc1", "ms": 0.5}, {"layer_name": family(none=None, number=3), "ms": SECONDS})
case("LayerTimer.record_inference", lambda w, kw: pk.LayerTimer().record_inference(**kw),
     {"context": Lazy(lambda w: w.ctx), "batch": 1, "stream": "s", "clock": "host", "layers": []},
     {"context": family(none=None, text="c"), "batch": COUNT, "stream": family(none=None, number=3),
      "clock": CHOICE, "layers": family(none=None, text="l", bad_rows=[("fc1",)]), "query": COUNT0},
     accept=("query:none",))
case("LayerTimer.clear", lambda w, kw: pk.LayerTimer().clear(), {}, {})
case("calibrate_event_cost", lambda w, kw: pk.profiling.calibrate_event_cost(**kw), {"device": "cpu", "samples": 3},
     {"device": DEVICE, "samples": {**COUNT, **HUGE}})
case("NvmlSampler", lambda w, kw: pk.NvmlSampler(**kw), {"index": 0, "interval_ms": 10.0},
     {"index": {**COUNT0, "negative": -1}, "interval_ms": {**SECONDS, "zero": 0.0}})
case("NvmlSampler.sample", lambda w, kw: w.unless_no_gpu(pk.NvmlSampler().sample), {}, {})
case("NvmlSampler.start", lambda w, kw: pk.NvmlSampler().start().stop(), {}, {})
case("NvmlSampler.stop", lambda w, kw: pk.NvmlSampler().stop(), {}, {})
case("layer_summary", lambda w, kw: pk.profiling.layer_summary(**kw),
     {"layer_times": Lazy(lambda w: w.run.layers), "by": "layer", "sort": "total_ms"},
     {"layer_times": FRAME, "by": CHOICE, "sort": {k: v for k, v in CHOICE.items() if k not in ("none", "empty")}})

# frames ------------------------------------------------------------------------------------------
case("Column", lambda w, kw: pk.frames.Schema("s", (pk.frames.Column(**kw),)).frame([]),
     {"name": "c", "dtype": "int64", "unit": "", "meaning": "m"},
     {"name": NAME, "dtype": CHOICE, "unit": family(none=None, number=3), "meaning": family(none=None, number=3),
      "nullable": FLAG, "optional": FLAG}, accept=("unit:*", "meaning:*") + FLAGS_ANY)
case("Schema", lambda w, kw: pk.frames.Schema(**kw).frame([]),
     {"name": "s", "columns": (pk.frames.Column("c", "int64", "", "m"),), "doc": ""},
     {"name": NAME, "columns": family(none=None, text="c", number=3, not_columns=("c",),
                                      duplicate=(pk.frames.Column("c", "int64", "", "m"),) * 2),
      "doc": family(none=None, number=3)}, accept=("doc:*",))
case("Schema.frame", lambda w, kw: pk.frames.SWEEP.frame(**kw), {"rows": (), "attrs": None},
     {"rows": family(none=None, number=3, text="r", missing_columns=[{"model": "m"}], not_rows=[3]),
      "attrs": family(text="a", number=3, list=[1])})
case("Schema.validate", lambda w, kw: pk.frames.LAYER_TIMES.validate(**kw), {"df": Lazy(lambda w: w.run.layers)},
     {"df": {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)}, "strict": FLAG}, accept=FLAGS_ANY)
case("Schema.describe", lambda w, kw: pk.frames.SWEEP.describe(), {}, {})
case("get_schema", lambda w, kw: pk.frames.get_schema(**kw), {"name": "sweep"}, {"name": CHOICE})

# bench and analysis ------------------------------------------------------------------------------
case("time_inference", lambda w, kw: pk.bench.time_inference(**kw),
     {"context": Lazy(lambda w: w.ctx), "inputs": Lazy(lambda w: w.x), "batch_size": None, "warmup": 0,
      "min_iterations": 1, "min_time_s": 0.0, "max_iterations": 2},
     {"context": CONTEXT, "inputs": INPUTS, "batch_size": {**OPT_COUNT, **HUGE}, "warmup": COUNT0,
      "min_iterations": COUNT, "min_time_s": SECONDS, "max_iterations": COUNT})
case("latency_stats", lambda w, kw: pk.bench.latency_stats(**kw), {"ms": [1.0, 2.0], "batch_size": 2},
     {"ms": family(none=None, empty=[], nan=[np.nan], negative=[-1.0], text="ms", matrix=[[1.0]]),
      "batch_size": COUNT})
case("sweep", lambda w, kw: pk.bench.sweep(**kw),
     {"networks": Lazy(lambda w: w.net), "batch_sizes": (1,), "precisions": ("fp32",), "device": "cpu",
      "min_time_s": 0.0, "min_iterations": 1, "on_row": None, "engines": None, "rounds": 2, "max_cv_pct": 10.0,
      "out": None, "resume": False, "layers": False, "progress": False, "timing_cache": None},
     {"networks": {**NETWORK, "empty": [], "list_with_junk": Lazy(lambda w: [w.net, 3])},
      "batch_sizes": family(empty=(), negative=(-1,), float=(2.5,), bool=(True,), none=None, text="1", number=1,
                            huge=(10 ** 12,)),
      "precisions": family(empty=(), unknown=("int8",), none=None, text="fp32", number=3),
      "device": DEVICE, "min_time_s": SECONDS, "min_iterations": COUNT, "on_row": family(text="f", number=3),
      "engines": family(text="e", list=[]), "rounds": {**COUNT, **HUGE}, "max_cv_pct": SECONDS,
      "out": {**{k: v for k, v in WRITE_PATH.items() if k != "none"}, "folder": Lazy(lambda w: w.tmp),
              "not_parquet": Lazy(lambda w: w.new_path("sweep.csv"))},
      "resume": FLAG, "layers": FLAG, "progress": family(text="yes", number=2),
      "timing_cache": family(number=3, list=[1], empty="")},
     # a batch too large for memory is a configuration that fails: a row with its error, not an exception;
     # a dataset folder (out without .parquet) is made with its missing parents, as sweep's docstring says
     # (alone, this row failed; in a whole run an earlier row changed what it found)
     accept=("batch_sizes:huge", "out:missing_parent"))
case("measure", lambda w, kw: pk.bench.measure(**kw),
     {"context": Lazy(lambda w: w.ctx), "batch_size": None, "inputs": None, "warmup_ms": 0.0, "iterations": 2,
      "duration_s": 0.0, "percentiles": (90,), "include_transfers": True, "streams": 1, "gpu_metrics": False},
     {"context": CONTEXT, "batch_size": {**OPT_COUNT, **HUGE, "above_max": 3},
      "inputs": {k: v for k, v in INPUTS.items() if k not in ("none", "too_large_batch")}, "warmup_ms": SECONDS,
      "iterations": COUNT, "duration_s": SECONDS, "percentiles": family(none=None, text="90", above_100=(101,),
                                                                        nan=(np.nan,), negative=(-1,)),
      "include_transfers": FLAG, "streams": {**COUNT, **HUGE}, "gpu_metrics": FLAG})
case("Measurement", lambda w, kw: repr(pk.bench.Measurement(**kw)),
     {"queries": Lazy(lambda w: w.measurement.queries), "summary": Lazy(lambda w: w.measurement.summary),
      "diagnoses": Lazy(lambda w: w.measurement.diagnoses), "gpu": Lazy(lambda w: w.measurement.gpu), "meta": {}},
     {}, free={p: "a record that measure() fills; it holds what it is given" for p in
               ("queries", "summary", "diagnoses", "gpu", "meta")})
case("Measurement.value", lambda w, kw: w.measurement.value(**kw), {"metric": "latency_median_ms"}, {"metric": CHOICE})
case("fusion_benefit", lambda w, kw: pk.analysis.fusion_benefit(**kw),
     {"network": Lazy(lambda w: w.net), "config": Lazy(lambda w: w.config), "batch_size": None, "device": "cpu",
      "min_time_s": 0.0, "rounds": 1, "progress": False},
     {"network": {**{k: v for k, v in NETWORK.items() if k != "text"}, "unknown_name": "no_such_model"},  # "mlp": a sample
      "config": family(text="fp16", number=3, dict={}), "batch_size": {**OPT_COUNT, **HUGE},
      "device": DEVICE, "min_time_s": SECONDS, "rounds": {**COUNT, **HUGE},
      "progress": family(text="yes", number=2)})

# plots -------------------------------------------------------------------------------------------
case("plot_sweep", lambda w, kw: w.closing(pk.plots.plot_sweep(**kw)),
     {"frame": Lazy(lambda w: w.sweep_frame), "metric": "latency_median_ms", "ax": None, "logy": True},
     {"frame": {**FRAME, "other_frame": Lazy(lambda w: w.run.layers)},
      "metric": {**CHOICE, "text_column": "model"}, "ax": AX, "logy": FLAG})
case("plot_fusion_benefit", lambda w, kw: w.closing(pk.plots.plot_fusion_benefit(**kw)),
     {"frame": Lazy(lambda w: w.fusion_frame), "ax": None},
     {"frame": {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)}, "ax": AX})
case("plot_layer_timeline", lambda w, kw: w.closing(pk.plots.plot_layer_timeline(**kw)),
     {"layer_times": Lazy(lambda w: w.run.layers), "iterations": None, "ax": None, "label_min_pct": 4.0,
      "kernels": None, "memory_events": None, "top": 10},
     {"layer_times": {**FRAME, "other_frame": Lazy(lambda w: w.sweep_frame)},
      "iterations": family(missing=10 ** 6, text="1", float=0.5, empty=[], list_with_junk=[0, "x"]), "ax": AX,
      "label_min_pct": SECONDS,
      "kernels": {**{k: v for k, v in FRAME.items() if k != "none"}, "other_frame": Lazy(lambda w: w.run.layers)},
      "memory_events": {**{k: v for k, v in FRAME.items() if k != "none"},
                        "other_frame": Lazy(lambda w: w.sweep_frame)},
      "top": COUNT})

# sample networks ---------------------------------------------------------------------------------
SEED = family(negative=-1, float=0.5, text="0", none=None, bool=True)
case("mnist_mlp", lambda w, kw: pk.models.mnist_mlp(**kw), {"seed": 0}, {"seed": SEED})
case("lenet", lambda w, kw: pk.models.lenet(**kw), {"seed": 0}, {"seed": SEED})
case("resnet_small", lambda w, kw: pk.models.resnet_small(**kw),
     {"seed": 0, "width": 2, "blocks": (1, 1), "num_classes": 3, "image": 8},
     {"seed": SEED, "width": {**COUNT, **HUGE}, "blocks": family(empty=(), zero=(0,), float=(1.5,), none=None, text="11",
                                                                  huge=(10 ** 9,), many_stages=(1,) * 40),
      "num_classes": {**COUNT, **HUGE}, "image": {**COUNT, "too_small": 1}})
case("mlp", lambda w, kw: pk.models.mlp(**kw), {"widths": (4, 3), "activation": "relu", "seed": 0, "name": None},
     {"widths": family(one=(4,), zero=(4, 0), float=(4, 2.5), bool=(True, 3), none=None, text="43", huge=(10 ** 7,) * 2),
      "activation": CHOICE, "seed": SEED, "name": OPT_NAME}, accept=("activation:*",))
case("transformer_encoder", lambda w, kw: pk.models.transformer_encoder(**kw),
     {"seq_len": 2, "d_model": 8, "heads": 2, "d_ff": 4, "seed": 0},
     {"seq_len": COUNT, "d_model": {**COUNT, **HUGE}, "heads": {**COUNT, "not_dividing": 3}, "d_ff": {**COUNT, **HUGE},
      "seed": SEED})
case("sample_input", lambda w, kw: pk.models.sample_input(**kw),
     {"network": Lazy(lambda w: w.net), "batch_size": 2, "seed": 0},
     {"network": family(none=None, text="net", number=3), "batch_size": {**COUNT, **HUGE}, "seed": SEED})
case("LayerTimer.queries", lambda w, kw: pk.LayerTimer().queries(), {}, {})
case("cuda_available", lambda w, kw: pk.cuda_available(), {}, {})
case("registered_ops", lambda w, kw: pk.registered_ops(), {}, {})
case("registered_plugins", lambda w, kw: pk.registered_plugins(), {}, {})
case("Engine.host_weights", lambda w, kw: w.engine.host_weights(), {}, {})
case("EngineSetContext", lambda w, kw: pk.runtime.EngineSetContext(**kw).execute(w.x),
     {"engine_set": Lazy(lambda w: w.es)}, {"engine_set": family(none=None, text="es", engine=Lazy(lambda w: w.engine))})

# a device's methods (the CPU device here; tests/device covers CUDA)
case("Device.create_stream", lambda w, kw: w.device.create_stream(), {}, {})
case("Device.create_event", lambda w, kw: w.device.create_event(), {}, {})
case("Device.synchronize", lambda w, kw: w.device.synchronize(), {}, {})
case("Device.activate", lambda w, kw: w.device.activate(), {}, {})
case("Device.info", lambda w, kw: w.device.info(), {}, {})
case("Device.is_device_array", lambda w, kw: w.device.is_device_array(**kw), {"a": np.ones(2)}, {},
     free={"a": "a question about any object; every value has an answer"})
case("Device.elapsed_ms", lambda w, kw: w.device.elapsed_ms(**kw),
     {"start": Lazy(lambda w: w.recorded_event()), "end": Lazy(lambda w: w.recorded_event())},
     {"start": family(none=None, text="e", unrecorded=Lazy(lambda w: w.device.create_event())),
      "end": family(none=None, number=3)})
case("Device.to_device", lambda w, kw: w.device.to_device(**kw), {"host": np.ones(3), "stream": None, "out": None},
     {"host": family(none=None, text="abc", ragged=Lazy(lambda w: [[1.0], [1.0, 2.0]])),
      "stream": family(text="s", number=3), "out": family(text="o", wrong_shape=np.empty(5), number=3)})
case("Device.to_host", lambda w, kw: w.device.to_host(**kw), {"a": np.ones(3), "stream": None, "out": None},
     {"a": family(none=None, text="abc"), "stream": family(text="s", number=3),
      "out": family(text="o", wrong_shape=np.empty(5), number=3)}, accept=("a:text",))
case("Device.pinned_empty", lambda w, kw: w.device.pinned_empty(**kw), {"shape": (3,), "dtype": "float32"},
     {"shape": {**SHAPE, "huge": (10 ** 12,)}, "dtype": {k: v for k, v in CHOICE.items() if k != "none"}},
     accept=("shape:empty", "shape:zero"))


# rows kept in files of their own, one per area (tests/bad_argument_rows_<area>.py), so that work on one area
# does not edit this file: every such file present is imported, in name order
import glob as _glob  # noqa: E402
import os  # noqa: E402
import importlib as _importlib  # noqa: E402

for _f in sorted(_glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_argument_rows_*.py"))):
    _importlib.import_module(os.path.basename(_f)[:-3])
