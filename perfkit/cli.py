"""The ``perfkit`` command: ``perfkit demo`` (the main job, in perfkit/demo.py) and ``perfkit info``."""
from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Sequence

from .demo import DEMO_MODELS, demo


def info() -> None:
    import perfkit
    from .device import cuda_available, get_device
    print(f"perfkit {perfkit.__version__}")
    for k, v in get_device("cpu").info().items():
        print(f"  cpu {k}: {v}")
    if cuda_available():
        from .runtime.cuda_graph import graph_support
        for k, v in get_device("cuda").info().items():
            print(f"  cuda {k}: {v}")
        print(f"  cuda graphs: {'on (contexts replay once warm)' if not graph_support() else 'off: ' + graph_support()}")
    else:
        print("  cuda: not available (no CuPy or no GPU)")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and a return code, not an exit with usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog.split()[0]} --help)")


def _comma_list(kind: type, choices: Sequence[str] | None = None, what: str = "value"):
    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"give at least one {what}")
        out = []
        for t in items:
            if kind is int:
                if not t.isdigit() or int(t) < 1:
                    raise argparse.ArgumentTypeError(f"{t!r} is not a positive integer {what}")
                out.append(int(t))
            elif choices is not None and t not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {t!r}; choose from {', '.join(choices)}")
            else:
                out.append(t)
        return list(dict.fromkeys(out))
    parse.__name__ = what            # argparse names the type in its messages
    return parse


def _device(text: str) -> str:
    if not re.fullmatch(r"(auto|cpu|cuda(:\d+)?)", text.strip().lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or auto")
    return text.strip().lower()


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite, non-negative number of seconds")
    return v


def parser() -> argparse.ArgumentParser:
    from .models import SAMPLES
    from .network import PRECISIONS
    p = _Parser(prog="perfkit", description="Measure and understand inference performance.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("demo", help="build the sample networks, time them, write frames and a chart")
    d.add_argument("--device", type=_device, default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    d.add_argument("--out", default="runs", help="directory for the run's files (default: runs)")
    d.add_argument("--batch-sizes", type=_comma_list(int, what="batch size"), default=[1, 8, 32, 64],
                   help="comma-separated positive ints (default: 1,8,32,64)")
    d.add_argument("--precisions", type=_comma_list(str, PRECISIONS, "precision"), default=["fp32", "fp16"],
                   help=f"comma-separated from {', '.join(PRECISIONS)} (default: fp32,fp16)")
    d.add_argument("--models", type=_comma_list(str, tuple(SAMPLES), "model"), default=list(DEMO_MODELS),
                   help=f"comma-separated from {', '.join(SAMPLES)} (default: {','.join(DEMO_MODELS)})")
    d.add_argument("--min-time", type=_seconds, default=0.15, help="seconds of timing per configuration")
    sub.add_parser("info", help="show perfkit's version and the devices it can use")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 and one line on stderr for a user error)."""
    from .errors import PerfkitError
    try:
        args = parser().parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.command == "demo":
            demo(args.device, args.out, args.batch_sizes, args.precisions, args.models, args.min_time)
        else:
            info()
    except PerfkitError as exc:
        print(f"perfkit: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
