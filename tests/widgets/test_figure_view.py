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
    assert isinstance(canvas, ipympl.Canvas) and view.widget.children[-1:] == (canvas,)
    seen = []
    view.on("button_press_event", lambda e: seen.append(e.canvas.figure.axes[0].get_title()))
    two = fv.make_figure(lambda: plt.subplots(figsize=(9, 2))[0])
    two.axes[0].set_title("two")
    view.show(two)
    assert view.canvas is canvas and view.widget.children[-1:] == (canvas,) and canvas.figure is two
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


def test_without_matplotlibs_private_set_dpi_the_view_falls_back_to_a_fresh_canvas():
    # _swap_figure relies on Figure._set_dpi (private); a matplotlib without it gets a new canvas instead
    from matplotlib.figure import Figure
    ipympl = pytest.importorskip("ipympl.backend_nbagg")

    class WithoutPrivateDpi(Figure):
        @property
        def _set_dpi(self):                        # the public dpi property keeps Figure's own setter
            raise AttributeError("_set_dpi")

    view = fv.FigureView(True)
    view.show(fv.make_figure(lambda: _fig("one")))
    first = view.canvas
    two = fv.make_figure(lambda: plt.subplots(figsize=(9, 2), FigureClass=WithoutPrivateDpi)[0])
    view.show(two)
    assert isinstance(view.canvas, ipympl.Canvas) and view.canvas is not first
    assert view.widget.children[-1:] == (view.canvas,) and view.canvas.figure is two and two.canvas is view.canvas
    assert view.canvas.get_width_height() == (900, 200)
    three = fv.make_figure(lambda: _fig("three"))
    view.show(three)                                  # and swaps again where it can
    assert view.canvas.figure is three and three.canvas is view.canvas


def test_an_interactive_view_leaves_pyplot_on_the_users_backend():
    import subprocess
    import sys
    code = ("import matplotlib; matplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\n"
            "from perfkit.widgets import figure_view as fv\n"
            "fv.FigureView(True).show(fv.make_figure(lambda: plt.subplots()[0]))\n"
            "print(matplotlib.get_backend())\n")
    pytest.importorskip("ipympl")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"


def test_the_ipympl_toolbar_takes_its_own_row_off_the_axes():
    """ipympl positions its toolbar absolutely over the figure (it hid titles and y labels); the view's style puts
    it in the flow, always visible, and hides the 'Figure N' header."""
    pytest.importorskip("ipympl.backend_nbagg")
    view = fv.FigureView(True)
    view.show(fv.make_figure(lambda: _fig("one")))
    style, canvas = view.widget.children
    assert canvas.toolbar_position == "top" and canvas.toolbar_visible == "visible" and not canvas.header_visible
    assert ".perfkit-figure .jupyter-matplotlib-toolbar{position:static" in style.value
    assert style.layout.display == "none"
