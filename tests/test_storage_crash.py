import asyncio
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from _killed_writer import TARGET, contents
from persistence._files.paths import is_partial_name
from persistence.storage import clean_temp, list_backups, list_files, open_storage

HERE = Path(__file__).parent
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


def _partials(folder: Path) -> list[str]:
    """Return the names of the partial-write files left in `folder`."""
    return sorted(path.name for path in folder.iterdir() if is_partial_name(path.name))


def _partials_below(folder: Path) -> list[Path]:
    """Return the partial-write files anywhere below `folder`, reserved folders included."""
    return sorted(path for path in folder.rglob("*") if is_partial_name(path.name))


async def test_killed_writer_leaves_old_or_new_content(tmp_path: Path) -> None:
    """A writer killed at random moments leaves the target whole: one content or the other."""
    size = 4 * 1024 * 1024
    known = set(contents(size))
    storage = await open_storage(tmp_path)
    rng = random.Random(20240607)  # noqa: S311 - picks moments to kill, not secrets
    kills_mid_write = 0
    for _ in range(6):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "_killed_writer.py"),
            str(tmp_path),
            str(size),
            stdout=asyncio.subprocess.PIPE,
            env=CHILD_ENV,
        )
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), timeout=rng.uniform(0.02, 0.3))
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL

        assert (tmp_path / TARGET).read_bytes() in known
        assert [entry.path for entry in await list_files(storage)] == [TARGET]
        kills_mid_write += bool(_partials(tmp_path))
        await clean_temp(storage, older_than_hours=0)
        assert _partials(tmp_path) == []
        assert (tmp_path / TARGET).read_bytes() in known
    assert kills_mid_write > 0, "no kill landed in the middle of a write"


async def test_a_killed_backup_leaves_nothing_clean_temp_keeps(tmp_path: Path) -> None:
    """A process killed mid-backup leaves at worst a partial file that clean_temp removes.

    The partial copy was made in the backups' folder, which clean_temp never walks: each
    kill left a whole-size orphan there for good.
    """
    storage = await open_storage(tmp_path)
    rng = random.Random(20261205)  # noqa: S311 - picks moments to kill, not secrets
    kills_mid_backup = 0
    for _ in range(6):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "_killed_writer.py"),
            str(tmp_path),
            str(8 * 1024 * 1024),
            "backup",
            stdout=asyncio.subprocess.PIPE,
            env=CHILD_ENV,
        )
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), timeout=rng.uniform(0.05, 0.3))
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL

        kills_mid_backup += bool(_partials_below(tmp_path))
        await clean_temp(storage, older_than_hours=0)
        assert _partials_below(tmp_path) == []
        assert all(path.stat().st_size > 0 for path in await list_backups(storage, TARGET))
    assert kills_mid_backup > 0, "no kill landed in the middle of a backup"


def _big_file(path: Path, size: int) -> str:
    """Make a sparse file of `size` bytes with data at a few places; return its SHA-256."""
    marks = {0: b"start", size // 2: b"middle", size - 3: b"end"}
    with path.open("wb") as stream:
        stream.truncate(size)
        for offset, data in marks.items():
            stream.seek(offset)
            stream.write(data)
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def test_hashing_a_big_file_keeps_memory_bounded(tmp_path: Path) -> None:
    """Hashing a 256 MiB file grows the peak memory of the process by far less than its size."""
    size = 256 * 1024 * 1024
    expected = _big_file(tmp_path / "big.bin", size)
    output = subprocess.run(
        [sys.executable, str(HERE / "_hash_memory.py"), str(tmp_path), "big.bin"],
        capture_output=True,
        check=True,
        env=CHILD_ENV,
        text=True,
    ).stdout
    digest, growth = output.split()
    assert digest == expected
    assert int(growth) < 16 * 1024 * 1024
