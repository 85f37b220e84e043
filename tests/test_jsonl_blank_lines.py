"""Blank lines of JSON Lines: only JSON's own white space makes a line blank."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import pytest

from _report_helpers import assert_nothing_written
from persistence import ReportError, all_results
from persistence.report_json import import_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from persistence import Database

GOOD: Final = '{"test_type": "unit", "status": "passed", "execution_time": 1}'
JSON_SPACE: Final = " \t\r\n"
OTHER_SPACE: Final = [
    chr(code)
    for code in range(sys.maxunicode + 1)
    if chr(code).isspace() and chr(code) not in JSON_SPACE
]
"""What `str.strip` takes as white space and JSON does not: \\x1c, \\x85, \\u2028, \\u3000, ..."""


async def test_a_line_of_white_space_json_does_not_know_is_refused_by_its_line(
    db: Database, tmp_path: Path
) -> None:
    """`line.strip()` read such a line as blank and imported the rest without a word."""
    assert {"\x1c", "\x85", "\u2028", "\u3000"} <= set(OTHER_SPACE)
    path = tmp_path / "results.jsonl"
    for space in OTHER_SPACE:
        for line in (space, f" {space}\t", space * 3):
            path.write_text(f"{GOOD}\n\n{line}\n{GOOD}\n", encoding="utf-8")
            with pytest.raises(ReportError, match="not JSON") as refused:
                await import_jsonl(db, path)
            assert refused.value.line == 3, repr(space)
    await assert_nothing_written(db)


@pytest.mark.parametrize("blank", ["", " ", "\t", "\r", " \t \r"], ids=repr)
async def test_a_line_of_json_white_space_is_blank(
    db: Database, tmp_path: Path, blank: str
) -> None:
    """Space, tab and CR (a CRLF file's line end) make a line blank, read past."""
    path = tmp_path / "results.jsonl"
    path.write_text(f"{blank}\n{GOOD}\n{blank}\n{GOOD}\n{blank}", encoding="utf-8", newline="")
    await import_jsonl(db, path)
    assert len(await all_results(db)) == 2
