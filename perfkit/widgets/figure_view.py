"""Where an explorer's figure is shown: an ipympl canvas (zoom, pan, hover) when ipympl is installed and
the kernel is Jupyter's, a static PNG in an ``ipywidgets.Image`` otherwise. The choice is made here
alone, and can be forced (``interactive=True/False``), so it is testable outside Jupyter."""
from __future__ import annotations

import contextlib
import importlib.util
import io
from typing import Any, Callable, Iterator

from ..arguments import flag

MODES = ("interactive", "static")
#: widest canvas drawn in a notebook (px): JupyterLab's output column on a common screen; a wider figure is
#: drawn at a lower dpi (text and axes scale together, so what fitted still fits)
MAX_CANVAS_PX = 980
#: ipympl draws its toolbar absolutely positioned over the figure (over titles and y labels); in an explorer
#: it takes its own row above the figure instead
TOOLBAR_CSS = ("<style>.perfkit-figure .jupyter-matplotlib-toolbar{position:static!important;"
               "margin:0 0 2px 0}</style>")


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel), False in a terminal or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def choose_mode(interactive: Any = None) -> str:
    """'interactive' or 'static': ``None`` picks interactive when ipympl is importable and this is a
    Jupyter kernel; ``True`` insists on ipympl (static, with no error, when it is not installed)."""
    if interactive is not None:
        flag(interactive, "interactive (True: ipympl canvas, False: static PNG, None: choose)")
    has_ipympl = importlib.util.find_spec("ipympl") is not None
    if interactive is None:
        interactive = has_ipympl and in_jupyter_kernel()
    return "interactive" if interactive and has_ipympl else "static"


@contextlib.contextmanager
def quiet_pyplot() -> Iterator[None]:
    """pyplot's interactive mode off while a plot function makes its figure, so no backend shows it
    on its own (it would appear twice: once by itself, once in the explorer)."""
    import matplotlib.pyplot as plt
    resolve = getattr(plt, "_get_backend_mod", None)
    if resolve is not None:
        # pyplot's backend chosen now, outside ioff: in a Jupyter kernel choosing the inline backend turns
        # interactive mode on, and ioff would then restore the 'off' it found, so that later plot_* cells of
        # the user showed nothing
        resolve()
    with plt.ioff():
        yield


def make_figure(plot: Callable[[], Any]) -> Any:
    """Calls ``plot()`` (a perfkit.plots function returning a Figure) with pyplot quiet, then takes the
    figure out of pyplot's registry: the explorer owns it, and closing it is the explorer's job."""
    import matplotlib.pyplot as plt
    with quiet_pyplot():
        fig = plot()
    plt.close(fig)
    return fig


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The figure rendered as PNG (Agg), whatever canvas it has."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def fit_width(fig: Any, max_px: int = MAX_CANVAS_PX) -> None:
    """Lowers the figure's dpi so that it is at most ``max_px`` wide on a canvas (a static PNG is scaled
    by the browser instead). The dpi a canvas scales for high-density screens starts from this one."""
    dpi = min(getattr(fig, "_original_dpi", fig.dpi), max_px / fig.get_figwidth())
    fig._original_dpi = dpi
    fig.set_dpi(dpi)


