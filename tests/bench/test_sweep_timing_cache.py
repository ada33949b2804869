"""sweep(timing_cache=...) and the rows' tactics_id: which engine a row timed, and builds that choose alike."""
import dataclasses
import json

import pytest

import perfkit as pk
from perfkit.runtime.engine import Engine

FAST = {"min_time_s": 0.01, "min_iterations": 2, "rounds": 2, "progress": False}


def test_tactics_id_names_the_builders_choices():
    net = pk.models.resnet_small()
    cache = pk.TimingCache()
    cfg = pk.BuilderConfig(max_batch_size=4, timing_cache=cache)
    eng = pk.Builder("cpu").build(net, cfg)
    again = pk.Builder("cpu").build(net, cfg)               # every tactic from the cache: the same choices
    assert len(eng.tactics_id) == 12 and int(eng.tactics_id, 16) >= 0
    assert again.tactics_id == eng.tactics_id
    # one layer's tactic changed, nothing else: another id
    steps = [dataclasses.replace(s, params=dict(s.params)) for s in eng.plan.steps]
    timed = next(s for s in steps if s.params.get("tactic"))
    timed.params["tactic"] = timed.params["tactic"] + "-other"
    other = Engine(dataclasses.replace(eng.plan, steps=steps), eng.host_weights(), eng.device, eng.allocator)
    assert other.tactics_id != eng.tactics_id
    other.close()


def test_a_sweep_with_a_timing_cache_builds_the_same_engines_without_timing(tmp_path):
    path = tmp_path / "sweep.cache"
    nets = [pk.models.resnet_small(), pk.models.mnist_mlp()]
    first = pk.sweep(nets, batch_sizes=(1, 4), timing_cache=path, **FAST)
    assert (first["tactics_id"].str.len() == 12).all()
    entries = json.loads(path.read_text())["entries"]
    assert entries, "the sweep's builds wrote what they timed"
    engines = {}
    second = pk.sweep(nets, batch_sizes=(1, 4), timing_cache=str(path), engines=engines, **FAST)
    key = ["model", "batch_size"]
    assert second.set_index(key)["tactics_id"].to_dict() == first.set_index(key)["tactics_id"].to_dict()
    for eng in engines.values():
        assert eng.plan.extra["tactic_timing_ms"] == 0          # every layer's choice came from the cache
        eng.close()


def test_a_failed_configuration_has_no_tactics_id():
    net = pk.models.mnist_mlp()
    frame = pk.sweep(net, batch_sizes=(1, 2 ** 40), **FAST)
    failed = frame[frame["error"] != ""]
    assert len(failed) == 1 and failed["tactics_id"].iloc[0] == ""
    assert frame[frame["error"] == ""]["tactics_id"].iloc[0] != ""


def test_timing_cache_arguments_are_checked_before_anything_is_built(tmp_path):
    net = pk.models.mnist_mlp()
    with pytest.raises(pk.ArgumentError, match="timing_cache"):
        pk.sweep(net, batch_sizes=(1,), timing_cache=3, **FAST)
    bad = tmp_path / "bad.cache"
    bad.write_text("{not json")
    with pytest.raises(pk.PerfkitError, match="delete it and rebuild"):
        pk.sweep(net, batch_sizes=(1,), timing_cache=bad, **FAST)
    pytest.importorskip("distributed")
    with pytest.raises(pk.ArgumentError, match="every worker can open"):
        pk.sweep(net, batch_sizes=(1,), timing_cache=pk.TimingCache(), devices=["cpu"], **FAST)


def test_a_cache_object_with_a_path_is_saved_for_the_workers_and_paths_are_made_absolute(tmp_path, monkeypatch):
    from perfkit.bench._args import check_timing_cache
    cache = pk.TimingCache(tmp_path / "given.cache")
    cache.put("k", {"tactic": "t", "ms": {"t": 1.0}})
    assert check_timing_cache(cache, devices=["cpu"]) == str(tmp_path / "given.cache")
    assert pk.TimingCache(tmp_path / "given.cache").get("k") == {"tactic": "t", "ms": {"t": 1.0}}
    assert check_timing_cache(cache, devices=None) is cache
    monkeypatch.chdir(tmp_path)
    assert check_timing_cache("rel.cache", devices=["cpu"]) == str(tmp_path / "rel.cache")
    with pytest.raises(pk.ArgumentError, match="missing or not writable"):
        check_timing_cache(tmp_path / "no" / "such" / "x.cache", devices=None)


def test_a_cache_that_cannot_be_written_is_a_perfkit_error(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    cache = pk.TimingCache(folder / "t.cache")
    folder.rmdir()
    cache.put("k", {"tactic": "t", "ms": {"t": 1.0}})
    with pytest.raises(pk.PerfkitError, match="cannot be written"):
        cache.save()
