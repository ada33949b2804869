"""plot_fusion_benefit draws each rule's interval and greys out the differences that are noise."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from perfkit.frames.schemas import FUSION_BENEFIT  # noqa: E402
from perfkit.plots import plot_fusion_benefit  # noqa: E402
from perfkit.plots.fusion import GAIN, NOISE  # noqa: E402

ROWS = [("(all rules)", 0.0, 0.0, 0.0, False), ("conv_relu", 0.35, 0.30, 0.41, True),
        ("mlp_create", -0.065, -0.26, 0.12, False), ("fc_relu", 0.26, -0.06, 191.4, False),
        ("(no rules)", 0.45, 0.40, 0.50, True)]


def _frame():
    rows = [{"rule": r, "fusions": 1, "layers": 5, "latency_ms": 1.0 + d, "latency_delta_ms": d,
             "latency_delta_pct": 100 * d, "device_memory_bytes": 1, "memory_delta_bytes": 0,
             "latency_delta_ci_low_ms": lo, "latency_delta_ci_high_ms": hi, "significant": s}
            for r, d, lo, hi, s in ROWS]
    return FUSION_BENEFIT.frame(rows, {"network": "lenet", "batch_size": 8, "device": "cpu", "rounds": 6})


def test_intervals_are_drawn_and_noise_is_greyed_and_labelled():
    fig = plot_fusion_benefit(_frame())
    ax = fig.axes[0]
    rules = [t.get_text() for t in ax.get_yticklabels()]               # bottom to top
    ci = [c for c in ax.collections if c.get_gid() == "fusion_ci"]
    assert len(ci) == 1 and len(ci[0].get_segments()) == 4              # every rule but the reference
    spans = sorted((round(s[0][0], 3), round(s[1][0], 3)) for s in ci[0].get_segments())
    left, right = ax.get_xlim()
    assert (0.3, 0.41) in spans and (-0.26, 0.12) in spans and (0.4, 0.5) in spans
    assert max(b for _, b in spans) <= right                           # the 191 ms interval is cut at the axis
    noisy = [rules[i] for i, p in enumerate(ax.patches) if p.get_gid() == "fusion_noise"]
    assert sorted(noisy) == ["fc_relu", "mlp_create"]
    assert all(to_hex(p.get_facecolor()) == NOISE for p in ax.patches if p.get_gid() == "fusion_noise")
    assert to_hex(ax.patches[rules.index("conv_relu")].get_facecolor()) == GAIN
    labels = [t.get_text() for t in ax.texts]
    noted = sorted(rules[i] for i, t in enumerate(labels) if t.startswith("not significant"))
    assert noted == ["fc_relu", "mlp_create"]
    assert any("interval -60.0 µs to +191 ms" in t for t in labels)
    assert "interval of at least 95% (6 interleaved rounds)" in ax.get_xlabel() and "(ms)" in ax.get_xlabel()
    assert ax.get_title() == "fusion benefit — lenet, batch 8, cpu"
    plt.close(fig)


def test_a_frame_without_intervals_draws_signed_bars_only():
    old = _frame().drop(columns=["latency_delta_ci_low_ms", "latency_delta_ci_high_ms", "significant"])
    fig = plot_fusion_benefit(old)
    ax = fig.axes[0]
    assert not [c for c in ax.collections if c.get_gid() == "fusion_ci"]
    assert not any(t.get_text().startswith("not significant") for t in ax.texts)
    assert [round(p.get_width(), 3) for p in ax.patches] == [0.45, 0.26, -0.065, 0.35, 0.0]
    plt.close(fig)


def test_rules_without_an_interval_are_greyed_and_say_so(recwarn):
    import numpy as np
    few = _frame().assign(latency_delta_ci_low_ms=np.nan, latency_delta_ci_high_ms=np.nan, significant=False)
    fig = plot_fusion_benefit(few)
    ax = fig.axes[0]
    rules = [t.get_text() for t in ax.get_yticklabels()]
    labels = [t.get_text() for t in ax.texts]
    assert sorted(rules[i] for i, t in enumerate(labels) if t.startswith("no interval (under 6 rounds)")) == \
        ["(no rules)", "conv_relu", "fc_relu", "mlp_create"]
    assert all(p.get_gid() == "fusion_noise" for i, p in enumerate(ax.patches) if rules[i] != "(all rules)")
    assert not [c for c in ax.collections if c.get_gid() == "fusion_ci" and len(c.get_segments())]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    plt.close(fig)
