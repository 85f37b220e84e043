"""An outcome's message of white space only, however long, comes back whole through export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from persistence import all_results, export_junit, import_junit

if TYPE_CHECKING:
    from persistence import Database


@pytest.mark.parametrize(
    "blank",
    [" " * 201, "\n" * 300, " \t\r\n" * 100, "\u3000" * 250, " " * 200],
    ids=["spaces", "line-ends", "mixed", "ideographic", "just-at-200"],
)
async def test_a_long_blank_message_comes_back_whole(
    db: Database, tmp_path: Path, blank: str
) -> None:
    """Import reads a blank outcome text past, to its `message`: export cut that at 200."""
    escaped = blank.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    first = tmp_path / "first.xml"
    first.write_text(
        f'<testsuites><testsuite name="s"><testcase name="t"><failure message="{escaped}"/>'
        "</testcase></testsuite></testsuites>",
        encoding="utf-8",
    )
    run = await import_junit(db, first)
    assert run.id is not None
    second = tmp_path / "second.xml"
    second.write_text(await export_junit(db, run.id), encoding="utf-8")
    again = await import_junit(db, second)
    messages = {result.run_id: result.error_message for result in await all_results(db)}
    assert messages == {run.id: blank, again.id: blank}
