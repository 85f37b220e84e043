"""A JUnit file refused for what one of its parts holds: the error names the part, in words."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from defusedxml.ElementTree import DefusedXMLParser

from persistence import Database, ReportError, all_results, all_runs, export_junit, import_junit
from persistence.models import utc_now
from persistence.report_encodings import junit_parser
from persistence.reports import _JUnitTarget


def _report(tmp_path: Path, time: str) -> Path:
    path = tmp_path / "report.xml"
    path.write_text(
        '<testsuites><testsuite name="s">\n<testcase classname="c" name="ok" time="1"/>\n'
        f'<testcase classname="c" name="t" time="{time}"/>\n</testsuite></testsuites>\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "time",
    [
        pytest.param("1_0", id="underscore"),
        pytest.param("\uff11", id="full-width-digit"),
        pytest.param("\u0661.5", id="arabic-indic-digit"),
        pytest.param("\u00a01", id="no-break-space"),
        pytest.param("1\u2003", id="em-space"),
        pytest.param("1,5", id="decimal-comma"),
        pytest.param("1 5", id="space-inside"),
        pytest.param("0x10", id="hexadecimal"),
        pytest.param("nan", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("1e", id="exponent-without-digits"),
        pytest.param(".", id="point-alone"),
        pytest.param("1s", id="unit"),
    ],
)
async def test_a_time_not_written_as_a_decimal_number_is_refused(
    db: Database, tmp_path: Path, time: str
) -> None:
    """A time is read in JUnit's form only, the error naming the file, the line and the test.

    Python's `float()` read `1_0` as 10 seconds, and took full-width digits and spaces of any
    kind around the number.
    """
    path = _report(tmp_path, time)
    with pytest.raises(ReportError) as caught:
        await import_junit(db, path)
    assert str(caught.value) == (
        f"{path}:3: testcase 'c::t': time must be a decimal number of seconds, got {time!r}"
    )
    assert await all_runs(db) == []
    assert await all_results(db) == []


@pytest.mark.parametrize(
    ("time", "seconds"),
    [
        ("0.010", 0.01),
        ("12", 12.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("+1.5", 1.5),
        ("1e-3", 0.001),
        ("2.5E+2", 250.0),
        (" 1.5 ", 1.5),
        ("&#9;1.5&#10;&#13;", 1.5),
        ("", 0.0),
        ("  ", 0.0),
    ],
)
async def test_a_time_in_junit_form_is_read(
    db: Database, tmp_path: Path, time: str, seconds: float
) -> None:
    """A decimal number, with a sign or exponent, and XML's white space around it, is read.

    White space around is what XML Schema's numbers allow; a time of none (empty, or white
    space only) is 0, as one left out.
    """
    await import_junit(db, _report(tmp_path, time))
    assert sorted(r.execution_time for r in await all_results(db)) == sorted([1.0, seconds])


async def test_a_negative_time_is_refused_as_out_of_range(db: Database, tmp_path: Path) -> None:
    """A negative time is a number, refused by the model's own rule."""
    with pytest.raises(ReportError, match=r":3: testcase 'c::t': .*execution_time"):
        await import_junit(db, _report(tmp_path, "-0.5"))


async def test_a_time_of_minus_zero_is_stored_as_zero(db: Database, tmp_path: Path) -> None:
    """`-0` is 0 seconds, without the sign, as the model stores it.

    The row went in as read, -0.0, which PostgreSQL keeps: the result said -0.0 seconds, and
    export wrote `time="-0.0"`.
    """
    run = await import_junit(db, _report(tmp_path, "-0"))
    assert run.id is not None
    (_, result) = sorted(await all_results(db), key=lambda r: r.id or 0)
    assert math.copysign(1.0, result.execution_time) == 1.0
    assert 'time="-' not in await export_junit(db, run.id)


