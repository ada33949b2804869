"""Sweeps into a partitioned parquet dataset folder (pk.sweep(..., out=FOLDER)) in one process, and
load_sweep: layout, readers (pandas, pyarrow, dask), resume, atomic writes, argument checks, explorers."""
import collections
import os
import sys

import numpy as np
import pandas as pd
import pytest

import perfkit as pk
from perfkit.bench import rounds as rounds_mod
from perfkit.bench import sweep_dataset as data
from perfkit.bench.sweep_dataset import load_sweep, part_files
from perfkit.frames.schemas import SWEEP

FAST = {"device": "cpu", "min_time_s": 0.0, "min_iterations": 1, "rounds": 2, "max_cv_pct": 1000.0}  # never re-measured


def _net(name="tiny_ds"):
    return pk.models.mlp((8, 6, 3), seed=2, name=name)


@pytest.fixture
def counted(monkeypatch):
    """Counts the timing slices per (precision, batch size) (rounds.time_slice replaced, same timings)."""
    calls = collections.Counter()
    real = rounds_mod.time_slice

    def slice_(context, inputs, min_time_s, min_iterations):
        calls[(context.engine.precision, context.engine.max_batch_size)] += 1
        return real(context, inputs, min_time_s, min_iterations)
    monkeypatch.setattr(rounds_mod, "time_slice", slice_)
    return calls


def test_a_folder_out_is_a_partitioned_dataset_every_reader_reads(tmp_path):
    out = str(tmp_path / "ds")
    frame = pk.sweep([_net(), _net("other/net")], batch_sizes=[1, 4], precisions=["fp32", "fp16"], out=out, **FAST)
    files = part_files(out)
    assert len(files) == 8 and data.is_sweep_dataset(out)
    assert os.path.isdir(os.path.join(out, "model=other%2Fnet", "device=cpu"))      # names URI-encoded
    back = load_sweep(out)
    SWEEP.validate(back, strict=True)
    key = ["model", "precision", "batch_size"]
    a = frame.sort_values(key).reset_index(drop=True)
    b = back.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[b.columns], b, check_dtype=True, check_like=False)
    assert back.attrs["source"] == out and back.attrs["device"] == "cpu" and back.attrs["device_name"]
    # the sentences the sweep's own frame carried, said again for the loaded one (the README reads them there)
    from perfkit.bench import sweep_disturbances
    assert back.attrs["disturbances"] == sweep_disturbances(back)
    shaky = back.assign(latency_cv_pct=40.0, unstable=True)
    shaky.to_parquet(tmp_path / "shaky.parquet")
    assert any("spread" in s or "unstable" in s or "varied" in s for s in load_sweep(str(tmp_path / "shaky.parquet"))
               .attrs["disturbances"]), load_sweep(str(tmp_path / "shaky.parquet")).attrs["disturbances"]
    import pyarrow.dataset as ds
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table().to_pandas()
    assert sorted(table["model"].astype(str).unique()) == ["other/net", "tiny_ds"] and len(table) == 8
    lazy = load_sweep(out, dask=True)
    assert lazy.npartitions == 8
    got = lazy.compute().sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[b.columns], b)
    assert len(pd.read_parquet(out)) == 8        # pandas reads the folder too


def test_resume_in_a_dataset_times_only_what_is_missing(tmp_path, counted):
    out = str(tmp_path / "ds")
    first = pk.sweep(_net(), batch_sizes=[1, 2], precisions=["fp32"], out=out, **FAST)
    assert counted == {("fp32", 1): 2, ("fp32", 2): 2}
    counted.clear()
    both = pk.sweep(_net(), batch_sizes=[1, 2, 4], precisions=["fp32"], out=out, resume=True, **FAST)
    assert counted == {("fp32", 4): 2}
    assert len(both) == 3 and both["run_id"].nunique() == 2
    assert set(both.loc[both["batch_size"] < 4, "run_id"]) == set(first["run_id"])
    counted.clear()
    again = pk.sweep(_net(), batch_sizes=[1, 2, 4], precisions=["fp32"], out=out, resume=True, **FAST)
    assert not counted and len(again) == 3 and len(part_files(out)) == 3


