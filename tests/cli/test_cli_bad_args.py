"""Every subcommand refuses a bad argument with one line on stderr and exit status 2, no traceback, nothing on
stdout, and nothing written: no file, no folder, no temporary name."""
import os

import numpy as np
import pytest

import perfkit as pk
from cli_helpers import QUICK, cli, everything, one_error_line


@pytest.fixture
def where(tmp_path):
    """A folder with an engine file (max batch 2), a text file, a non-empty folder; the test runs inside it."""
    e = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    e.save(tmp_path / "m.engine")
    (tmp_path / "notes.txt").write_text("not an engine")
    x = np.zeros((4, 1, 28, 28), np.float32)                          # mnist_mlp's input 'data'
    np.savez(tmp_path / "wrong_name.npz", image=x)
    np.savez(tmp_path / "wrong_shape.npz", data=np.zeros((4, 28, 28), np.float32))
    np.savez(tmp_path / "few_rows.npz", data=x[:2])
    np.savez(tmp_path / "wrong_dtype.npz", data=x.astype(np.float64))
    np.savez(tmp_path / "pickled.npz", data=np.array([{"a": 1}], dtype=object))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


BAD = {
    # run
    "run without MODEL": ["run"],
    "run with MODEL and --load-engine": ["run", "mnist_mlp", "--load-engine", "m.engine"],
    "run unknown model": ["run", "nope"],
    "run missing onnx": ["run", "missing.onnx"],
    "run missing engine path": ["run", "some/where.engine"],
    "run a text file as engine": ["run", "notes.txt"],
    "run missing --load-engine": ["run", "--load-engine", "gone.engine"],
    "run zero batch": ["run", "mnist_mlp", "--batch", "0"],
    "run letters as batch": ["run", "mnist_mlp", "--batch", "a"],
    "run empty batch": ["run", "mnist_mlp", "--batch", ","],
    "run unknown precision": ["run", "mnist_mlp", "--precision", "int8"],
    "run percentile 100": ["run", "mnist_mlp", "--percentiles", "100"],
    "run percentile 0": ["run", "mnist_mlp", "--percentiles", "0"],
    "run percentile word": ["run", "mnist_mlp", "--percentiles", "p99"],
    "run zero streams": ["run", "mnist_mlp", "--streams", "0"],
    "run more threads than streams": ["run", "mnist_mlp", "--streams", "2", "--threads", "3"],
    "run negative duration": ["run", "mnist_mlp", "--duration-s", "-1"],
    "run NaN duration": ["run", "mnist_mlp", "--duration-s", "nan"],
    "run word warm-up": ["run", "mnist_mlp", "--warmup-ms", "long"],
    "run zero iterations": ["run", "mnist_mlp", "--iterations", "0"],
    "run export under a file": ["run", "mnist_mlp", "--export-times", "notes.txt/t.json"],
    "run export onto a folder": ["run", "mnist_mlp", "--export-profile", "full"],
    "run two exports one file": ["run", "mnist_mlp", "--export-times", "a.json", "--export-profile", "a.json"],
    "run --out a file": ["run", "mnist_mlp", "--out", "notes.txt"],
    "run export over its engine": ["run", "m.engine", "--export-times", "m.engine"],
    "run export over its inputs": ["run", "mnist_mlp", "--inputs", "few_rows.npz", "--export-trace", "few_rows.npz"],
    "build over its model": ["build", "m.engine", "-o", "m.engine"],
    "build timing cache over the engine": ["build", "mnist_mlp", "-o", "m.engine", "--timing-cache", "m.engine"],
    "build an unreadable timing cache": ["build", "mnist_mlp", "-o", "n.engine", "--timing-cache", "notes.txt"],
    "run an unreadable timing cache": ["run", "mnist_mlp", "--timing-cache", "notes.txt"],
    "run --out a full folder": ["run", "mnist_mlp", "--out", "full"],
    "run --no-profile with --dump-profile": ["run", "mnist_mlp", "--no-profile", "--dump-profile"],
    "run --no-profile with --export-profile": ["run", "mnist_mlp", "--no-profile", "--export-profile", "p.json"],
    "run engine with --precision": ["run", "m.engine", "--precision", "fp16"],
    "run engine with --save-engine": ["run", "m.engine", "--save-engine", "n.engine"],
    "run engine past its max batch": ["run", "m.engine", "--batch", "1,4"],
    "run unknown device": ["run", "mnist_mlp", "--device", "tpu"],
    "run zero cpu threads": ["run", "mnist_mlp", "--cpu-threads", "0"],
    "sweep word cpu threads": ["sweep", "mnist_mlp", "--cpu-threads", "many"],
    "run inputs of another name": ["run", "mnist_mlp", "--inputs", "wrong_name.npz"],
    "run inputs of another shape": ["run", "mnist_mlp", "--inputs", "wrong_shape.npz"],
    "run inputs with too few samples": ["run", "mnist_mlp", "--batch", "1,3", "--inputs", "few_rows.npz"],
    "run inputs of another dtype": ["run", "mnist_mlp", "--inputs", "wrong_dtype.npz"],
    "run pickled inputs": ["run", "mnist_mlp", "--inputs", "pickled.npz"],
    "run inputs not an npz": ["run", "mnist_mlp", "--inputs", "notes.txt"],
    "run engine inputs of another shape": ["run", "m.engine", "--inputs", "wrong_shape.npz"],
    "run unknown option": ["run", "mnist_mlp", "--bogus"],
    # build
    "build without -o": ["build", "mnist_mlp"],
    "build under a file": ["build", "mnist_mlp", "-o", "notes.txt/sub/m.engine"],
    "build onto a folder": ["build", "mnist_mlp", "-o", "full"],
    "build unknown fusion rule": ["build", "mnist_mlp", "-o", "n.engine", "--fusions", "fc_relu,nope"],
    "build unknown precision": ["build", "mnist_mlp", "-o", "n.engine", "--precision", "int4"],
    "build zero batch": ["build", "mnist_mlp", "-o", "n.engine", "--batch", "0"],
    "build an engine file": ["build", "m.engine", "-o", "n.engine"],
    "build unknown model": ["build", "nope", "-o", "n.engine"],
    # inspect
    "inspect a missing file": ["inspect", "gone.engine"],
    "inspect a folder": ["inspect", "full"],
    "inspect a text file": ["inspect", "notes.txt"],
    # sweep
    "sweep no model": ["sweep"],
    "sweep unknown model": ["sweep", "mnist_mlp", "nope"],
    "sweep an engine file": ["sweep", "m.engine"],
    "sweep zero rounds": ["sweep", "mnist_mlp", "--rounds", "0"],
    "sweep --out a file": ["sweep", "mnist_mlp", "--out", "notes.txt"],
    "sweep --out a full folder": ["sweep", "mnist_mlp", "--out", "full"],
    "sweep negative budget": ["sweep", "mnist_mlp", "--latency-budget-ms", "-2"],
    "sweep zero budget": ["sweep", "mnist_mlp", "--latency-budget-ms", "0"],
    "sweep threads without streams": ["sweep", "mnist_mlp", "--threads", "2"],
    "sweep layers with streams": ["sweep", "mnist_mlp", "--streams", "1,2", "--layers"],
    "sweep zero streams": ["sweep", "mnist_mlp", "--streams", "0,2"],
    # serve-bench
    "serve-bench no rate": ["serve-bench", "mnist_mlp"],
    "serve-bench zero rate": ["serve-bench", "mnist_mlp", "--rate", "0"],
    "serve-bench word delay": ["serve-bench", "mnist_mlp", "--rate", "10", "--max-delay-ms", "soon"],
    "serve-bench negative delay": ["serve-bench", "mnist_mlp", "--rate", "10", "--max-delay-ms", "0,-1"],
    "serve-bench closed without concurrency": ["serve-bench", "mnist_mlp", "--pattern", "closed"],
    "serve-bench closed with a rate": ["serve-bench", "mnist_mlp", "--pattern", "closed", "--concurrency", "2",
                                       "--rate", "5"],
    "serve-bench poisson with concurrency": ["serve-bench", "mnist_mlp", "--rate", "5", "--concurrency", "2"],
    "serve-bench unknown pattern": ["serve-bench", "mnist_mlp", "--pattern", "bursty"],
    "serve-bench --out a full folder": ["serve-bench", "mnist_mlp", "--rate", "10", "--out", "full"],
    "serve-bench unknown model": ["serve-bench", "nope", "--rate", "10"],
    "serve-bench engine file with --engines": ["serve-bench", "m.engine", "--rate", "10", "--engines", "1,2"],
    "serve-bench engine file with --precision": ["serve-bench", "m.engine", "--rate", "10", "--precision", "fp16"],
    "serve-bench max batch past the engine": ["serve-bench", "m.engine", "--rate", "10", "--max-batch", "4"],
    # the command itself
    "unknown command": ["nope"],
    "no command": [],
}


