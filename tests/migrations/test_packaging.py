"""The migrations ship with the package: ``migrations/`` is installed as
``spane_py.migrations`` (pyproject's package-dir mapping), so ``head_revision()`` and
``upgrade()`` find them in a wheel as in an editable install."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spane_py.stores.postgres import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]


def _setuptools_config() -> dict[str, object]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        config: dict[str, object] = tomllib.load(f)["tool"]["setuptools"]
    return config


def _source_packages() -> set[str]:
    """Every folder of spane_py (a package, or data files such as the dashboard's static
    folder, which setuptools warns about unless listed) and the migrations' packages."""
    found = {
        ".".join(folder.relative_to(REPO_ROOT).parts)
        for folder in [REPO_ROOT / "spane_py", *(REPO_ROOT / "spane_py").rglob("*")]
        if folder.is_dir() and "__pycache__" not in folder.parts
    }
    found |= {
        ".".join(("spane_py", *init.parent.relative_to(REPO_ROOT).parts))
        for init in (REPO_ROOT / "migrations").rglob("__init__.py")
    }
    return found


def test_every_package_is_listed_in_pyproject() -> None:
    """The package list is explicit (because of the mapping): a new subpackage must be
    added to [tool.setuptools] packages, or the wheel would lack it."""
    config = _setuptools_config()
    assert set(config["packages"]) == _source_packages()  # type: ignore[call-overload]
    assert config["package-dir"] == {"spane_py.migrations": "migrations"}
    assert "script.py.mako" in config["package-data"]["spane_py.migrations"]  # type: ignore[index]


def test_the_installed_package_maps_to_the_migrations_folder() -> None:
    spec = importlib.util.find_spec("spane_py.migrations")
    assert spec is not None, "reinstall: pip install -e . (the mapping is in pyproject.toml)"
    assert spec.submodule_search_locations is not None
    assert [Path(p).resolve() for p in spec.submodule_search_locations] == [
        (REPO_ROOT / "migrations").resolve()
    ]
    path = migrate.migrations_path()
    assert path.resolve() == (REPO_ROOT / "migrations").resolve()
    assert (path / "env.py").is_file()
    assert (path / "script.py.mako").is_file()


def test_revisions_form_one_line_and_stay_frozen() -> None:
    """Each revision file names itself in its file name, revises the one before, and does
    not import tables.py (the tables move on; a revision must not)."""
    previous = None
    files = sorted((REPO_ROOT / "migrations" / "versions").glob("[0-9]*.py"))
    assert files
    for file in files:
        tree = ast.parse(file.read_text())
        values = {
            node.targets[0].id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        }
        values |= {
            node.target.id: node.value
            for node in tree.body
            if isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        }
        revision = ast.literal_eval(values["revision"])
        assert file.name.startswith(f"{revision}_")
        assert ast.literal_eval(values["down_revision"]) == previous
        imports = [
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        ] + [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imports if m.startswith("spane_py")], file.name
        previous = revision
    assert previous == migrate.head_revision()


@pytest.mark.slow
def test_a_built_package_carries_the_migrations(tmp_path: Path) -> None:
    """setuptools' build_py (what a wheel is made of) from a clean copy of the sources:
    the migrations land in spane_py/migrations, every module of spane_py and the
    dashboard's static files are there, and migrate finds its scripts in the built tree.
    setuptools warns about nothing in the configuration."""
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("spane_py", "migrations"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    built = tmp_path / "lib"
    build = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()",
         "-q", "build_py", "--build-lib", str(built)],
        cwd=source, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # No setuptools warning (a license table, a data folder missing from `packages`, ...).
    assert not re.search(r"\w*Warning\b", build.stderr), build.stderr
    shipped = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    expected = (
        {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "spane_py").rglob("*.py")}
        | {
            "spane_py/" + p.relative_to(REPO_ROOT).as_posix()
            for p in (REPO_ROOT / "migrations").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        | {  # the dashboard's pages, scripts and stylesheet
            p.relative_to(REPO_ROOT).as_posix()
            for p in (REPO_ROOT / "spane_py/api/static").iterdir()
        }
    )
    assert "spane_py/migrations/versions/0001_initial.py" in expected
    assert "spane_py/migrations/script.py.mako" in expected
    assert "spane_py/api/static/index.html" in expected
    assert "spane_py/py.typed" in shipped
    assert expected <= shipped, sorted(expected - shipped)

    env = {**os.environ, "PYTHONPATH": str(built)}
    code = (
        "from spane_py.stores.postgres import migrate\n"
        "print(migrate.__file__); print(migrate.migrations_path()); print(migrate.head_revision())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    module, scripts, head = result.stdout.splitlines()
    assert Path(module).is_relative_to(built)
    assert Path(scripts) == built / "spane_py" / "migrations"
    assert head == migrate.head_revision()
