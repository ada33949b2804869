"""transfers(): pageable vs pinned copy bandwidth per size and direction, and its plot; on the CPU the
frame says that both rows are host memory copies."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import perfkit as pk  # noqa: E402
from perfkit.bench import transfers  # noqa: E402
from perfkit.plots.transfers import plot_transfers  # noqa: E402


def test_frame_rows_and_cpu_note():
    df = transfers("cpu", sizes_bytes=[4096, 1 << 20], repeats=6)
    assert len(df) == 2 * 2 * 2
    assert set(df["memory"]) == {"pageable", "pinned"} and set(df["direction"]) == {"h2d", "d2h"}
    assert (df["repeats"] == 6).all()
    for r in df.itertuples():
        assert r.bandwidth_gb_s == pytest.approx(r.size_bytes / (r.time_median_ms / 1e3) / 1e9)
        assert r.time_ci_low_ms <= r.time_median_ms <= r.time_ci_high_ms
        assert r.bandwidth_ci_low_gb_s <= r.bandwidth_gb_s <= r.bandwidth_ci_high_gb_s
    assert "host memory" in df.attrs["note"] and "not PCIe" in df.attrs["note"]


def test_plot_names_what_it_shows():
    df = transfers("cpu", sizes_bytes=[4096, 65536], repeats=2, directions=("h2d",))
    fig = plot_transfers(df)
    ax = fig.axes[0]
    assert {l.get_gid() for l in ax.lines} == {"h2d_pageable", "h2d_pinned"}
    assert "host memory" in ax.get_xlabel() and "GB/s" in ax.get_ylabel()
    assert "pinned vs pageable" in ax.get_title()
    assert any(t.get_gid() == "ratio" for t in ax.texts)
    matplotlib.pyplot.close(fig)


def test_bad_arguments():
    for kw in ({"sizes_bytes": [0]}, {"sizes_bytes": "big"}, {"repeats": 0}, {"directions": ("up",)},
               {"directions": "h2d"}, {"device": "tpu"}):
        with pytest.raises(pk.PerfkitError):
            transfers(**kw)
