"""Listing every table by its criteria, page by page, on both engines."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigEntryCursor,
    ConfigEntryFilter,
    Database,
    FileRecord,
    FileRecordCursor,
    FileRecordFilter,
    PageCursor,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_config_entries,
    all_results,
    list_config_entries,
    list_file_records,
    list_results,
    save_file_record,
    save_results,
    set_config,
)
from persistence._interface import JsonValue
from strategies import ON_DATABASE
from strategies.filters import (
    config_filters,
    config_matches,
    file_filters,
    file_matches,
    filterable_file_records,
    filterable_results,
    matches,
    result_filters,
)
from strategies.hostile import hostile_values, wrong_types

T0: Final = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    """A time this many minutes after T0."""
    return T0 + dt.timedelta(minutes=minutes)


def result(
    status: TestStatus, test_type: TestType, minutes: int, **metadata: JsonValue
) -> TestResult:
    """A result of this status and type, made at T0 + minutes, with this metadata."""
    return TestResult(test_type=test_type, status=status, created_at=at(minutes), metadata=metadata)


@pytest.fixture(name="runs")
async def saved_runs(db: Database) -> Database:
    """The test's database, holding six results of known status, type, time and metadata."""
    f, e, p = TestStatus.FAILED, TestStatus.ERROR, TestStatus.PASSED
    s, u = TestType.STRESS, TestType.UNIT
    await save_results(
        db,
        [
            result(f, s, 1, solution="a.cpp", seed=7),
            result(e, s, 2, solution="b.cpp", seed=7.0),
            result(p, s, 3, solution="a.cpp", seed=True),
            result(f, u, 4, solution="a.cpp", seed=None),
            result(p, u, 5, solution=["a.cpp"]),
            result(TestStatus.TIMEOUT, TestType.TLE, 6),
        ],
    )
    return db


async def minutes_listed(db: Database, where: ResultFilter) -> list[int]:
    """The minute of each result a listing gives, newest first."""
    return [int((r.created_at - T0).total_seconds() // 60) for r in await all_results(db, where)]


RESULT_CASES: Final = [
    (ResultFilter(statuses={TestStatus.FAILED, TestStatus.ERROR}), [4, 2, 1]),
    (ResultFilter(statuses=set()), []),
    (ResultFilter(test_types={TestType.UNIT, TestType.TLE}), [6, 5, 4]),
    (ResultFilter(statuses={TestStatus.FAILED}, test_types={TestType.STRESS}), [1]),
    (
        ResultFilter(status=TestStatus.FAILED, statuses={TestStatus.FAILED, TestStatus.ERROR}),
        [4, 1],
    ),
    (ResultFilter(status=TestStatus.PASSED, statuses={TestStatus.FAILED}), []),
    (ResultFilter(metadata={"solution": "a.cpp"}), [4, 3, 1]),
    (ResultFilter(metadata={"seed": 7}), [2, 1]),
    (ResultFilter(metadata={"seed": 7.0, "solution": "b.cpp"}), [2]),
    (ResultFilter(metadata={"seed": True}), [3]),
    (ResultFilter(metadata={"seed": 1}), []),
    (ResultFilter(metadata={"seed": None}), [4]),
    (ResultFilter(metadata={"solution": "A.CPP"}), []),
    (ResultFilter(metadata={"absent": None}), []),
    (ResultFilter(metadata={}), [6, 5, 4, 3, 2, 1]),
    (ResultFilter(metadata={"solution": "a.cpp"}, statuses={TestStatus.PASSED}), [3]),
    (ResultFilter(created_from=at(2), created_until=at(5)), [4, 3, 2]),
    (ResultFilter(metadata={"solution": "a.cpp"}, created_from=at(3)), [4, 3]),
    (ResultFilter(test_types={TestType.STRESS}, created_until=at(3)), [2, 1]),
]


@pytest.mark.parametrize(("where", "expected"), RESULT_CASES)
async def test_results_by_statuses_types_metadata_and_time(
    runs: Database, where: ResultFilter, expected: list[int]
) -> None:
    """Each criterion, and each combination, lists exactly the results it describes."""
    assert await minutes_listed(runs, where) == expected


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"statuses": "failed"}, "statuses"),
        ({"statuses": ["failed", "flaky"]}, "statuses"),
        ({"test_types": 3}, "test_types"),
        ({"metadata": {"tags": ["a"]}}, "metadata"),
        ({"metadata": {"nested": {}}}, "metadata"),
        ({"metadata": {"nan": float("nan")}}, "metadata"),
        ({"metadata": "solution=a.cpp"}, "metadata"),
        ({"metadata": {1: "a"}}, "metadata"),
    ],
)
def test_bad_criteria_are_refused_by_name(fields: dict[str, Any], field: str) -> None:
    """A criterion that is not a collection of members, or metadata of scalars, is refused."""
    with pytest.raises(ValidationError) as raised:
        ResultFilter(**fields)
    assert (raised.value.model, raised.value.field) == ("ResultFilter", field)


