"""MemoryExplorer on a synthetic allocator history with known phases, tags and blocks, and on a real one."""
import re

import pytest

import perfkit as pk
from perfkit.frames.schemas import MEMORY_EVENTS
from perfkit.widgets import MemoryExplorer

MS = 1_000_000


def _events():
    """build: a 4 MiB workspace block 0-10 ms; context creation at 20 ms: 1 MiB weights, 2 MiB activations;
    inference (layer set) at 30 ms: a 512 KiB workspace block freed at 31 ms."""
    rows, in_use = [], 0
    for ts, action, ptr, size, tag, owner, layer in (
            (0, "alloc", 1, 4 << 20, "workspace", "builder", ""), (10, "free", 1, 4 << 20, "workspace", "builder", ""),
            (20, "alloc", 2, 1 << 20, "weights", "engine:e", ""),
            (21, "alloc", 3, 2 << 20, "activations", "context:c", ""),
            (30, "alloc", 4, 512 << 10, "workspace", "context:c", "fc"), (31, "free", 4, 512 << 10, "workspace",
                                                                         "context:c", "fc")):
        in_use += size if action == "alloc" else -size
        rows.append({"ts_ns": ts * MS, "action": action, "ptr": ptr, "size_bytes": size, "requested_bytes": size,
                     "tag": tag, "owner": owner, "layer": layer, "thread": "main", "in_use_bytes": in_use,
                     "peak_bytes": 4 << 20})
    return MEMORY_EVENTS.frame(rows)


def _areas(fig):
    return sorted(c.get_gid() for c in fig.axes[0].collections if str(c.get_gid()).startswith("tag:"))


def test_defaults_to_context_creation_and_inference_with_the_prediction():
    e = MemoryExplorer(_events(), predicted_bytes=3.5 * 2**20, interactive=False)
    assert e.phases.value == ("context creation", "inference")
    assert e.window.value == pytest.approx((20.0, 31.0))            # ms since the first event
    assert _areas(e.figure) == ["tag:activations", "tag:weights", "tag:workspace"]
    assert [l for l in e.figure.axes[0].get_lines() if l.get_gid() == "predicted"]
    assert list(e.table_frame["size_bytes"]) == [2 << 20, 1 << 20, 512 << 10]
    assert re.search(r"window: 2(\.0+)? MiB \(activations", e.note.value)
    assert re.search(r"predicted 3\.50* MiB", e.note.value)
    assert "perfkit-memory-explorer" in e.widget._dom_classes


def test_phase_window_tags_and_stacking_controls():
    e = MemoryExplorer(_events(), interactive=False)
    e.phases.value = ("build",)
    assert e.window.value == pytest.approx((0.0, 10.0))
    assert _areas(e.figure) == ["tag:workspace"] and list(e.table_frame["size_bytes"]) == [4 << 20]
    e.phases.value = ("context creation", "inference")
    e.window.value = (29.5, 31.0)
    assert list(e.table_frame["size_bytes"]) == [2 << 20, 1 << 20, 512 << 10]
    e.window.value = (20.0, 20.5)                                     # before the activations and the workspace
    assert list(e.table_frame["size_bytes"]) == [1 << 20]
    e.window.value = (20.0, 31.0)
    e.tags.value = ("workspace",)
    assert _areas(e.figure) == ["tag:workspace"] and set(e.table_frame["tag"]) == {"workspace"}
    e.tags.value = ()
    assert e.table_frame.empty and "choose at least one tag" in e.figure.axes[0].texts[0].get_text()
    e.tags.value = ("weights", "activations", "workspace")
    e.by_tag.value = False
    assert len(_areas(e.figure)) <= 1


def test_a_real_allocator_and_run(tiny_run):
    alloc = pk.TrackingAllocator()
    net = pk.models.mnist_mlp()
    engine = pk.Builder("cpu", allocator=alloc).build(net, pk.BuilderConfig(max_batch_size=4))
    engine.create_execution_context()
    e = MemoryExplorer(alloc, predicted_bytes=engine.device_memory_bytes, interactive=False)
    assert "build" in e.phases.options and len(e.table_frame) > 0
    e.phases.value = ("build",)
    assert (e.table_frame["owner"] == "builder").all()
    MemoryExplorer(tiny_run, interactive=False)                        # a run's memory (may be empty) explores too


def test_no_events_says_so_and_no_tag_chosen_asks_for_one():
    e = MemoryExplorer(MEMORY_EVENTS.frame([]), interactive=False)
    assert e.figure.axes[0].texts[0].get_text().startswith("no memory events")
    assert e.table_frame.empty
    e = MemoryExplorer(_events(), interactive=False)
    e.tags.value = ()
    assert e.figure.axes[0].texts[0].get_text() == "choose at least one tag"


def test_a_memory_events_parquet_file(tmp_path):
    ev = _events()
    ev.attrs["predicted_device_memory_bytes"] = 3 << 20                # as benchmarks/record_data.py writes it
    ev.to_parquet(tmp_path / "memory_x.parquet")
    e = MemoryExplorer(str(tmp_path / "memory_x.parquet"), interactive=False)
    assert list(e.table_frame["size_bytes"]) == [2 << 20, 1 << 20, 512 << 10]
    assert e.predicted_bytes == 3 << 20
    assert [l for l in e.figure.axes[0].get_lines() if l.get_gid() == "predicted"]


@pytest.mark.parametrize("bad", [None, 3, pk.frames.schemas.SWEEP.frame([]), "/no/such/run", "/no/such/m.parquet"])
def test_bad_sources_are_refused(bad):
    with pytest.raises(pk.PerfkitError):
        MemoryExplorer(bad, interactive=False)


def test_the_table_shows_ten_blocks_of_the_chosen_tags_even_when_larger_blocks_of_others_abound():
    rows, in_use = [], 0
    blocks = [(i, 100 << 20, "weights") for i in range(60)] + [(100 + i, (i + 1) << 10, "activations")
                                                                for i in range(15)]
    for k, (ptr, size, tag) in enumerate(blocks):
        in_use += size
        rows.append({"ts_ns": k * MS, "action": "alloc", "ptr": ptr, "size_bytes": size, "requested_bytes": size,
                     "tag": tag, "owner": "context:c", "layer": "", "thread": "main", "in_use_bytes": in_use,
                     "peak_bytes": in_use})
    e = MemoryExplorer(MEMORY_EVENTS.frame(rows), interactive=False)
    e.tags.value = ("activations",)
    assert len(e.table_frame) == 10 and set(e.table_frame["tag"]) == {"activations"}
    assert list(e.table_frame["size_bytes"])[:2] == [15 << 10, 14 << 10]
