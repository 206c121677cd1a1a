"""--path DIR: code that imports its own package (``from common.layers import ...``) is given
the package's root, in ``gradcheck``, ``gradcheck layer``, ``gradcheck grade`` and
``gradcheck regression``; the worker gets a private copy of the root's .py tree (with the
copy's refusals), and the checker's own path never changes."""
import json
import os
import sys
from pathlib import Path

import pytest

import gradcheck
from gradcheck.cli import main
from gradcheck.errors import ExitCode

PKGROOT = Path(__file__).resolve().parent / "impls" / "styles" / "pkgroot"
MODEL = str(PKGROOT / "models" / "rnn.py")
SMALL = ["--interval", "2", "--batch", "2"]
BATTERY = str(Path(__file__).resolve().parent / "grade_small_battery.toml")


@pytest.fixture(autouse=True)
def _unloaded():
    """The package's modules unloaded before and after each test (an in-process load
    keeps them in sys.modules, where a later load would find them without the root)."""
    def unload():
        for name in [n for n in sys.modules if n.split(".")[0] in ("common", "models")]:
            del sys.modules[name]
    unload()
    yield
    unload()


@pytest.mark.parametrize("impl", [MODEL, "models.rnn:loss_and_grads"], ids=["file", "module"])
def test_the_package_root_makes_its_imports_load(impl, capsys):
    assert main(SMALL + ["--path", str(PKGROOT), "--impl", impl]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("PASSED")


def test_without_it_the_file_form_says_how_to_give_the_root(capsys):
    assert main(SMALL + ["--impl", MODEL]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "No module named 'common'" in err and "or given that root with --path DIR" in err


@pytest.mark.parametrize("in_process", [False, True], ids=["isolated", "in-process"])
def test_the_checkers_own_path_never_changes(in_process):
    before = list(sys.path)
    report = gradcheck.check("models.rnn:loss_and_grads", path=str(PKGROOT), interval=2,
                             batch=2, in_process=in_process)
    assert report.passed and sys.path == before
    assert ("common" in sys.modules) == in_process        # isolated: never loaded here


@pytest.mark.parametrize("functions", [
    ["--forward", "common.layers:rnn_forward", "--backward", "common.layers:rnn_backward"],
    ["--impl", "common.layers:rnn_forward,rnn_backward"]], ids=["forward-backward", "impl"])
def test_a_layer_of_the_package_is_checked_by_itself(functions, capsys):
    argv = ["layer", "rnn", *functions]
    assert main(argv) == ExitCode.USAGE
    assert "No module named 'common'" in capsys.readouterr().err
    before = list(sys.path)
    assert main(argv + ["--path", str(PKGROOT)]) == ExitCode.OK
    assert sys.path == before


def test_grade_gives_every_submission_the_class_package(capsys):
    argv = ["grade", "--battery", BATTERY, "--allow-import", "reference", "--format", "json",
            MODEL]
    assert main(argv[:1] + ["--path", str(PKGROOT)] + argv[1:]) == ExitCode.OK
    with_root = json.loads(capsys.readouterr().out)["submissions"][0]
    assert with_root["score"] == with_root["max_score"] > 0
    assert main(argv) == ExitCode.OK
    without = json.loads(capsys.readouterr().out)["submissions"][0]
    assert without["score"] == 0


@pytest.mark.parametrize("command", [["--interval", "2", "--impl", MODEL],
                                     ["layer", "rnn"], ["grade", MODEL],
                                     ["regression", "--impl", MODEL, "--baseline", "b.json"]],
                         ids=["gradcheck", "layer", "grade", "regression"])
@pytest.mark.parametrize("where,message", [
    ("missing", "--path {}: no such folder"),
    ("file", "--path {}: not a folder; expected the package's root folder"),
])
def test_a_path_that_is_not_a_folder_is_one_line(command, where, message, tmp_path, capsys):
    path = tmp_path / "nope"
    if where == "file":
        path.write_text("")
    assert main(command + ["--path", str(path)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    prog = "gradcheck" if command[0].startswith("--") else f"gradcheck {command[0]}"
    assert err == f"{prog}: error: {message.format(path)}\n"


@pytest.mark.parametrize("argv,message", [
    (["--interval", "2"], "gradcheck: error: --path needs --impl: it is where --impl's own "
                          "package is found"),
    (["layer", "rnn"], "gradcheck layer: error: --path needs --impl or --forward/--backward: "
                       "it is where their own package is found"),
    (["grade", "--bundle", "gradescope", "out"],
     "gradcheck grade: error: --path and --bundle: an autograder carries no folder of yours; "
     "put the package in the submission"),
    (["regression"], "gradcheck regression: error: --path needs --impl: it is where --impl's "
                     "own package is found"),
], ids=["gradcheck", "layer", "grade-bundle", "regression"])
def test_a_path_without_code_to_give_it_to_is_one_line(argv, message, capsys):
    assert main(argv + ["--path", str(PKGROOT)]) == ExitCode.USAGE
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.parametrize("impl", [MODEL, "models.rnn:loss_and_grads"], ids=["file", "module"])
def test_regression_gives_the_package_root_to_every_configuration(impl, tmp_path, monkeypatch,
                                                                   capsys):
    from gradcheck import regression
    monkeypatch.setattr(regression, "IMPL_CONFIGS", {"small": dict(interval=2, batch=2)})
    baseline = str(tmp_path / "mine.json")
    argv = ["regression", "--impl", impl, "--baseline", baseline]
    assert main(argv + ["--update"]) == ExitCode.USAGE        # ('common', or 'models')
    assert "raised ModuleNotFoundError: No module named" in capsys.readouterr().err
    assert main(argv + ["--path", str(PKGROOT), "--update"]) == ExitCode.OK
    doc = regression.load_baseline(baseline)
    small = doc["configs"]["small"]              # the root is not recorded: it may move
    assert small["passed"] and "path" not in small["options"] and "path" not in small["config"]
    assert main(argv + ["--path", str(PKGROOT)]) == ExitCode.OK
    assert "no regression" in capsys.readouterr().out


def test_regression_advice_to_create_the_baseline_keeps_the_path(tmp_path, capsys):
    baseline = tmp_path / "missing.json"
    assert main(["regression", "--impl", MODEL, "--path", str(PKGROOT),
                 "--baseline", str(baseline)]) == ExitCode.USAGE
    assert capsys.readouterr().err.rstrip().endswith(
        f"create it with: gradcheck regression --impl {MODEL} --path {PKGROOT} "
        f"--baseline {baseline} --update")


def _root(tmp_path):
    root = tmp_path / "root"
    for rel in ("common/__init__.py", "models/__init__.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "common" / "layers.py").write_text((PKGROOT / "common" / "layers.py").read_text())
    (root / "models" / "rnn.py").write_text(Path(MODEL).read_text())
    return root


@pytest.mark.parametrize("entry,why", [
    ("symlink", "common/evil.py is a symbolic link"),
    ("fifo", "common/pipe.py is not a regular file (a FIFO, socket or device)"),
    ("large", "common/big.py is larger than 8 MiB"),
])
def test_the_roots_copy_refuses_what_the_sandbox_refuses(entry, why, tmp_path, capsys):
    root = _root(tmp_path)
    if entry == "symlink":
        os.symlink("/etc/passwd", root / "common" / "evil.py")
    elif entry == "fifo":
        os.mkfifo(root / "common" / "pipe.py")
    else:
        with open(root / "common" / "big.py", "wb") as f:
            f.truncate((8 << 20) + 1)
    argv = SMALL + ["--path", str(root), "--impl", "models.rnn:loss_and_grads"]
    assert main(argv) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        f"gradcheck: error: --impl models.rnn:loss_and_grads: its code cannot be copied for "
        f"the worker: in --path {root}: {why}\n")


def test_hidden_folders_and_caches_are_left_out_of_the_copy(tmp_path, capsys):
    root = _root(tmp_path)
    (root / ".git").mkdir()
    os.mkfifo(root / ".git" / "fifo.py")           # would be refused if copied
    (root / "common" / "__pycache__").mkdir()
    os.symlink("/etc/passwd", root / "common" / "__pycache__" / "x.py")
    assert main(SMALL + ["--path", str(root), "--impl", "models.rnn:loss_and_grads"]) == 0


@pytest.mark.parametrize("impl,path,message", [
    (None, str(PKGROOT), "path='{}': applies to an implementation named by a string"),
    ("models.rnn:loss_and_grads", "/nope", "path='/nope': expected a folder"),
], ids=["reference", "missing"])
def test_check_refuses_a_path_it_cannot_use(impl, path, message):
    with pytest.raises(gradcheck.UsageError, match="^" + message.format(path).replace("(", r"\(")):
        gradcheck.check(impl, path=path, interval=2, batch=2)
