"""Overview and measure() tables carry a human-readable ``shown`` column beside the numeric ``value``."""
import math
from pathlib import Path

import pytest

import perfkit as pk
from perfkit.frames.units import shown
from perfkit.models import mnist_mlp

RECORDED = Path(__file__).resolve().parents[2] / "data" / "h200_2026-11-29" / "profile_lenet"


@pytest.mark.parametrize("value, unit, text", [
    (8.0, "", "8"), (0.52, "ms", "520 µs"), (1.5, "ms", "1.50 ms"), (2500.0, "ms", "2.50 s"), (0.0, "ms", "0 ms"),
    (850.0, "ns", "850 ns"), (1289.7, "ns", "1.29 µs"), (31.3 * 2**20, "B", "31.3 MiB"), (512.0, "B", "512 B"),
    (30.4, "%", "30.4 %"), (-88.04, "%", "-88.0 %"), (1.98e9, "Hz", "1.98 GHz"), (3.282278e7, "1/s", "32.8 M/s"),
    (250.0, "W", "250 W"), (0.794, "", "0.794"), (2.35, "", "2.35"), (math.nan, "ms", "n/a"),
])
def test_shown_writes_each_unit_as_a_person_reads_it(value, unit, text):
    assert shown(value, unit) == text


def test_the_overview_keeps_value_and_shows_it_in_units():
    ov = pk.profiling.load_run(RECORDED).overview().set_index("metric")
    assert list(ov.columns[:3]) == ["value", "shown", "unit"] and ov["value"].dtype == "float64"
    assert ov.loc["iterations", "shown"] == "20"
    for metric, units in (("e2e_unprofiled_ms", {"µs": 1e-3, "ms": 1.0}), ("predicted_device_memory_bytes",
                          {"KiB": 2**10, "MiB": 2**20}), ("overhead_pct", {"%": 1.0})):
        number, unit = ov.loc[metric, "shown"].split(" ")     # e.g. '190 µs', '11.4 MiB', '14.0 %'
        assert unit in units and len(number.replace(".", "").replace("-", "").lstrip("0")) <= 3, ov.loc[metric, "shown"]
        assert float(number) * units[unit] == pytest.approx(ov.loc[metric, "value"], rel=0.01)
    assert not ov["shown"].str.contains("e[+-]", regex=True).any()


def test_measure_summary_keeps_value_and_shows_it_in_units():
    eng = pk.Builder(pk.get_device("cpu", threads=1)).build(mnist_mlp(), pk.BuilderConfig(max_batch_size=8))
    m = pk.bench.measure(eng.create_execution_context(), 8, iterations=5, duration_s=0.0, warmup_ms=0,
                         gpu_metrics=False)
    s = m.summary.set_index("metric")
    assert s.loc["queries", "shown"] == "5"
    assert s.loc["latency_median_ms", "shown"] == shown(s.loc["latency_median_ms", "value"], "ms")
    assert s.loc["latency_median_ms", "shown"].endswith(("µs", " ms"))
    assert s.loc["throughput_per_s", "shown"].endswith("/s")
    assert m.value("queries") == 5.0


def test_a_disturbed_overview_shows_the_finding_with_its_unit():
    run = pk.profiling.load_run(RECORDED)
    run.meta["e2e_unprofiled_ms"] = run.meta["e2e_profiled_ms"] / (34.07 / 283.98)   # the baseline 8x slower
    ov = run.overview().set_index("metric")
    row = ov.loc["disturbed: overhead_negative"]
    assert row["unit"] == "%" and row["shown"] == "-88.0 %"
    assert row["meaning"].startswith("the unprofiled baseline was slower than the profiled run")
