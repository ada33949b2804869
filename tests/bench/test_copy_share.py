"""The copy share of a measurement is a typical query's: one query whose copy stage waited does not make it."""
import math

import pandas as pd

from perfkit.bench.measure import _copy_share


def queries(h2d):
    return pd.DataFrame({"h2d_ms": h2d, "d2h_ms": [0.01] * len(h2d),
                         "latency_ms": [h + 0.01 + 1.0 for h in h2d]})


def test_one_waiting_copy_does_not_make_the_run_transfer_bound():
    q = queries([0.02] * 9 + [8.0])           # one H2D stage waited 8 ms behind another stream
    assert _copy_share(q) < 5                 # a ratio of sums would say 43%
    assert 100 * (q["h2d_ms"] + q["d2h_ms"]).sum() / q["latency_ms"].sum() > 40


def test_steady_copies_give_their_share_and_no_latency_none():
    assert abs(_copy_share(queries([1.0] * 5)) - 100 * 1.01 / 2.01) < 1e-9
    assert math.isnan(_copy_share(queries([])))
