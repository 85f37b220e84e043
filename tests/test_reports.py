"""JUnit XML in and out: the forms runners write, hostile files refused whole, a round trip."""

from __future__ import annotations

import asyncio
import os
from contextlib import suppress
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _report_helpers import PYTEST, assert_nothing_written, write_report
from persistence import (
    Database,
    ReportError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    all_runs,
    delete_run,
    export_junit,
    import_junit,
    save_results,
    save_run,
)
from persistence.report_json import import_ctrf, import_jsonl
from persistence.reports import CHUNK_BYTES, run_results
from strategies import ON_DATABASE

SUREFIRE: Final = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" name="com.acme.FooTest"
 time="0.04" tests="2" errors="0" skipped="0" failures="1">
  <properties><property name="java.version" value="21"/></properties>
  <testcase name="adds" classname="com.acme.FooTest" time="0.01"/>
  <testcase name="divides" classname="com.acme.FooTest" time="0.03">
    <failure message="expected: 2 but was: 3" type="org.opentest4j.AssertionFailedError">
      at com.acme.FooTest.divides(FooTest.java:12)</failure>
  </testcase>
</testsuite>
"""

GO: Final = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="2" failures="1">
\t<testsuite name="example.com/calc" tests="2" failures="1" errors="0" id="0" time="0.003">
\t\t<properties><property name="go.version" value="go1.22"></property></properties>
\t\t<testcase name="TestAdd" classname="example.com/calc" time="0.001"></testcase>
\t\t<testcase name="TestSub" classname="example.com/calc" time="0.002">
\t\t\t<failure message="Failed" type="">calc_test.go:14: got 1, want 2</failure>
\t\t</testcase>
\t</testsuite>
</testsuites>
"""


async def test_a_pytest_report_imports_as_one_run(db: Database, tmp_path: Path) -> None:
    """Each case keeps its id, status (skipped apart from passed), time, message and output."""
    run = await import_junit(db, write_report(tmp_path, PYTEST), labels={"commit": "abc"})
    assert run.labels == {"commit": "abc"}
    results = sorted(await all_results(db), key=lambda r: r.id or 0)
    assert [(r.test_id, r.status, r.execution_time) for r in results] == [
        ("tests.test_io::test_read", TestStatus.PASSED, 0.01),
        ("tests.test_io::test_write", TestStatus.FAILED, 0.5),
        ("tests.test_io::test_slow", TestStatus.SKIPPED, 0.0),
        ("tests.test_io::test_setup", TestStatus.ERROR, 0.1),
    ]
    assert {r.run_id for r in results} == {run.id}
    assert results[0].metadata["file"] == "tests/test_io.py"
    assert results[1].error_message is not None
    assert results[1].error_message.startswith("def test_write():\n>   assert")
    assert results[1].output == "wrote 3 bytes"
    assert results[3].metadata["system_err"] == "trace"


@pytest.mark.parametrize(
    ("text", "failed"), [(SUREFIRE, "com.acme.FooTest::divides"), (GO, "example.com/calc::TestSub")]
)
async def test_surefire_and_go_reports_import(
    db: Database, tmp_path: Path, text: str, failed: str
) -> None:
    """Maven Surefire's bare <testsuite> and go-junit-report's form both read."""
    await import_junit(db, write_report(tmp_path, text))
    results = await all_results(db)
    assert len(results) == 2
    assert [r.test_id for r in results if r.status is TestStatus.FAILED] == [failed]


