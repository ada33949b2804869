"""The one place that chooses between an ipympl canvas and a static PNG."""
import matplotlib.pyplot as plt
import pytest

from perfkit.errors import PerfkitError
from perfkit.widgets import figure_view as fv


def _fig(text):
    fig, ax = plt.subplots()
    ax.set_title(text)
    return fig


def test_outside_jupyter_the_choice_is_static():
    assert not fv.in_jupyter_kernel()
    assert fv.choose_mode(None) == "static"
    assert fv.choose_mode(False) == "static"


def test_interactive_when_asked_and_ipympl_is_installed(monkeypatch):
    pytest.importorskip("ipympl")
    assert fv.choose_mode(True) == "interactive"
    monkeypatch.setattr(fv, "in_jupyter_kernel", lambda: True)
    assert fv.choose_mode(None) == "interactive"


def test_without_ipympl_even_a_request_gives_static(monkeypatch):
    real = fv.importlib.util.find_spec
    monkeypatch.setattr(fv.importlib.util, "find_spec", lambda n: None if n == "ipympl" else real(n))
    monkeypatch.setattr(fv, "in_jupyter_kernel", lambda: True)
    assert fv.choose_mode(True) == "static"
    assert fv.choose_mode(None) == "static"


def test_bad_choice_is_refused():
    with pytest.raises(PerfkitError):
        fv.choose_mode("yes")


def test_static_view_shows_a_png_that_changes_with_the_figure():
    view = fv.FigureView(False)
    view.show(fv.make_figure(lambda: _fig("one")))
    first = view.widget.children[0].value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    view.show(fv.make_figure(lambda: _fig("two")))
    assert view.widget.children[0].value != first
    assert view.figure.axes[0].get_title() == "two"


def _click(canvas):
    from matplotlib.backend_bases import MouseEvent
    canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", canvas, 10, 10, 1))


def test_interactive_view_keeps_one_canvas_and_its_handlers_across_figures():
    ipympl = pytest.importorskip("ipympl.backend_nbagg")
    view = fv.FigureView(True)
    view.show(fv.make_figure(lambda: _fig("one")))
    canvas = view.canvas
    assert isinstance(canvas, ipympl.Canvas) and view.widget.children == (canvas,)
    seen = []
    view.on("button_press_event", lambda e: seen.append(e.canvas.figure.axes[0].get_title()))
    two = fv.make_figure(lambda: plt.subplots(figsize=(9, 2))[0])
    two.axes[0].set_title("two")
    view.show(two)
    assert view.canvas is canvas and view.widget.children == (canvas,) and canvas.figure is two
    assert two.canvas is canvas
    _click(canvas)
    assert seen == ["two"]                            # handlers are connected to the new figure
    toolbar_handlers = canvas.callbacks.callbacks["button_press_event"]
    assert len(toolbar_handlers) >= 2                  # the view's and the toolbar's zoom/pan
    assert canvas.get_width_height() == (900, 200)     # the canvas takes the new figure's size
    wide = fv.make_figure(lambda: plt.subplots(figsize=(14, 3))[0])
    view.show(wide)
    assert canvas.get_width_height() == (fv.MAX_CANVAS_PX, round(3 * fv.MAX_CANVAS_PX / 14))   # scaled to fit


def test_figures_made_for_an_explorer_are_not_left_in_pyplot():
    before = set(plt.get_fignums())
    fv.make_figure(lambda: _fig("x"))
    assert set(plt.get_fignums()) == before
