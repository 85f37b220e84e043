"""Hostile input to every public repository function and model, on each engine.

Each call either succeeds and reads back unchanged, or raises the package's own error
(ValidationError naming the field, or NotFoundError / ConflictError where documented).
A driver's error, or any other exception, must never reach the caller. Here: lookups,
listings, filters and datetimes; saves are in test_bad_input_saves.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
from hypothesis import example, given
from hypothesis import strategies as st

from _bad_input_helpers import Expected, assert_refused, assert_same, attempt, outcome
from persistence import (
    ConfigEntry,
    ConfigType,
    Database,
    FileRecord,
    NotFoundError,
    Page,
    PageCursor,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    delete_config_entry,
    delete_file_record,
    delete_file_record_by_path,
    delete_result,
    delete_results_before,
    find_config_entry,
    find_config_entry_by_key,
    find_file_record,
    find_file_record_by_path,
    find_result,
    get_config_entry_by_key,
    get_config_value,
    get_file_record_by_path,
    get_result,
    list_results,
    results_by_type,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
)
from persistence._guards import MIN_INT
from persistence.models import MAX_INT
from strategies import ON_DATABASE
from strategies.filters import matches, result_filters
from strategies.hostile import hostile_ids, hostile_text, out_of_range_datetimes, wrong_types
from strategies.values import (
    aware_datetimes,
    exactly,
    naive_datetimes,
    results,
    safe_text,
    storable_ints,
)

SEED_RESULT: Final = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
SEED_ENTRY: Final = ConfigEntry(section="seed", key="entry", value=1, type=ConfigType.INT)
SEED_RECORD: Final = FileRecord(path="seed/file")


async def seed(db: Database) -> tuple[TestResult, ConfigEntry, FileRecord]:
    """Make sure one row of each table exists, and return them."""
    result = (await list_results(db, limit=1)).items
    entry = await find_config_entry_by_key(db, SEED_ENTRY.section, SEED_ENTRY.key)
    record = await find_file_record_by_path(db, SEED_RECORD.path)
    return (
        result[0] if result else await save_result(db, SEED_RESULT),
        entry or await save_config_entry(db, SEED_ENTRY),
        record or await save_file_record(db, SEED_RECORD),
    )


# Lookups by id ------------------------------------------------------------------------


async def _check_id_lookups(db: Database, key: Any) -> None:  # noqa: ANN401  # hostile on purpose
    """Look up and delete by this id in every table; each gives None, False or NotFound.

    An id that no id column can hold (not an int from -2**63 to 2**63 - 1) is refused instead.
    """
    result, entry, record = await seed(db)
    if type(key) is not int or not MIN_INT <= key <= MAX_INT:
        await _check_hostile_id_lookups(db, key)
        return
    found_result = await outcome(find_result(db, key))
    assert found_result is None or (key == result.id and exactly(found_result) == exactly(result))
    gotten = await outcome(get_result(db, key))
    assert type(gotten) is NotFoundError or exactly(gotten) == exactly(found_result)
    found_entry = await outcome(find_config_entry(db, key))
    assert found_entry is None or (key == entry.id and exactly(found_entry) == exactly(entry))
    found_record = await outcome(find_file_record(db, key))
    assert found_record is None or (key == record.id and exactly(found_record) == exactly(record))
    for delete, row in (
        (delete_result, result),
        (delete_config_entry, entry),
        (delete_file_record, record),
    ):
        deleted = await outcome(delete(db, key))
        assert type(deleted) is bool
        assert deleted == (key == row.id)


@ON_DATABASE
@given(key=st.one_of(st.none(), storable_ints(), st.integers(-(2**63), 0), st.integers(1, 4)))
async def test_lookup_by_any_storable_id(db: Database, key: int | None) -> None:
    """Any id a column can hold finds its row or nothing; deleting by it says which."""
    await _check_id_lookups(db, key)


async def _list_after(db: Database, created_at: dt.datetime, key: Any) -> object:  # noqa: ANN401
    """List the page after a cursor built here, so that building it is part of the call."""
    return await list_results(db, after=PageCursor(created_at, key))


async def _check_hostile_id_lookups(db: Database, key: Any) -> None:  # noqa: ANN401  # hostile
    result, _, _ = await seed(db)
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", lambda: find_result(db, key)),
        ("TestResult", lambda: get_result(db, key)),
        ("TestResult", lambda: delete_result(db, key)),
        ("PageCursor", lambda: _list_after(db, result.created_at, key)),
        ("ConfigEntry", lambda: find_config_entry(db, key)),
        ("ConfigEntry", lambda: delete_config_entry(db, key)),
        ("FileRecord", lambda: find_file_record(db, key)),
        ("FileRecord", lambda: delete_file_record(db, key)),
    ]
    # Any int an id column holds is looked up, an int subclass's too: plain SQL may write ids
    # of 0 and below.
    taken = isinstance(key, int) and not isinstance(key, bool) and MIN_INT <= key <= MAX_INT
    for model, call in calls:
        answer = await outcome(call())
        if isinstance(answer, ValidationError):
            assert_refused(answer, model, "id", "after")
            assert not taken, answer
        elif model == "PageCursor":
            assert taken, answer
            assert isinstance(answer, Page), answer
        else:
            assert taken, answer
            assert answer is None or answer is False or type(answer) is NotFoundError, answer


@ON_DATABASE
@example(key=2**63)
@example(key="1")
@given(key=hostile_ids())
async def test_lookup_by_hostile_id(db: Database, key: object) -> None:
    """An id that no row can have finds nothing or is refused as an invalid id."""
    await _check_hostile_id_lookups(db, key)


# Lookups by text ----------------------------------------------------------------------


async def _check_text_lookups(db: Database, section: Any, key: Any) -> None:  # noqa: ANN401  # hostile
    """Look up and delete by this text; each gives None, False, NotFound or the default."""
    _, entry, record = await seed(db)
    found = await outcome(find_config_entry_by_key(db, section, key))
    assert found is None or exactly(found) == exactly(entry)
    if found is None:
        assert type(await outcome(get_config_entry_by_key(db, section, key))) is NotFoundError
        assert type(await outcome(get_config_value(db, section, key, int))) is NotFoundError
        assert await outcome(get_config_value(db, section, key, int, -7)) == -7
    found_record = await outcome(find_file_record_by_path(db, key))
    assert found_record is None or exactly(found_record) == exactly(record)
    deleted = await outcome(delete_file_record_by_path(db, key))
    assert deleted is (found_record is not None)


@ON_DATABASE
@given(section=safe_text(min_size=1), key=safe_text(min_size=1))
@example(section="seed", key="entry")
@example(section="'; DROP TABLE config_entries; --", key="seed/file")
async def test_lookup_by_any_text(db: Database, section: str, key: str) -> None:
    """Any text, SQL-looking or not, finds its row or nothing: it is never run as SQL."""
    await _check_text_lookups(db, section, key)


@ON_DATABASE
@example(text="\ud800")
@example(text="a\x00b")
@given(text=st.one_of(hostile_text(), wrong_types()))
async def test_lookup_by_hostile_text(db: Database, text: object) -> None:
    """Text no row can hold finds nothing or is refused, naming the field."""
    await seed(db)
    hostile: Any = text
    calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("ConfigEntry", "section", lambda: find_config_entry_by_key(db, hostile, "k")),
        ("ConfigEntry", "key", lambda: find_config_entry_by_key(db, "seed", hostile)),
        ("ConfigEntry", "section", lambda: get_config_entry_by_key(db, hostile, "k")),
        ("ConfigEntry", "key", lambda: get_config_value(db, "seed", hostile, int)),
        ("FileRecord", "path", lambda: find_file_record_by_path(db, hostile)),
        ("FileRecord", "path", lambda: delete_file_record_by_path(db, hostile)),
    ]
    for model, field, call in calls:
        answer = await outcome(call())
        if isinstance(answer, ValidationError):
            assert_refused(answer, model, field)
        else:
            assert answer is None or answer is False or type(answer) is NotFoundError, answer


async def test_lookup_by_empty_text_is_refused(db: Database) -> None:
    """No row holds an empty section, key or path, so a lookup by one is bad input, not None."""
    await seed(db)
    calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("ConfigEntry", "section", lambda: find_config_entry_by_key(db, "", "k")),
        ("ConfigEntry", "key", lambda: find_config_entry_by_key(db, "seed", "")),
        ("ConfigEntry", "key", lambda: get_config_entry_by_key(db, "seed", "")),
        ("ConfigEntry", "section", lambda: get_config_value(db, "", "k", int, 3)),
        ("FileRecord", "path", lambda: find_file_record_by_path(db, "")),
        ("FileRecord", "path", lambda: get_file_record_by_path(db, "")),
        ("FileRecord", "path", lambda: delete_file_record_by_path(db, "")),
    ]
    for model, field, call in calls:
        answer = await outcome(call())
        assert isinstance(answer, ValidationError), (model, field, answer)
        assert_refused(answer, model, field)
        assert "must not be empty" in str(answer)


# Listing and deleting results ---------------------------------------------------------

limits = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([0, 10_000, 10_001, 2**63, 2**70, -(2**70)]),
    st.sampled_from([True, False, 1.0, "5", None, b"5", [5]]),
)


positions = st.one_of(st.none(), st.tuples(aware_datetimes(), storable_ints(min_value=1)))


@ON_DATABASE
@given(
    page=st.tuples(limits, positions),
    where=result_filters(),
    by_value=st.booleans(),
    batch=st.lists(results(), max_size=3),
)
async def test_list_results_with_any_valid_filter(
    db: Database,
    page: tuple[object, tuple[dt.datetime, int] | None],
    where: ResultFilter,
    by_value: bool,  # noqa: FBT001  # hypothesis passes each argument by name
    batch: list[TestResult],
) -> None:
    """A listing keeps to every filter and the cursor, or refuses a bad limit by name."""
    await save_results(db, batch)
    limit, position = page
    if by_value:  # the enums' string values filter just as the members do
        values: Any = {
            "test_type": where.test_type and where.test_type.value,
            "status": where.status and where.status.value,
            "statuses": None if where.statuses is None else [s.value for s in where.statuses],
        }
        assert attrs.evolve(where, **values) == where
        where = attrs.evolve(where, **values)
    cursor = None if position is None else PageCursor(*position, where)
    bad_limit: Any = limit
    listed = await outcome(list_results(db, where, limit=bad_limit, after=cursor))
    if type(limit) is not int or not 1 <= limit <= 10_000:
        assert_refused(listed, "ResultFilter", "limit")
        return
    assert not isinstance(listed, Expected)
    assert len(listed.items) <= limit
    for item in listed.items:
        assert matches(where, item)
        assert item.id is not None
        assert cursor is None or (item.created_at, item.id) < (cursor.created_at, cursor.id)
        assert_same(await find_result(db, item.id), item)
    if where.test_type is not None:
        by_type = await results_by_type(db, where.test_type)
        assert all(item.test_type == where.test_type for item in by_type)


@ON_DATABASE
@given(
    cutoff=st.one_of(aware_datetimes(), naive_datetimes()), batch=st.lists(results(), max_size=3)
)
async def test_delete_results_before_any_datetime(
    db: Database, cutoff: dt.datetime, batch: list[TestResult]
) -> None:
    """Retention deletes exactly the results made before an aware cutoff; a naive one is refused."""
    await save_results(db, batch)
    before = await all_results(db)
    deleted = await outcome(delete_results_before(db, cutoff))
    if cutoff.utcoffset() is None:
        assert_refused(deleted, "TestResult", "cutoff")
        return
    assert deleted == sum(result.created_at < cutoff for result in before)
    assert all(result.created_at >= cutoff for result in await all_results(db))


async def test_a_cutoff_at_the_last_instant_deletes_a_result_stored_just_before_it(
    db: Database,
) -> None:
    """The last instant is reserved for a stored time, but not as a cutoff, where it is the end.

    A result may be stored at the instant before it, which no cutoff allowed could delete: it was
    the one left after every retention.
    """
    last = dt.datetime.max.replace(tzinfo=dt.UTC)
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                created_at=last - dt.timedelta(microseconds=1),
            )
        ],
    )
    assert (
        await delete_results_before(db, last.astimezone(dt.timezone(dt.timedelta(hours=-3)))) == 1
    )
    assert await all_results(db) == []


@ON_DATABASE
@example(moment=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))))
@example(moment="2024-01-01T00:00:00+00:00")
@given(moment=st.one_of(out_of_range_datetimes(), wrong_types().filter(lambda v: v is not None)))
async def test_hostile_datetimes_in_result_queries(db: Database, moment: object) -> None:
    """A datetime argument that is no aware datetime in UTC's calendar is refused by name."""
    hostile: Any = moment
    calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", "cutoff", lambda: delete_results_before(db, hostile)),
        (
            "ResultFilter",
            "created_from",
            lambda: list_results(db, ResultFilter(created_from=hostile)),
        ),
        (
            "ResultFilter",
            "created_until",
            lambda: list_results(db, ResultFilter(created_until=hostile)),
        ),
        ("PageCursor", "created_at", lambda: list_results(db, after=PageCursor(hostile, 1))),
    ]
    for model, field, call in calls:
        assert_refused(await attempt(call), model, field)


@ON_DATABASE
@example(value="bogus")
@given(
    value=st.one_of(safe_text().filter(lambda v: v not in {*TestType, *TestStatus}), wrong_types())
)
async def test_hostile_filter_fields(db: Database, value: object) -> None:
    """A test type or status that is none of the enum's is refused, naming the field."""
    if value is None:
        return
    hostile: Any = value
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("test_type", lambda: list_results(db, ResultFilter(test_type=hostile))),
        ("status", lambda: list_results(db, ResultFilter(status=hostile))),
        ("test_type", lambda: results_by_type(db, hostile)),
    ]
    for field, call in calls:
        assert_refused(await attempt(call), "ResultFilter", field)
