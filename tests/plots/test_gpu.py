"""GPU samples over time, checked on a synthetic gpu_samples frame with a known throttled interval."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from plot_artists import by_gid  # noqa: E402

from perfkit.errors import PerfkitError  # noqa: E402
from perfkit.frames.schemas import GPU_SAMPLES  # noqa: E402
from perfkit.plots import plot_gpu_samples  # noqa: E402

T0 = 10**9


def _frame(gpus=(0,)):
    rows = []
    for gpu in gpus:
        for i in range(100):                                        # a sample every 10 ms
            hot = 40 <= i < 60                                      # 400-600 ms: power-capped at 1500 MHz
            rows.append({"ts_ns": T0 + i * 10_000_000, "gpu": gpu, "util_gpu_pct": 90.0, "util_mem_pct": 40.0,
                         "mem_used_bytes": 3 * 2**30, "sm_clock_mhz": 1500.0 if hot else 1980.0 - gpu,
                         "mem_clock_mhz": 2619.0, "power_w": 690.0 if hot else 400.0 + i, "power_limit_w": 700.0,
                         "temperature_c": 50.0,
                         "throttle_reasons": "sw_power_cap|hw_slowdown" if hot else ("gpu_idle" if i > 90 else "")})
    return GPU_SAMPLES.frame(rows, {"device_name": "NVIDIA H200"})


def test_a_panel_per_metric_with_the_throttled_interval_shaded():
    df = _frame()
    fig = plot_gpu_samples(df)
    clock_ax, power_ax = fig.axes
    assert clock_ax.get_title() == "GPU SM clock and power over time — NVIDIA H200"
    assert clock_ax.get_ylabel() == "SM clock (MHz)" and power_ax.get_ylabel() == "power (W)"
    assert power_ax.get_xlabel() == "time (ms) since the first sample"
    (clock,) = by_gid(clock_ax, "sm_clock_mhz:0")
    np.testing.assert_allclose(clock.get_xdata(), np.arange(100) * 10.0)
    np.testing.assert_array_equal(clock.get_ydata(), df["sm_clock_mhz"])
    (limit,) = by_gid(power_ax, "power_limit")
    assert list(limit.get_ydata()) == [700.0, 700.0]
    for ax in (clock_ax, power_ax):                               # one shaded run, idle is not throttling
        (span,) = by_gid(ax, "throttle", "patches")
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((400.0, 600.0))
    assert not fig.legends                                         # each panel's legend beside it
    assert [t.get_text() for t in clock_ax.get_legend().get_texts()] == \
        ["SM clock: median 1980 MHz (1500–1980), 100 samples", "throttled: hw_slowdown, sw_power_cap"]
    assert [t.get_text() for t in power_ax.get_legend().get_texts()] == \
        ["power: median 469.5 W (400–690), 100 samples", "power limit 700 W"]
    fig.canvas.draw()
    for ax in (clock_ax, power_ax):                                # beside its own panel, top-aligned with it
        box, panel = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert box.x0 >= panel.x1 and abs(box.y1 - panel.y1) < 2
    assert clock.get_marker() == "o"                               # 100 samples: each one shows
    calm = plot_gpu_samples(df.assign(throttle_reasons="gpu_idle")).axes[0]
    assert by_gid(calm, "no_throttle") and not by_gid(calm, "throttle", "patches")
    assert "no throttle reason in any sample" in [t.get_text() for t in calm.get_legend().get_texts()]


def test_aligned_to_a_timeline_origin_and_drawn_on_given_axes():
    df = _frame()
    ax = plot_gpu_samples(df, metrics=["sm_clock_mhz"], t0_ns=T0 + 250_000_000).axes[0]
    assert by_gid(ax, "sm_clock_mhz:0")[0].get_xdata()[0] == -250.0
    assert ax.get_xlabel() == "time (ms) since t0_ns (the timeline's origin)"
    fig, mine = plt.subplots()
    assert plot_gpu_samples(df, ax=mine) is fig
    twin = [a for a in fig.axes if a is not mine][0]
    assert mine.get_ylabel() == "SM clock (MHz)" and twin.get_ylabel() == "power (W)"
    assert [t.get_text() for t in mine.get_legend().get_texts()] == \
        ["SM clock: median 1980 MHz (1500–1980), 100 samples", "throttled: hw_slowdown, sw_power_cap",
         "power: median 469.5 W (400–690), 100 samples", "power limit 700 W"]


def test_a_line_per_gpu_bytes_in_gib_and_empty_frames():
    fig = plot_gpu_samples(_frame(gpus=(0, 1)), metrics=("mem_used_bytes", "sm_clock_mhz"))
    mem_ax, clock_ax = fig.axes
    assert mem_ax.get_ylabel() == "device memory in use (GiB)"
    assert by_gid(mem_ax, "mem_used_bytes:1")[0].get_ydata()[0] == 3.0
    assert len(clock_ax.lines) == 2 and by_gid(clock_ax, "sm_clock_mhz:1")[0].get_ydata()[0] == 1979.0
    empty = plot_gpu_samples(GPU_SAMPLES.frame([])).axes[0]
    assert [t.get_text() for t in empty.texts] == \
        ["no GPU samples (the run was not on a GPU, or NVML was not available)"]


@pytest.mark.parametrize("kw", [dict(metrics=["nope"]), dict(metrics=[]), dict(metrics=["power_w", "power_w"]),
                                dict(metrics=3), dict(t0_ns=1.5), dict(ax="x"),
                                dict(ax=True and None, metrics=("power_w",) * 1, gpu_samples="x")])
def test_bad_arguments_are_refused(kw):
    with pytest.raises(PerfkitError):
        plot_gpu_samples(**{"gpu_samples": _frame(), **kw})


def test_three_metrics_do_not_fit_on_one_given_axes():
    fig, ax = plt.subplots()
    with pytest.raises(PerfkitError, match="at most 2 metrics"):
        plot_gpu_samples(_frame(), metrics=("sm_clock_mhz", "power_w", "temperature_c"), ax=ax)
