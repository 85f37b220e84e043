"""The built package: sdist and wheel carry the SQL, and the wheel works outside the checkout.

The sdist is built first and the wheel from it, as `python -m build` does, so a file the sdist
forgets is missing from the wheel too. The wheel is installed into a new virtualenv in a
temporary folder, where nothing of the checkout can be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import persistence
from test_readme import usage_example

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "persistence"
SQL_FILES = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "sql").rglob("*.*"))


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a program outside the checkout, with no PYTHONPATH or DATABASE_URL from this one."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV"}
    }
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the sdist and the wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def only(folder: Path, pattern: str) -> Path:
    """The one file of the folder that matches the pattern."""
    (found,) = folder.glob(pattern)
    return found


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a new virtualenv, outside the checkout, with the wheel installed."""
    home = tmp_path_factory.mktemp("venv")
    made = run(sys.executable, "-m", "venv", "--without-pip", home, cwd=home)
    assert made.returncode == 0, made.stderr
    python = home / "bin" / "python"
    wheel = only(dist, "*.whl")
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel, cwd=home
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return home / "bin"


def test_the_wheel_carries_the_sql_and_not_the_generator(dist: Path) -> None:
    """The wheel holds every module, sql/ as persistence/sql, the license, and no build tools."""
    names = zipfile.ZipFile(only(dist, "*.whl")).namelist()
    assert sorted(name for name in names if name.startswith("persistence/sql/")) == [
        f"persistence/{name}" for name in SQL_FILES
    ]
    assert "persistence/py.typed" in names
    modules = {path.relative_to(ROOT / "src").as_posix() for path in PACKAGE.rglob("*.py")}
    assert modules - set(names) == set()  # every module, the backends' subpackages too
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert [name for name in names if "codegen" in name or name.startswith("tests/")] == []


def test_the_sdist_carries_the_sql_and_not_the_generator(dist: Path) -> None:
    """The sdist holds sql/, the package and the license, and not codegen/."""
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert sorted(name for name in names if name.startswith("sql/")) == SQL_FILES
    assert {"LICENSE", "pyproject.toml", "src/persistence/__init__.py"} <= set(names)
    assert [name for name in names if "codegen" in name] == []


def test_runtime_dependencies_are_ranges(venv: Path, tmp_path: Path) -> None:
    """The installed metadata asks for version ranges, not exact pins, and has a license."""
    shown = run(
        venv / "python",
        "-c",
        "import importlib.metadata as m; d = m.metadata('persistence');"
        "print(d['License-Expression']); print(*m.requires('persistence'), sep='\\n')",
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    license_name, *requirements = shown.stdout.splitlines()
    assert license_name == "MIT"
    runtime = [line for line in requirements if "extra ==" not in line]
    assert any(line.startswith("aiosql") and "<16" in line for line in runtime), runtime
    assert [line for line in runtime if "==" in line] == []


def test_the_installed_command_migrates_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    """`persistence migrate` and `status` work on a SQLite file, from the installed package."""
    where = run(
        venv / "python", "-c", "import persistence; print(persistence.__file__)", cwd=tmp_path
    )
    assert where.stdout.startswith(str(venv.parent)), where.stdout + where.stderr
    version = run(venv / "persistence", "--version", cwd=tmp_path)
    assert version.stdout == f"persistence {persistence.__version__}\n", version.stderr
    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrated = run(venv / "persistence", "migrate", "--database", url, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 0001_initial_schema.sql" in migrated.stdout
    status = run(venv / "persistence", "status", "--database", url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    new = run(venv / "persistence", "new", "add_index", cwd=tmp_path)
    assert new.returncode == 3
    assert "pass --folder" in new.stderr


def test_the_readme_example_runs_on_the_installed_package(venv: Path, tmp_path: Path) -> None:
    """The README's usage example runs as written with only the wheel installed."""
    script = tmp_path / "example.py"
    script.write_text(usage_example(), encoding="utf-8")
    done = run(venv / "python", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 1 {<TestStatus.PASSED: 'passed'>: 3} 4"  # as in the checkout
    assert (tmp_path / "data" / "app.db").is_file()
