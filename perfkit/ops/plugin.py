"""Plugin layers (guide chapter 4): user operations registered by name, per device.

``register_plugin(name, shape_fn, impls={"cpu": f, "cuda": g})`` or ``impl=f`` for one function
written against the array module. An implementation is ``f(xp, inputs, params) -> array or list``;
``shape_fn(input_shapes, params) -> shape or list of shapes`` (per sample). Plugin layers are
saved with an engine by name and parameters (JSON), never as code: loading an engine whose plugin
is not registered in the loading process raises :class:`PluginNotRegisteredError`. Plugins are
shared by every context of an engine, so an implementation must be thread-safe.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..errors import PluginError, PluginNotRegisteredError, ShapeError
from .base import Cost, Op, TensorSpec, register_op


@dataclass
class PluginSpec:
    name: str
    shape_fn: Callable
    impls: dict = field(default_factory=dict)
    cost_fn: Callable | None = None
    dtype_fn: Callable | None = None


_PLUGINS: dict[str, PluginSpec] = {}
_lock = threading.Lock()


def register_plugin(name: str, shape_fn: Callable, impls: dict | None = None, *, impl: Callable | None = None,
                    cost_fn: Callable | None = None, dtype_fn: Callable | None = None,
                    replace: bool = False) -> PluginSpec:
    """Registers a plugin. ``impls`` maps ``"cpu"``/``"cuda"`` to implementations; ``impl`` serves any device."""
    if not isinstance(name, str) or not name:
        raise PluginError("a plugin needs a non-empty string name")
    if not callable(shape_fn):
        raise PluginError(f"plugin {name!r}: shape_fn must be callable")
    if impls is not None and not isinstance(impls, dict):
        raise PluginError(f"plugin {name!r}: impls must be a dict such as {{'cpu': f}}, not {type(impls).__name__}")
    table = dict(impls or {})
    if impl is not None:
        table.setdefault("any", impl)
    if not table:
        raise PluginError(f"plugin {name!r} has no implementation: pass impls={{'cpu': f}} or impl=f")
    bad = [k for k in table if k not in ("cpu", "cuda", "any")]
    if bad or not all(callable(f) for f in table.values()):
        raise PluginError(f"plugin {name!r}: impls keys must be 'cpu', 'cuda' or 'any' with callables, got {list(table)}")
    spec = PluginSpec(name, shape_fn, table, cost_fn, dtype_fn)
    with _lock:
        if name in _PLUGINS and not replace:
            raise PluginError(f"a plugin named {name!r} is already registered; pass replace=True to replace it")
        _PLUGINS[name] = spec
    return spec


def unregister_plugin(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise PluginError(f"unregister_plugin needs a plugin's name (a non-empty string), not {name!r}")
    with _lock:
        _PLUGINS.pop(name, None)


def get_plugin(name: str) -> PluginSpec:
    with _lock:
        spec = _PLUGINS.get(name)
    if spec is None:
        known = ", ".join(sorted(_PLUGINS)) or "none"
        raise PluginNotRegisteredError(
            f"plugin {name!r} is not registered in this process (registered: {known}); call "
            f"perfkit.register_plugin({name!r}, ...) before building or loading a network that uses it")
    return spec


def registered_plugins() -> list[str]:
    with _lock:
        return sorted(_PLUGINS)


@register_op
class Plugin(Op):
    type = "plugin"
    short = "plugin"
    min_inputs = 0
    max_inputs = None

    def check(self, params, weights):
        get_plugin(params.get("plugin"))
        params["params"] = dict(params.get("params") or {})
        try:
            json.dumps(params["params"])
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {params['plugin']!r}: parameters must be JSON-serialisable "
                              f"(numbers, strings, lists, dicts): {exc}") from None
        return params

    def infer(self, params, inputs, weights):
        spec = get_plugin(params["plugin"])
        try:
            shapes = spec.shape_fn([tuple(t.shape) for t in inputs], params["params"])
        except ShapeError:
            raise
        except Exception as exc:
            raise ShapeError(f"plugin {spec.name!r}: shape_fn failed on input shapes "
                             f"{[tuple(t.shape) for t in inputs]}: {exc}") from exc
        if isinstance(shapes, tuple) and all(isinstance(d, int) for d in shapes):
            shapes = [shapes]
        out = []
        for i, s in enumerate(shapes):
            s = tuple(int(d) for d in s)
            if not s or any(d <= 0 for d in s):
                raise ShapeError(f"plugin {spec.name!r}: output {i} shape {s} must have positive dimensions")
            dtype = spec.dtype_fn(i, [t.dtype for t in inputs]) if spec.dtype_fn else \
                (inputs[0].dtype if inputs else "float32")
            out.append(TensorSpec(s, dtype))
        params["num_outputs"] = len(out)
        return out

    def compute(self, env, ins, outs, params, weights):
        spec = get_plugin(params["plugin"])
        fn = spec.impls.get(env.device_kind) or spec.impls.get("any")
        if fn is None:
            raise PluginError(f"plugin {spec.name!r} has no implementation for the {env.device_kind} device "
                              f"(it has: {', '.join(spec.impls)})")
        res = fn(env.xp, list(ins), params["params"])
        if not isinstance(res, (list, tuple)):
            res = [res]
        if len(res) != len(outs):
            raise PluginError(f"plugin {spec.name!r} returned {len(res)} outputs, its shape_fn declared {len(outs)}")
        for o, r in zip(outs, res):
            if tuple(r.shape) != tuple(o.shape):
                raise PluginError(f"plugin {spec.name!r} returned shape {tuple(r.shape)}, expected {tuple(o.shape)}")
            o[...] = r

    def cost(self, params, inputs, outputs, weights):
        spec = get_plugin(params["plugin"])
        if spec.cost_fn:
            flops, moved = spec.cost_fn([tuple(t.shape) for t in inputs], params["params"])
            return Cost(float(flops), float(moved))
        return super().cost(params, inputs, outputs, weights)

    @property
    def output_names(self):  # noqa: D401 - plugin outputs are numbered
        return None
