import hashlib
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import attrs
import pytest

from persistence import (
    Database,
    DatabaseError,
    FileRecord,
    ValidationError,
    all_file_records,
    connect,
    find_file_record_by_path,
    migrate,
    save_file_record,
)
from persistence.database import read_snapshot
from persistence.exceptions import OutsideRootError
from persistence.storage import (
    Storage,
    VerifyReport,
    backup,
    copy,
    delete,
    list_files,
    move,
    open_storage,
    prune_backups,
    read_bytes,
    read_text,
    verify,
    write_bytes,
    write_text,
)
from test_plain_ids import plain_sql

DOCS = Path(__file__).parent.parent / "docs" / "STORAGE.md"


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


async def record_of(db: Database, path: str) -> FileRecord:
    """Return the record of `path`, which must exist."""
    record = await find_file_record_by_path(db, path)
    assert record is not None, f"no record of {path}"
    return record


def recent(moment: datetime) -> bool:
    """Tell whether `moment` is an aware UTC time within the last minute."""
    now = datetime.now(UTC)
    return moment.tzinfo is not None and now - timedelta(minutes=1) <= moment <= now


async def test_a_tracked_write_records_the_file(storage: Storage, db: Database) -> None:
    """Writing with `track` records the relative path, size, hash and access time."""
    await write_text(storage, "dir/a.txt", "hello", track=db)
    record = await record_of(db, "dir/a.txt")
    assert (record.size, record.hash) == (5, sha256(b"hello"))
    assert recent(record.accessed_at)
    assert recent(record.created_at)


async def test_a_tracked_rewrite_keeps_creation_time_and_metadata(
    storage: Storage, db: Database
) -> None:
    """Writing a tracked file again refreshes size and hash but keeps created_at and metadata."""
    await write_bytes(storage, "a.bin", b"one", track=db)
    first = await record_of(db, "a.bin")
    await save_file_record(db, attrs.evolve(first, metadata={"owner": "ci"}))
    await write_bytes(storage, "a.bin", b"second", track=db)
    second = await record_of(db, "a.bin")
    assert (second.size, second.hash) == (6, sha256(b"second"))
    assert second.created_at == first.created_at
    assert second.accessed_at >= first.accessed_at
    assert second.metadata == {"owner": "ci"}
    assert second.id == first.id


async def test_a_tracked_read_records_the_access(storage: Storage, db: Database) -> None:
    """Reading with `track` records the file; reading without it changes nothing."""
    await write_bytes(storage, "r.txt", b"data")
    await read_bytes(storage, "r.txt")
    assert await all_file_records(db) == []
    assert await read_text(storage, "r.txt", track=db) == "data"
    first = await record_of(db, "r.txt")
    assert (first.size, first.hash) == (4, sha256(b"data"))
    await read_bytes(storage, "r.txt", track=db)
    assert (await record_of(db, "r.txt")).accessed_at >= first.accessed_at


async def test_a_tracked_copy_records_the_copy(storage: Storage, db: Database) -> None:
    """Copying with `track` records the new file, not the source."""
    await write_bytes(storage, "src.bin", b"payload")
    await copy(storage, "src.bin", "dst/copy.bin", track=db)
    assert [record.path for record in await all_file_records(db)] == ["dst/copy.bin"]
    record = await record_of(db, "dst/copy.bin")
    assert (record.size, record.hash) == (7, sha256(b"payload"))


async def test_a_tracked_move_rekeys_the_record(storage: Storage, db: Database) -> None:
    """Moving with `track` moves the record, keeping its creation time and metadata."""
    await write_bytes(storage, "old.txt", b"moving", track=db)
    before = await record_of(db, "old.txt")
    await save_file_record(db, attrs.evolve(before, metadata={"tag": 1}))
    await write_bytes(storage, "new.txt", b"overwritten", track=db)
    await move(storage, "old.txt", "new.txt", track=db)
    assert [record.path for record in await all_file_records(db)] == ["new.txt"]
    after = await record_of(db, "new.txt")
    assert (after.size, after.hash) == (6, sha256(b"moving"))
    assert after.created_at == before.created_at
    assert after.metadata == {"tag": 1}


async def test_a_tracked_delete_removes_the_record(storage: Storage, db: Database) -> None:
    """Deleting with `track` removes the record; without it the record stays."""
    await write_bytes(storage, "a.txt", b"a", track=db)
    await write_bytes(storage, "b.txt", b"b", track=db)
    await delete(storage, "a.txt", track=db)
    await delete(storage, "b.txt")
    assert [record.path for record in await all_file_records(db)] == ["b.txt"]


