"""MODEL on the command line: a sample network's name, an ONNX file, or a saved engine file."""
from __future__ import annotations

import os
from typing import Any

from ..errors import ArgumentError


def is_engine_file(model: str) -> bool:
    """Whether ``model`` names an existing file that is not an ONNX model (so it is read as an engine file)."""
    return os.path.isfile(model) and not model.lower().endswith(".onnx")


def network(model: str, shapes: dict | None = None) -> Any:
    """The Network that ``model`` names: a sample network (``perfkit.models.SAMPLES``) or an ``.onnx`` file
    (``shapes``: per-sample dims of its inputs whose dims are symbolic, ``--shapes``).
    An engine file, a missing file or an unknown name is an ArgumentError that says what MODEL may be."""
    from ..models import SAMPLES
    if shapes and not model.lower().endswith(".onnx"):
        raise ArgumentError(f"--shapes sets the symbolic dims of an ONNX model's inputs; {model!r} is not an .onnx "
                            "file: leave --shapes out")
    if is_engine_file(model):
        raise ArgumentError(f"MODEL {model!r} is an engine file, and this command builds engines: give an ONNX file "
                            f"or a sample network ({', '.join(SAMPLES)}); run an engine file with `perfkit run`")
    if model.lower().endswith(".onnx"):
        if not os.path.isfile(model):
            raise ArgumentError(f"MODEL {model!r} does not exist; give the path of an ONNX file")
        return _from_onnx(model, shapes)
    if model in SAMPLES:
        return SAMPLES[model]()
    looks_like_path = os.sep in model or "." in os.path.basename(model)
    raise ArgumentError(f"MODEL {model!r} " + ("does not exist; give an existing ONNX or engine file"
                                               if looks_like_path else "is not a file or a sample network")
                        + f" (samples: {', '.join(SAMPLES)})")


def _from_onnx(path: str, shapes: dict | None = None) -> Any:
    """``perfkit.onnx.load``; without the onnx package its OnnxDependencyError (a PerfkitError) names
    ``pip install perfkit[onnx]``."""
    from ..onnx import OnnxImportError, load
    try:
        return load(path, input_shapes=shapes or None)
    except OnnxImportError as exc:
        if "input_shapes=" not in str(exc):
            raise
        raise ArgumentError(f"{exc}; on the command line: --shapes NAME:D1xD2 (per sample, e.g. x:128x16)") from None


def default_batch(net: Any) -> int:
    """The batch an ONNX file fixes (its leading dimension), else 1."""
    info = getattr(net, "import_info", None)
    fixed = getattr(info, "max_batch_size", None)
    return fixed if isinstance(fixed, int) and fixed > 0 else 1


def device(spec: Any, cpu_threads: int | None = None) -> Any:
    """``get_device(spec)``, with the CPU device's BLAS threads set to ``cpu_threads`` when given."""
    from ..device import get_device
    if cpu_threads is None:
        return get_device(spec)
    dev = get_device(spec)
    if dev.kind != "cpu":
        raise ArgumentError(f"--cpu-threads sets the CPU device's BLAS threads; {dev.spec} has none: leave it out or "
                            "use --device cpu")
    return get_device(dev, threads=cpu_threads)


def engine(path: str, device_spec: Any, cpu_threads: int | None = None) -> Any:
    """The engine saved in ``path``, loaded onto ``device_spec`` (None: the kind it was built for)."""
    from ..runtime import load_engine
    dev = device(device_spec, cpu_threads) if device_spec is not None or cpu_threads is not None else None
    return load_engine(path, dev)


def inputs_file(path: str, specs: list, batch: int) -> dict:
    """The arrays of an ``.npz`` file (read without pickle: nothing in it runs) for bindings ``specs`` (name,
    per-sample shape, dtype), each holding at least ``batch`` samples; anything else is one ArgumentError."""
    import numpy as np
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        why = str(exc).split(". ")[0].rstrip(".")        # numpy's first sentence (not its advice to unpickle)
        raise ArgumentError(f"--inputs {path!r} is not a NumPy .npz of plain arrays ({why}); write it with "
                            "numpy.savez(path, name=array, ...)") from None
    names = [n for n, _, _ in specs]
    if sorted(arrays) != sorted(names):
        raise ArgumentError(f"--inputs {path!r} holds {sorted(arrays)}; the model's inputs are {names}: save one array "
                            "per input, named after it")
    for name, shape, dtype in specs:
        a, want = arrays[name], tuple(shape)
        if a.ndim != len(want) + 1 or tuple(a.shape[1:]) != want or a.shape[0] < batch:
            raise ArgumentError(f"--inputs: {name!r} has shape {tuple(a.shape)}; it needs (N,) + {want} with N at "
                                f"least the largest batch, {batch}")
        if a.dtype != np.dtype(dtype):
            raise ArgumentError(f"--inputs: {name!r} is {a.dtype}; the model takes {np.dtype(dtype)} (convert with "
                                f"array.astype('{np.dtype(dtype)}'))")
    return arrays


def not_an_input(target: str, flag: str, inputs: list) -> None:
    """Refuses an output path that names one of the command's input files (it would be replaced)."""
    for given in inputs:
        if given and os.path.exists(given) and os.path.exists(target) and os.path.samefile(given, target):
            raise ArgumentError(f"{flag} {target!r} is also an input of this command and would be overwritten; "
                                "write the output elsewhere")


def timing_cache(path: str | None) -> Any:
    """The TimingCache in ``path`` (read now, so that an unreadable one is refused before anything is built; the
    builder writes it back after a build that timed something new), or None."""
    if path is None:
        return None
    from ..builder.tactics import TimingCache, TimingCacheError
    try:
        return TimingCache(path)
    except TimingCacheError as exc:
        raise ArgumentError(f"--timing-cache {path!r} is not a timing cache this perfkit can use ({exc}); name a new "
                            "file (it is created), or remove that one if perfkit wrote it") from None