@pytest.mark.parametrize(
    ("root", "found"),
    [
        ('<testsuites xmlns="urn:x">', "<testsuites> in the XML namespace 'urn:x'"),
        ('<j:testsuite xmlns:j="urn:y">', "<testsuite> in the XML namespace 'urn:y'"),
        ('<html xmlns="http://www.w3.org/1999/xhtml">', "<html> in the XML namespace"),
        ("<html>", "<html>"),
    ],
)
async def test_a_root_of_another_kind_is_named_by_its_name_and_namespace(
    db: Database, tmp_path: Path, root: str, found: str
) -> None:
    """A root in a namespace is named as a user reads it: its local name and its namespace.

    The message showed expat's joined form, `<urn:x}testsuites>`.
    """
    path = tmp_path / "report.xml"
    tag = root[1:-1].split(" ", 1)[0]
    path.write_text(f'<?xml version="1.0"?>\n{root}<testcase name="t"/></{tag}>\n')
    with pytest.raises(ReportError) as caught:
        await import_junit(db, path)
    assert caught.value.line == 2
    assert caught.value.reason.startswith(f"expected <testsuites> or <testsuite>, found {found}")
    assert "}" not in caught.value.reason
    assert await all_runs(db) == []


@pytest.mark.parametrize(
    ("root", "found"),
    [
        ('<testsuites xmlns="urn:x}y">', "<testsuites> in the XML namespace 'urn:x}y'"),
        ('<j:testsuite xmlns:j="}">', "<testsuite> in the XML namespace '}'"),
        ('<testsuites xmlns="urn:{x}">', "<testsuites> in the XML namespace 'urn:{x}'"),
    ],
)
async def test_a_root_whose_namespace_holds_a_brace_is_named_too(
    db: Database, tmp_path: Path, root: str, found: str
) -> None:
    """A namespace holding `}` is named as any other, not refused as a bare syntax error.

    Expat refused it, as holding the `}` that ElementTree has it join a namespace and a name
    with: the message was `not well-formed XML: syntax error: line 2, column 0`.
    """
    path = tmp_path / "report.xml"
    tag = root[1:-1].split(" ", 1)[0]
    path.write_text(f'<?xml version="1.0"?>\n{root}<testcase name="t"/></{tag}>\n')
    with pytest.raises(ReportError) as caught:
        await import_junit(db, path)
    assert caught.value.line == 2
    assert caught.value.reason == (
        f"expected <testsuites> or <testsuite>, found {found}, where JUnit's are in none"
    )
    assert await all_runs(db) == []


@pytest.mark.parametrize("namespace", ["urn:x", "urn:x}y"])
async def test_a_namespace_inside_the_report_is_read_past_whatever_it_holds(
    db: Database, tmp_path: Path, namespace: str
) -> None:
    """An element of another namespace in a case is no part of it, whatever its namespace holds."""
    path = tmp_path / "report.xml"
    path.write_text(
        f'<testsuites><testsuite name="s"><testcase name="t" xmlns:p="{namespace}">'
        '<p:failure message="not ours"/></testcase></testsuite></testsuites>\n'
    )
    await import_junit(db, path)
    (result,) = await all_results(db)
    assert (result.test_id, result.status.value, result.error_message) == ("t", "passed", None)


def test_the_parser_keeps_every_handler_defusedxml_gives() -> None:
    """The expat reading a report has each handler of defusedxml's own: its guards stay."""
    target = _JUnitTarget(Path("report.xml"), 1, utc_now())
    ours, reference = (
        junit_parser(target).parser,
        DefusedXMLParser(target=target, forbid_dtd=True).parser,
    )
    handlers = [name for name in dir(reference) if "Handler" in name]
    assert {"StartDoctypeDeclHandler", "EntityDeclHandler", "DefaultHandlerExpand"} < set(handlers)
    for name in handlers:
        given = getattr(reference, name)
        assert getattr(getattr(ours, name), "__func__", None) == getattr(given, "__func__", None)
        assert (getattr(ours, name) is None) == (given is None), name