async def test_records_name_real_relative_posix_paths(storage: Storage, db: Database) -> None:
    """A file reached by an absolute path or a symlink is recorded by its real relative path."""
    await write_text(storage, storage.root / "x" / "y.txt", "y", track=db)
    (storage.root / "alias").symlink_to("x")
    await read_text(storage, "alias/y.txt", track=db)
    assert [record.path for record in await all_file_records(db)] == ["x/y.txt"]


async def test_tracking_rows_match_the_files_on_disk(storage: Storage, db: Database) -> None:
    """After tracked writes, copies and moves, every record matches one file on disk."""
    for index in range(5):
        await write_bytes(storage, f"d{index % 2}/f{index}.bin", bytes([index]) * index, track=db)
    await copy(storage, "d0/f2.bin", "copies/f2.bin", track=db)
    await move(storage, "d1/f3.bin", "moved/f3.bin", track=db)
    await delete(storage, "d0/f4.bin", track=db)
    await backup(storage, "d0/f0.bin")
    on_disk = {
        entry.path: (entry.size, entry.sha256)
        for entry in await list_files(storage, "*", recursive=True)
        if not entry.is_directory
    }
    recorded = {record.path: (record.size, record.hash) for record in await all_file_records(db)}
    assert recorded == on_disk
    assert sorted(recorded) == [
        "copies/f2.bin",
        "d0/f0.bin",
        "d0/f2.bin",
        "d1/f1.bin",
        "moved/f3.bin",
    ]
    assert await verify(storage, db) == VerifyReport()


async def test_verify_finds_changed_missing_and_new_files(storage: Storage, db: Database) -> None:
    """Verify reports a changed file, a deleted one and an untracked one, each by path."""
    for name in ["same.txt", "edited.txt", "same_size.txt", "gone.txt", "now_dir.txt"]:
        await write_text(storage, f"d/{name}", name, track=db)
    root = storage.root
    (root / "d/edited.txt").write_text("edited, and longer")
    (root / "d/same_size.txt").write_text("SAME_SIZE.TXT")
    (root / "d/gone.txt").unlink()
    (root / "d/now_dir.txt").unlink()
    (root / "d/now_dir.txt").mkdir()
    (root / "d/new.txt").write_text("new")
    (root / "top.txt").write_text("new too")
    (root / ".tmp/scratch.txt").write_text("not a tracked place")
    await backup(storage, "d/same.txt")

    report = await verify(storage, db)

    assert report == VerifyReport(
        changed=("d/edited.txt", "d/same_size.txt"),
        missing=("d/gone.txt", "d/now_dir.txt"),
        new=("d/new.txt", "top.txt"),
    )
    assert not report.clean


async def test_verify_reports_a_record_that_leads_out_as_missing(
    storage: Storage, db: Database, tmp_path: Path
) -> None:
    """A record whose path now leads out of the root is missing; one spelled out, malformed."""
    (tmp_path / "outside.txt").write_text("outside")
    await write_text(storage, "link.txt", "was a file", track=db)
    (storage.root / "link.txt").unlink()
    (storage.root / "link.txt").symlink_to(tmp_path / "outside.txt")
    await save_file_record(db, FileRecord(path="../outside.txt", size=7))
    report = await verify(storage, db)
    assert report == VerifyReport(missing=("link.txt",), malformed=("../outside.txt",))


async def example(data: Path) -> None:
    """Store a file, track it, back it up, and check the disk against the records."""
    storage = await open_storage(data / "files")
    async with connect(data / "app.db") as db:
        await migrate(db)
        info = await write_text(storage, "reports/today.txt", "all green\n", track=db)
        assert info.path == "reports/today.txt"
        assert info.size == 10
        assert await read_text(storage, "reports/today.txt") == "all green\n"

        copy = await backup(storage, "reports/today.txt", keep=5)
        assert copy.parent == storage.root / ".backups" / "reports"

        (storage.root / "reports" / "today.txt").write_text("edited behind our back\n")
        report = await verify(storage, db)
        assert report.changed == ("reports/today.txt",)


async def test_the_documented_example_runs(tmp_path: Path) -> None:
    """The example in docs/STORAGE.md is this module's `example`, and it runs."""
    assert inspect.getsource(example) in DOCS.read_text()
    await example(tmp_path)


async def _spoil_the_record(
    database_url: str, path: str, change: str = "hash = upper(hash)"
) -> None:
    """Plain SQL: write the record's hash in capitals, which no FileRecord holds, or `change`."""
    await plain_sql(database_url, f"UPDATE file_records SET {change} WHERE path = '{path}'")  # noqa: S608  # the test's own


