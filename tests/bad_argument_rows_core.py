"""Rows of tests/bad_argument_table.py for the trust helpers of bench and profiling (issue 9)."""
from __future__ import annotations

import perfkit as pk
from bad_argument_table import case
from bad_argument_values import FRAME, SECONDS, Lazy, family

case("sweep_disturbances", lambda w, kw: pk.bench.sweep_disturbances(**kw),
     {"frame": Lazy(lambda w: w.sweep_frame), "max_cv_pct": None},
     {"frame": {**FRAME, "other_frame": Lazy(lambda w: w.run.layers)},
      "max_cv_pct": {k: v for k, v in SECONDS.items() if k != "none"}})
case("sweep_layers_path", lambda w, kw: pk.bench.sweep_layers_path(**kw), {"out": "sweep.parquet"},
     {"out": family(none=None, number=3, empty="")})
case("RunData.disturbances", lambda w, kw: w.run.disturbances(), {}, {})