BILLION_LAUGHS: Final = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuites><testsuite name="x"><testcase name="&lol3;"/></testsuite></testsuites>
"""
EXTERNAL: Final = """<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase name="&secret;"/></testsuite>
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(BILLION_LAUGHS, "refused: DTDForbidden", id="xml-bomb"),
        pytest.param(EXTERNAL, "refused: DTDForbidden", id="external-entity"),
        pytest.param(PYTEST[: len(PYTEST) // 2], "not well-formed XML", id="truncated"),
        pytest.param(
            PYTEST.replace("wrote 3 bytes", "wrote \xe9").encode("latin-1"),
            "not well-formed XML",
            id="wrong-encoding",
        ),
        pytest.param(
            PYTEST.replace('time="0.5"', 'time="-1"'), "must not be negative", id="negative-time"
        ),
        pytest.param(PYTEST.replace('time="0.5"', 'time="NaN"'), "decimal number", id="nan-time"),
        pytest.param(
            PYTEST.replace('time="0.5"', 'time="1e400"'), "must be finite", id="huge-time"
        ),
        pytest.param(PYTEST.replace('time="0.5"', 'time="fast"'), "time", id="word-time"),
        pytest.param(PYTEST.replace("test_write", "w" * 100_000), "1024", id="100kb-name"),
        pytest.param(PYTEST.replace("test_write", "test_read"), "appears twice", id="twice"),
        pytest.param("<html><body/></html>", "expected <testsuites>", id="not-junit"),
        pytest.param(PYTEST.replace("test_write", "test\x00write"), "not well-formed", id="nul"),
        pytest.param(
            PYTEST.replace("test_write", "test&#1;write"), "invalid character", id="c0-ref"
        ),
        pytest.param(PYTEST.replace("wrote 3", "\x1b[31mwrote 3"), "not well-formed", id="ansi"),
        pytest.param(
            PYTEST.replace("wrote 3", "&#xD800;wrote 3"), "invalid character", id="surrogate-ref"
        ),
        pytest.param(
            PYTEST.replace(
                "<testsuites>", '<!DOCTYPE t SYSTEM "http://127.0.0.1:9/t.dtd"><testsuites>'
            ),
            "refused: DTDForbidden",
            id="external-dtd",
        ),
        pytest.param("", "not well-formed XML", id="empty"),
        pytest.param(
            '<?xml version="1.0" encoding="shift_jis"?><testsuite/>',
            "cannot read the encoding it declares: multi-byte",
            id="multi-byte-encoding",
        ),
        pytest.param(
            '<?xml version="1.0" encoding="nonesuch"?><testsuite/>',
            "cannot read the encoding it declares: unknown encoding",
            id="unknown-encoding",
        ),
        pytest.param(
            '<?xml version="1.0" encoding="rot13"?><testsuite/>',
            "cannot read the encoding it declares",
            id="codec-of-no-text",
        ),
    ],
)
async def test_a_hostile_file_writes_nothing(
    db: Database, tmp_path: Path, text: str | bytes, problem: str
) -> None:
    """Each is a ReportError naming the file, a line and the problem; no run, no result."""
    path = write_report(tmp_path, text)
    with pytest.raises(ReportError, match=problem) as caught:
        await import_junit(db, path)
    assert caught.value.path == str(path)
    assert caught.value.line is not None
    assert str(caught.value).startswith(f"{path}:{caught.value.line}: ")
    await assert_nothing_written(db)


async def test_the_error_names_the_line_of_the_case(db: Database, tmp_path: Path) -> None:
    """A bad case deep in a file that spans many chunks is named by its own line."""
    cases = [f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(40_000)]
    cases[30_000] = '<testcase classname="c" name="bad" time="-2"/>'
    text = '<testsuites><testsuite name="s">\n' + "\n".join(cases) + "\n</testsuite></testsuites>"
    assert len(text) > CHUNK_BYTES
    with pytest.raises(ReportError, match="bad") as caught:
        await import_junit(db, write_report(tmp_path, text))
    assert caught.value.line == 30_002
    await assert_nothing_written(db)


async def test_a_missing_file_is_a_report_error(db: Database, tmp_path: Path) -> None:
    """A file that is not there is refused by name, and nothing is written."""
    with pytest.raises(ReportError, match="cannot read"):
        await import_junit(db, tmp_path / "missing.xml")
    await assert_nothing_written(db)


def _report_with(tmp_path: Path, tag: bytes) -> Path:
    """A report whose suite's start tag is `tag`, its case after it."""
    path = tmp_path / "report.xml"
    with path.open("wb") as stream:
        stream.write(b"<testsuites>\n" + tag)
        stream.write(b'<testcase name="t" time="0.1"/></testsuite></testsuites>')
    return path


async def test_a_long_attribute_is_read_and_a_longer_refused_early(
    db: Database, tmp_path: Path
) -> None:
    """An attribute of 900 KiB is read; one of 64 MiB is refused, naming its line, unread whole.

    The parser reads a tag in one call once it has seen its end, holding the loop: about 900 ms
    for an attribute of 47 MB. Fed 4 kB at a time, it scanned the tag again from its start at
    each feed, so the pieces double while one tag goes on, and the refusal comes once it has
    passed 1 MiB: within seconds, not the minutes that rescans of 64 MiB would take.
    """
    kept = b"h" * (900 << 10)
    run = await import_junit(
        db, _report_with(tmp_path, b'<testsuite name="s" hostname="' + kept + b'">')
    )
    assert run.id is not None
    assert [r.test_id for r in await run_results(db, run.id)] == ["t"]
    await delete_run(db, run.id)
    huge = b'<testsuite name="s" hostname="' + b"h" * (64 << 20) + b'">'
    with pytest.raises(ReportError, match=r":2: a tag or comment longer than 1 MiB"):
        await asyncio.wait_for(import_junit(db, _report_with(tmp_path, huge)), 10)
    await assert_nothing_written(db)


