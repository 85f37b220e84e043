"""A JUnit case's class name comes back through an export as the first import kept it.

Import keeps a case's `classname` in its result's metadata and makes the test id
`classname::name`; a class name or a name may hold `::` itself (cargo nextest writes
`classname="my-crate::bin/cli"` and `name="tests::parses"`, GoogleTest's typed tests and C++
namespaces do too).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from hypothesis import given
from hypothesis import strategies as st

from persistence import Database, export_junit, import_junit
from persistence.reports import run_results
from strategies import ON_DATABASE

_PART = (
    st.lists(st.sampled_from(["a", "b-c", "bin/x", "::", ":", " "]), min_size=1, max_size=4)
    .map("".join)
    .filter(lambda part: part.strip(" ") != "")
)
"""A class name or a name, `::` and single colons among its pieces."""


async def _round_trip(db: Database, tmp_path: Path, cases: list[tuple[str, str]]) -> None:
    """Import cases of these class names and names, export the run, import that: compare."""
    lines = ['<testsuites><testsuite name="s">']
    lines += [
        f"<testcase classname={quoteattr(classname)} name={quoteattr(name)}/>"
        for classname, name in cases
    ]
    first = tmp_path / "first.xml"
    first.write_text("\n".join([*lines, "</testsuite></testsuites>"]), encoding="utf-8")
    run = await import_junit(db, first)
    assert run.id is not None
    second = tmp_path / "second.xml"
    second.write_text(await export_junit(db, run.id), encoding="utf-8")
    again = await import_junit(db, second)
    assert again.id is not None
    kept = [(r.test_id, r.metadata) for r in await run_results(db, run.id)]
    assert [(r.test_id, r.metadata) for r in await run_results(db, again.id)] == kept
    assert [metadata.get("classname") for _, metadata in kept] == [c for c, _ in cases]


async def test_a_class_name_holding_the_separator_comes_back_whole(
    db: Database, tmp_path: Path
) -> None:
    """`classname="my-crate::bin/cli"` comes back as it was, not cut at its first `::`.

    Export split the test id at its first `::`: imported again, the case's class name was
    `my-crate`, and its metadata differed from the first import's.
    """
    await _round_trip(
        db,
        tmp_path,
        [("my-crate::bin/cli", "tests::parses"), ("ns::Fixture/0", "Test"), ("c", "x::y")],
    )


@ON_DATABASE
@given(
    cases=st.lists(
        st.tuples(_PART, _PART), min_size=1, max_size=5, unique_by=lambda c: c[0] + "::" + c[1]
    )
)
async def test_any_class_name_comes_back(
    db: Database, tmp_path: Path, cases: list[tuple[str, str]]
) -> None:
    """Whatever `::` a class name and a name hold, the test id and metadata come back."""
    await _round_trip(db, tmp_path, cases)