def test_layers_go_beside_the_rows_and_resume(tmp_path):
    out = str(tmp_path / "ds")
    frame, layers = pk.sweep(_net(), batch_sizes=[1, 2], precisions=["fp32"], out=out, layers=True, **FAST)
    back = load_sweep(out, layers=True)
    assert len(back) == len(layers) > 0 and set(back["batch_size"]) == {1, 2}
    assert len(load_sweep(out)) == 2            # the layer files are not rows of the sweep
    _, more = pk.sweep(_net(), batch_sizes=[1, 2, 4], precisions=["fp32"], out=out, layers=True, resume=True, **FAST)
    assert set(more["batch_size"]) == {1, 2, 4} and len(load_sweep(out, layers=True)) == len(more)


def test_layers_of_a_configuration_without_its_row_are_not_read(tmp_path):
    """A worker killed between writing a configuration's layers and its row: the configuration is measured
    again (perhaps on another device); the orphan layers are not part of the dataset."""
    out = str(tmp_path / "ds")
    frame, layers = pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], out=out, layers=True, **FAST)
    n = len(load_sweep(out, layers=True))
    data.write_config(out, frame.assign(device="cuda:1", batch_size=2), layers.assign(device="cuda:1", batch_size=2))
    os.remove(os.path.join(out, "model=tiny_ds", "device=cuda%3A1", "fp32-b2.parquet"))     # the row never came
    assert len(load_sweep(out, layers=True)) == n and len(load_sweep(out, layers=True, dask=True).compute()) == n


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    out = str(tmp_path / "ds")
    data.create_dataset(out)
    frame = pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], **FAST)

    def broken(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"PAR1 half")
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError):
        data.write_config(out, frame)
    left = [f for _, _, fs in os.walk(out) for f in fs if f != data.MARKER]
    assert left == []


def test_a_row_already_there_is_not_written_twice(tmp_path):
    out = str(tmp_path / "ds")
    data.create_dataset(out)
    frame = pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], **FAST)
    rows, mine = data.write_config(out, frame)
    assert mine and len(part_files(out)) == 1
    other = frame.assign(device="cpu", run_id="later")
    rows, mine = data.write_config(out, other)
    assert not mine and rows[0]["run_id"] == frame["run_id"].iloc[0] and len(part_files(out)) == 1


@pytest.mark.parametrize("make, match", [
    (lambda t: os.path.join(t, "sweep.csv"), "a folder name .* or a file name ending in .parquet, not"),
    (lambda t: _folder_with(t, "notes.txt"), "holds other files"),
])
def test_out_that_is_neither_file_nor_dataset_is_refused(tmp_path, make, match):
    with pytest.raises(pk.ArgumentError, match=match):
        pk.sweep(_net(), batch_sizes=[1], out=make(str(tmp_path)), **FAST)


def _folder_with(t, name):
    folder = os.path.join(t, "busy")
    os.makedirs(folder)
    open(os.path.join(folder, name), "w").close()
    return folder


def test_an_existing_dataset_needs_resume_and_distributed_needs_a_folder(tmp_path):
    out = str(tmp_path / "ds")
    pk.sweep(_net(), batch_sizes=[1], out=out, **FAST)
    with pytest.raises(pk.ArgumentError, match="resume=True"):
        pk.sweep(_net(), batch_sizes=[1], out=out, **FAST)
    with pytest.raises(pk.ArgumentError, match="named 'tiny_ds'"):
        pk.sweep([_net(), _net()], batch_sizes=[1], out=str(tmp_path / "twice"), **FAST)
    pytest.importorskip("distributed")
    with pytest.raises(pk.ArgumentError, match="dataset folder"):
        pk.sweep(_net(), batch_sizes=[1], devices=["cpu"], out=str(tmp_path / "x.parquet"), min_time_s=0.0)
    with pytest.raises(pk.ArgumentError, match="engines="):
        pk.sweep(_net(), batch_sizes=[1], devices=["cpu"], engines={}, min_time_s=0.0)
    with pytest.raises(pk.ArgumentError, match="device="):
        pk.sweep(_net(), batch_sizes=[1], devices=["cpu"], device="cpu", min_time_s=0.0)


def test_without_dask_a_distributed_sweep_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(pk.PerfkitError, match=r"perfkit\[cluster\]") as err:
        pk.sweep(_net(), batch_sizes=[1], devices=["cpu"], min_time_s=0.0)
    assert isinstance(err.value, ImportError)


