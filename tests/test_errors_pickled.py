"""The package's errors travel as themselves: through pickle, a process pool and `copy`.

Each error whose constructor takes more than its message was rebuilt by calling it with the
message alone: a worker's `NotFoundError` killed `multiprocessing.Pool`'s result thread (its
`get()` never returned) and broke a `ProcessPoolExecutor`; 12 of the 15 errors failed so.
"""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePath
from typing import Self

import pytest
from hypothesis import given
from hypothesis import strategies as st

import persistence.exceptions as errors
from persistence import connect, get_result, migrate
from persistence._files.locks import LockBusyError
from persistence.exceptions import NotFoundError, PersistenceError

SAMPLES: list[PersistenceError] = [
    errors.ValidationError("TestResult", "execution_time", "must not be negative, got -1.0"),
    errors.NotFoundError("TestResult", 7),
    errors.NotFoundError("TestResult", (1, "a"), argument="result_id"),
    errors.ConflictError("Key (path)=(x) already exists", constraint="file_records_path_key"),
    errors.MigrationError("0002_x.sql:3: boom", migration="0002_x.sql", line=3),
    errors.CloseTimeoutError("gave up", running=("x",), thread_alive=False),
    errors.InvalidPathError("a\0b", "holds a NUL byte"),
    errors.OutsideRootError("/etc/passwd", "outside the root"),
    errors.ReportError(PurePath("r.xml"), 4, "bad time"),
    errors.ReportError("r.json", None, "not JSON"),
    errors.SqlFilesMissingError((PurePath("/x"), PurePath("/y"))),
    errors.StorageError("p", "r"),
    errors.FileMissingError("p", "r"),
    errors.NotAFileError("p", "r"),
    errors.StoragePermissionError("p", "r"),
    errors.DatabaseError("the database is closed"),
    errors.PersistenceError("plain"),
]


def _same(back: BaseException, error: BaseException) -> bool:
    return (
        type(back) is type(error)
        and back.args == error.args
        and str(back) == str(error)
        and vars(back) == vars(error)
    )


def test_every_error_class_is_sampled() -> None:
    """A new error class must be added to SAMPLES, so that the tests below take it."""
    classes = {
        value
        for name in errors.__all__
        if isinstance(value := getattr(errors, name), type) and issubclass(value, BaseException)
    }
    assert classes == {type(error) for error in SAMPLES}


@pytest.mark.parametrize("error", SAMPLES, ids=lambda error: type(error).__name__)
def test_an_error_comes_back_from_pickle_and_copy_as_itself(error: PersistenceError) -> None:
    """Its class, message, attributes and notes: each sample with a note added to a copy."""
    noted = copy.copy(error)
    noted.add_note("said on the way")
    assert not hasattr(error, "__notes__")
    for given_error in (error, noted):
        for back in (
            pickle.loads(pickle.dumps(given_error)),  # noqa: S301  # our own bytes
            copy.copy(given_error),
            copy.deepcopy(given_error),
        ):
            assert _same(back, given_error), (vars(back), vars(given_error))


@given(model=st.text(), field=st.text(), reason=st.text())
def test_a_validation_error_of_any_text_comes_back_as_itself(
    model: str, field: str, reason: str
) -> None:
    """Whatever its texts hold."""
    error = errors.ValidationError(model, field, reason)
    assert _same(pickle.loads(pickle.dumps(error)), error)  # noqa: S301  # our own bytes


def _missing_result(path: str) -> None:
    """In a worker: ask for a result no row holds."""

    async def ask() -> None:
        async with connect(path) as db:
            await get_result(db, 999)

    asyncio.run(ask())


async def test_a_workers_not_found_error_reaches_the_parent(tmp_path: Path) -> None:
    """A process pool's worker raises NotFoundError: the parent's future raises the same."""
    path = tmp_path / "pool.db"
    async with connect(path) as db:
        await migrate(db)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        future = pool.submit(_missing_result, str(path))
        with pytest.raises(NotFoundError) as raised:
            await asyncio.wrap_future(future)
        assert pool.submit(len, "still works").result(timeout=60) == len("still works")
    assert raised.value.model == "TestResult"
    assert raised.value.key == 999


class _CodedError(PersistenceError):
    """A user's error: its code kept in a slot, set from the message by its `__init__`."""

    __slots__ = ("code",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = int(message.split(maxsplit=1)[0])


def test_a_users_subclass_with_an_init_of_its_own_comes_back_with_its_slots() -> None:
    """Rebuilt without its `__init__`, its slots set as they were."""
    error = _CodedError("404 gone")
    for back in (pickle.loads(pickle.dumps(error)), copy.copy(error)):  # noqa: S301  # our own bytes
        assert type(back) is _CodedError
        assert back.args == ("404 gone",)
        assert back.code == 404


async def test_a_database_refuses_pickle_and_copy_saying_what_to_do(tmp_path: Path) -> None:
    """Sent to a worker, it failed naming a queue (`cannot pickle '_queue.SimpleQueue'`)."""
    async with connect(tmp_path / "x.db") as db:
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match=r"x\.db\).*pass its URL, and connect\(\) there"):
                attempt(db)


class _AppNotFoundError(NotFoundError):
    """A user's error that adds nothing to the package's but its name."""


def test_errors_of_other_modules_of_the_package_and_bare_subclasses_come_back() -> None:
    """`LockBusyError` (the file locks') and a user's subclass with no `__init__` of its own.

    They were rebuilt by calling their class with the message alone, as a user's class that
    builds itself is: `StorageError.__init__() missing ... 'reason'`.
    """
    for error in (LockBusyError("a/b.txt", "busy"), _AppNotFoundError("User", 7)):
        for back in (pickle.loads(pickle.dumps(error)), copy.copy(error)):  # noqa: S301  # ours
            assert _same(back, error)


class _SlottedNotFoundError(NotFoundError):
    """A user's error that adds only `__slots__`."""

    __slots__ = ()


class _PassingValidationError(errors.ValidationError):
    """A user's error whose `__init__` passes its arguments on."""

    def __init__(self, *args: str, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)


class _SettingError(errors.DatabaseError):
    """A user's error of a slot, with a `__setstate__` written for Exception's dict state."""

    __slots__ = ("code",)

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code

    def __setstate__(self, state: dict[str, object] | None) -> None:
        for name, value in (state or {}).items():
            setattr(self, name, value)


class _MadeError(PersistenceError):
    """A user's error that makes itself: rebuilt Exception's way, by its message."""

    def __new__(cls, message: str) -> Self:
        return super().__new__(cls, message)


def _raise(error: PersistenceError) -> None:
    raise error


def test_a_users_subclass_of_slots_or_a_passing_init_comes_back_and_keeps_the_pool() -> None:
    """Each was rebuilt by calling it with the message alone: `TypeError`, a broken pool."""
    made = (
        _SlottedNotFoundError("Run", 3),
        _PassingValidationError("Run", "id", "bad"),
        _MadeError("made"),
        _SettingError("set", 5),
    )
    for error in made:
        for back in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):  # noqa: S301  # ours
            assert _same(back, error)
            assert getattr(back, "code", None) == getattr(error, "code", None)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for error in made[:2]:
            with pytest.raises(type(error)) as raised:
                pool.submit(_raise, error).result(timeout=60)
            assert _same(raised.value, error)
        assert pool.submit(len, "still works").result(timeout=60) == len("still works")
