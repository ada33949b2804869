"""The explorers in a real browser: JupyterLab on 127.0.0.1 with a random token, Debian's Chromium driven by
Playwright, the sweep notebook run from the Run menu, and each explorer's controls changed by hand.

Under ``CI=1`` (set by .ci/run) this test runs or fails; elsewhere it skips, saying why, when Chromium, Playwright
or JupyterLab is missing. No browser is ever downloaded: Playwright launches /usr/bin/chromium.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "05_batching_precision.ipynb"
RUN_ALL_S = 300            # the notebook's cells, on a loaded 2-core machine
REDRAW_S = 90              # one control change: the kernel redraws, the canvas repaints


def _missing() -> list:
    missing = [] if os.access(CHROMIUM, os.X_OK) else [f"Debian's Chromium at {CHROMIUM} (apt-get install chromium)"]
    for module in ("playwright", "jupyterlab", "ipywidgets", "ipympl", "jupyter_client"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {module} (pip install -e '.[test]')")
    return missing


@pytest.fixture(scope="module")
def browser_ready():
    missing = _missing()
    if missing and os.environ.get("CI"):
        pytest.fail("CI=1 and the browser test cannot run: missing " + "; ".join(missing))
    if missing:
        pytest.skip("browser test needs " + "; ".join(missing))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in its own temporary config/runtime/data directories, serving a copy of the notebook
    (so running it in the browser never writes outputs into the repository)."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(self.root, "notebooks"))
        shutil.copy(os.path.join(ROOT, "notebooks", NOTEBOOK), os.path.join(self.root, "notebooks", NOTEBOOK))
        os.symlink(os.path.join(ROOT, "data"), os.path.join(self.root, "data"))   # the notebook reads ../data
        dirs = {k: os.path.join(tmp, k.lower()) for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                                                          "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")}
        for d in dirs.values():
            os.makedirs(d)
        self.runtime_dir = dirs["JUPYTER_RUNTIME_DIR"]
        # no news and update pop-ups over the notebook (the user-settings of the apputils extension)
        news = os.path.join(dirs["JUPYTERLAB_SETTINGS_DIR"], "@jupyterlab", "apputils-extension")
        os.makedirs(news)
        with open(os.path.join(news, "notification.jupyterlab-settings"), "w") as f:
            json.dump({"fetchNews": "false", "checkForUpdates": False}, f)
        # every cell stays in the page (JupyterLab 4 otherwise detaches cells scrolled out of view)
        notebook = os.path.join(dirs["JUPYTERLAB_SETTINGS_DIR"], "@jupyterlab", "notebook-extension")
        os.makedirs(notebook)
        with open(os.path.join(notebook, "tracker.jupyterlab-settings"), "w") as f:
            json.dump({"windowingMode": "none"}, f)
        self.port, self.token = _free_port(), secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        # the venv's share/jupyter (ipywidgets' and ipympl's lab extensions) stays on the search path:
        # only the user-level directories move
        env = {**os.environ, **dirs, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               "MPLBACKEND": "module://ipympl.backend_nbagg"}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = os.path.join(tmp, "jupyterlab.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait_until_up(120)
        except BaseException:
            self.close()                  # a server that never answered is not left running
            raise

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"jupyter lab did not answer on {self.url} within {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return open(self.log_path).read()[-4000:]

    def kernel_idle(self) -> bool:
        kernels = self.api("/api/kernels")
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    def kernel_client(self):
        """A second client of the notebook's kernel (its connection file is in our runtime directory)."""
        from jupyter_client import BlockingKernelClient
        (kernel,) = self.api("/api/kernels")
        client = BlockingKernelClient(connection_file=os.path.join(self.runtime_dir, f"kernel-{kernel['id']}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return client

    def close(self) -> None:
        try:
            for k in self.api("/api/kernels") or []:
                self.api(f"/api/kernels/{k['id']}", method="DELETE")      # shut the kernel down
        except (OSError, ValueError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def evaluate(client, expression: str):
    """The value of a JSON-able Python expression in the notebook's kernel."""
    out: list = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("ERROR " + "\n".join(msg["content"]["traceback"]))
    client.execute_interactive(f"import json as _j; print(_j.dumps({expression}))", timeout=60, output_hook=hook,
                               store_history=False)
    text = "".join(out)
    assert not text.startswith("ERROR"), text
    return json.loads(text)


FIGURE_TEXT = ("dict(ylabel=[a.get_ylabel() for a in {0}.figure.axes], xlabel=[a.get_xlabel() for a in {0}.figure.axes],"
               " title=[a.get_title() for a in {0}.figure.axes] + [{0}.figure._suptitle.get_text() if"
               " {0}.figure._suptitle else ''], legend=[t.get_text() for a in {0}.figure.axes if a.get_legend()"
               " for t in a.get_legend().get_texts()], xlim=[list(map(float, a.get_xlim())) for a in {0}.figure.axes])")


def figure_element(page, root_class: str):
    """The figure area of the first explorer of that class (ipympl's canvas, or the PNG of the static mode)."""
    return page.locator(f".{root_class} .perfkit-figure").first


def control(page, root_class: str, description: str):
    """The DOM of the control whose visible label is ``description`` inside the explorer."""
    root = page.locator(f".{root_class}").first
    label = root.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$", re.I))
    assert label.count(), f"no control labelled {description!r} in .{root_class}: {root.inner_text()[:500]}"
    return label.first.locator("xpath=..")


def change(box) -> str:
    """Changes a Dropdown / SelectMultiple / ToggleButtons / slider as a user would; returns what was chosen."""
    select = box.locator("select")
    if select.count():
        options = select.locator("option")
        values = [options.nth(i).get_attribute("value") for i in range(options.count())]
        current = select.evaluate("s => Array.from(s.selectedOptions).map(o => o.value)")
        # a single choice: another option; a multiple choice (all shown by default): the first option alone
        other = values[0] if select.get_attribute("multiple") is not None and len(current) > 1 else \
            next(v for v in values if v not in current)
        select.select_option(value=other)
        return options.nth(values.index(other)).inner_text()
    buttons = box.locator("button.widget-toggle-button")
    if buttons.count():
        other = next(buttons.nth(i) for i in range(buttons.count())
                     if "mod-active" not in (buttons.nth(i).get_attribute("class") or ""))
        other.click()
        return other.inner_text()
    handle = box.locator(".noUi-handle").last           # a slider (or the upper end of a range): one step down
    handle.focus()
    handle.press("ArrowLeft")
    return box.inner_text()


def wait_for(predicate, timeout_s: float, what: str, lab: Lab | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}" + (f"\n{lab.log()}" if lab else ""))


def changed_by(page, lab: Lab, client, shots: str, name: str, root_class: str, variable: str, description: str):
    """Changes one control; returns the figure's texts before and after, and saves both screenshots."""
    element = figure_element(page, root_class)
    element.scroll_into_view_if_needed()
    before_png = element.screenshot(path=os.path.join(shots, f"{name}_before.png"))
    before = evaluate(client, FIGURE_TEXT.format(variable))
    chosen = change(control(page, root_class, description))

    def redrawn():
        texts = lab.kernel_idle() and evaluate(client, FIGURE_TEXT.format(variable))
        return texts if texts and texts != before else None

    def repainted():
        png = element.screenshot()
        return png if png != before_png else None
    after = wait_for(redrawn, REDRAW_S, f"{variable}.figure to change after {description} -> {chosen}")
    after_png = wait_for(repainted, REDRAW_S, f"the page's {variable} figure to change after {description} -> {chosen}")
    with open(os.path.join(shots, f"{name}_after.png"), "wb") as f:
        f.write(after_png)
    return before, after


def run_all_cells(page) -> None:
    """The Run menu's "Run All Cells", as a user would click it."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def test_explorers_in_jupyterlab_and_chromium(browser_ready):
    from playwright.sync_api import sync_playwright
    tmp = tempfile.mkdtemp(prefix="perfkit-browser-")
    shots = os.path.join(tmp, "screenshots")
    os.makedirs(shots)
    print(f"\nbrowser test screenshots: {shots}")
    lab = Lab(tmp)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0 else [])
            try:
                check_explorers(browser, lab, shots)
            finally:
                browser.close()
    finally:
        lab.close()
    assert lab.proc.poll() is not None
    print(f"browser test screenshots: {sorted(os.listdir(shots))} in {shots}")


def check_explorers(browser, lab: Lab, shots: str) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/notebooks/{NOTEBOOK}?token={lab.token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    wait_for(lambda: lab.api("/api/kernels"), 120, "the notebook's kernel to start", lab)
    wait_for(lab.kernel_idle, 120, "the kernel to be idle", lab)
    run_all_cells(page)
    page.locator(".perfkit-sweep-explorer").first.wait_for(timeout=RUN_ALL_S * 1000)
    wait_for(lambda: lab.kernel_idle() and not page.locator(".jp-InputPrompt", has_text="[*]").count(),
             RUN_ALL_S, "every cell to finish", lab)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, tracebacks[0][:3000]
    page.screenshot(path=os.path.join(shots, "notebook_after_run_all.png"))
    # the lab extensions in the environment's share/jupyter loaded: widgets render (the explorer's box above),
    # and ipympl's canvas, not a static PNG, shows the figure
    assert page.locator(".perfkit-sweep-explorer .perfkit-figure .jupyter-matplotlib-canvas-div").count(), \
        "no ipympl canvas in the SweepExplorer: jupyter-matplotlib's lab extension did not load"
    client = lab.kernel_client()
    try:
        before, after = changed_by(page, lab, client, shots, "sweep_metric", "perfkit-sweep-explorer", "explorer",
                                   "metric")
        assert after["ylabel"] != before["ylabel"], (before, after)
        before, after = changed_by(page, lab, client, shots, "sweep_precision", "perfkit-sweep-explorer", "explorer",
                                   "precision")
        assert (after["legend"], after["title"]) != (before["legend"], before["title"]), (before, after)
        before, after = changed_by(page, lab, client, shots, "profile_iterations", "perfkit-profile-explorer",
                                   "profile_explorer", "iterations")
        assert (after["xlim"], after["title"]) != (before["xlim"], before["title"]), (before, after)
    finally:
        client.stop_channels()
