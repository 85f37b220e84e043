"""A file store's root that only a mistake writes is refused by the store itself.

Blank, white space at an end or a line end (an env file's CRLF), or a start of `~`, which only
a shell expands: `open_persistence` refused them, but `open_storage` made a folder of that name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence.exceptions import InvalidPathError
from persistence.storage import open_storage


@pytest.mark.parametrize("root", ["   ", "files\r", "data/files\n", " files", "files ", "~/files"])
async def test_open_storage_refuses_a_root_only_a_mistake_writes_and_makes_nothing(
    root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused naming the root, before any folder is made in the working folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidPathError) as raised:
        await open_storage(root)
    assert repr(root) in str(raised.value)
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240  # a look, after the call


async def test_open_storage_takes_a_root_with_inner_spaces_and_a_tilde_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a mistake does not write is taken as it is."""
    monkeypatch.chdir(tmp_path)
    storage = await open_storage("my files/a~b")
    assert storage.root == (tmp_path / "my files" / "a~b").resolve()