def test_rows_name_where_they_were_timed():
    frame = pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], **FAST)
    from perfkit.bench.distributed_host import identity
    where = identity(pk.get_device("cpu"))
    assert where["device"] == "cpu" and where["host"] and where["perfkit_version"] == pk.__version__
    assert "numpy " + np.__version__ in where["library_versions"] and where["gpu_uuid"] is None
    for col in ("host", "cpu_cores", "perfkit_version", "library_versions"):
        if col in SWEEP.names:           # declared by the schema: every row carries it
            assert frame[col].iloc[0] == where[col]


def test_explorers_open_a_dataset_folder(tmp_path):
    pytest.importorskip("ipywidgets")
    import perfkit.widgets as w
    out = str(tmp_path / "ds")
    pk.sweep(_net(), batch_sizes=[1, 2], precisions=["fp32", "fp16"], out=out, layers=True, **FAST)
    from perfkit.widgets.sweep_data import read_sweep
    frame, layers = read_sweep(out)
    assert len(frame) == 4 and layers is not None and set(layers["batch_size"]) == {1, 2}
    explorer = w.SweepExplorer(out, interactive=False)
    assert explorer.figure is not None
    both = load_sweep(out)
    cmp = w.compare(both[both["precision"] == "fp32"], out, interactive=False)
    assert cmp is not None


def test_a_configuration_written_twice_at_once_is_read_once(tmp_path, monkeypatch):
    # two attempts of one task (Dask re-ran it while the first still measured) both looked before either wrote
    import threading

    from perfkit.bench import sweep_dataset as data
    from perfkit.bench.sweep import failed_row
    from perfkit.frames.schemas import SWEEP, SWEEP_LAYERS
    out = str(tmp_path / "ds")
    data.create_dataset(out)
    real, gate = data.find_config, threading.Barrier(2)

    def slow_find(*a):
        found = real(*a)
        gate.wait(timeout=10)
        return found
    monkeypatch.setattr(data, "find_config", slow_find)

    def attempt(dev):
        row = failed_row("m", "fp32", 1, dev, "x", "r1", here=False)
        layer = {c.name: (dev if c.name == "device" else row.get(c.name, 0)) for c in SWEEP_LAYERS.columns
                 if not c.optional}
        data.write_config(out, SWEEP.frame([row]), SWEEP_LAYERS.frame([layer]))
    threads = [threading.Thread(target=attempt, args=(d,)) for d in ("cuda:0", "cuda:1")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    monkeypatch.setattr(data, "find_config", real)
    frame = data.read_dataset(out)
    assert frame[["model", "device"]].values.tolist() == [["m", "cuda:0"]]
    assert frame.attrs["duplicates_dropped"] == 1
    assert data.read_dataset(out, SWEEP_LAYERS)["device"].tolist() == ["cuda:0"]


def test_a_configuration_found_again_comes_back_with_its_layers(tmp_path):
    # a retried task finds the row its first attempt wrote: it returns that row's layers too
    from perfkit.bench import sweep_dataset as data
    from perfkit.bench.sweep import failed_row
    from perfkit.frames.schemas import SWEEP, SWEEP_LAYERS
    out = str(tmp_path / "ds")
    data.create_dataset(out)
    row = failed_row("m", "fp32", 1, "cpu", "x", "r1", here=False)
    layer = {c.name: row.get(c.name, 0) for c in SWEEP_LAYERS.columns if not c.optional}
    data.write_config(out, SWEEP.frame([row]), SWEEP_LAYERS.frame([layer]))
    found = data.find_config(out, "m", "cpu", "fp32", 1)
    assert [r["model"] for r in data.read_config_layers(out, found)] == ["m"]
    assert data.read_config_layers(out, os.path.join(out, "model=m", "device=cpu", "fp16-b8.parquet")) == []


def test_out_folders_are_made_with_their_parents_and_wrong_outs_say_why(tmp_path):
    # the README's out="sweeps/run1" in a fresh folder used to fail: "the folder of out does not exist"
    out = tmp_path / "sweeps" / "run1"
    pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], out=str(out), **FAST)
    assert data.is_sweep_dataset(str(out))
    with pytest.raises(pk.ArgumentError, match="create it first"):       # one file: its folder must be there
        pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], out=str(tmp_path / "no" / "s.parquet"), **FAST)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(pk.ArgumentError, match="'.*afile' is an existing file, not a sweep: give a new folder name"):
        pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], out=str(tmp_path / "afile"), **FAST)
    with pytest.raises(pk.ArgumentError, match="cannot be a folder: .*afile' is a file"):
        pk.sweep(_net(), batch_sizes=[1], precisions=["fp32"], out=str(tmp_path / "afile" / "run"), **FAST)
