"""Every FullyConnected tactic (nt, nn, wx) against the float64 oracle of the unfused layers (product, bias,
activation), fp32 and fp16, batch 1 and above, with a multi-dimensional input flattened, in exactly the
declared workspace."""
import numpy as np
import pytest

from op_harness import DTYPES, run_op
from oracles import activation as act_oracle
from oracles import assert_close


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("bias,act", [(False, None), (True, None), (True, "relu"), (True, "gelu")])
def test_every_fc_tactic_matches_the_oracle(precision, batch, bias, act):
    rng = np.random.default_rng(batch)
    x = rng.uniform(-1, 1, (batch, 3, 4, 5)).astype(np.float32)
    kernel = (rng.standard_normal((9, 60)) * 0.2).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32) if bias else None
    dt = DTYPES[precision]
    xs, ks = x.astype(dt).astype(np.float64).reshape(batch, -1), kernel.astype(dt).astype(np.float64)
    want = xs @ ks.T + (0 if b is None else b.astype(dt).astype(np.float64))
    scale = np.abs(xs) @ np.abs(ks).T + (0 if b is None else np.abs(b))
    if act:
        want = act_oracle(want, act, 0.0, 0.0)
    weights = {"kernel": kernel} if b is None else {"kernel": kernel, "bias": b}
    params = {"num_outputs": 9, "activation": {"kind": act} if act else None}
    for tactic in ("nt", "nn", "wx"):
        got = run_op("fully_connected", tactic, precision, [x], params, weights)
        assert_close(got, want, precision, f"{tactic} bias={bias} act={act}", scale=scale, depth=2)
