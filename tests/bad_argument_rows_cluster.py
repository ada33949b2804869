"""Rows of tests/bad_argument_table.py for distributed sweeps and sweep datasets (issue 13): bad values for
sweep's ``devices`` (added to the existing "sweep" Case) and the rows of ``load_sweep``. Every bad
``devices`` value is refused before a cluster starts."""
from __future__ import annotations

import os

from bad_argument_table import CASES, case
from bad_argument_values import FLAG, READ_PATH, Lazy, family

import perfkit as pk

# a sample's name is a network since sweep takes what perfkit.onnx.network_from takes ("mlp" is a sample)
CASES["sweep"].accept = CASES["sweep"].accept | {"networks:text"}
CASES["sweep"].bad["devices"] = family(
    text="gpus", empty=[], number=2, tuple_of_numbers=(0, 1), unknown=["tpu"], mixed=["cpu", "cuda:0"],
    same_gpu_twice=["cuda:0", "cuda:0"], missing_gpu=["cuda:99"], more_cpu_workers_than_cores=["cpu"] * 100000,
    dict={"cuda:0": 1})


def _dataset(w) -> str:
    """A sweep dataset folder holding the world's sweep rows."""
    from perfkit.bench.sweep_dataset import create_dataset, write_config
    out = w.new_path("sweep_ds")
    create_dataset(out)
    for i in range(len(w.sweep_frame)):
        write_config(out, w.sweep_frame.iloc[[i]])
    return out


def _foreign_dataset(w) -> str:
    """A folder that looks like a dataset but holds a file that is not parquet."""
    out = _dataset(w)
    folder = os.path.join(out, "model=tiny", "device=cpu")
    with open(os.path.join(folder, "fp32-b99.parquet"), "w") as f:
        f.write("not parquet")
    return out


if hasattr(pk, "load_sweep") or hasattr(pk.bench, "load_sweep"):
    def _load(w, kw):
        from perfkit.bench.sweep_dataset import load_sweep
        return load_sweep(**kw)

    case("load_sweep", _load, {"path": Lazy(_dataset), "dask": False, "layers": False},
         {"path": {**READ_PATH, "damaged_dataset": Lazy(_foreign_dataset)}, "dask": FLAG, "layers": FLAG})
