"""Red team, the worker's view (gradcheck.sandbox): code written to cheat tries to read
the checker's memory, rewrite what the checker runs later, reach the network, fork
without end, write the user's files or read and rewrite classmates' submissions.

Each attack is a WRONG implementation (dU 1% off; tests/impls/hostile/redteam_sandbox.py)
or a wrong submission that prints ``ESCAPED: ...`` when its way out works: the verdict
must still fail, with nothing escaped and nothing changed on disk. An attack that a
mechanism does not stop by design (the README's guarantee table says which) is skipped
under that mechanism with the reason. CI runs this file twice: as root and as an
ordinary user (.ci/run).
"""
import hashlib
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

import gradcheck
from gradcheck import exe_cache, sandbox
from gradcheck.cli import main
from gradcheck.errors import ExitCode, UsageError
from tests.helpers import SMALL, processes_named

pytestmark = pytest.mark.redteam

HERE = Path(__file__).resolve().parent
REDTEAM = HERE / "impls" / "hostile" / "redteam_sandbox.py"
CORRECT_SUBMISSION = HERE / "grade_submissions" / "correct_loop.py"
SMALL_BATTERY = HERE / "grade_small_battery.toml"
PACKAGE = Path(gradcheck.__file__).resolve().parent
# Seconds per call: the small window takes milliseconds; the fork bomb's forks take more.
TIMEOUT = 20
# The mechanisms that give the worker a uid of its own (so it cannot signal the checker).
OWN_UID = ("namespaces+uid", "uid")
# The mechanisms whose worker cannot write any of the user's files.
READ_ONLY = ("namespaces+uid", "uid", "namespaces")


def _needs(mechanism, allowed, what):
    if mechanism not in allowed:
        pytest.skip(f"under {mechanism} the worker {what} (README: Isolation, guarantees)")


def _attack(func, monkeypatch, target=None):
    """Check the red-team implementation ``func``: (report, what it printed). It is
    told the checker's pid (an attacker who knows it)."""
    monkeypatch.setenv("GRADCHECK_TEST_CHECKER", str(os.getpid()))
    if target is not None:
        monkeypatch.setenv("GRADCHECK_TEST_TARGET", str(target))
    report = gradcheck.check(f"{REDTEAM}:{func}", interval=3, timeout=TIMEOUT, **SMALL)
    return report, report.output.get("stdout", "")


def _fails_unescaped(report, printed):
    assert "ESCAPED" not in printed, printed
    assert not report.passed
    assert "U" in {r.name for r in report.failures}, report.format_table()


# ---------------------------------------------------------------- the checker's process

@pytest.mark.parametrize("func", ["reads_checker_memory", "ptraces_checker"])
def test_the_checker_s_memory_is_out_of_reach(func, monkeypatch):
    _fails_unescaped(*_attack(func, monkeypatch))


def test_the_checker_cannot_be_signalled(monkeypatch, sandbox_mechanism):
    _needs(sandbox_mechanism, OWN_UID, "keeps the user's uid and may signal the checker")
    _fails_unescaped(*_attack("signals_checker", monkeypatch))


def test_no_secret_of_the_checker_s_environment_reaches_the_worker(monkeypatch):
    monkeypatch.setenv("CI_JOB_TOKEN", "redteam-secret")
    _fails_unescaped(*_attack("reads_secrets", monkeypatch))


# ---------------------------------------------------------------- what the checker runs later

@pytest.fixture
def restored():
    """Files an attack must not change: their bytes are put back whatever happens."""
    saved = {}

    def keep(path):
        saved[path] = path.read_bytes() if path.exists() else None
        return path
    yield keep
    for path, data in saved.items():
        if data is None:
            path.unlink(missing_ok=True)
        elif path.read_bytes() != data:
            path.write_bytes(data)


def test_a_gradcheck_module_imported_later_cannot_be_rewritten(monkeypatch, restored,
                                                                sandbox_mechanism):
    _needs(sandbox_mechanism, READ_ONLY, "runs as the user and may write gradcheck's files")
    module = restored(PACKAGE / "diagnose.py")
    before = module.read_bytes()
    _fails_unescaped(*_attack("appends_to_target", monkeypatch, module))
    assert module.read_bytes() == before


