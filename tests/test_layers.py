"""The layering the code enforces: an import-linter contract (pyproject.toml, [tool.importlinter])
states perfkit's layers from the command line down to errors; an upward import fails this test."""
from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_layers_contract_holds():
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, "an import goes up the layers; run `lint-imports` in the project root to see which"


def test_subpackages_do_not_import_the_package_root():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("perfkit")
    importers = sorted(m for m in graph.find_modules_that_directly_import("perfkit") if m not in ("perfkit.__main__", "perfkit.cli"))
    assert importers == [], f"these modules import the package root (take __version__ from perfkit._version): {importers}"


def test_contract_catches_an_upward_import(tmp_path):
    """The contract can fail: in a copy of the package where the runtime imports the builder it breaks,
    and says which import."""
    pytest.importorskip("importlinter")
    import os
    import shutil
    import subprocess
    import sys
    shutil.copytree(ROOT / "perfkit", tmp_path / "perfkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()", "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    kept = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    (tmp_path / "perfkit" / "runtime" / "_upward.py").write_text("from ..builder import Builder  # noqa: F401\n")
    broken = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode != 0
    assert "perfkit.runtime is not allowed to import perfkit.builder" in broken.stdout
