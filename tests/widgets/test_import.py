"""ipywidgets is optional: perfkit never imports it, and perfkit.widgets says how to install it."""
import subprocess
import sys

BLOCK = "import sys; sys.modules['ipywidgets'] = None\n"   # find_spec then answers None, import fails


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_perfkit_does_not_import_ipywidgets():
    r = _run("import sys, perfkit; print('ipywidgets' in sys.modules, 'ipympl' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_import_perfkit_widgets_without_ipywidgets_says_how_to_install():
    r = _run(BLOCK + "import perfkit\ntry:\n    import perfkit.widgets\nexcept perfkit.PerfkitError as e:\n"
                     "    print(type(e).__name__, isinstance(e, ImportError), e)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("NotebookDependencyError True ")
    assert "pip install perfkit[notebook]" in r.stdout