async def test_a_tag_of_many_attributes_or_a_long_comment_is_refused(
    db: Database, tmp_path: Path
) -> None:
    """A tag of many attributes, or a long comment, is refused, naming its line.

    A tag of 300,000 attributes (3 MB) held the loop 270 ms: past 1,000 it is refused, as is a
    comment past 1 MiB, which the parser reads whole in the same way.
    """
    many = b"<testsuite " + b" ".join(b"a%d='v'" % i for i in range(300_000)) + b">"
    with pytest.raises(ReportError, match=r":2: a tag of more than 1,000 attributes"):
        await import_junit(db, _report_with(tmp_path, many))
    comment = b"<!-- " + b"c" * (2 << 20) + b' --><testsuite name="s">'
    with pytest.raises(ReportError, match=r":2: a tag or comment longer than 1 MiB"):
        await import_junit(db, _report_with(tmp_path, comment))
    await assert_nothing_written(db)
    few = b"<testsuite " + b" ".join(b"a%d='v'" % i for i in range(900)) + b">"
    assert (await import_junit(db, _report_with(tmp_path, few))).id is not None
    # A comment's `="` are no attributes: one holding HTML of 4,000 of them is read.
    html = b"<!-- " + b'<a href="x" class="y">' * 2_000 + b' --><testsuite name="s">'
    assert (await import_junit(db, _report_with(tmp_path, html))).id is not None


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-16"])
async def test_the_limits_of_a_tag_hold_at_their_bounds_in_each_encoding(
    db: Database, tmp_path: Path, encoding: str
) -> None:
    """A tag of 1,000 attributes, or of a little under 1 MiB, is read; one past either, refused.

    The piece that ended a long tag was not counted, so tags of up to about twice each limit
    were read; in UTF-16, whose `="` the count did not see, no tag had too many attributes. A
    character whose UTF-16 holds the byte of `<` or `>` (`ļ`) is no start or end of a tag.
    """
    size = 1 if encoding == "utf-8" else 2  # bytes a character here

    def report(tag: str) -> Path:
        path = tmp_path / "report.xml"
        text = f"<testsuites>\n{tag}<testcase name='t' time='0.1'/></testsuite></testsuites>"
        path.write_bytes(text.encode(encoding))
        return path

    def attributes(count: int) -> str:
        return "<testsuite " + " ".join(f"a{i}='v'" for i in range(count)) + ">"

    def long(length: int) -> str:
        start = "<testsuite name='s' hostname='"
        return start + "h" * (length // size - len(start) - 2) + "'>"

    assert (await import_junit(db, report(attributes(1_000)))).id is not None
    assert (await import_junit(db, report(long((1 << 20) - 4096)))).id is not None
    with pytest.raises(ReportError, match=r":2: a tag of more than 1,000 attributes"):
        await import_junit(db, report(attributes(1_001)))
    with pytest.raises(ReportError, match=r":2: a tag or comment longer than 1 MiB"):
        await import_junit(db, report(long((1 << 20) + 4096)))
    # In UTF-16, a value's characters may hold bytes that look like a tag's start or end.
    marked = "<testsuite " + " ".join(f"a{i}='\u013c\u3e3c'" for i in range(2_000)) + ">"
    with pytest.raises(ReportError, match=r":2: a tag of more than 1,000 attributes"):
        await import_junit(db, report(marked))


_IMPORTS: Final = {"junit": import_junit, "ctrf": import_ctrf, "jsonl": import_jsonl}


_SMALL_REPORTS: Final = {
    "junit": PYTEST,
    "ctrf": '{"results": {"tests": [{"name": "a", "status": "passed"}, '
    '{"name": "b", "status": "failed", "message": "boom"}]}}',
    "jsonl": '{"test_type": "unit", "status": "passed", "test_id": "a"}\n'
    '{"test_type": "unit", "status": "failed", "test_id": "b"}\n',
}


@pytest.mark.parametrize("form", list(_IMPORTS))
async def test_an_import_cancelled_at_each_step_is_all_or_nothing(
    db: Database, tmp_path: Path, form: str
) -> None:
    """Cancelled after 0, 1, 2, ... turns of the loop: no run, or the run with every result.

    A cancellation that comes while the commit runs is raised once it has ended: the run
    is then whole, as if the import had returned.
    """
    path = write_report(tmp_path, _SMALL_REPORTS[form])
    whole = 4 if form == "junit" else 2
    for turns in range(10_000):
        task = asyncio.ensure_future(_IMPORTS[form](db, path))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            assert turns > 1  # some cancellations came part way
            break
        runs = await all_runs(db)
        assert len(await all_results(db)) == whole * len(runs) <= whole
        for run in runs:
            assert run.id is not None
            await delete_run(db, run.id)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
@pytest.mark.parametrize("form", list(_IMPORTS))
async def test_a_path_that_is_no_regular_file_is_refused_at_once(
    db: Database, tmp_path: Path, kind: str, form: str
) -> None:
    """A FIFO with no writer, a device (/dev/null by a symlink) or a folder: refused, no wait."""
    path = tmp_path / "report"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/null")
    else:
        path.mkdir()
    try:
        with pytest.raises(ReportError, match="not a regular file"):
            await asyncio.wait_for(_IMPORTS[form](db, path), 5)
    finally:
        if kind == "fifo":  # a reader still waiting for a writer gets one, and the end
            with suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    await assert_nothing_written(db)


_TEXT = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\x00")
    | st.sampled_from("\n\t<&>\"'"),
    max_size=30,
)