@pytest.mark.parametrize("argv", list(BAD.values()), ids=list(BAD))
def test_bad_argument_is_one_line_and_leaves_nothing(argv, where, capsys):
    from perfkit.cli import main
    before = everything(where)
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    one_error_line(captured.err)
    assert captured.out == ""
    assert everything(where) == before


def test_a_missing_gpu_is_one_line(where, capsys):
    from perfkit.cli import main
    if pk.cuda_available():
        pytest.skip("this machine has a GPU")
    for argv in (["run", "mnist_mlp", "--device", "cuda"], ["build", "mnist_mlp", "-o", "x.engine", "--device", "cuda"],
                 ["sweep", "mnist_mlp", "--device", "cuda:0"]):
        before = everything(where)
        assert main(argv) == 2
        captured = capsys.readouterr()
        one_error_line(captured.err)
        assert everything(where) == before


def test_the_installed_command_reports_bad_arguments_without_traceback(where):
    for argv in (["run", "nope"], ["run", "m.engine", "--batch", "8", *QUICK]):
        r = cli(where, *argv)
        assert r.returncode == 2
        line = one_error_line(r.stderr)
        assert line.startswith(f"perfkit {argv[0]}")


def test_help_and_version(where, capsys):
    from perfkit.cli import main
    r = cli(where, "--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    for name in ("run", "build", "inspect", "sweep", "serve-bench", "demo", "info"):
        assert f"    {name}" in r.stdout
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"perfkit {pk.__version__}"
    for name in ("run", "build", "inspect", "sweep", "serve-bench"):
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: perfkit {name}") and "examples:" in text
        if name == "run":
            for flag in ("--batch", "--precision", "--warmup-ms", "--iterations", "--duration-s", "--percentiles",
                         "--streams", "--threads", "--graph", "--no-graph", "--no-transfers", "--dump-profile",
                         "--export-profile", "--export-times", "--export-trace", "--save-engine", "--load-engine",
                         "--timing-cache", "--out", "--device"):
                assert flag in text, flag


def _examples(text: str) -> list:
    """The ``perfkit ...`` command lines of a help epilog or a README (continuations joined, comments and the
    descriptions after a run of spaces dropped)."""
    import re
    import shlex
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("perfkit ") or line.startswith("$ perfkit "):
            line = re.split(r"\s{3,}|\s#\s", line.removeprefix("$ "))[0]
            out.append(shlex.split(line)[1:])
    return out


def test_every_example_in_the_help_and_the_readme_parses(monkeypatch):
    """The examples use options that exist with values they accept (files they name need not exist here)."""
    import perfkit.cli as cli_pkg
    from perfkit.cli import _args
    for name in ("input_file", "output_path", "output_dir"):
        monkeypatch.setattr(_args, name, lambda text: text)
    p = cli_pkg.parser()
    helps = [p.epilog] + [sub.epilog or "" for action in p._subparsers._group_actions
                          for sub in action.choices.values()]
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    import re
    bash = re.findall(r"```bash\n(.*?)```", open(readme).read(), re.S) if os.path.exists(readme) else []
    texts = helps + bash
    examples = [argv for t in texts for argv in _examples(t)]
    assert len(examples) > 20
    for argv in examples:
        args = p.parse_args(argv)
        assert callable(args.func), argv


def test_inspecting_a_sample_name_says_to_build_it_first(capsys, tmp_path, monkeypatch):
    from perfkit.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "lenet"]) == 2
    err = capsys.readouterr().err
    assert "'lenet' does not exist" in err and "perfkit build lenet -o lenet.engine" in err
