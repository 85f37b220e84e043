"""The built package: sdist and wheel carry the SQL, and the wheel works outside the checkout.

The sdist is built first and the wheel from it, as `python -m build` does, so a file the sdist
forgets is missing from the wheel too. The wheel is installed into a new virtualenv in a
temporary folder, where nothing of the checkout can be imported.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import persistence
from test_readme import README, usage_example

OWN_VIEW = "CREATE VIEW passed_results AS SELECT id FROM test_results WHERE status = 'passed';\n"

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "persistence"
SQL_FILES = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "sql").rglob("*.*"))


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a program outside the checkout, with none of this one's paths or database settings."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV", "REDIS_URL", "PERSISTENCE_FILES"}
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
    modules.add("persistence_cli.py")  # the installed script's entry point
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


def wheel_metadata(dist: Path) -> email.message.Message:
    """The wheel's METADATA, parsed as the core metadata format says: an email header."""
    wheel = zipfile.ZipFile(only(dist, "*.whl"))
    (name,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode("utf-8"))


def test_the_metadata_names_a_free_distribution(dist: Path) -> None:
    """Name, license, Python range and extras are pyproject's, as the README's install says."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    metadata = wheel_metadata(dist)
    assert metadata["Name"] == project["name"] == "persistence-sql"
    assert metadata["Version"] == persistence.__version__
    assert only(dist, "*.whl").name.startswith("persistence_sql-")
    assert only(dist, "*.tar.gz").name.startswith("persistence_sql-")
    assert metadata["License-Expression"] == project["license"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == project["requires-python"] == ">=3.11"
    extras = sorted(metadata.get_all("Provides-Extra") or [])
    assert extras == sorted(project["optional-dependencies"]) == ["bench", "dev", "otel"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    install = description[description.index("\n## Install\n") :]
    assert "pip install persistence-sql " in install
    for extra in extras:  # the install section names each extra
        assert re.search(rf"\b{extra}\b", install.partition("```\n\n")[0]), extra


def anchor(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, no punctuation, dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_long_description_links_only_to_shipped_files(dist: Path) -> None:
    """Every relative link of the wheel's long description is a file the sdist and wheel carry.

    The sdist carries it beside the README; the wheel in its `.dist-info/extra_metadata/`. A
    link within the description names one of its headings.
    """
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wheel = zipfile.ZipFile(only(dist, "*.whl")).namelist()
    extra = {name.split("/extra_metadata/", 1)[1] for name in wheel if "/extra_metadata/" in name}
    description = wheel_metadata(dist).get_payload()
    assert isinstance(description, str)
    assert description.strip() == README.read_text(encoding="utf-8").strip()
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    targets = {
        target.split("#", 1)[0]
        for target in links
        if not target.startswith(("#", "http://", "https://", "mailto:"))
    }
    assert targets, "the README links to no file: this test would check nothing"
    assert sorted(targets - names) == []
    assert sorted(targets - extra) == []
    assert {"README.md", "CHANGELOG.md", "docs/GUARANTEES.md"} <= names
    headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", description, re.MULTILINE)}
    inner = {target[1:] for target in links if target.startswith("#")}
    assert inner, "the README links to none of its sections: this test would check nothing"
    assert sorted(inner - headings) == []


def test_the_wheel_carries_the_changelog(dist: Path) -> None:
    """The changelog and docs/ ride in the wheel's .dist-info/extra_metadata/."""
    names = zipfile.ZipFile(only(dist, "*.whl")).namelist()
    extra = {name.split("/extra_metadata/", 1)[1] for name in names if "/extra_metadata/" in name}
    assert {"CHANGELOG.md", "docs/GUARANTEES.md"} <= extra


