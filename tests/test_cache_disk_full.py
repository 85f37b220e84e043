"""A full disk under the artifact cache: the error names the cache, never the file put."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from _cache_disk_helpers import (
    artifact_cache,  # noqa: F401  # the `artifacts` fixture, used by name
    open_descriptors,
)
from persistence._files import content
from persistence.cache import ArtifactCache
from persistence.exceptions import StorageError


def _disk_full(*_: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_put_file_on_a_full_disk_names_the_cache_not_the_source(
    artifacts: ArtifactCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is only read: "source: No space left on device" sent the user to its disk."""
    source = tmp_path / "elsewhere" / "input.bin"
    source.parent.mkdir()
    source.write_bytes(b"to be cached " * 1000)
    before = open_descriptors()
    monkeypatch.setattr(content, "write_all", _disk_full)
    with pytest.raises(StorageError, match="No space left on device") as raised:
        await artifacts.put_file(source)
    monkeypatch.undo()
    assert raised.value.path.startswith(".cache/")
    assert str(source) not in str(raised.value)
    assert open_descriptors() == before
    incoming = artifacts.folder / "incoming"
    assert [path.name for path in incoming.iterdir()] == []  # no partial file left
    assert await artifacts.size() == 0
    key = await artifacts.put_file(source)
    assert await artifacts.get(key) == source.read_bytes()