async def test_a_spoiled_record_refuses_a_tracked_change_before_the_disk(
    storage: Storage, db: Database, database_url: str
) -> None:
    """A record that plain SQL made unreadable: the write and the move are refused, nothing moved.

    The record was read after the disk change: the file was rewritten, or moved, and then the
    call raised, its record unchanged.
    """
    await write_text(storage, "a.txt", "old", track=db)
    await _spoil_the_record(database_url, "a.txt")
    said = r"stored row.*file_records\.hash"
    with pytest.raises(ValidationError, match=said):
        await write_text(storage, "a.txt", "new", track=db)
    with pytest.raises(ValidationError, match=said):
        await move(storage, "a.txt", "b.txt", track=db)
    await write_text(storage, "other.txt", "other")
    with pytest.raises(ValidationError, match=said):
        await copy(storage, "other.txt", "a.txt", track=db)
    assert (storage.root / "a.txt").read_text() == "old"
    assert not (storage.root / "b.txt").exists()
    await write_text(storage, "c.txt", "c", track=db)  # other paths are unaffected
    await move(storage, "c.txt", "a.txt", track=db)  # a move over it reads only the source's
    assert (await record_of(db, "a.txt")).hash == hashlib.sha256(b"c").hexdigest()
    await delete(storage, "a.txt", track=db)  # and a delete, which reads no record, goes on
    assert not (storage.root / "a.txt").exists()


async def _tracked_changes(storage: Storage, track: Database, said: str) -> None:
    """Try each tracked change and read on `track`; each must be refused with `said`."""
    for change in (
        write_text(storage, "a.txt", "new", track=track),
        delete(storage, "b.txt", track=track),
        move(storage, "b.txt", "c.txt", track=track),
        copy(storage, "b.txt", "c.txt", track=track),
        read_text(storage, "a.txt", track=track),
    ):
        with pytest.raises(DatabaseError, match=said):
            await change


async def test_a_tracked_change_on_a_database_it_cannot_write_touches_nothing(
    storage: Storage, database_url: str
) -> None:
    """A closed database, or a snapshot's, is refused before the disk, as an ended block is.

    The file was written, deleted or moved, and then the record's write failed: `verify`
    reported the package's own change as one made outside it.
    """
    async with connect(database_url) as db:
        await migrate(db)
        await write_text(storage, "a.txt", "old", track=db)
        await write_text(storage, "b.txt", "b", track=db)
        async with read_snapshot(db) as snapshot:
            await _tracked_changes(storage, snapshot, r"read_snapshot\(\) block only reads")
    await _tracked_changes(storage, db, r"database is closed")
    assert (storage.root / "a.txt").read_text() == "old"
    assert (storage.root / "b.txt").read_text() == "b"
    assert not (storage.root / "c.txt").exists()
    async with connect(database_url) as db:
        assert await verify(storage, db) == VerifyReport()


async def test_a_tracked_read_of_a_backup_is_refused_and_records_nothing(
    storage: Storage, db: Database
) -> None:
    """A backup has no record: a tracked read of one is refused; read untracked, it reads.

    It was recorded under `.backups/`, and once retention pruned the backup, `verify` gave it
    as missing, a change made outside the package.
    """
    await write_text(storage, "docs/a.txt", "v1", track=db)
    copied = (await backup(storage, "docs/a.txt")).relative_to(storage.root).as_posix()
    with pytest.raises(OutsideRootError, match=r"is inside the reserved folder \.backups/"):
        await read_text(storage, copied, track=db)
    assert await read_text(storage, copied) == "v1"
    assert [record.path for record in await all_file_records(db)] == ["docs/a.txt"]
    await prune_backups(storage, "docs/a.txt", keep=0)
    assert await verify(storage, db) == VerifyReport()


async def test_verify_names_a_record_against_the_rules_as_malformed_and_goes_on(
    storage: Storage, db: Database, database_url: str
) -> None:
    """A record plain SQL wrote against the model's rules is malformed; the rest is compared.

    Read through the model, one such row failed `verify` whole (`stored row.file_records.hash`),
    and a change on disk it was asked about went unseen.
    """
    for name in ("ok.txt", "spoiled.txt", "long.txt"):
        await write_text(storage, name, name, track=db)
    await _spoil_the_record(database_url, "spoiled.txt")
    too_long = "x" * 1100
    if "://" in database_url:  # PostgreSQL's CHECK (migration 0019) refuses such a path
        with pytest.raises(asyncpg.CheckViolationError, match="file_records_path_within"):
            await _spoil_the_record(database_url, "long.txt", f"path = '{too_long}'")
        malformed: tuple[str, ...] = ("spoiled.txt",)
    else:
        await _spoil_the_record(database_url, "long.txt", f"path = '{too_long}'")
        malformed = tuple(sorted(("spoiled.txt", too_long)))
    (storage.root / "ok.txt").write_text("changed outside")
    report = await verify(storage, db)
    assert report.changed == ("ok.txt",)
    assert report.malformed == malformed
    assert report.new == (() if "://" in database_url else ("long.txt",))
    assert report.missing == ()