class FigureView:
    """The figure area of an explorer: ``widget`` (an ipywidgets.Box, CSS class ``perfkit-figure``)
    showing the last figure given to :meth:`show`, as an ipympl canvas or as a PNG."""

    def __init__(self, interactive: Any = None):
        import ipywidgets as w
        self.mode = choose_mode(interactive)
        self.widget = w.Box(layout=w.Layout(width="100%", overflow="auto"))
        self.widget.add_class("perfkit-figure")
        self.figure = None
        self.canvas = None            # the ipympl Canvas in interactive mode
        self._image = None
        self._listeners: list = []

    def on(self, event: str, handler: Callable) -> None:
        """Connects ``handler`` to the matplotlib ``event`` of every figure shown from now on
        (interactive mode only: a PNG has no events)."""
        self._listeners.append((event, handler))
        if self.canvas is not None:
            self.canvas.mpl_connect(event, handler)

    def show(self, fig: Any) -> None:
        """Shows ``fig`` in place of the previous figure: the same PNG widget gets the new image, the
        same ipympl canvas draws the new figure (one canvas widget for the life of the view, so the
        notebook never holds stale canvases)."""
        self.figure = fig
        if self.mode == "static":
            self._show_png(fig)
        elif self.canvas is None:
            self._show_canvas(fig)
        else:
            self._swap_figure(fig)

    def refresh(self) -> None:
        """Shows the current figure again after its artists were changed in place (a highlight)."""
        if self.figure is None:
            return
        if self.mode == "interactive":
            self.canvas.draw_idle()
        else:
            self._show_png(self.figure)

    def _show_png(self, fig: Any) -> None:
        import ipywidgets as w
        data = png_bytes(fig)
        if self._image is None:
            self._image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
            self.widget.children = (self._image,)
        self._image.value = data

    def _swap_figure(self, fig: Any) -> None:
        """The canvas draws ``fig`` from now on, at the browser's pixel ratio, resized to its size. A
        canvas's event handlers live on its figure, so the view's handlers and the toolbar's zoom and
        pan are connected again.

        matplotlib has no public way to move a figure to a live canvas: this uses ``Figure._set_dpi``,
        ``_original_dpi``, ipympl's ``_force_full``/``_png_is_old`` and re-runs the toolbar's __init__.
        Should a later matplotlib or ipympl lack any of them, the view makes a fresh canvas instead
        (the notebook then briefly holds the old canvas's widget, which is closed)."""
        from matplotlib.backend_bases import NavigationToolbar2
        canvas = self.canvas
        if not _swappable(canvas, fig):
            self._fresh_canvas(fig)
            return
        fit_width(fig)
        fig._set_dpi(fig._original_dpi * canvas.device_pixel_ratio, forward=False)
        fig.set_canvas(canvas)
        canvas.figure = fig
        for event, handler in self._listeners:
            canvas.mpl_connect(event, handler)
        if isinstance(canvas.toolbar, NavigationToolbar2):
            NavigationToolbar2.__init__(canvas.toolbar, canvas)     # its handlers and a fresh zoom history
        canvas._force_full = True
        canvas._png_is_old = True
        canvas.manager.resize(*fig.bbox.size)
        canvas.draw_idle()

    def _fresh_canvas(self, fig: Any) -> None:
        """A new ipympl canvas for ``fig`` in place of the old one (closed)."""
        old = self.canvas
        self._show_canvas(fig)
        if old is not None and hasattr(old, "close"):
            old.close()

    def _show_canvas(self, fig: Any) -> None:
        import ipywidgets as w
        Canvas, FigureManager = _ipympl()
        fit_width(fig)
        canvas = Canvas(fig)                      # sets fig.canvas
        FigureManager(canvas, 0)
        canvas.header_visible = False
        canvas.toolbar_visible = "visible"
        canvas.toolbar_position = "top"          # a row above the figure (TOOLBAR_CSS), not over its axes
        for event, handler in self._listeners:
            canvas.mpl_connect(event, handler)
        self.canvas = canvas
        self.widget.children = (w.HTML(TOOLBAR_CSS, layout=w.Layout(display="none")), canvas)
        canvas.draw_idle()


#: what _swap_figure needs beyond matplotlib's and ipympl's public API
PRIVATE_FIGURE = ("_set_dpi", "_original_dpi")
PRIVATE_CANVAS = ("_force_full", "_png_is_old", "device_pixel_ratio", "manager")


def _swappable(canvas: Any, fig: Any) -> bool:
    return all(hasattr(fig, a) for a in PRIVATE_FIGURE) and all(hasattr(canvas, a) for a in PRIVATE_CANVAS) \
        and getattr(canvas, "manager", None) is not None


def _ipympl() -> tuple:
    """ipympl's Canvas and FigureManager, imported without switching the user's pyplot backend (importing
    ipympl.backend_nbagg makes it pyplot's backend: plot_* cells after an explorer would show nothing)."""
    import sys
    import matplotlib
    if "ipympl.backend_nbagg" in sys.modules:
        from ipympl.backend_nbagg import Canvas, FigureManager
        return Canvas, FigureManager
    before = matplotlib.get_backend()
    from ipympl.backend_nbagg import Canvas, FigureManager
    if matplotlib.get_backend() != before:
        import matplotlib.pyplot as plt
        plt.switch_backend(before)
    return Canvas, FigureManager