@pytest.mark.parametrize("where", [
    pytest.param(lambda: PACKAGE / "__pycache__" / "diagnose.cpython-311.opt-9.pyc",
                 id="forged-pyc"),
    pytest.param(lambda: Path(sysconfig.get_paths()["purelib"]) / "gradcheck_redteam.pth",
                 id="pth-in-site-packages"),
    pytest.param(lambda: Path(exe_cache.default_cache_dir()) / ("0" * 32 + ".exe"),
                 id="compiled-cache"),
])
def test_nothing_the_checker_reads_later_can_be_created(where, monkeypatch, restored,
                                                       sandbox_mechanism, tmp_path):
    _needs(sandbox_mechanism, READ_ONLY, "runs as the user and may write those folders")
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "cache"))
    target = restored(where())
    _fails_unescaped(*_attack("creates_target", monkeypatch, target))
    assert not target.exists()


def test_the_user_s_home_cannot_be_written(monkeypatch, restored, sandbox_mechanism):
    _needs(sandbox_mechanism, READ_ONLY, "runs as the user and may write its home")
    import pwd
    home = Path(pwd.getpwuid(os.geteuid()).pw_dir)
    target = restored(home / ".gradcheck-redteam")
    _fails_unescaped(*_attack("creates_target", monkeypatch, target))
    assert not target.exists()


@pytest.fixture
def open_folder():
    """A folder in the machine's /tmp open to every uid: only the view can keep a
    worker out of it."""
    folder = Path(tempfile.mkdtemp(prefix="gradcheck-redteam-"))
    folder.chmod(0o777)
    yield folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


def test_a_shared_temporary_folder_cannot_be_planted(monkeypatch, sandbox_mechanism,
                                                     open_folder):
    _needs(sandbox_mechanism, sandbox.HIDING, "may write the machine's shared /tmp")
    target = open_folder / "planted.py"
    _fails_unescaped(*_attack("creates_target", monkeypatch, target))
    assert not target.exists()


def test_unmounting_its_view_reveals_and_opens_nothing(monkeypatch, sandbox_mechanism,
                                                       open_folder):
    """The worker's view is mounts it could undo with the capabilities a user namespace
    gives its creator: it keeps none."""
    _needs(sandbox_mechanism, sandbox.HIDING, "sees the file system as it is")
    (open_folder / "secret").write_text("the class's answers")
    (open_folder / "secret").chmod(0o644)
    target = open_folder / "planted.py"
    _fails_unescaped(*_attack("unmounts_its_view", monkeypatch, target))
    assert not target.exists()


@pytest.fixture
def signed_cache(tmp_path):
    """A cache folder with its key and one entry (the file name and key of a real one)."""
    folder = tmp_path / "cache"
    exe_cache.enable_cache(folder)
    try:
        from gradcheck import oracle_jax
        from tests.helpers import small_data
        saved = oracle_jax._compiled
        oracle_jax._compiled = {}
        try:
            config, data = small_data(batch=3, input_size=2, hidden_size=4, state_size=3,
                                      output_size=5, interval=3)
            oracle_jax.jax_window(data.params, data.x, data.y, data.h0,
                                  **config.model_options)
        finally:
            oracle_jax._compiled = saved
    finally:
        exe_cache.disable_cache()
    (entry,) = folder.glob("*.exe")
    return folder, entry, (config, data)


class _RunsOnLoad:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_poisoned_cache_entry_never_runs_and_is_reported_once(signed_cache, tmp_path,
                                                               capsys):
    """An attacker who can write the folder but not read its key: a pickle that runs
    code on load, signed with a key of its own, is ignored (never unpickled), once
    reported, and the oracle compiles instead."""
    folder, entry, (config, data) = signed_cache
    from gradcheck import oracle_jax
    marker = tmp_path / "ran"
    payload = pickle.dumps(_RunsOnLoad(marker))
    head, rest = entry.read_bytes().split(b"\n", 1)
    _, rest = rest.split(b"\n", 1)                      # the tag
    size, rest = rest.split(b"\n", 1)
    key_bytes = rest[:int(size)]
    forged_tag = hashlib.sha256(b"not the key" + key_bytes + payload).hexdigest().encode()
    entry.write_bytes(b"\n".join([head, forged_tag, size, key_bytes + payload]))
    exe_cache.enable_cache(folder)
    saved = oracle_jax._compiled
    try:
        for _ in range(2):
            oracle_jax._compiled = {}
            before = exe_cache.stats()
            result = oracle_jax.jax_window(data.params, data.x, data.y, data.h0,
                                           **config.model_options)
            assert exe_cache.stats()["loaded"] == before["loaded"]
            assert result.loss == result.loss          # computed, not NaN
            entry.write_bytes(b"\n".join([head, forged_tag, size, key_bytes + payload]))
    finally:
        oracle_jax._compiled = saved
        exe_cache.disable_cache()
    assert not marker.exists()
    err = capsys.readouterr().err
    assert err.count("ignored a compiled-cache file") == 1, err
    assert "authentication tag does not match" in err


