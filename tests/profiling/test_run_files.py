"""Saved runs are validated, not trusted: checksums per file, schemas with nullability, and a fuzz
over mutated run directories (no raw exception; a change without recomputed checksums is refused)."""
from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import perfkit as pk

FILES = ("layers", "memory", "queries", "gpu", "kernels", "engine_layers", "build_log")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    net = pk.models.mnist_mlp()
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    ctx = eng.create_execution_context()
    x = pk.models.sample_input(net, 2)
    with pk.profile(ctx) as run:
        for _ in range(4):
            ctx.execute(x)
    d = tmp_path_factory.mktemp("run") / "saved"
    run.save(d)
    return d


def _copy(saved, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(saved, d)
    return d


def _info(d):
    return json.loads((d / "run.json").read_text())


def _write_info(d, info, recompute=True):
    """Writes run.json; ``recompute``: refresh every checksum as an editor of the files would."""
    if recompute and isinstance(info, dict) and isinstance(info.get("files"), dict):
        for name, entry in info["files"].items():
            p = d / f"{name}.parquet"
            if isinstance(entry, dict) and p.exists():
                entry["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
                try:
                    entry["rows"] = len(pd.read_parquet(p))
                except Exception:
                    pass
    if recompute and isinstance(info, dict) and "checksum" in info:
        body = {k: v for k, v in info.items() if k != "checksum"}
        try:
            info["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                         allow_nan=False).encode()).hexdigest()
        except ValueError:
            pass
    (d / "run.json").write_text(json.dumps(info))


def _use(d):
    """Loads the run and uses it the way a user would; returns the loaded run."""
    run = pk.load_run(d)
    run.overview()
    run.summary()
    run.summary(by="type")
    run.export_chrome_trace(d / "trace.json")
    run.export_profile(d / "profile.json")
    run.export_times(d / "times.json")
    return run


def test_saved_run_round_trips_with_checksums(saved, tmp_path):
    d = _copy(saved, tmp_path)
    info = _info(d)
    assert sorted(info["files"]) == sorted(FILES) and all(len(e["sha256"]) == 64 for e in info["files"].values())
    run = _use(d)
    again = pk.load_run(saved)
    pd.testing.assert_frame_equal(run.layers, again.layers)


def test_the_engine_that_ran_is_saved_and_older_runs_without_it_load(saved, tmp_path):
    run = pk.load_run(saved)
    assert "2-layer MLP (ip1 + relu1 + ip2)" in set(run.engine_layers["layer"]) and run.engine_layers["flops"].gt(0).all()
    assert (run.build_log["phase"] == "tactic").any()
    d = _copy(saved, tmp_path)                  # a run saved before issue 9: no engine frames
    info = _info(d)
    for name in ("engine_layers", "build_log"):
        del info["files"][name]
        (d / f"{name}.parquet").unlink()
    _write_info(d, info)
    old = _use(d)
    assert old.engine_layers.empty and list(old.engine_layers.columns) == list(run.engine_layers.columns)
    assert old.build_log.empty


def test_an_unknown_frame_file_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    info = _info(d)
    info["files"]["extra"] = dict(info["files"]["layers"], file="extra.parquet")
    (d / "extra.parquet").write_bytes((d / "layers.parquet").read_bytes())
    _write_info(d, info)
    with pytest.raises(pk.PerfkitError, match="may list"):
        pk.load_run(d)


def test_messages_null_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    info = _info(d)
    info["messages"] = None
    _write_info(d, info)
    with pytest.raises(pk.PerfkitError, match="messages"):
        pk.load_run(d)


def test_zero_unprofiled_latency_gives_an_overview(saved, tmp_path):
    d = _copy(saved, tmp_path)
    info = _info(d)
    info["meta"]["e2e_unprofiled_ms"] = 0
    _write_info(d, info)
    ov = pk.load_run(d).overview().set_index("metric")
    assert ov.loc["e2e_unprofiled_ms", "value"] == 0.0
    assert "layer_sum_pct_of_e2e" not in ov.index and "overhead_pct" not in ov.index


def test_all_missing_layer_column_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    f = pd.read_parquet(d / "layers.parquet")
    f["layer"] = pd.array([pd.NA] * len(f), dtype="string")
    f.to_parquet(d / "layers.parquet")
    _write_info(d, _info(d))
    with pytest.raises(pk.PerfkitError, match="'layer' has .* missing value"):
        pk.load_run(d)


def test_edited_frame_without_new_checksum_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    f = pd.read_parquet(d / "layers.parquet")
    f.loc[0, "ms"] = f.loc[0, "ms"] * 2
    f.to_parquet(d / "layers.parquet")
    with pytest.raises(pk.PerfkitError, match="layers.parquet does not match its checksum"):
        pk.load_run(d)


def _mutate_frame(rng, f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    cols = list(f.columns)
    c = cols[int(rng.integers(len(cols)))]
    kind = int(rng.integers(8))
    if kind == 0:
        return f.drop(columns=[c])
    if kind == 1:
        f["extra"] = 1
        return f
    if kind == 2 and len(f):
        f[c] = f[c].astype(object).where(rng.random(len(f)) > 0.5, None)    # object dtype, holes
        return f
    if kind == 3 and len(f):
        f[c] = pd.Series([None] * len(f), dtype=f[c].dtype) if str(f[c].dtype) != "int64" else f[c].astype("float64")
        return f
    if kind == 4:
        return f.iloc[::-1].reset_index(drop=True)
    if kind == 5 and len(f):
        return f.iloc[: len(f) // 2]
    if kind == 6 and len(f) and str(f[c].dtype) in ("float64", "int64"):
        f.loc[int(rng.integers(len(f))), c] = rng.choice([0, -1, 2**40]) if str(f[c].dtype) == "int64" \
            else rng.choice([0.0, -1.0, np.inf, np.nan])
        return f
    f[c] = f[c].astype(str)
    return f


def _mutate_json(rng, info):
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))
    walk(info, ())
    path = paths[int(rng.integers(1, len(paths)))]
    values = [None, 0, -1, 1.5, 1e308, True, "x", [], {}, [None], {"a": None}, "0" * 64, 2**70]
    new = values[int(rng.integers(len(values)))]
    node = info
    for k in path[:-1]:
        node = node[k]
    if isinstance(node, dict) and rng.random() < 0.2:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return "/".join(map(str, path))


def test_mutated_run_directories(saved, tmp_path):
    rng = np.random.default_rng(11)
    originals = {n: (saved / f"{n}.parquet").read_bytes() for n in FILES}
    raw, silent, refused, loaded = [], [], 0, 0
    for i in range(400):
        d = tmp_path / f"m{i}"
        shutil.copytree(saved, d)
        info = _info(d)
        recompute = bool(rng.random() < 0.6)
        target = rng.choice(["json", "bytes", "frame", "frame"])
        if target == "json":
            what = "run.json " + _mutate_json(rng, info)
        else:
            name = str(rng.choice(FILES))
            p = d / f"{name}.parquet"
            if target == "bytes":
                b = bytearray(originals[name])
                pos = int(rng.integers(len(b)))
                if rng.random() < 0.5:
                    b[pos] ^= 0xFF
                else:
                    b = b[:pos]
                p.write_bytes(bytes(b))
                what = f"{name} bytes@{pos}"
            else:
                _mutate_frame(rng, pd.read_parquet(io.BytesIO(originals[name]))).to_parquet(p)
                what = f"{name} frame"
        _write_info(d, info, recompute=recompute)
        changed = _info(d) != _info(saved) or any(
            (d / f"{n}.parquet").read_bytes() != originals[n] for n in FILES)
        try:
            _use(d)
        except pk.PerfkitError:
            refused += 1
            continue
        except Exception as exc:                      # noqa: BLE001 - the point of the test
            raw.append(f"#{i} {what}: {type(exc).__name__}: {str(exc)[:100]}")
            continue
        loaded += 1
        if changed and not recompute:
            silent.append(f"#{i} {what}")
    assert not raw, f"{len(raw)} raw exceptions, e.g. {raw[:5]}"
    assert not silent, f"{len(silent)} edits without new checksums loaded, e.g. {silent[:5]}"
    assert refused > 150 and loaded > 10, (refused, loaded)


def test_a_string_damaged_inside_a_parquet_file_is_refused_as_it_loads(saved, tmp_path):
    # a flipped byte inside a string leaves invalid UTF-8 that pandas reads without complaint and that failed
    # later, where the string was first used, with pyarrow's ArrowException (found by the mutation test above)
    import pyarrow as pa
    import pyarrow.parquet as pq
    d = _copy(saved, tmp_path)
    p = d / "layers.parquet"
    frame = pd.read_parquet(p)
    # written plain (no compression, no dictionary, no statistics), so that the byte flipped is in a value
    pq.write_table(pa.Table.from_pandas(frame), p, compression="NONE", use_dictionary=False, write_statistics=False)
    raw = bytearray(p.read_bytes())
    name = str(frame["layer"].iloc[0]).encode()
    at = raw.find(name)
    assert at >= 0
    raw[at + 1] ^= 0xFF
    p.write_bytes(bytes(raw))
    _write_info(d, _info(d), recompute=True)          # an editor that refreshed the checksums
    with pytest.raises(pk.PerfkitError, match="layers.parquet is not a readable parquet file"):
        _use(d)
