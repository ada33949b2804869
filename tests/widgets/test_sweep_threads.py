"""The live SweepExplorer fed from a sweep thread while the user changes controls from another (the
Jupyter comm thread): a change that arrives while the sweep thread refreshes the options is neither
dropped nor overwritten, and no exception escapes either thread."""
import threading

from explorer_data import sweep_frame, sweep_row

from perfkit.widgets import SweepExplorer


def _run(*targets):
    errors = []

    def guard(f):
        def run():
            try:
                f()
            except BaseException as e:           # noqa: BLE001 - the test reports whatever escaped
                errors.append(e)
        return run
    threads = [threading.Thread(target=guard(f)) for f in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


def _precisions_drawn(e):
    return {p for p in e.table_frame["precision"]}


def test_a_choice_made_while_the_sweep_thread_refreshes_the_options_is_kept():
    e = SweepExplorer(sweep_frame([sweep_row(precision="fp32", batch=b) for b in (1, 4)]), interactive=False,
                      redraw_interval_s=0)
    changing, changed = threading.Event(), threading.Event()
    sweep_thread = []

    def options_changed(change):                 # inside the sweep thread's option refresh
        if threading.get_ident() in sweep_thread and not changing.is_set():
            changing.set()
            assert changed.wait(10)

    e.precision.observe(options_changed, names="options")

    def sweep():
        sweep_thread.append(threading.get_ident())
        e(sweep_row(precision="fp16", batch=1))       # a new precision: the options change

    def user():
        assert changing.wait(10)
        threading.Timer(0.3, changed.set).start()      # the sweep thread goes on while the user's redraw waits
        e.precision.value = ("fp16",)                  # the user shows only fp16

    _run(sweep, user)
    assert e.precision.value == ("fp16",)
    assert _precisions_drawn(e) == {"fp16"}


def test_rows_and_control_changes_from_two_threads_end_consistent():
    e = SweepExplorer(sweep_frame([sweep_row(batch=1)]), interactive=False, redraw_interval_s=0)

    def sweep():
        for i, b in enumerate((2, 4, 8)):
            e(sweep_row(precision=("fp32", "fp16", "bf16")[i % 3], batch=b))
        e.finish()

    def user():
        for i in range(6):
            e.logy.value = not e.logy.value
            e.metric.value = ("throughput_per_s", "latency_median_ms")[i % 2]

    _run(sweep, user)
    ax = e.figure.axes[0]
    assert (ax.get_yscale() == "log") == e.logy.value
    assert ax.get_ylabel().startswith("median latency") and e.metric.value == "latency_median_ms"
    assert set(e.precision.value) == {"fp32", "fp16", "bf16"} == _precisions_drawn(e)
    assert len(e.table_frame) == 4
