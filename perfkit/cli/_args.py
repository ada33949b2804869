"""Argument types and the parser class shared by the subcommands: a bad value is refused while parsing, before
anything runs or is written, with one line that names the option, the value and what to give instead."""
from __future__ import annotations

import argparse
import math
import os
import re
from typing import Sequence


class UsageError(Exception):
    """A command-line mistake found while parsing: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and a return code, not an exit with usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hints = [f"{flag} is {hint}" for flag, hint in TRTEXEC_HINTS.items()
                 if "unrecognized arguments" in message and re.search(rf"(^|\s){re.escape(flag)}(=|\s|$)", message)]
        hint = f"; trtexec's {'; '.join(hints)}" if hints else ""
        raise UsageError(f"{self.prog}: error: {message}{hint} (see {self.prog} --help)")


#: trtexec's flags that perfkit spells otherwise, and what to write instead
TRTEXEC_HINTS = {
    "--onnx": "MODEL: give the .onnx path itself (perfkit run model.onnx)",
    "--loadEngine": "--load-engine F (or the engine path as MODEL)", "--saveEngine": "--save-engine F",
    "--fp16": "--precision fp16 (fp32,fp16 times both)", "--bf16": "--precision bf16",
    "--int8": "not available: perfkit runs fp32, fp16 and bf16", "--best": "--precision fp32,fp16,bf16",
    "--shapes": "--shapes NAME:DxD (per-sample dims) with --batch N", "--minShapes": "--shapes and --batch",
    "--optShapes": "--shapes and --batch", "--maxShapes": "--shapes and --batch",
    "--warmUp": "--warmup-ms MS", "--duration": "--duration-s S", "--exportTimes": "--export-times F",
    "--exportProfile": "--export-profile F", "--exportLayerInfo": "--export-layer-info F",
    "--exportOutput": "--export-output F", "--loadInputs": "--inputs F.npz", "--dumpProfile": "--dump-profile",
    "--useCudaGraph": "--graph (on by default)", "--noDataTransfers": "--no-transfers",
    "--timingCacheFile": "--timing-cache F", "--avgRuns": "not needed: every statistic is over all timed runs",
    "--percentile": "--percentiles P,P", "--device": "--device cuda:N", "--verbose": "--verbose",
}


def shapes(text: str) -> dict:
    """``NAME:D1xD2x...,NAME:...``: per-sample dims (without the batch) of an ONNX model's inputs whose dims are
    symbolic beyond the batch (trtexec's --shapes, less the batch, which --batch gives)."""
    out = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, dims = item.rpartition(":")
        parts = dims.lower().split("x")
        if not sep or not name or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"{item!r} is not NAME:D1xD2... with positive dims (e.g. x:128x64, "
                                             "the per-sample shape without the batch)")
        out[name] = tuple(int(p) for p in parts)
    if not out:
        raise argparse.ArgumentTypeError("give at least one NAME:D1xD2...")
    return out


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples of an epilog as written and shows each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or action.nargs == 0:
            return text
        return text + " (default: %(default)s)"


def comma_list(kind: type, choices: Sequence[str] | None = None, what: str = "value"):
    """An argparse type for ``a,b,c``: positive ints (``kind=int``), numbers in (0, 100) (``kind=float``), or names
    from ``choices``; duplicates dropped, order kept."""
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
            elif kind is float:
                try:
                    v = float(t)
                except ValueError:
                    v = float("nan")
                if not 0 < v < 100:
                    raise argparse.ArgumentTypeError(f"{t!r} is not a {what} between 0 and 100 (exclusive)")
                out.append(v)
            elif choices is not None and t not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {t!r}; choose from {', '.join(choices)}")
            else:
                out.append(t)
        return list(dict.fromkeys(out))
    parse.__name__ = what            # argparse names the type in its messages
    return parse


def device(text: str) -> str:
    if not re.fullmatch(r"(auto|cpu|cuda(:\d+)?)", text.strip().lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or auto")
    return text.strip().lower()


def _number(text: str, what: str, positive: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite, {'positive' if positive else 'non-negative'} "
                                         f"number of {what}")
    return v


def seconds(text: str) -> float:
    return _number(text, "seconds", positive=False)


def milliseconds(text: str) -> float:
    return _number(text, "milliseconds", positive=False)


def positive_milliseconds(text: str) -> float:
    return _number(text, "milliseconds", positive=True)


def rate(text: str) -> float:
    return _number(text, "requests per second", positive=True)


def count(text: str) -> int:
    """A positive integer."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def count0(text: str) -> int:
    """A non-negative integer."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def delays(text: str) -> list:
    """Comma-separated non-negative milliseconds."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one delay in milliseconds")
    return list(dict.fromkeys(milliseconds(t) for t in items))


def devices(text: str) -> object:
    """``all`` or comma-separated device specs (``cuda:0,cuda:1``, ``cpu,cpu``)."""
    if text.strip().lower() == "all":
        return "all"
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give all or a comma-separated list of devices such as cuda:0,cuda:1")
    return [device(t) for t in items]


def rates(text: str) -> list:
    """Comma-separated positive requests per second."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one rate in requests per second")
    return list(dict.fromkeys(rate(t) for t in items))


def output_path(text: str) -> str:
    """A file to write: not empty, not an existing folder, in a folder that exists and is writable. Checked while
    parsing, so a run never fails at its end for a path it could have refused at its start."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a file name")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    _creatable_in(os.path.dirname(os.path.abspath(text)))
    return text


def output_dir(text: str) -> str:
    """A folder to create: absent or empty, in a writable parent folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder name")
    if os.path.exists(text):
        if not os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder; choose a new folder")
        if os.listdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} already holds files; choose a new or empty folder")
    _creatable_in(os.path.dirname(os.path.abspath(text)))
    return text


def _creatable_in(folder: str) -> None:
    """``folder`` exists and is writable, or can be created (mkdir -p, when the command succeeds) in the nearest
    existing folder above it, which must be a writable folder."""
    at = folder
    while not os.path.exists(at):
        at = os.path.dirname(at)
    if not os.path.isdir(at):
        raise argparse.ArgumentTypeError(f"{at!r} is a file, so the folder {folder!r} cannot be made; write elsewhere")
    if not os.access(at, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"the folder {at!r} is not writable; write elsewhere")


def input_file(text: str) -> str:
    """A file to read: it must exist and be a file."""
    if not os.path.exists(text):
        from ..models import SAMPLES
        hint = (f"; {text!r} is a sample network: write it to an engine file first "
                f"(perfkit build {text} -o {text}.engine)") if text in SAMPLES else ""
        raise argparse.ArgumentTypeError(f"{text!r} does not exist{hint}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file")
    return text