async def test_a_page_keeps_its_filter(runs: Database) -> None:
    """The next page of a filtered listing keeps its filter, given again or left out."""
    where = ResultFilter(statuses={TestStatus.FAILED, TestStatus.ERROR, TestStatus.PASSED})
    first = await list_results(runs, where, limit=2)
    assert first.next_cursor is not None
    assert first.next_cursor.where == where
    again = await list_results(runs, where, limit=2, after=first.next_cursor)
    left_out = await list_results(runs, limit=2, after=first.next_cursor)
    assert again == left_out
    assert [r.status for r in (*first.items, *again.items)] == [
        TestStatus.PASSED,
        TestStatus.FAILED,
        TestStatus.PASSED,
        TestStatus.ERROR,
    ]


@pytest.mark.parametrize(
    "other",
    [ResultFilter(), ResultFilter(statuses={TestStatus.FAILED}), ResultFilter(metadata={"a": 1})],
)
async def test_a_cursor_used_with_another_filter_is_refused(
    runs: Database, other: ResultFilter
) -> None:
    """A cursor made by one filter is refused with any other, naming the cursor's filter."""
    where = ResultFilter(statuses={TestStatus.FAILED, TestStatus.ERROR})
    cursor = (await list_results(runs, where, limit=1)).next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError, match=r"PageCursor\.where: the cursor belongs") as raised:
        await list_results(runs, other, after=cursor)
    assert "statuses=" in raised.value.reason


@ON_DATABASE
@example(where=ResultFilter(metadata={"seed": 7}), batch=[], limit=1)
@given(
    where=result_filters(),
    batch=st.lists(filterable_results(), max_size=6),
    limit=st.integers(1, 4),
)
async def test_listing_gives_exactly_the_matching_results(
    db: Database, where: ResultFilter, batch: list[TestResult], limit: int
) -> None:
    """Page after page, a listing gives every result its filter matches, once, newest first."""
    await save_results(db, batch)
    everything = await all_results(db)
    listed: list[TestResult] = []
    page = await list_results(db, where, limit=limit)
    while True:
        listed += page.items
        if page.next_cursor is None:
            break
        page = await list_results(db, limit=limit, after=page.next_cursor)
    assert listed == [r for r in everything if matches(where, r)]


@ON_DATABASE
@given(
    field=st.sampled_from(["test_types", "statuses", "metadata", "created_from"]),
    value=hostile_values(),
)
async def test_hostile_criteria_are_refused_or_listed(
    db: Database, field: str, value: object
) -> None:
    """A criterion of any value is refused by name, or lists what it matches: no engine error."""
    fields: dict[str, Any] = {field: value}
    try:
        where = ResultFilter(**fields)
    except ValidationError as error:
        refused = error
    else:
        page = await list_results(db, where)
        assert all(matches(where, r) for r in page.items)
        return
    assert (refused.model, refused.field) == ("ResultFilter", field)


# --- file records -------------------------------------------------------------------------------

FILES: Final = [
    ("reports/a.txt", 10, 1),
    ("reports/b[1].log", 300, 2),
    ("reports/deep/c.txt", 20, 3),
    ("reportsX", 5, 4),
    ("src/x_y.cpp", 40, 5),
    ("src/x%y.cpp", 50, 6),
    ("src/xy.cpp", 60, 7),
    ("é/naïve.txt", 70, 8),
    ("\U0010ffff/last", 80, 9),
]


@pytest.fixture(name="files")
async def saved_files(db: Database) -> Database:
    """The test's database, holding the records of FILES (path, size, minute of access)."""
    for path, size, minutes in FILES:
        await save_file_record(db, FileRecord(path=path, size=size, accessed_at=at(minutes)))
    return db


