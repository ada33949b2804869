"""Rows of tests/bad_argument_table.py for perfkit.widgets: the notebook explorers."""
from __future__ import annotations

from bad_argument_table import case  # noqa: F401
from bad_argument_values import AX, CHOICE, COUNT, FLAG, FRAME, Lazy, family  # noqa: F401

import perfkit as pk  # noqa: E402

# an explorer's interactive flag: None chooses, so only non-bools are bad
INTERACTIVE = family(text="yes", number=2)
NOT_A_SWEEP = {**{k: v for k, v in FRAME.items() if k != "none"}, "other_frame": Lazy(lambda w: w.run.layers),
               "missing_file": Lazy(lambda w: w.new_path("none.parquet")), "text_file": Lazy(lambda w: w.text_file),
               "empty_dir": Lazy(lambda w: w.empty_dir), "three": Lazy(lambda w: (w.sweep_frame,) * 3)}
NOT_A_RUN = family(none=None, number=3, text_file=Lazy(lambda w: w.text_file), empty_dir=Lazy(lambda w: w.empty_dir),
                   frame=Lazy(lambda w: w.sweep_frame), fresh_run=Lazy(lambda w: w.fresh_run()))


def _widgets():
    import perfkit.widgets
    return perfkit.widgets


def _sweep_explorer(w):
    return _widgets().SweepExplorer(w.sweep_frame, interactive=False)


def _profile_explorer(w):
    return _widgets().ProfileExplorer(w.run, interactive=False)


case("SweepExplorer", lambda w, kw: _widgets().SweepExplorer(**kw),
     {"sweep": Lazy(lambda w: w.sweep_frame), "interactive": False, "redraw_interval_s": 0.5},
     {"sweep": NOT_A_SWEEP, "interactive": INTERACTIVE,
      "redraw_interval_s": family(negative=-1.0, nan=float("nan"), inf=float("inf"), bool=True, none=None, text="1")})
case("SweepExplorer.add_layers", lambda w, kw: _sweep_explorer(w).add_layers(**kw),
     {"frame": Lazy(lambda w: pk.frames.schemas.SWEEP_LAYERS.frame([]))},
     {"frame": {**FRAME, "sweep_frame": Lazy(lambda w: w.sweep_frame)}})
case("SweepExplorer.finish", lambda w, kw: _sweep_explorer(w).finish(), {}, {})
case("SweepExplorer.redraw", lambda w, kw: _sweep_explorer(w).redraw(), {}, {})
case("SweepExplorer.points", lambda w, kw: _sweep_explorer(w).points(), {}, {})
case("ProfileExplorer", lambda w, kw: _widgets().ProfileExplorer(**kw),
     {"run": Lazy(lambda w: w.run), "engine_layers": None, "build_log": None, "interactive": False},
     {"run": NOT_A_RUN, "engine_layers": {**{k: v for k, v in FRAME.items() if k != "none"},
                                          "other_frame": Lazy(lambda w: w.sweep_frame)},
      "build_log": {**{k: v for k, v in FRAME.items() if k != "none"}, "other_frame": Lazy(lambda w: w.sweep_frame)},
      "interactive": INTERACTIVE})
case("ProfileExplorer.redraw", lambda w, kw: _profile_explorer(w).redraw(), {}, {})
case("ProfileExplorer.shown_layers", lambda w, kw: _profile_explorer(w).shown_layers(), {}, {})
case("compare", lambda w, kw: _widgets().compare(**kw),
     {"a": Lazy(lambda w: w.sweep_frame), "b": Lazy(lambda w: w.sweep_frame), "labels": None, "interactive": False},
     {"a": {**NOT_A_SWEEP, "none": None, "a_run_with_a_sweep": Lazy(lambda w: w.run)},
      "b": {**NOT_A_SWEEP, "none": None}, "labels": family(one=("x",), same=("x", "x"), text="ab", empty=("", "y"),
                                                             number=3),
      "interactive": INTERACTIVE})
case("MemoryExplorer", lambda w, kw: _widgets().MemoryExplorer(**kw),
     {"source": Lazy(lambda w: w.tracking), "layer_times": None, "predicted_bytes": None, "interactive": False},
     {"source": {**NOT_A_RUN, "sweep_frame": Lazy(lambda w: w.sweep_frame),
                "missing_parquet": Lazy(lambda w: w.new_path("none.parquet"))},
      "layer_times": {**{k: v for k, v in FRAME.items() if k != "none"}, "other_frame": Lazy(lambda w: w.sweep_frame)},
      "predicted_bytes": family(negative=-1, nan=float("nan"), inf=float("inf"), bool=True, text="1"),
      "interactive": INTERACTIVE})
case("MemoryExplorer.redraw", lambda w, kw: _widgets().MemoryExplorer(w.run, interactive=False).redraw(), {}, {})
