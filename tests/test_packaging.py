"""What pyproject.toml installs: every package of the source tree (a non-editable
``pip install .`` installs only the packages listed, so a new subpackage left out of the
list works in the repository and is missing for users)."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("gradcheck", "reference") for p in (ROOT / top).rglob("__init__.py")}
    assert listed == found