REPORTS: Final = ["reports/a.txt", "reports/b[1].log", "reports/deep/c.txt"]
FILE_CASES: Final = [
    (FileRecordFilter(), [p for p, _, _ in FILES]),
    (FileRecordFilter(path_prefix="reports/"), REPORTS),
    (FileRecordFilter(path_prefix="reports"), [*REPORTS, "reportsX"]),
    (FileRecordFilter(path_prefix="\U0010ffff"), ["\U0010ffff/last"]),
    (FileRecordFilter(path_prefix="é/"), ["é/naïve.txt"]),
    (FileRecordFilter(path_glob="*.txt"), ["reports/a.txt", "reports/deep/c.txt", "é/naïve.txt"]),
    (FileRecordFilter(path_glob="reports/*.txt"), ["reports/a.txt", "reports/deep/c.txt"]),
    (FileRecordFilter(path_glob="reports/?.txt"), ["reports/a.txt"]),
    (FileRecordFilter(path_glob="reports/b[1]*"), ["reports/b[1].log"]),
    (FileRecordFilter(path_glob="src/x_y.cpp"), ["src/x_y.cpp"]),
    (FileRecordFilter(path_glob="src/x%y.cpp"), ["src/x%y.cpp"]),
    (FileRecordFilter(path_glob="src/x?y.cpp"), ["src/x%y.cpp", "src/x_y.cpp"]),
    (FileRecordFilter(path_glob="SRC/*"), []),
    (
        FileRecordFilter(path_prefix="src/", path_glob="*y.cpp", min_size=45),
        ["src/x%y.cpp", "src/xy.cpp"],
    ),
    (
        FileRecordFilter(min_size=20, max_size=50),
        ["reports/deep/c.txt", "src/x%y.cpp", "src/x_y.cpp"],
    ),
    (FileRecordFilter(accessed_from=at(7)), ["src/xy.cpp", "é/naïve.txt", "\U0010ffff/last"]),
    (FileRecordFilter(accessed_until=at(2)), ["reports/a.txt"]),
]


@pytest.mark.parametrize(("where", "expected"), FILE_CASES)
async def test_file_records_by_prefix_glob_size_and_access(
    files: Database, where: FileRecordFilter, expected: list[str]
) -> None:
    """Each criterion lists exactly the records it describes, in path order by code point."""
    page = await list_file_records(files, where)
    assert [record.path for record in page.items] == sorted(expected)


async def test_file_pages_keep_their_filter(files: Database) -> None:
    """File records come page by page; a cursor keeps its filter and refuses another."""
    where = FileRecordFilter(path_prefix="reports")
    paths: list[str] = []
    page = await list_file_records(files, where, limit=3)
    while True:
        paths += [record.path for record in page.items]
        if page.next_cursor is None:
            break
        assert page.next_cursor.where == where
        page = await list_file_records(files, limit=3, after=page.next_cursor)
    assert len(paths) == 4
    with pytest.raises(ValidationError, match=r"FileRecordCursor\.where"):
        await list_file_records(files, FileRecordFilter(), after=FileRecordCursor("a", where))


@ON_DATABASE
@given(
    where=file_filters(),
    batch=st.lists(filterable_file_records(), max_size=6),
    limit=st.integers(1, 4),
)
async def test_file_listing_gives_exactly_the_matching_records(
    db: Database, where: FileRecordFilter, batch: list[FileRecord], limit: int
) -> None:
    """Page after page, a file listing gives every record its filter matches, in path order."""
    for record in batch:
        await save_file_record(db, record)
    listed: list[FileRecord] = []
    page = await list_file_records(db, where, limit=limit)
    while True:
        listed += page.items
        if page.next_cursor is None:
            break
        page = await list_file_records(db, limit=limit, after=page.next_cursor)
    everything = sorted((await list_file_records(db, limit=10_000)).items, key=lambda r: r.path)
    assert listed == [record for record in everything if file_matches(where, record)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"path_prefix": "a\x00b"}, "path_prefix"),
        ({"path_glob": "\ud800*"}, "path_glob"),
        ({"path_glob": "x" * 1025}, "path_glob"),
        ({"path_prefix": 7}, "path_prefix"),
        ({"min_size": -1}, "min_size"),
        ({"max_size": 2**64}, "max_size"),
        ({"accessed_from": dt.datetime(2026, 1, 1)}, "accessed_from"),  # noqa: DTZ001  # naive on purpose
    ],
)
def test_bad_file_criteria_are_refused_by_name(fields: dict[str, Any], field: str) -> None:
    """A path pattern no engine can compare, a bad size or a naive time is refused by name."""
    with pytest.raises(ValidationError) as raised:
        FileRecordFilter(**fields)
    assert (raised.value.model, raised.value.field) == ("FileRecordFilter", field)


# --- config entries -----------------------------------------------------------------------------


async def test_config_entries_by_section(db: Database) -> None:
    """Entries of one section come in key order, page by page, the cursor keeping the section."""
    for section, key in [("runner", "workers"), ("ui", "theme"), ("runner", "a"), ("runner", "é")]:
        await set_config(db, section, key, 1)
    runner = ConfigEntryFilter(section="runner")
    first = await list_config_entries(db, runner, limit=2)
    assert [e.key for e in first.items] == ["a", "workers"]
    assert first.next_cursor == ConfigEntryCursor("runner", "workers", runner)
    rest = await list_config_entries(db, limit=2, after=first.next_cursor)
    assert [e.key for e in rest.items] == ["é"]
    assert [e.key for e in await all_config_entries(db, runner)] == ["a", "workers", "é"]
    with pytest.raises(ValidationError, match=r"ConfigEntryCursor\.where"):
        await list_config_entries(db, ConfigEntryFilter(), after=first.next_cursor)


