"""Every pooling tactic (strided, taps, rows) against the float64 oracle, max and average (with and without
the padding counted), at fp32 and fp16 tolerances, on odd shapes, batch 1 and above, in exactly the
declared workspace; and the ``rows`` tactic's channel blocks (several blocks per sample)."""
import numpy as np
import pytest

from perfkit.ops import pooling
from op_harness import DTYPES, run_op
from oracles import assert_close, pool2d

CASES = [((3, 7, 6), 2, 2, 0), ((3, 7, 6), 3, 1, 1), ((3, 7, 6), 3, 2, 1), ((3, 7, 6), (3, 2), (2, 1), (1, 0)),
         ((4, 12, 12), 3, 2, 1), ((2, 5, 9), (1, 3), (1, 2), (0, 1)), ((2, 4, 4), 4, 1, 0)]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("pool,excl", [("max", True), ("avg", True), ("avg", False)])
def test_every_pooling_tactic_matches_the_oracle(case, batch, precision, pool, excl):
    shape, window, stride, pad = case
    x = np.random.default_rng(7).uniform(-1, 1, (batch,) + shape).astype(np.float32)
    want = pool2d(x.astype(DTYPES[precision]).astype(np.float64), pool, _pair(window), _pair(stride), _pair(pad), excl)
    params = {"pool": pool, "window": window, "stride": stride, "padding": pad, "exclude_padding": excl}
    for tactic in ("strided", "taps", "rows"):
        got = run_op("pooling", tactic, precision, [x], params)
        assert_close(got, want, precision, f"{tactic} {pool}", scale=1.0)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_rows_in_several_channel_blocks(monkeypatch, pool):
    monkeypatch.setattr(pooling, "ROWS_BLOCK_BYTES", 4 * 7 * 7 * 2)          # two channels a block
    x = np.random.default_rng(3).uniform(-1, 1, (2, 5, 7, 7)).astype(np.float32)
    params = {"pool": pool, "window": 3, "stride": 2, "padding": 1}
    got = run_op("pooling", "rows", "fp32", [x], params)
    assert_close(got, pool2d(x.astype(np.float64), pool, (3, 3), (2, 2), (1, 1)), "fp32", pool)
