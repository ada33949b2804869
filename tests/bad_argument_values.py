"""Families of bad argument values for tests/test_bad_arguments.py, and the objects they are tried on.

Each family maps a label (the test id) to a value; a value may be a ``Lazy`` computed from the
``World`` (paths in its temporary directory, objects of another network).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np
import pandas as pd

import perfkit as pk

NAN, INF = float("nan"), float("inf")


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A value computed from the World when the case runs."""
    make: Callable[["World"], Any]


def resolve(value: Any, world: "World") -> Any:
    return value.make(world) if isinstance(value, Lazy) else value


def family(**values: Any) -> dict:
    return values


# a positive int (a count, a batch size, a dimension)
COUNT = family(negative=-1, zero=0, bool=True, float=2.5, integral_float=2.0, nan=NAN, none=None, text="3")
# a non-negative int
COUNT0 = family(negative=-1, bool=True, float=2.5, nan=NAN, none=None, text="3")
# an optional positive int: None is the default, so it is not bad
OPT_COUNT = {k: v for k, v in COUNT.items() if k != "none"}
HUGE = family(huge=10 ** 12)
# a non-negative number (seconds, milliseconds, percent)
SECONDS = family(negative=-1.0, nan=NAN, inf=INF, bool=True, none=None, text="1")
# one of a fixed set of names
CHOICE = family(unknown="nope", empty="", none=None, number=3, list=["fp32"])
# a free-form name
NAME = family(empty="", none=None, number=3)
OPT_NAME = family(empty="", number=3)
# a real bool
FLAG = family(none=None, text="yes", number=2)
# a frame made by perfkit
FRAME = family(none=None, empty_frame=pd.DataFrame(), dict={}, text="x")
# a matplotlib Axes or None
AX = family(text="x", number=3, figure=Lazy(lambda w: w.figure()))
# a file to read
# (an int is a file descriptor to open(): a high one that is never open, so a failure closes nothing)
FD = 987_654
READ_PATH = family(none=None, number=FD, missing=Lazy(lambda w: os.path.join(w.tmp, "missing")),
                   directory=Lazy(lambda w: w.tmp), text_file=Lazy(lambda w: w.text_file))
# a file or folder to write
WRITE_PATH = family(none=None, number=FD, missing_parent=Lazy(lambda w: os.path.join(w.tmp, "no", "such", "out")),
                    onto_file_parent=Lazy(lambda w: os.path.join(w.text_file, "out")))
# a device
DEVICE = family(unknown="tpu", empty="", number=3, negative_gpu="cuda:-1", list=["cpu"])
# an allocator
ALLOCATOR = family(text="x", number=3, plain_object=Lazy(lambda w: object()))
# a tensor of the network being edited
TENSOR = family(none=None, unknown_name="nope", number=3, other_network=Lazy(lambda w: w.foreign_tensor()),
                array=np.ones(3))
# weights
ARRAY = family(none=None, text="abc", nan=np.array([[NAN] * 4] * 3), inf=np.full((3, 4), INF),
               ragged=Lazy(lambda w: np.array([[1.0], [1.0, 2.0]], dtype=object)), wrong_shape=np.ones((7, 7)))
# a per-sample shape or axis list
SHAPE = family(float_dim=(2.5,), bool_dim=(True, 3), integral_float_dim=(2.0,), empty=(), zero=(0,),
               negative=(-1,), none=None, text="abc", nested=((2,),))
AXIS = family(out_of_range=7, negative_out_of_range=-7, bool=True, float=0.5, none=None, text="0")
# an execution context
CONTEXT = family(none=None, text="ctx", engine=Lazy(lambda w: w.engine), network=Lazy(lambda w: w.net))
NETWORK = family(none=None, text="mlp", number=3, engine=Lazy(lambda w: w.engine))
# inputs for an engine with input "data" of (4,) float32 and max batch 2
INPUTS = family(none=None, empty={}, list=[np.ones((1, 4), np.float32)],
                unknown_name={"nope": np.ones((1, 4), np.float32)},
                wrong_shape={"data": np.ones((1, 5), np.float32)}, wrong_dtype={"data": np.ones((1, 4), np.int32)},
                too_large_batch={"data": np.ones((3, 4), np.float32)}, scalar={"data": 1.0},
                text_values={"data": "abc"})
