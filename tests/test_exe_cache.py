"""The JAX oracle's float64 scope and its cache of compiled executables.

The cache may make a check faster, never make it fail or change a result: a missing,
corrupt, truncated, foreign or mismatched file, or a folder that cannot be written, is
ignored (the oracle compiles instead), and a new process loads what an earlier one
stored. What happened is read from ``exe_cache.stats()``, not from timings.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck import exe_cache, oracle_jax
from gradcheck.cli import main
from tests.helpers import small_data

ROOT = Path(__file__).resolve().parents[1]
# Every size in the smallest bucket, so every test here shares one compiled function.
SIZES = dict(batch=3, input_size=2, hidden_size=4, state_size=3, output_size=5, interval=3)


def _window():
    config, data = small_data(**SIZES)
    return oracle_jax.jax_window(data.params, data.x, data.y, data.h0,
                                 **config.model_options)


@pytest.fixture
def fresh_oracle(monkeypatch):
    """The oracle with nothing compiled in this process and the cache off afterwards."""
    monkeypatch.setattr(oracle_jax, "_compiled", {})
    yield
    exe_cache.disable_cache()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """(folder holding one stored executable, the window's result computed with it)."""
    folder = tmp_path_factory.mktemp("exe-cache")
    saved = oracle_jax._compiled
    oracle_jax._compiled = {}
    exe_cache.enable_cache(folder)
    try:
        before = exe_cache.stats()["stored"]
        result = _window()
        assert exe_cache.stats()["stored"] == before + 1
    finally:
        exe_cache.disable_cache()
        oracle_jax._compiled = saved
    return folder, result


def _same(a, b):
    assert a.loss == b.loss
    np.testing.assert_array_equal(a.h_last, b.h_last)
    for name in a.grads:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)


def test_oracle_scopes_float64_to_its_own_calls():
    import jax
    import jax.numpy as jnp

    was = jax.config.jax_enable_x64
    result = _window()
    assert jax.config.jax_enable_x64 == was
    assert result.h_last.dtype == np.float64
    assert all(g.dtype == np.float64 for g in result.grads.values())
    if not was:                           # a user's float32 JAX code stays float32
        assert jnp.ones(3).dtype == jnp.float32


def test_the_cache_is_off_unless_asked():
    assert exe_cache.cache_dir() is None


def test_loads_what_was_stored(stored, fresh_oracle, tmp_path):
    folder, want = stored
    shutil.copytree(folder, tmp_path / "c")
    exe_cache.enable_cache(tmp_path / "c")
    before = exe_cache.stats()
    _same(_window(), want)
    after = exe_cache.stats()
    assert (after["loaded"] - before["loaded"], after["stored"] - before["stored"]) == (1, 0)


def _corrupt(blob):
    return blob[:-100] + bytes(b ^ 0xFF for b in blob[-100:])


def _other_version(blob):
    """The same file claiming another JAX version (its digest still valid)."""
    import jax
    return blob.replace(f"\n{jax.__version__}\n".encode(), b"\n0.0.1\n", 1)