@ON_DATABASE
@given(
    cases=st.dictionaries(
        st.tuples(st.sampled_from(["", "pkg.mod", "a/b"]), _TEXT.filter(lambda s: s.strip() != "")),
        st.tuples(
            st.sampled_from(
                [TestStatus.PASSED, TestStatus.FAILED, TestStatus.ERROR, TestStatus.SKIPPED]
            ),
            st.floats(0, 1e6),
            _TEXT.filter(lambda s: s.strip() != ""),
            st.none() | _TEXT,
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_export_then_import_gives_the_same_results(
    db: Database,
    tmp_path: Path,
    cases: dict[tuple[str, str], tuple[TestStatus, float, str, str | None]],
) -> None:
    """A run exported as JUnit and imported again has the same results, in the same order."""
    lines = ['<testsuites><testsuite name="s">']
    for (classname, name), (status, seconds, message, output) in cases.items():
        if "::" in name or "::" in classname:
            return
        tag = {
            TestStatus.FAILED: "failure",
            TestStatus.ERROR: "error",
            TestStatus.SKIPPED: "skipped",
        }.get(status)
        from xml.sax.saxutils import escape, quoteattr  # noqa: PLC0415  # the test's own writer

        inner = f"<{tag}>{escape(message)}</{tag}>" if tag else ""
        inner += "" if output is None else f"<system-out>{escape(output)}</system-out>"
        cls = f" classname={quoteattr(classname)}" if classname else ""
        lines.append(f'<testcase{cls} name={quoteattr(name)} time="{seconds!r}">{inner}</testcase>')
    lines.append("</testsuite></testsuites>")
    source = tmp_path / "first.xml"
    source.write_text("\n".join(lines), encoding="utf-8")
    first = await import_junit(db, source)
    assert first.id is not None
    again = tmp_path / "again.xml"
    again.write_text(await export_junit(db, first.id), encoding="utf-8")
    second = await import_junit(db, again)

    def shape(run_id: int | None) -> list[tuple[object, ...]]:
        return [
            (r.test_id, r.status, r.execution_time, r.error_message, r.output)
            for r in sorted(results, key=lambda r: r.id or 0)
            if r.run_id == run_id
        ]

    results = await all_results(db)
    assert shape(second.id) == shape(first.id)
    assert len(shape(first.id)) == len(cases)


async def test_export_writes_well_formed_xml_for_any_stored_text(
    db: Database, tmp_path: Path
) -> None:
    """Text XML cannot hold, such as ANSI colours, and ids starting or ending in `::` import again.

    A character XML 1.0 cannot hold is written as pytest writes it, `#x1B`; a carriage return
    and the test ids' `::` come back as they were.
    """
    run = await save_run(db, Run())
    colour = "\x1b[31mred\x1b[0m \x01\x7f\ufffe\r\nnext"
    ids = ["::leading", "trailing::", "pkg::mod::t", "a\x08b"]
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.FAILED,
                error_message=colour,
                output=colour,
                run_id=run.id,
                test_id=test_id,
            )
            for test_id in ids
        ],
    )
    assert run.id is not None
    path = write_report(tmp_path, await export_junit(db, run.id))
    again = await import_junit(db, path)
    assert again.id is not None
    results = await run_results(db, again.id)
    shown = "#x1B[31mred#x1B[0m #x01\x7f#xFFFE\r\nnext"
    assert [(r.test_id, r.error_message, r.output) for r in results] == [
        (test_id.replace("\x08", "#x08"), shown, shown) for test_id in ids
    ]
