"""An error that names a path prints on one line, in any UTF-8 stream, whatever the path holds.

A file name may hold a newline or a tab, and one whose bytes are not UTF-8 reaches Python with
lone surrogates (`os.fsdecode`). Written into a message as they are, the first splits a log
line in two, so that the second half reads as a record of its own, and the second makes
`print(error)` and a logging handler fail with UnicodeEncodeError. Such a path is shown
quoted, with escapes; a plain one as it is. The `path` attribute keeps the path itself.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import Database, import_junit, storage
from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    ReportError,
    StorageError,
)


def _prints_on_one_line(message: str) -> None:
    message.encode("utf-8")  # raises on a lone surrogate
    assert message.isprintable(), message.encode("utf-8", "backslashreplace")


@given(path=st.text(), reason=st.sampled_from(["is missing", "line 3: bad"]))
@example(path="a\nb", reason="is missing")
@example(path="\udcff.xml", reason="is missing")
@example(path="nul\x00", reason="is missing")
def test_a_storage_or_report_error_prints_any_path_on_one_line(path: str, reason: str) -> None:
    """Each error that takes a path shows it printably, and keeps it whole in `path`."""
    for error in (StorageError(path, reason), ReportError(path, 7, reason)):
        _prints_on_one_line(str(error))
        assert error.path == path
        assert str(error).endswith(reason)


@pytest.mark.parametrize("path", ["plain/name.txt", "ü and spaces.txt"])
def test_a_printable_path_is_shown_as_it_is(path: str) -> None:
    """No quotes or escapes where the path prints as it is."""
    assert str(StorageError(path, "is missing")) == f"{path}: is missing"
    assert str(ReportError(path, 3, "bad")) == f"{path}:3: bad"


@pytest.mark.parametrize("name", ["line\nbreak.txt", "tab\there.txt", "\udcffbytes.txt"])
async def test_a_storage_call_on_an_odd_path_raises_a_printable_error(
    tmp_path: Path, name: str
) -> None:
    """A missing file whose name holds a newline, a tab or undecodable bytes is named printably.

    The error goes through a logging handler on a UTF-8 stream without a logging error.
    """
    store = await storage.open_storage(tmp_path)
    with pytest.raises((FileMissingError, InvalidPathError)) as raised:
        await storage.read_text(store, name)
    _prints_on_one_line(str(raised.value))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test_error_paths_printable")
    logger.addHandler(handler)
    try:
        logger.error("%s", raised.value)
    finally:
        logger.removeHandler(handler)
    stream.getvalue().encode("utf-8")
    assert stream.getvalue().count("\n") == 1


async def test_an_import_of_a_file_with_undecodable_bytes_in_its_name_prints(
    db: Database, tmp_path: Path
) -> None:
    """A report whose name's bytes are not UTF-8, and that is no report, is refused printably."""
    path = Path(os.fsdecode(bytes(tmp_path) + b"/\xff\nreport.xml"))
    path.write_text("not xml")  # noqa: ASYNC240  # a few bytes, before the call under test
    with pytest.raises(ReportError) as raised:
        await import_junit(db, path)
    _prints_on_one_line(str(raised.value))
    assert raised.value.path == str(path)
