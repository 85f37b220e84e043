"""`list_files` matches as `Path.glob` and `Path.rglob` do, `**` included, on any small tree."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from persistence._files import tree
from persistence._files.paths import RESERVED
from persistence._files.tree import glob_matches
from persistence.storage import list_files, open_storage, write_bytes

NAMES = st.sampled_from(["a", "b", "a.txt", ".h"])
TREES = st.lists(st.lists(NAMES, min_size=1, max_size=3).map("/".join), max_size=6)
"""Files to write: their folders come with them (a name taken as a folder is then no file)."""
PARTS = st.sampled_from(["*", "**", "a*", "?", "*.txt", "b", "[ab]", ".h"])
PATTERNS = st.tuples(st.lists(PARTS, min_size=1, max_size=3).map("/".join), st.booleans()).map(
    lambda pattern: pattern[0] + "/" * pattern[1]
)


def _by_pathlib(root: Path, pattern: str, *, recursive: bool) -> list[str]:
    """What `Path.glob` (or `rglob`) lists, the root itself and the reserved folders left out.

    A pattern ending in `/` lists folders alone, as a shell's glob does.
    """
    found = root.rglob(pattern) if recursive else root.glob(pattern)
    return sorted(
        {
            path.relative_to(root).as_posix()
            for path in found
            if path != root
            and path.relative_to(root).parts[0] not in RESERVED
            and (path.is_dir() or not pattern.endswith("/"))
        }
    )


async def _listed(
    files: list[str], pattern: str, *, recursive: bool
) -> tuple[list[str], list[str]]:
    with tempfile.TemporaryDirectory() as temporary:
        storage = await open_storage(Path(temporary, "root"))
        for file in files:
            if not any(other.startswith(f"{file}/") for other in files):
                # a name that another path passes through is that path's folder
                await write_bytes(storage, file, b"x")
        listed = [entry.path for entry in await list_files(storage, pattern, recursive=recursive)]
        expected = await asyncio.to_thread(_by_pathlib, storage.root, pattern, recursive=recursive)
        return listed, expected


@pytest.mark.skipif(
    sys.version_info >= (3, 13),
    reason="the oracle is 3.11's Path.glob: 3.13's `**` lists files too",
)
@settings(max_examples=120, deadline=None)
@given(files=TREES, pattern=PATTERNS, recursive=st.booleans())
@example(files=["a.txt", "b/a.txt", "b/b/a.txt"], pattern="**/*.txt", recursive=False)
@example(files=["a.txt", "b/a.txt", "b/b/a.txt"], pattern="**/*.txt", recursive=True)
@example(files=["a.txt", "b/b/a"], pattern="**", recursive=False)
@example(files=["b/a.txt", "b/b/a"], pattern="b/**/a*", recursive=False)
def test_list_files_lists_what_pathlib_globs(
    files: list[str],
    pattern: str,
    recursive: bool,  # noqa: FBT001  # hypothesis passes each argument by name
) -> None:
    """Before, `**` was one part: `**/*.txt` missed `a.txt`, and `**` listed files too."""
    listed, expected = asyncio.run(_listed(files, pattern, recursive=recursive))
    assert listed == expected


def test_a_glob_of_many_double_stars_is_matched_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No pattern makes the match backtrack: each part of the path meets each of the glob once.

    Counted, not timed: 200 `**` against 256 parts that fail at the end.
    """
    calls = 0

    def counted(name: str, pattern: str) -> bool:
        nonlocal calls
        calls += 1
        return fnmatchcase(name, pattern)

    monkeypatch.setattr(tree, "fnmatchcase", counted)
    parts, glob = ["a"] * 256, ["**", "a"] * 200
    assert not glob_matches(parts, [*glob, "b"])
    assert glob_matches(parts, glob)
    assert calls <= 2 * len(parts) * (len(glob) + 1)