def test_a_cache_key_others_can_read_is_not_used(signed_cache, capsys):
    folder, entry, (config, data) = signed_cache
    from gradcheck import oracle_jax
    (folder / "key").chmod(0o644)
    exe_cache.enable_cache(folder)
    saved = oracle_jax._compiled
    oracle_jax._compiled = {}
    try:
        before = exe_cache.stats()
        oracle_jax.jax_window(data.params, data.x, data.y, data.h0, **config.model_options)
        assert exe_cache.stats()["loaded"] == before["loaded"]
    finally:
        oracle_jax._compiled = saved
        exe_cache.disable_cache()


def test_a_worker_as_the_user_turns_the_cache_off_and_drops_its_key(signed_cache):
    folder, _, _ = signed_cache
    exe_cache.enable_cache(folder)
    try:
        sandbox.note_mechanism("same-user")
        assert exe_cache.cache_dir() is None
        assert not (folder / "key").exists()
    finally:
        sandbox.note_mechanism(None)
        exe_cache.disable_cache()


# ---------------------------------------------------------------- the machine

def test_no_network(monkeypatch, sandbox_mechanism):
    _needs(sandbox_mechanism, sandbox.HIDING, "shares the checker's network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        _fails_unescaped(*_attack("connects", monkeypatch, listener.getsockname()[1]))
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_fork_bomb_hits_the_process_limit(monkeypatch, sandbox_mechanism):
    _needs(sandbox_mechanism, READ_ONLY, "has no process-count limit of its own")
    report, printed = _attack("fork_bomb", monkeypatch)
    _fails_unescaped(report, printed)
    made = int(printed.split("forked ")[1].split()[0])
    assert made < sandbox.NPROC


def test_a_double_forked_daemon_dies_with_its_worker(monkeypatch, shared_dir,
                                                    sandbox_mechanism):
    _needs(sandbox_mechanism, OWN_UID + sandbox.HIDING,
           "keeps the user's uid, which has other processes, in no namespace")
    name = f"gcrt-{os.getpid()}"
    monkeypatch.setenv("GRADCHECK_TEST_NAME", name)
    _fails_unescaped(*_attack("leaves_a_daemon", monkeypatch, shared_dir))
    assert (shared_dir / "daemon").read_text()            # it did start
    deadline = time.monotonic() + 10
    while processes_named(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_named(name)


# ---------------------------------------------------------------- the JSON and the flag

def test_the_mechanism_is_in_the_json_and_the_header(sandbox_mechanism):
    report = gradcheck.check(f"{REDTEAM}:reads_secrets", interval=3, timeout=TIMEOUT,
                             **SMALL)
    iso = report.to_dict()["isolation"]
    assert iso["mechanism"] == sandbox_mechanism
    assert iso["guarantees"] == sandbox.GUARANTEES[sandbox_mechanism]
    assert f"isolation: {sandbox_mechanism} (" in report.format_table()
    assert ("warning" in iso) == (sandbox_mechanism == "same-user")


@pytest.mark.parametrize(("mechanism", "said"), [
    ("namespaces", "no PID namespace: same uid: can signal the checker"),
    ("namespaces+uid", "no PID namespace"),
])
def test_the_guarantees_say_when_there_was_no_pid_namespace(mechanism, said):
    """A kernel that refuses the PID namespace (or a /proc of its own) leaves the other
    namespaces: the JSON's guarantees then say what is missing instead of promising it."""
    plain = sandbox.describe(mechanism)["guarantees"]
    without = sandbox.describe(mechanism, pid_namespace=False)["guarantees"]
    assert sandbox.PID_GUARANTEE in plain
    assert sandbox.PID_GUARANTEE not in without and said in without
    assert len(without) == len(plain)


def test_the_same_user_fallback_warns_in_the_header():
    from gradcheck.report import Report
    report = Report(config={"interval": 3, "seq_len": 3, "batch": 1, "input_size": 1,
                            "hidden_size": 1, "state_size": 1, "output_size": 1,
                            "loss": "l2", "activations": ["tanh"] * 3, "reduction": "mean",
                            "dtype": "float64", "seed": 0},
                    impl="x.py:f", mode="full", mode_reason="", windows=[(0, 3)],
                    results=[], diagnosis=None, timings={},
                    isolation=dict(isolated=True, **sandbox.describe("same-user")))
    assert f"warning: {sandbox.WARNING}" in report.format_table()


def test_require_isolation_refuses_a_weak_mechanism(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "STRONG", ())
    with pytest.raises(UsageError, match="require_isolation=.*: this platform gives the "
                                         "worker neither"):
        gradcheck.check(f"{REDTEAM}:reads_secrets", interval=3, require_isolation=True,
                        **SMALL)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    code = main(["--interval", "3", "--impl", f"{REDTEAM}:reads_secrets",
                 "--require-isolation", *flags])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gradcheck: error: --require-isolation")


def test_require_isolation_runs_under_a_strong_mechanism(sandbox_mechanism):
    _needs(sandbox_mechanism, sandbox.STRONG, "runs as the user without namespaces")
    report = gradcheck.check(f"{REDTEAM}:reads_secrets", interval=3, timeout=TIMEOUT,
                             require_isolation=True, **SMALL)
    assert not report.passed


def test_a_library_call_leaves_the_process_dumpable_as_it_was():
    import ctypes
    libc = ctypes.CDLL(None)
    before = libc.prctl(sandbox.PR_GET_DUMPABLE, 0, 0, 0, 0)
    gradcheck.check(f"{REDTEAM}:reads_secrets", interval=3, timeout=TIMEOUT, **SMALL)
    assert libc.prctl(sandbox.PR_GET_DUMPABLE, 0, 0, 0, 0) == before


# ---------------------------------------------------------------- the private copy

def _special(kind, path):
    if kind == "symlink":                  # (to a file outside, a secret, say)
        path.symlink_to("/etc/hostname")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"#" * (sandbox.COPY_FILE_BYTES + 1))


COPY_REFUSALS = [
    pytest.param("symlink", "helpers.py is a symbolic link", id="symlink"),
    pytest.param("fifo", "helpers.py is not a regular file", id="fifo"),
    pytest.param("oversized", "helpers.py is larger than 8 MiB", id="oversized"),
]


@pytest.mark.parametrize(("kind", "words"), COPY_REFUSALS)
def test_check_refuses_code_it_cannot_copy(kind, words, tmp_path):
    (tmp_path / "rnn.py").write_bytes(CORRECT_SUBMISSION.read_bytes())
    _special(kind, tmp_path / "helpers.py")
    with pytest.raises(UsageError, match=f"cannot be copied for the worker: {words}"):
        gradcheck.check(f"{tmp_path / 'rnn.py'}:loss_and_grads", interval=3, **SMALL)


def _grade(tmp_path, *subs):
    out = tmp_path / "grades.json"
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "grade", *map(str, subs),
                           "--battery", str(SMALL_BATTERY), "--format", "json", "--timeout",
                           "10", "--jobs", "2", "--seed", "3", "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    return {Path(s["submission"]).name: s for s in json.loads(out.read_text())["submissions"]}


@pytest.mark.parametrize(("kind", "words"), COPY_REFUSALS)
def test_grade_refuses_a_folder_it_cannot_copy(kind, words, tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "rnn.py").write_bytes(CORRECT_SUBMISSION.read_bytes())
    _special(kind, folder / "helpers.py")
    s = _grade(tmp_path, folder)["student"]
    assert s["score"] == 0 and s["problem"] == "unloadable"
    assert words in s["reason"]


# A wrong submission: correct_loop.py with dU transposed (one line), plus an attack.
WRONG = ('g["U"] += c["hp"].T @ d2', 'g["U"] += d2.T @ c["hp"]')

COPY_CLASSMATE = '''
import importlib.util as _u, os as _os
for _n in sorted(_os.listdir({folder!r})):
    if _n != "mallory.py" and _n.endswith(".py"):
        _s = _u.spec_from_file_location("classmate", _os.path.join({folder!r}, _n))
        _m = _u.module_from_spec(_s)
        _s.loader.exec_module(_m)
        loss_and_grads = _m.loss_and_grads
        print("ESCAPED: copied", _n)
        break
'''
REWRITE_CLASSMATE = '''
import os as _os
for _n in _os.listdir({folder!r}):
    if _n != "mallory.py":
        with open(_os.path.join({folder!r}, _n), "w") as _f:
            _f.write("raise SystemExit('rewritten by mallory')")
'''
EXEC_REFERENCE = '''
_ns = {{}}
for _n in ("activations", "losses", "layers", "__init__"):
    try:
        with open({reference!r} + "/" + _n + ".py") as _f:
            _ns[_n] = _f.read()
    except OSError:
        _ns = None
        break
if _ns is not None:
    import sys as _sys, types as _t
    for _n in ("activations", "losses", "layers"):
        _mod = _t.ModuleType("copied." + _n)
        exec(_ns[_n], _mod.__dict__)
        _sys.modules["copied." + _n] = _mod
    _pkg = _t.ModuleType("copied")
    _pkg.__path__ = []
    _sys.modules["copied"] = _pkg
    exec(_ns["__init__"].replace("from .", "from copied."), _pkg.__dict__)
    loss_and_grads = _pkg.loss_and_grads
    print("ESCAPED: ran the reference's source")
'''


def _class(tmp_path, attack, **fields):
    folder = tmp_path / "class"
    folder.mkdir()
    source = CORRECT_SUBMISSION.read_text()
    (folder / "alice.py").write_text(source)
    assert source.count(WRONG[0]) == 1
    (folder / "mallory.py").write_text(source.replace(*WRONG)
                                       + attack.format(folder=str(folder), **fields))
    return folder


@pytest.mark.parametrize("attack", [
    pytest.param(COPY_CLASSMATE, id="copies-a-classmate"),
    pytest.param(REWRITE_CLASSMATE, id="rewrites-a-classmate"),
])
def test_classmates_are_out_of_reach(attack, tmp_path, sandbox_mechanism):
    if attack is COPY_CLASSMATE:
        _needs(sandbox_mechanism, sandbox.HIDING, "may read a class folder others can read")
    else:
        _needs(sandbox_mechanism, READ_ONLY, "runs as the user and may write the class folder")
    folder = _class(tmp_path, attack)
    alice_before = (folder / "alice.py").read_bytes()
    grades = _grade(tmp_path, folder / "alice.py", folder / "mallory.py")
    assert grades["alice.py"]["passed"], grades["alice.py"]
    assert not grades["mallory.py"]["passed"], grades["mallory.py"]
    assert (folder / "alice.py").read_bytes() == alice_before


def test_the_reference_s_source_is_out_of_reach(tmp_path, sandbox_mechanism):
    _needs(sandbox_mechanism, sandbox.HIDING, "may read gradcheck's files, which others can "
                                              "read (the honesty guard sees imports, not reads)")
    reference = sandbox.checker_folders()["reference"]
    folder = _class(tmp_path, EXEC_REFERENCE, reference=reference)
    grades = _grade(tmp_path, folder / "mallory.py")
    assert not grades["mallory.py"]["passed"], grades["mallory.py"]


def test_each_concurrent_worker_gets_its_own_uid(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give workers uids of their own")
    from gradcheck.isolation import Worker, fork_server
    (tmp_path / "who.py").write_text("import os\nprint(os.getuid())\n"
                                     "def f(*a, **k):\n    pass\n")
    with fork_server():
        workers = [Worker({"spec": f"{tmp_path / 'who.py'}:f"}) for _ in range(3)]
        for w in workers:
            assert w.load() is None
        for w in workers:
            w.close()
    uids = {int(w.output()["stdout"]) for w in workers}
    first, last = sandbox.UID_RANGE
    assert len(uids) == 3 and all(first <= u <= last for u in uids)


def test_the_private_copy_is_for_the_worker_and_the_checker_only(tmp_path):
    (tmp_path / "rnn.py").write_text("x = 1\n")
    view = sandbox.View({"spec": f"{tmp_path / 'rnn.py'}:f"})
    try:
        assert stat.S_IMODE(os.stat(view.dir).st_mode) == 0o700
        assert view.request["spec"] == f"{view.dir}/src/rnn.py:f"
        assert str(tmp_path) in view.plan["hide"]
    finally:
        view.remove()
    assert not os.path.exists(view.dir)
