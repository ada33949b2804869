"""``perfkit info``: perfkit's version and the devices it can use."""
from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show perfkit's version and the devices it can use",
                       description="Show perfkit's version and the devices it can use.")
    p.set_defaults(func=command)


def command(args: Any = None) -> None:
    from .._version import __version__
    from ..device import cuda_available, get_device
    print(f"perfkit {__version__}")
    for k, v in get_device("cpu").info().items():
        print(f"  cpu {k}: {v}")
    if cuda_available():
        from ..runtime.cuda_graph import graph_support
        for k, v in get_device("cuda").info().items():
            print(f"  cuda {k}: {v}")
        reason = graph_support()
        print(f"  cuda graphs: {'on (contexts replay once warm)' if not reason else 'off: ' + reason}")
    else:
        print("  cuda: not available (no CuPy or no GPU)")
    from ..models import SAMPLES
    print(f"  sample networks: {', '.join(SAMPLES)}")
    try:
        import onnx
        print(f"  onnx import: available (onnx {onnx.__version__})")
    except ImportError:
        print("  onnx import: not installed (pip install 'perfkit[onnx]')")