@ON_DATABASE
@given(
    where=config_filters(),
    keys=st.lists(
        st.tuples(
            st.sampled_from(["runner", "ui", "Runner", "é"]), st.text(min_size=1, max_size=3)
        ),
        max_size=6,
    ),
    limit=st.integers(1, 3),
)
async def test_config_listing_gives_exactly_the_matching_entries(
    db: Database, where: ConfigEntryFilter, keys: list[tuple[str, str]], limit: int
) -> None:
    """Page after page, a config listing gives every entry of its section, by section then key."""
    for section, key in keys:
        if "\x00" not in key and not any(0xD800 <= ord(c) <= 0xDFFF for c in key):
            await set_config(db, section, key, 1)
    listed: list[ConfigEntry] = []
    page = await list_config_entries(db, where, limit=limit)
    while True:
        listed += page.items
        if page.next_cursor is None:
            break
        page = await list_config_entries(db, limit=limit, after=page.next_cursor)
    everything = await all_config_entries(db)
    assert [(e.section, e.key) for e in everything] == sorted(
        (e.section, e.key) for e in everything
    )
    assert listed == [entry for entry in everything if config_matches(where, entry)]


@pytest.mark.parametrize("limit", [0, -1, 10_001, 1.5, "5", None, True])
async def test_bad_limits_are_refused_on_every_listing(db: Database, limit: object) -> None:
    """Every listing refuses a page size that is not an int from 1 to 10,000, by name."""
    bad: Any = limit
    calls = [
        ("ResultFilter", list_results(db, limit=bad)),
        ("FileRecordFilter", list_file_records(db, limit=bad)),
        ("ConfigEntryFilter", list_config_entries(db, limit=bad)),
    ]
    for model, call in calls:
        with pytest.raises(ValidationError) as raised:
            await call
        assert (raised.value.model, raised.value.field) == (model, "limit")


@ON_DATABASE
@given(value=wrong_types())
async def test_wrong_filters_and_cursors_are_refused(db: Database, value: object) -> None:
    """A filter or cursor of the wrong type is refused by name on every listing."""
    bad: Any = value
    for call in (
        list_results(db, bad),
        list_results(db, after=bad),
        list_file_records(db, bad),
        list_file_records(db, after=bad),
        list_config_entries(db, bad),
        list_config_entries(db, after=bad),
    ):
        if value is None:
            await call
            continue
        with pytest.raises(ValidationError):
            await call
    not_a_filter: Any = "not a filter" if value is None else value
    with pytest.raises(ValidationError, match=r"PageCursor\.where"):
        PageCursor(T0, 1, not_a_filter)


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"a": float("nan")}, "finite"),
        ({"a": [1]}, "must be a str, int, float, bool or None"),
        ({"a": {1, 2}}, "set"),
        ({1: 1}, "keys must be str"),
    ],
    ids=["nan", "list", "set", "int key"],
)
async def test_a_filter_changed_in_place_is_checked_again(
    runs: Database, changed: dict[Any, Any], reason: str
) -> None:
    """A filter's metadata changed after its build is refused as a build refuses it.

    It went to SQL as it was: on SQLite a bare ValueError or TypeError, which is no
    PersistenceError, or rows for a nested value; on PostgreSQL the driver's DatabaseError.
    """
    where = ResultFilter(metadata={"seed": 7})
    assert where.metadata is not None
    where.metadata.clear()
    where.metadata.update(changed)
    with pytest.raises(ValidationError, match=reason) as raised:
        await list_results(runs, where)
    assert (raised.value.model, raised.value.field) == ("ResultFilter", "metadata")


async def test_a_cursor_keeps_its_filter_as_it_was_when_the_page_was_read(runs: Database) -> None:
    """The caller's filter changed after the page is the caller's: the cursor's stays as it was.

    The cursor held the caller's own dict, so the next page followed the change.
    """
    where = ResultFilter(metadata={"solution": "a.cpp"})
    first = await list_results(runs, where, limit=1)
    assert first.next_cursor is not None
    assert where.metadata is not None
    where.metadata["solution"] = "b.cpp"
    assert first.next_cursor.where == ResultFilter(metadata={"solution": "a.cpp"})
    rest = await list_results(runs, limit=5, after=first.next_cursor)
    assert [r.metadata["solution"] for r in rest.items] == ["a.cpp", "a.cpp"]
