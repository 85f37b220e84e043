"""`migrate` out of descriptors says so as the package's error, never as a bare OSError.

With a few descriptors left, reading the package's own migration folder or its history
table's file raised `OSError: [Errno 24] Too many open files`, where every other step of an
open (the database, the file store) gives a `PersistenceError` naming what it could not open.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from _storage_helpers import limit_leaving
from persistence import PersistenceError, connect, migrate

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")


@pytest.mark.parametrize("free", range(8))
async def test_migrate_out_of_descriptors_fails_as_the_packages_error(
    tmp_path: Path, free: int
) -> None:
    """Each step that opens a file, with `free` descriptors left: done, or a package error."""
    async with connect(tmp_path / "app.db") as db:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit_leaving(free), hard))
        outcome: object
        try:
            outcome = await migrate(db)
        except PersistenceError as error:
            outcome = error
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if isinstance(outcome, PersistenceError):
        said = str(outcome)
        assert "Too many open files" in said or "unable to open" in said, said
    else:
        assert outcome, "a new database has migrations to apply"
