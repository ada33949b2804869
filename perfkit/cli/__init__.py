"""The ``perfkit`` command: ``run`` (trtexec-style measurement), ``build``, ``inspect``, ``sweep``, ``serve-bench``,
``demo`` (the main job, in perfkit/demo.py) and ``info``. One module per subcommand, each a thin layer over the
Python API; ``_report`` formats, ``_files`` stages every output under a temporary name, ``_model`` reads MODEL.

A user error is one line on stderr and exit status 2, found before anything is built or written; an interrupted
command exits 130; neither leaves a partial file or an empty folder behind."""
from __future__ import annotations

import sys
from typing import Sequence

from . import _args as A

#: the subcommand modules, in the order ``--help`` lists them
_COMMANDS = ("run", "build", "inspect_engine", "sweep", "serve_bench", "demo", "info")

_EPILOG = """examples:
  perfkit run mnist_mlp --batch 1,32 --precision fp32,fp16        time a sample network like trtexec
  perfkit build model.onnx -o model.engine --batch 32              build once, save the engine
  perfkit inspect model.engine                                     layers, precisions, tactics, memory plan
  perfkit run model.engine --export-times times.json               run a saved engine
  perfkit sweep lenet --batch 1,8,64 --precision fp32,fp16         latency and throughput against batch size
  perfkit serve-bench mnist_mlp --rate 2000 --max-delay-ms 0,1,4   opportunistic batching under load
  perfkit demo                                                     the whole tour, into runs/<time>/

MODEL is a sample network (mnist_mlp, lenet, resnet_small, mlp, transformer_encoder), an .onnx file, or an
engine file saved by perfkit. `perfkit COMMAND --help` describes each command."""


def parser() -> A.Parser:
    import importlib

    from .._version import __version__
    p = A.Parser(prog="perfkit", description="Measure and understand inference performance: a TensorRT-shaped "
                 "engine on NumPy or CuPy, measured like trtexec.", epilog=_EPILOG, formatter_class=A.Formatter)
    p.add_argument("--version", action="version", version=f"perfkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=A.Parser)
    for name in _COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status: 0, 2 and one line on stderr for a user error, 130 when
    interrupted, or what the subcommand returns (``sweep``: 1 when every configuration failed)."""
    from ..errors import PerfkitError
    try:
        args = parser().parse_args(argv)
    except A.UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        status = args.func(args)
    except PerfkitError as exc:
        print(f"perfkit {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"perfkit {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `perfkit ... | head`: the reader left; not an error of ours
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())     # no second error when Python exits
        return 0
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
