"""JSON objects that the package stores in jsonb columns read back with their keys in one order.

PostgreSQL's jsonb keeps an object's keys in its own order: shorter keys (in UTF-8 bytes) first,
then by their bytes. SQLite kept the order the caller wrote, so the same metadata or labels came
back as dicts that were equal but listed their keys apart, and so did every JSON export of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from persistence import (
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    get_file_record_by_path,
    get_result,
    get_run,
    save_file_record,
    save_result,
    save_run,
)
from persistence._codecs import in_jsonb_order
from strategies import IN_MEMORY

if TYPE_CHECKING:
    from persistence import Database
    from persistence._interface import JsonObject

WRITTEN: JsonObject = {
    "zz": {"y": 1, "x": [{"b": 2, "a": 1}]},
    "é": 1,
    "b": 2,
    "aa": 3,
    "": 4,
    "B": 5,
    "😀": 6,
    "ab": [{"dd": 1, "c": 2}],
    "a": None,
}
"""Keys out of every order: by length, by byte, with an empty key, two-byte and four-byte keys."""

JSONB_ORDER = ["", "B", "a", "b", "aa", "ab", "zz", "é", "😀"]
"""The order PostgreSQL's jsonb gives WRITTEN's keys (its output, checked by hand)."""


def _key_orders(value: object) -> list[list[str]]:
    """Give the keys of each object in a JSON value, in their order, depth first."""
    if isinstance(value, dict):
        return [list(value)] + [keys for item in value.values() for keys in _key_orders(item)]
    if isinstance(value, list):
        return [keys for item in value for keys in _key_orders(item)]
    return []


async def test_objects_read_back_with_their_keys_in_one_order_on_both_engines(
    db: Database,
) -> None:
    """Metadata and labels list their keys as jsonb keeps them, on SQLite too, at every depth."""
    run = await save_run(db, Run(labels=WRITTEN))
    assert run.id is not None
    result = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=WRITTEN)
    )
    assert result.id is not None
    await save_file_record(db, FileRecord(path="a/b", metadata=WRITTEN))
    read = [
        (await get_run(db, run.id)).labels,
        (await get_result(db, result.id)).metadata,
        (await get_file_record_by_path(db, "a/b")).metadata,
    ]
    expected = _key_orders(in_jsonb_order(WRITTEN))
    assert expected[0] == JSONB_ORDER
    assert expected[1:] == [["c", "dd"], ["x", "y"], ["a", "b"]]  # ab, zz, zz.x
    for value in read:
        assert value == WRITTEN
        assert _key_orders(value) == expected


@IN_MEMORY
@given(keys=st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=4), unique=True))
def test_the_order_is_jsonbs_by_utf8_length_then_bytes(keys: list[str]) -> None:
    """Keys go by their UTF-8 length, then byte for byte, as jsonb compares them."""
    ordered = in_jsonb_order(dict.fromkeys(keys, 0))
    assert isinstance(ordered, dict)
    assert list(ordered) == sorted(keys, key=lambda key: (len(key.encode()), key.encode()))
