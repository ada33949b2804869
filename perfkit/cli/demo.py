"""``perfkit demo``: the main job (perfkit/demo.py) from the command line."""
from __future__ import annotations

from typing import Any

from . import _args as A


def add_parser(sub: Any) -> None:
    from ..demo import DEMO_MODELS
    from ..models import SAMPLES
    from ..precision import PRECISIONS
    d = sub.add_parser("demo", help="build the sample networks, time them, write frames, charts and report.html",
                       description="The tour: sweep the sample networks over batch size and precision, profile each, "
                                   "and write frames, traces, charts and one report.html into a new folder under "
                                   "--out.", formatter_class=A.Formatter)
    d.add_argument("--device", metavar="D",
                   type=A.device, default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    d.add_argument("--out", default="runs", help="directory for the run's files")
    d.add_argument("--batch-sizes", type=A.comma_list(int, what="batch size"), default=[1, 8, 32, 64],
                   help="comma-separated positive ints (default: 1,8,32,64)")
    d.add_argument("--precisions", type=A.comma_list(str, PRECISIONS, "precision"), default=["fp32", "fp16"],
                   help=f"comma-separated from {', '.join(PRECISIONS)} (default: fp32,fp16)")
    d.add_argument("--models", type=_models(tuple(SAMPLES)), default=list(DEMO_MODELS),
                   help=f"comma-separated sample names ({', '.join(SAMPLES)}) or .onnx files "
                        f"(default: {','.join(DEMO_MODELS)})")
    d.add_argument("--min-time", metavar="S", type=A.seconds, default=0.15, help="seconds of timing per configuration")
    d.set_defaults(func=command)


def _models(samples: tuple) -> Any:
    """``--models``: sample names, or paths of existing .onnx files."""
    import argparse
    import os
    names = A.comma_list(str, None, "model")

    def parse(text: str) -> list:
        out = names(text)
        for m in out:
            if m.lower().endswith(".onnx"):
                if not os.path.isfile(m):
                    raise argparse.ArgumentTypeError(f"ONNX model {m!r} does not exist")
            elif m not in samples:
                raise argparse.ArgumentTypeError(f"unknown model {m!r}; choose from {', '.join(samples)} or give an "
                                                 ".onnx file")
        return out
    parse.__name__ = "model"
    return parse


def command(args: Any) -> None:
    from ..demo import demo
    demo(args.device, args.out, args.batch_sizes, args.precisions, args.models, args.min_time)
