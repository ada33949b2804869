"""The project's frame: dependencies in sync, a clean import, README commands that CI really runs."""
import os
import re
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("test", "notebook", "onnx", "cluster"):
        wanted |= {_name(r) for r in extras[extra] if "python_version" not in r}
    env = open(os.path.join(ROOT, "environment.yml")).read().split("dependencies:", 1)[1]
    listed = {_name(m) for m in re.findall(r"^\s+-\s+([A-Za-z0-9_.\-]+[^\n]*)$", env, re.M)
              if not m.startswith(("-e", "pip", "python"))}
    assert wanted == listed, f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"
    # the same lower bounds on both sides
    for r in project["dependencies"]:
        assert r.split(";")[0].strip() in env, f"{r} differs in environment.yml"


def test_import_without_gpu_libraries_or_warnings():
    code = ("import sys, warnings; warnings.simplefilter('error'); import perfkit; "
            "bad = [m for m in ('cupy', 'torch', 'matplotlib.pyplot', 'pynvml', 'dask', 'distributed') "
            "if m in sys.modules]; "
            "assert not bad, bad; print(perfkit.__version__)")
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    demo_cmd = next(b.strip() for b in blocks if "demo" in b)
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert test_cmd in ci.splitlines()
    assert "perfkit demo" in demo_cmd


def test_readme_tour_runs(tmp_path):
    readme = open(os.path.join(ROOT, "README.md")).read()
    code = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert code
    r = subprocess.run([sys.executable, "-c", "\n".join(code)], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "tiny.engine").exists()


def test_committed_sample_engine_loads():
    import numpy as np
    import perfkit as pk
    eng = pk.load_engine(os.path.join(ROOT, "data", "mnist_mlp.engine"), device="cpu")
    net = pk.models.mnist_mlp()
    x = pk.models.sample_input(net, 4)
    fresh = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=64))
    # the builder times tactics (MLP nn/nt), so a fresh build may sum in another order: equal to fp32 rounding
    np.testing.assert_allclose(eng.create_execution_context().execute(x)["prob"],
                               fresh.create_execution_context().execute(x)["prob"], rtol=1e-5, atol=1e-7)


def test_recorded_h200_frames_match_their_schemas():
    import glob
    import pandas as pd
    from perfkit.frames import SCHEMAS
    files = glob.glob(os.path.join(ROOT, "data", "h200_demo_*", "*.parquet"))
    assert files
    for f in files:
        frame = pd.read_parquet(f)
        SCHEMAS[os.path.basename(f)[:-len(".parquet")]].validate(frame)
        assert len(frame)
