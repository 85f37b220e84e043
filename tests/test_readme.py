"""The README's usage example runs as it is written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def usage_example() -> str:
    """The first Python block under the README's Usage heading."""
    text = README.read_text(encoding="utf-8")
    usage = text[text.index("## Usage") :]
    match = re.search(r"```python\n(.*?)```", usage, re.DOTALL)
    assert match is not None, "README.md has no Python block under '## Usage'"
    return match.group(1)


def test_usage_example_runs(tmp_path: Path) -> None:
    """The example migrates data/app.db, saves, pages and summarises as it says."""
    script = tmp_path / "example.py"
    script.write_text(usage_example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 1 {<TestStatus.PASSED: 'passed'>: 3} 4"
    assert (tmp_path / "data" / "app.db").is_file()


def example_under(heading: str) -> object:
    """The `example` function that the first Python block under a README heading defines."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(f"\n{heading}\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"README.md has no Python block under {heading!r}"
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102  # our own README
    return namespace["example"]


async def test_storage_example_runs(tmp_path: Path) -> None:
    """The README's file storage example stores, tracks, backs up and verifies a file."""
    example = example_under("## File storage")
    assert callable(example)
    await example(tmp_path)


async def test_search_example_runs(tmp_path: Path) -> None:
    """The README's search example searches, lists by a filter page by page, and lists by glob."""
    example = example_under("## Search")
    assert callable(example)
    await example(tmp_path)


async def test_caching_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's caching example opens everything, reads through the cache and keeps a file."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    text = README.read_text(encoding="utf-8")
    caching = text[text.index("## Caching") :]
    match = re.search(r"```python\n(.*?)```", caching, re.DOTALL)
    assert match is not None, "README.md has no Python block under '## Caching'"
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102  # our own README
    example = namespace["example"]
    assert callable(example)
    await example(tmp_path)
    assert (tmp_path / "files" / ".cache" / "artifacts").is_dir()


async def test_own_migrations_example_runs(tmp_path: Path, database_url: str) -> None:
    """The README's own-migrations example applies a user's chain after the package's."""
    example = example_under("## Your own migrations")
    assert callable(example)
    await example(tmp_path, database_url)


def test_install_check_runs(tmp_path: Path) -> None:
    """The README's install check prints True in the checkout too: the names agree."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Install\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README.md has no Python block under '## Install'"
    script = tmp_path / "check.py"
    script.write_text(match.group(1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


async def test_run_history_example_runs(tmp_path: Path) -> None:
    """The README's run history example compares two runs and finds the flaky test."""
    example = example_under("## Run history")
    assert callable(example)
    await example(tmp_path)


async def test_tracing_example_runs(tmp_path: Path) -> None:
    """The README's tracing example traces its queries under the caller's span, values kept out."""
    example = example_under("## Tracing and logs")
    assert callable(example)
    await example(tmp_path)


def test_sync_example_runs(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's synchronous example runs through a SyncRunner, on both engines."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    example = example_under("## Synchronous programs")
    assert callable(example)
    example(tmp_path, database_url)


async def test_backup_example_runs(tmp_path: Path, postgres_url: str) -> None:
    """The README's backup example backs up, moves SQLite to PostgreSQL, and restores."""
    example = example_under("## Backup, restore and the move to PostgreSQL")
    assert callable(example)
    await example(tmp_path, postgres_url)


async def test_counterexamples_example_runs(tmp_path: Path) -> None:
    """The README's counterexample example keeps inputs, replays them and expires them."""
    example = example_under("### Counterexamples")
    assert callable(example)
    await example(tmp_path)