TAMPER = {
    "corrupt": _corrupt,
    "truncated": lambda blob: blob[:len(blob) // 2],
    "empty": lambda blob: b"",
    "not-a-cache-file": lambda blob: b"\x80\x04garbage" * 100,
    "other-version": _other_version,
}


@pytest.mark.parametrize("tamper", TAMPER, ids=str)
def test_a_bad_file_is_ignored_and_replaced(stored, fresh_oracle, tmp_path, tamper,
                                            monkeypatch):
    folder, want = stored
    (path,) = folder.glob("*.exe")
    blob = path.read_bytes()
    bad = TAMPER[tamper](blob)
    assert bad != blob
    (tmp_path / path.name).write_bytes(bad)
    exe_cache.enable_cache(tmp_path)
    before = exe_cache.stats()
    _same(_window(), want)                # compiled instead: the same result
    after = exe_cache.stats()
    assert after["loaded"] == before["loaded"]
    assert after["stored"] == before["stored"] + 1
    assert (tmp_path / path.name).read_bytes() != bad      # replaced by a good one:
    monkeypatch.setattr(oracle_jax, "_compiled", {})        # a new start loads it
    _same(_window(), want)
    assert exe_cache.stats()["loaded"] == after["loaded"] + 1


def test_a_bad_file_is_reported_once_per_folder(stored, fresh_oracle, tmp_path, monkeypatch,
                                                capsys):
    """Once per folder, not once per process: an earlier report about another folder
    (another check in the same process) never silences this one's."""
    folder, _ = stored
    (path,) = folder.glob("*.exe")
    bad = _corrupt(path.read_bytes())
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        for _ in range(2):                                   # the second time: silent
            (tmp_path / name / path.name).write_bytes(bad)
            exe_cache.enable_cache(tmp_path / name)
            monkeypatch.setattr(oracle_jax, "_compiled", {})
            _window()
    lines = [line for line in capsys.readouterr().err.splitlines()
             if "ignored a compiled-cache file" in line]
    assert len(lines) == 2, lines
    assert [str(tmp_path / name) in line for name, line in zip(("first", "second"), lines)] \
        == [True, True]


def test_an_unwritable_folder_is_ignored(stored, fresh_oracle, tmp_path):
    _, want = stored
    (tmp_path / "file").write_text("not a folder")
    exe_cache.enable_cache(tmp_path / "file" / "cache")   # cannot be created, even by root
    before = exe_cache.stats()
    _same(_window(), want)
    assert exe_cache.stats() == before
    assert not list(tmp_path.glob("**/*.exe")) and not list(tmp_path.glob("**/.tmp-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_still_loads(stored, fresh_oracle, tmp_path):
    folder, want = stored
    shutil.copytree(folder, tmp_path / "c")
    (tmp_path / "c").chmod(0o500)
    try:
        exe_cache.enable_cache(tmp_path / "c")
        _same(_window(), want)
    finally:
        (tmp_path / "c").chmod(0o700)


SCRIPT = """
import json
from gradcheck import exe_cache, oracle_jax
from tests.helpers import small_data
exe_cache.enable_cache({folder!r})
config, data = small_data(**{sizes!r})
r = oracle_jax.jax_window(data.params, data.x, data.y, data.h0, **config.model_options)
print(json.dumps(dict(exe_cache.stats(), loss=r.loss.hex())))
"""


def test_a_new_process_loads_instead_of_compiling(stored, tmp_path):
    folder, want = stored
    shutil.copytree(folder, tmp_path / "c")
    code = SCRIPT.format(folder=str(tmp_path / "c"), sizes=SIZES)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (got["loaded"], got["stored"], got["ignored"]) == (1, 0, 0)
    assert float.fromhex(got["loss"]) == want.loss


@pytest.mark.parametrize("env, on", [
    ({"GRADCHECK_NO_CACHE": "1"}, False),
    ({"GRADCHECK_NO_CACHE": "0"}, True),
    ({}, True),
], ids=["off", "0-is-on", "unset-is-on"])
def test_the_command_line_uses_the_cache_for_its_run_only(stored, fresh_oracle, monkeypatch,
                                                          tmp_path, capsys, env, on):
    folder, _ = stored
    shutil.copytree(folder, tmp_path / "dir")
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "dir"))
    monkeypatch.delenv("GRADCHECK_NO_CACHE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = exe_cache.stats()["loaded"]
    assert main([f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]) == 0
    assert exe_cache.stats()["loaded"] - before == (1 if on else 0)
    assert exe_cache.cache_dir() is None           # main() leaves the process as it was


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("GRADCHECK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert exe_cache.default_cache_dir() == tmp_path / "gradcheck"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert exe_cache.default_cache_dir() == tmp_path / ".cache" / "gradcheck"
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "mine"))
    assert exe_cache.default_cache_dir() == tmp_path / "mine"


# The cells' oracles: the same buckets and cache, through oracle_jax.cell_window.
CELL_CASES = {"lstm": ("lstm", ()), "gru": ("gru", ()),
              "gru-reset-after": ("gru", ("reset_after",))}


def _cell_window(case, **sizes):
    from gradcheck.model import side
    cell, cell_options = CELL_CASES[case]
    config, data = small_data(**dict(SIZES, **sizes), cell=cell, cell_options=cell_options)
    options = dict(config.model_options, **config.model.options)
    return side(cell, "jax").jax_window(data.params, data.x, data.y, data.h0,
                                        *data.states.values(), **options)


def _same_cell(a, b):
    assert a.loss == b.loss
    for name, value in a.outputs.items():
        np.testing.assert_array_equal(value, b.outputs[name], err_msg=name)
    for name in a.grads:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)


@pytest.mark.parametrize("case", CELL_CASES)
def test_a_cell_s_oracle_compiles_once_per_bucket_and_loads_what_it_stored(
        case, fresh_oracle, monkeypatch, tmp_path):
    exe_cache.enable_cache(tmp_path)
    before = exe_cache.stats()
    first = _cell_window(case)
    _cell_window(case, batch=SIZES["batch"] + 1, hidden_size=SIZES["hidden_size"] + 2)
    assert len(oracle_jax._compiled) == 1                # another shape, the same bucket
    after = exe_cache.stats()
    assert (after["stored"] - before["stored"], after["loaded"] - before["loaded"]) == (1, 0)
    monkeypatch.setattr(oracle_jax, "_compiled", {})     # a new start loads it
    _same_cell(_cell_window(case), first)
    assert exe_cache.stats()["loaded"] == after["loaded"] + 1


def test_each_cell_and_form_has_executables_of_its_own(fresh_oracle, tmp_path):
    exe_cache.enable_cache(tmp_path)
    for case in CELL_CASES:
        _cell_window(case)
    assert len(list(tmp_path.glob("*.exe"))) == len(CELL_CASES)


@pytest.mark.parametrize("case", CELL_CASES)
def test_a_tampered_cell_executable_is_ignored_and_replaced(case, fresh_oracle, monkeypatch,
                                                           tmp_path):
    exe_cache.enable_cache(tmp_path)
    want = _cell_window(case)
    (path,) = tmp_path.glob("*.exe")
    path.write_bytes(_corrupt(path.read_bytes()))
    monkeypatch.setattr(oracle_jax, "_compiled", {})
    before = exe_cache.stats()
    _same_cell(_cell_window(case), want)
    after = exe_cache.stats()
    assert (after["loaded"] - before["loaded"], after["stored"] - before["stored"]) == (0, 1)
