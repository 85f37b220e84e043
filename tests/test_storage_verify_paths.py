"""`verify` names a record whose path is not one the file store writes, checked against nothing.

A tracked operation records the path as the walk from the root found it: relative, its parts
joined by single `/`, none of them `.` or `..`. A record in another form (written by plain SQL,
or by `save_file_record`) was walked like a path to a file, so `a/../b.txt` was checked against
`b.txt`, and `b.txt` was reported new besides.
"""

from __future__ import annotations

from persistence import Database, FileRecord, save_file_record
from persistence.storage import Storage, VerifyReport, verify, write_text
from test_plain_ids import plain_sql

WHEN = "2026-05-01T00:00:00.000000+00:00"


async def test_verify_names_records_whose_paths_the_store_never_writes(
    storage: Storage, db: Database, database_url: str
) -> None:
    """Each path out of plain form is `malformed`, checked against no file; the rest as before."""
    await write_text(storage, "a/b.txt", "b", track=db)
    await write_text(storage, "a/c.txt", "c")
    await write_text(storage, "b.txt", "b")
    odd = [
        "a/../b.txt",
        "./a/c.txt",
        "a//c.txt",
        "a/c.txt/",
        "a/.",
        "/a/b.txt",
        str(storage.root / "a" / "b.txt"),
    ]
    await plain_sql(
        database_url,
        *(
            "INSERT INTO file_records (path, size, created_at, accessed_at) "  # noqa: S608  # the test's own paths
            f"VALUES ('{path}', 1, '{WHEN}', '{WHEN}')"
            for path in odd
        ),
    )

    report = await verify(storage, db)

    assert (report.changed, report.missing, report.new) == ((), (), ("a/c.txt", "b.txt"))
    assert report == VerifyReport(new=("a/c.txt", "b.txt"), malformed=tuple(sorted(odd)))
    assert not report.clean
    await write_text(storage, "b.txt", "changed", track=db)
    await write_text(storage, "a/c.txt", "c", track=db)
    assert await verify(storage, db) == VerifyReport(malformed=tuple(sorted(odd)))


async def test_a_tracked_file_swapped_for_a_symlink_is_missing_not_its_target(
    storage: Storage, db: Database
) -> None:
    """A record names a regular file at its real path: a symlink there is not that file.

    The record `l.txt` was checked against the file its symlink led to, which was reported
    new besides: a tracked file replaced by a link to another looked whole.
    """
    await write_text(storage, "l.txt", "same", track=db)
    await write_text(storage, "d/f.txt", "same", track=db)
    await write_text(storage, "x.txt", "same")
    await write_text(storage, "e/f.txt", "same")
    (storage.root / "l.txt").unlink()
    (storage.root / "l.txt").symlink_to("x.txt")
    (storage.root / "d" / "f.txt").unlink()
    (storage.root / "d").rmdir()
    (storage.root / "d").symlink_to("e")

    report = await verify(storage, db)

    assert report == VerifyReport(missing=("d/f.txt", "l.txt"), new=("e/f.txt", "x.txt"))


async def test_verify_reports_a_name_longer_than_the_disk_takes_as_missing(
    storage: Storage, db: Database
) -> None:
    """A record may name a file of 300 bytes, which no folder holds: missing, as one absent.

    With its folder there, the open's "File name too long" stopped the whole verify.
    """
    await write_text(storage, "docs/kept.txt", "hello", track=db)
    long = "docs/" + "n" * 300
    await save_file_record(db, FileRecord(path=long))
    assert await verify(storage, db) == VerifyReport(missing=(long,))
