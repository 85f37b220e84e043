"""How SQLite statements are run: the loop budget's handler, and bulk parameters."""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
import weakref
from contextlib import closing
from types import FrameType
from typing import Final

import pytest

from persistence._sqlite import statements
from persistence._sqlite.statements import Budget, encode_params, rows_encoder

_LONG_READ: Final = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
    "SELECT count(*) FROM n"
)


def _budget_calls(conn: sqlite3.Connection) -> int:
    """Run a long read; give how many times SQLite called back into Python meanwhile."""
    calls = [0]

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code is Budget.__call__.__code__:
            calls[0] += 1

    sys.setprofile(profile)
    try:
        conn.execute(_LONG_READ).fetchall()
    finally:
        sys.setprofile(None)
    return calls[0]


def test_the_budget_calls_back_only_while_armed() -> None:
    """Disarmed, the budget leaves its connection with no progress handler.

    So a statement in a worker thread runs without taking the GIL every thousand steps,
    which the loop's thread holds. With the handler left on (disarmed, returning 0), a bulk
    insert in a thread beside a parsing loop waited for the GIL at each call.
    """
    with closing(sqlite3.connect(":memory:", check_same_thread=False)) as conn:
        budget = Budget(conn)
        budget.arm()
        budget.deadline = float("inf")  # armed, but never due: the statement ends
        assert _budget_calls(conn) > 0
        budget.disarm()
        assert _budget_calls(conn) == 0
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(_budget_calls(conn)))
        worker.start()
        worker.join()
        assert seen == [0]


def test_an_armed_budget_interrupts_past_its_slice() -> None:
    """Armed and past its deadline, the budget stops the statement and says so."""
    with closing(sqlite3.connect(":memory:")) as conn:
        budget = Budget(conn)
        budget.arm()
        budget.deadline = 0.0
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            conn.execute(_LONG_READ).fetchall()
        assert budget.tripped
        budget.disarm()
        assert conn.execute(_LONG_READ).fetchone() == (200000,)


class _Meta(dict[str, str]):
    """A metadata dict that a weak reference can watch."""


def test_rows_of_one_bulk_write_share_their_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A datetime or a dict that rows in a row hold is encoded once for them.

    A new object, equal or not, and even one at the address of a freed one, is encoded
    afresh; and nothing is kept of a row's values beyond the next row's.
    """
    encoded: list[object] = []
    real = dict(statements._ENCODERS)  # noqa: SLF001  # counted

    def counting(kind: type) -> object:
        def encode(value: object) -> object:
            encoded.append(value)
            return real[kind](value)

        return encode

    for kind in real:
        monkeypatch.setitem(statements._ENCODERS, kind, counting(kind))  # noqa: SLF001
    when = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    shared = {"suite": "pytest"}
    rows = [{"at": when, "meta": shared, "n": number} for number in range(100)]
    encode = rows_encoder()
    out = [encode(row) for row in rows]
    assert len(encoded) == 2
    assert all(row == {**out[0], "n": number} for number, row in enumerate(out))
    assert out[0]["meta"] == '{"suite":"pytest"}'
    for number in range(50):  # fresh dicts, each freed after use: ids are reused
        fresh = {"n": number}
        assert encode({"meta": fresh})["meta"] == f'{{"n":{number}}}'
    encoded.clear()
    equal = [{"meta": _Meta(suite="pytest")} for _ in range(3)]
    assert [encode(row)["meta"] for row in equal] == ['{"suite":"pytest"}'] * 3
    assert len(encoded) == 3
    encoded.clear()
    first = weakref.ref(equal[0]["meta"])
    del equal
    assert first() is None
    assert encode_params({"meta": {"x": 1}}) == {"meta": '{"x":1}'}