def test_the_install_example_runs_on_the_installed_package(venv: Path, tmp_path: Path) -> None:
    """The README's install check prints True: the distribution's version is the package's."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Install\n") :]
    commands = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    check = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert commands is not None
    assert check is not None
    assert "pip install persistence-sql " in commands.group(1)
    assert "dist/persistence_sql-*.whl" in commands.group(1)
    script = tmp_path / "check.py"
    script.write_text(check.group(1), encoding="utf-8")
    done = run(venv / "python", script, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


def test_runtime_dependencies_are_ranges(venv: Path, tmp_path: Path) -> None:
    """The installed metadata asks for version ranges, not exact pins, and has a license."""
    shown = run(
        venv / "python",
        "-c",
        "import importlib.metadata as m; d = m.metadata('persistence-sql');"
        "print(d['License-Expression']); print(*m.requires('persistence-sql'), sep='\\n')",
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
    assert "pass --migrations DIR" in new.stderr


def test_the_readme_example_runs_on_the_installed_package(venv: Path, tmp_path: Path) -> None:
    """The README's usage example runs as written with only the wheel installed."""
    script = tmp_path / "example.py"
    script.write_text(usage_example(), encoding="utf-8")
    done = run(venv / "python", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 1 {<TestStatus.PASSED: 'passed'>: 3} 4"  # as in the checkout
    assert (tmp_path / "data" / "app.db").is_file()


def test_own_migrations_work_from_the_installed_command(
    venv: Path, tmp_path: Path, database_url: str
) -> None:
    """`new`, `migrate`, `status` and `history` with --migrations, from the wheel, both engines."""
    mine = tmp_path / "mine"
    new = run(venv / "persistence", "new", "passed_view", "--migrations", mine, cwd=tmp_path)
    assert new.returncode == 0, new.stderr
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0001_passed_view.sql").write_text(OWN_VIEW, encoding="utf-8")
    base = ("--database", database_url, "--migrations", mine)
    migrated = run(venv / "persistence", "migrate", *base, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 0001_initial_schema.sql" in migrated.stdout
    assert "applied user/0001_passed_view.sql" in migrated.stdout
    status = run(venv / "persistence", "status", "--json", *base, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["up_to_date"] is True
    assert [m["name"] for m in report["user"]["applied"]] == ["0001_passed_view"]
    history = run(venv / "persistence", "history", *base, cwd=tmp_path)
    assert history.stdout.splitlines()[-1].startswith("user/0001_passed_view  applied ")


def readme_example(heading: str) -> str:
    """The first Python block under a heading of the README."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(f"\n{heading}\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"README.md has no Python block under {heading!r}"
    return match.group(1)


def run_on_both_engines(
    venv: Path, tmp_path: Path, request: pytest.FixtureRequest, heading: str, call: str
) -> list[Path]:
    """Run a README example from the wheel on SQLite, then on PostgreSQL, in one interpreter.

    `call` runs the example on `folder` and `url`; one interpreter runs both, so the second
    engine costs no second start-up. Gives each engine's folder. Off CI, with no PostgreSQL
    server, SQLite's run is still checked, then the test skips, saying why.
    """
    try:
        postgres: str | None = request.getfixturevalue("postgres_url")
        unreachable = ""
    except pytest.skip.Exception as skipped:  # only off CI: on CI the fixture fails instead
        postgres, unreachable = None, str(skipped)
    script = tmp_path / "example.py"
    script.write_text(
        f"{readme_example(heading)}\nimport asyncio, sys\n"
        "for folder, url in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        f"    {call}\n    print(url)\n",
        encoding="utf-8",
    )
    runs = {tmp_path / "sqlite": str(tmp_path / "sqlite" / "app.db")}
    if postgres is not None:
        runs[tmp_path / "postgres"] = postgres
    for folder in runs:
        folder.mkdir()
    pairs = [str(part) for folder, url in runs.items() for part in (folder, url)]
    done = run(venv / "python", script, *pairs, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == list(runs.values())  # each engine's run ended
    assert (tmp_path / "sqlite" / "app.db").is_file()
    if postgres is None:
        pytest.skip(f"the PostgreSQL run: {unreachable}")
    return list(runs)


def test_the_own_migrations_example_runs_on_the_installed_package(
    venv: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The README's own-migrations example runs with only the wheel installed, both engines."""
    call = "asyncio.run(example(Path(folder), url))"
    for folder in run_on_both_engines(venv, tmp_path, request, "## Your own migrations", call):
        assert (folder / "my_migrations" / "postgres" / "0001_failed_view.sql").is_file()


def test_the_sync_example_runs_on_the_installed_package(
    venv: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The README's synchronous example runs with only the wheel installed, on both engines."""
    call = "example(Path(folder), url)"
    for folder in run_on_both_engines(venv, tmp_path, request, "## Synchronous programs", call):
        assert (folder / "files").is_dir()  # its bundle opened there


def test_the_backup_example_runs_on_the_installed_package(
    venv: Path, tmp_path: Path, postgres_url: str
) -> None:
    """The README's backup, restore and move to PostgreSQL run with only the wheel installed."""
    script = tmp_path / "backup_example.py"
    script.write_text(
        readme_example("## Backup, restore and the move to PostgreSQL")
        + "\nimport asyncio, sys\nasyncio.run(example(Path(sys.argv[1]), sys.argv[2]))\n",
        encoding="utf-8",
    )
    done = run(venv / "python", script, tmp_path, postgres_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {"app.db", "app.backup", "restored.db"} <= {p.name for p in tmp_path.iterdir()}


def test_migrate_create_dry_run_and_json_from_the_wheel(
    venv: Path, tmp_path: Path, database_url: str
) -> None:
    """`migrate --create --dry-run --json` then `migrate --create --json`, from the wheel."""
    base = ("migrate", "--create", "--json", "--database", database_url)
    planned = run(venv / "persistence", *base, "--dry-run", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["dry_run"] is True
    assert plan["pending"][0]["file"] == "0001_initial_schema.sql"
    assert "CREATE TABLE" in plan["pending"][0]["sql"]
    done = run(venv / "persistence", *base, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [m["name"] for m in report["applied"]] == [m["name"] for m in plan["pending"]]
