"""JUnit files in the encodings they name: every spelling Python knows, and byte order marks."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from _report_helpers import assert_nothing_written, write_report
from persistence import ReportError, all_results
from persistence.reports import import_junit

if TYPE_CHECKING:
    from persistence import Database

BODY: Final = (
    '<testsuites><testsuite name="caf\u00e9"><testcase classname="\u00e9t\u00e9" name="t\u20ac"'
    ' time="1"><failure message="\u00e0 \U0001f600"/></testcase></testsuite></testsuites>'
)


def declared(name: str) -> str:
    """Give the report, its XML declaration naming `name`."""
    return f'<?xml version="1.0" encoding="{name}"?>\n{BODY}'


async def assert_read_whole(db: Database, path: Path) -> None:
    """The file is one run whose result holds every character as written."""
    run = await import_junit(db, path)
    [result] = await all_results(db)
    assert result.run_id == run.id
    assert result.test_id == "\u00e9t\u00e9::t\u20ac"
    assert result.error_message == "\u00e0 \U0001f600"
    assert result.metadata["suite"] == "caf\u00e9"


@pytest.mark.parametrize("name", ["utf8", "UTF8", "utf_8", "U8", "utf-8-sig", "Utf-8"])
async def test_utf8_under_any_name_python_knows_is_read(
    db: Database, tmp_path: Path, name: str
) -> None:
    """`utf8`, as ElementTree writes what it was asked for, was refused at its first non-ASCII."""
    await assert_read_whole(db, write_report(tmp_path, declared(name).encode("utf-8")))


@pytest.mark.parametrize("name", ["utf16", "UTF_16", "U16", "utf-16"])
@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
async def test_utf16_under_any_name_python_knows_is_read_by_its_mark(
    db: Database, tmp_path: Path, name: str, order: str
) -> None:
    """`utf16` behind a byte order mark was refused as a multi-byte encoding expat cannot read."""
    mark = codecs.BOM_UTF16_LE if order == "utf-16-le" else codecs.BOM_UTF16_BE
    path = write_report(tmp_path, mark + declared(name).encode(order))
    await assert_read_whole(db, path)


async def test_other_encodings_are_read_or_refused_as_before(db: Database, tmp_path: Path) -> None:
    """A single-byte encoding is read by any of its names; a multi-byte one is refused."""
    text = declared("l1").replace("\u20ac", "e").replace(" \U0001f600", "")
    run = await import_junit(db, write_report(tmp_path, text.encode("latin-1")))
    [result] = await all_results(db)
    assert (result.run_id, result.test_id) == (run.id, "\u00e9t\u00e9::te")
    path = write_report(tmp_path, declared("shift_jis").encode("utf-8"), "jis.xml")
    with pytest.raises(ReportError, match="multi-byte"):
        await import_junit(db, path)
    assert len(await all_results(db)) == 1


async def test_a_file_in_no_encoding_it_names_writes_nothing(db: Database, tmp_path: Path) -> None:
    """Declared `utf8` but written in latin-1: refused as not well-formed, as for `UTF-8`."""
    path = write_report(
        tmp_path, declared("utf8").replace("\u20ac", "e").encode("cp1252", "replace")
    )
    with pytest.raises(ReportError, match="not well-formed"):
        await import_junit(db, path)
    await assert_nothing_written(db)


@pytest.mark.parametrize(
    ("mark", "name", "order"),
    [
        (codecs.BOM_UTF8, "ISO-8859-1", "utf-8"),
        (codecs.BOM_UTF8, "latin-1", "utf-8"),
        (codecs.BOM_UTF8, "windows-1252", "utf-8"),
        (codecs.BOM_UTF16_LE, "UTF-8", "utf-16-le"),
        (codecs.BOM_UTF16_BE, "latin1", "utf-16-be"),
    ],
    ids=["utf8-iso", "utf8-latin", "utf8-cp1252", "utf16le-utf8", "utf16be-latin"],
)
async def test_a_byte_order_mark_against_the_declared_encoding_writes_nothing(
    db: Database, tmp_path: Path, mark: bytes, name: str, order: str
) -> None:
    """A UTF-8 mark before `encoding="latin-1"` was read as latin-1: `été` came in as `Ã©tÃ©`."""
    path = write_report(tmp_path, mark + declared(name).encode(order))
    with pytest.raises(ReportError, match="byte order mark") as refused:
        await import_junit(db, path)
    assert f"declares encoding {name!r}" in str(refused.value)
    assert refused.value.line == 1
    await assert_nothing_written(db)


async def test_a_utf8_mark_before_a_utf8_declaration_is_read(db: Database, tmp_path: Path) -> None:
    """The mark and the name agree: the file is read past its mark."""
    await assert_read_whole(db, write_report(tmp_path, codecs.BOM_UTF8 + declared("utf8").encode()))


def padded(name: str) -> str:
    """Give the report, its XML declaration naming `name` after 1,000 spaces, as XML allows."""
    return f'<?xml version="1.0"{" " * 1_000}encoding="{name}"?>\n{BODY}'


async def test_a_declaration_padded_with_white_space_is_read_as_a_short_one(
    db: Database, tmp_path: Path
) -> None:
    """A declaration is read whole, not its first 400 bytes alone.

    Past them, `utf8` was refused as not well-formed, `utf16` as multi-byte, and a UTF-8 mark
    before `latin-1` came in as `Ã©tÃ©`.
    """
    await assert_read_whole(db, write_report(tmp_path, padded("utf8").encode()))
    mark = codecs.BOM_UTF16_LE + padded("utf16").encode("utf-16-le")
    await import_junit(db, write_report(tmp_path, mark, "utf16.xml"))
    assert len(await all_results(db)) == 2
    path = write_report(tmp_path, codecs.BOM_UTF8 + padded("latin-1").encode(), "latin.xml")
    with pytest.raises(ReportError, match="byte order mark"):
        await import_junit(db, path)
    assert len(await all_results(db)) == 2
