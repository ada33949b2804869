"""The command's shared pieces: report lines that keep a value with its unit, and outputs staged under temporary
names that appear only on commit."""
import os

import pytest

from perfkit.cli._files import Outputs, per_config
from perfkit.cli._report import WIDTH, stats_line, wrap


def test_figures_wrap_between_values_never_inside_one():
    text = ", ".join(f"percentile({i}%) = {i}.25 µs" for i in range(1, 40))
    lines = wrap(text, "  ", "Latency: ")
    assert len(lines) > 3 and all(len(line) <= WIDTH for line in lines)
    joined = "\n".join(lines)
    for i in range(1, 40):
        assert f"percentile({i}%) = {i}.25 µs" in joined            # each value whole, on one line
    assert lines[0].startswith("Latency: percentile(1%)") and all(line.startswith("  ") for line in lines[1:])
    prose = wrap("word " * 60, "    ", "  [warning] x: ", prose=True)
    assert all(len(line) <= WIDTH for line in prose) and prose[0].startswith("  [warning] x: word")


def test_stats_line_reads_like_trtexec():
    assert stats_line([1.0, 2.0, 3.0, 4.0], (50, 90)) == (
        "min = 1.00 ms, max = 4.00 ms, mean = 2.50 ms, median = 2.50 ms, percentile(50%) = 2.50 ms, "
        "percentile(90%) = 3.70 ms")
    assert stats_line([]) == "n/a (no samples)"


def test_outputs_appear_only_on_commit_and_vanish_on_failure(tmp_path):
    target, folder = str(tmp_path / "a.json"), str(tmp_path / "d")
    with Outputs() as outs:
        with open(outs.file(target), "w") as f:
            f.write("{}")
        open(os.path.join(outs.folder(folder), "x"), "w").close()
        assert not os.path.exists(target) and not os.path.exists(folder)     # staged beside, under other names
        assert outs.commit() == [target, folder]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "d"] and os.listdir(folder) == ["x"]
    with pytest.raises(RuntimeError):
        with Outputs() as outs:
            with open(outs.file(str(tmp_path / "b.json")), "w") as f:
                f.write("{}")
            outs.folder(str(tmp_path / "e"))
            raise RuntimeError("failed midway")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "d"]
    with Outputs() as outs:
        outs.file(target)
        with pytest.raises(Exception, match="two outputs"):
            outs.file(str(tmp_path / "." / "a.json"))


def test_per_config_names():
    assert per_config("t.json", "fp16", 8, several=False) == "t.json"
    assert per_config("out/t.json", "fp16", 8, several=True) == "out/t.fp16.b8.json"
    assert per_config("engine", "fp32", 1, several=True) == "engine.fp32.b1"
