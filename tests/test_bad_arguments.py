"""Every public function and method, called with bad arguments: only a PerfkitError may escape, and
its message is not empty.

The public API is enumerated with ``inspect`` (the ``__all__`` of perfkit and its user-facing
subpackages, every class's public methods), so a new public callable without a row in
tests/bad_argument_table.py fails ``test_every_public_callable_has_a_row`` until it gets one or an
entry, with its reason, in ``EXCLUDED``. The command line has its own table in tests/test_cli.py.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import os

import numpy as np
import pytest

import perfkit as pk
from bad_argument_table import CASES
from bad_argument_values import resolve

MODULES = (pk, pk.bench, pk.analysis, pk.plots, pk.models, pk.profiling, pk.frames)
if importlib.util.find_spec("perfkit.report"):
    import perfkit.report       # the demo's self-contained HTML report
    MODULES += (perfkit.report,)
if importlib.util.find_spec("perfkit.onnx") and importlib.util.find_spec("perfkit.onnx.loader"):
    import perfkit.onnx         # ONNX import (its functions import onnx lazily)
    MODULES += (perfkit.onnx,)
if importlib.util.find_spec("ipywidgets") and importlib.util.find_spec("perfkit.widgets"):
    import perfkit.widgets      # the explorers need ipywidgets (the notebook and test extras)
    MODULES += (perfkit.widgets,)
# public classes reached through a method rather than an export
REACHABLE = (pk.runtime.EngineSetContext,)

EXCLUDED = {
    "Profiler": "a typing.Protocol: the interface a user's profiler implements, never called by users",
    "Profiler.report_layer_time": "the Protocol's method (LayerTimer.report_layer_time has a row)",
    "Layer": "made by Network.add_*; users receive layers, they do not construct them",
    "Tensor": "made by Network.add_input and the adders; users receive tensors, they do not construct them",
    "CupyAllocationHook": "CUDA only (routes CuPy's allocations through a tracker); covered by the GPU profiling tests",
    "Device": "abstract; devices come from get_device (whose argument has a row), its methods have rows",
}


def _public_classes() -> set:
    found = set(REACHABLE)
    for mod in MODULES:
        for n in mod.__all__:
            obj = getattr(mod, n)
            if isinstance(obj, type) and not issubclass(obj, BaseException):
                found.add(obj)
    return found


def public_api() -> dict:
    """Qualified name -> callable, for every public function, class and method."""
    classes = _public_classes()
    api = {}
    for mod in MODULES:
        for n in mod.__all__:
            obj = getattr(mod, n)
            if inspect.ismodule(obj) or not callable(obj) or (isinstance(obj, type) and issubclass(obj, BaseException)):
                continue
            api[getattr(obj, "__name__", n)] = obj
    for cls in classes:
        api[cls.__name__] = cls
        for name in dir(cls):
            if name.startswith("_"):
                continue
            owner = next(k for k in cls.__mro__ if name in vars(k))
            attr = vars(owner)[name]
            if isinstance(attr, (property, functools.cached_property)) or not inspect.isroutine(getattr(cls, name)):
                continue
            where = owner if owner in classes else cls
            api[f"{where.__name__}.{name}"] = getattr(cls, name)
    return api


def _parameters(obj) -> list:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name != "self" and
            p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def test_every_public_callable_has_a_row():
    api = set(public_api())
    missing = sorted(api - set(CASES) - set(EXCLUDED))
    assert not missing, f"public callables without a row in tests/bad_argument_table.py: {missing}"
    stale = sorted((set(CASES) | set(EXCLUDED)) - api)
    assert not stale, f"rows for callables that are not public (renamed or removed?): {stale}"


def test_every_parameter_has_bad_values_or_a_reason():
    api = public_api()
    gaps = {}
    for name, c in CASES.items():
        params = set(_parameters(api[name]))
        covered = set(c.bad) | set(c.free)
        if params - covered or covered - params or set(c.good) - params:
            gaps[name] = {"uncovered": sorted(params - covered), "unknown": sorted((covered | set(c.good)) - params)}
    assert not gaps, gaps


ROWS = [pytest.param(name, param, label, id=f"{name}-{param}-{label}")
        for name, c in CASES.items() for param, values in c.bad.items() for label in values]


class World:
    """The objects the table's calls run on: a tiny network, engine, contexts, a run and frames."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.device = pk.get_device("cpu")
        self.text_file = os.path.join(tmp, "notes.txt")
        with open(self.text_file, "w") as f:
            f.write("not an engine, not a run, not JSON\n")
        self.empty_dir = os.path.join(tmp, "empty")
        os.makedirs(self.empty_dir)
        self.net = pk.models.mlp((4, 3, 2), seed=1, name="tiny")
        self.config = pk.BuilderConfig(max_batch_size=2, tactics="default")
        self.engine = self.build_engine()
        hw = getattr(self.engine, "host_weights", None)
        self.host_weights = hw() if callable(hw) else hw
        self.ctx = self.engine.create_execution_context()
        self.x = pk.models.sample_input(self.net, 2)
        self.stream = self.device.create_stream()
        self.engine_file = os.path.join(tmp, "tiny.engine")
        self.engine.save(self.engine_file)
        self.es = pk.EngineSet(self.net, [1, 2], self.config)
        self.counting = pk.CountingAllocator(self.device.allocator)
        self.tracking = pk.TrackingAllocator()
        self._paths = 0
        pk.register_plugin("bad_args_double", lambda shapes, params: shapes, impl=lambda xp, ins, params: [ins[0] * 2],
                           replace=True)
        with pk.profile(self.ctx, gpu_metrics=False) as self.run:
            self.ctx.execute(self.x)
            self.ctx.execute(self.x)
        self.run_dir = self.run.save(os.path.join(tmp, "run"))
        self.sweep_frame = pk.bench.sweep(self.net, (1, 2), device="cpu", min_time_s=0.0, min_iterations=1)
        self.fusion_frame = pk.analysis.fusion_benefit(self.net, self.config, device="cpu", min_time_s=0.0, rounds=1)
        self.measurement = pk.bench.measure(self.ctx, warmup_ms=0, iterations=2, duration_s=0.0, gpu_metrics=False)

    def build_engine(self):
        return pk.Builder("cpu").build(self.net, self.config)

    def fresh_net(self) -> pk.Network:
        net = pk.Network("fresh")
        x = net.add_input("x", (4,))
        net.add_input("img", (2, 6, 6))
        net.add_input("m", (3, 4))
        net.add_input("idx", (3,), "int32")
        net.add_activation(x, "relu", name="x_relu")
        return net

    def foreign_tensor(self):
        return pk.Network("other").add_input("x", (4,))

    def cyclic_net(self) -> pk.Network:
        net = pk.Network("cyclic")
        x = net.add_input("x", (4,))
        a = net.add_activation(x, "relu", name="a")
        b = net.add_activation(a.output, "tanh", name="b")
        net.mark_output(b.output)
        a.inputs = [b.output]
        return net

    def fresh_run(self):
        return pk.profiling.Run(self.ctx, gpu_metrics=False, baseline=False)

    def new_path(self, name: str) -> str:
        self._paths += 1
        return os.path.join(self.tmp, f"{self._paths}_{name}")

    def bindings(self) -> dict:
        return {"data": self.x["data"], "output": np.empty((2, 2), np.float32)}

    def enqueue(self, stream=None, **kw):
        ctx = self.ctx
        out = ctx.enqueue(stream=stream if stream is not None else self.stream, **kw)
        (stream if stream is not None else self.stream).synchronize()
        return out

    def register(self, **kw):
        try:
            return pk.register_plugin(**kw)
        finally:
            pk.unregister_plugin("bad_args_other")

    @staticmethod
    def unless_no_gpu(f):
        """``f()``; without a GPU a DeviceError that says so is the right answer."""
        try:
            return f()
        except pk.DeviceError:
            if pk.cuda_available():
                raise

    def recorded_event(self):
        e = self.device.create_event()
        e.record(self.stream)
        self.stream.synchronize()
        return e

    def figure(self):
        import matplotlib.pyplot as plt
        fig = plt.figure()
        plt.close(fig)
        return fig

    @staticmethod
    def closing(fig):
        import matplotlib.pyplot as plt
        plt.close(fig)
        return fig


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import matplotlib
    matplotlib.use("Agg")
    w = World(str(tmp_path_factory.mktemp("bad_arguments")))
    yield w
    pk.unregister_plugin("bad_args_double")


def _call(world, name, param=None, value=None):
    c = CASES[name]
    kw = {k: resolve(v, world) for k, v in c.good.items()}
    if param is not None:
        kw[param] = resolve(value, world)
    return c.call(world, kw)


@pytest.mark.parametrize("name", list(CASES))
def test_good_arguments_are_accepted(world, name):
    """Each row's good call works, so a refused bad value is refused for that value alone."""
    _call(world, name)


def _check_row(world, name, param, label):
    c = CASES[name]
    may_accept = {f"{param}:{label}", f"{param}:*", f"*:{label}"} & c.accept
    try:
        _call(world, name, param, c.bad[param][label])
    except pk.PerfkitError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return
    assert may_accept, f"{name}({param}={label}) was accepted; it must raise a PerfkitError naming the problem"


@pytest.mark.parametrize("name, param, label", ROWS)
def test_bad_argument_raises_only_perfkit_errors(world, name, param, label):
    _check_row(world, name, param, label)
