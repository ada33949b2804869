"""Schema definitions, rows and RunData parts are checked: bad ones raise PerfkitError, never a raw error."""
import pytest

import perfkit as pk
from perfkit.frames import Column, Schema
from perfkit.frames.schemas import LAYER_TIMES, SWEEP


@pytest.mark.parametrize("make", [
    lambda: Column("", "int64", "", "m"), lambda: Column("c", "int32", "", "m"), lambda: Column("c", 3, "", "m"),
    lambda: Column("c", "int64", "", "m", nullable="yes"), lambda: Schema("", (Column("c", "int64", "", "m"),)),
    lambda: Schema("s", None), lambda: Schema("s", ("c",)), lambda: Schema("s", (Column("c", "int64", "", "m"),) * 2),
    lambda: SWEEP.frame(None), lambda: SWEEP.frame(3), lambda: SWEEP.frame("r"), lambda: SWEEP.frame([3]),
    lambda: SWEEP.frame([], attrs=[1]), lambda: LAYER_TIMES.validate("not a frame"),
    lambda: pk.profiling.RunData(None, {}, []), lambda: pk.profiling.RunData({}, {}, []),
])
def test_bad_definitions_and_rows_raise_perfkit_errors(make):
    with pytest.raises(pk.PerfkitError):
        make()


def test_nullability_is_validated():
    row = {"run_id": "r", "iteration": 0, "index": 0, "layer": "a", "type": "t", "start_ns": 0, "end_ns": 1,
           "ms": float("nan"), "stream": "s", "context": "c", "batch_size": 1, "precision": "fp32", "clock": "host"}
    with pytest.raises(pk.PerfkitError, match="'ms' has 1 missing value"):
        LAYER_TIMES.validate(LAYER_TIMES.frame([row]))
    LAYER_TIMES.validate(LAYER_TIMES.frame([{**row, "ms": 0.5}]))
    q = pk.frames.QUERIES
    assert {c.name for c in q.columns if c.nullable} == {"compute_ms", "latency_ms", "host_latency_ms"}
