"""A JSON report's text read a part at a time, as `json.loads` reads it whole, the loop kept free.

`json.loads` reads a whole document in one call of its C code, holding the loop (200 ms for
10 MB). Here a CTRF document's outer objects are walked by hand, the loop given back between
their members and between tests, and a part too large for one short call is read in a worker
thread (`TextValues`). What is read, and each error and its place, is `json.loads`'s.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar, overload

import attrs

from persistence._json_pieces import TextValues
from persistence._loop import OFF_LOOP_SIZE, off_loop, share_loop

_Found = TypeVar("_Found", tuple[object, int], tuple[object, int] | None)
_DECODER: Final = json.JSONDecoder()
_SPACE: Final = re.compile(r"[ \t\n\r]*")
"""What JSON takes as white space between its parts."""


@attrs.define
class Document:
    """A CTRF document read a part at a time: its text, its parts, and which tests are large."""

    text: str
    values: TextValues
    parsed: object = None
    """The document's value, once read."""
    large_tests: set[int] = attrs.Factory(set)
    """The indexes of the tests of text past OFF_LOOP_SIZE: each is made a model off the loop."""

    async def value(self, at: int) -> tuple[object, int]:
        """Read the value at `at`: in one call if it fits a piece, else in a worker thread.

        One call on a value of megabytes (a member of `results`, a test) held the loop 150 ms
        and more.
        """
        found = decode(self.text, at, self.values.small)
        if found is None:
            return await off_loop(functools.partial(decode, self.text, at, self.values.walked))
        return found


async def ctrf_document(text: str) -> Document:
    """Read a CTRF document as `json.loads` does, each test of `results.tests` apart.

    `json.loads` reads a whole document in one call, holding the loop (200 ms for 10 MB):
    here the outer objects are walked by hand, the loop given back after each test, and a
    large value is read off the loop.
    """
    document = Document(text, TextValues(text))
    at = skip(text, 0)
    if text.startswith("{", at):
        document.parsed, at = await _members(document, at, _results_or_value)
    else:
        document.parsed, at = await document.value(at)
    ended(text, at)
    return document


def ended(text: str, at: int) -> None:
    """Refuse anything but white space after a whole text's value, as `json.loads` does."""
    at = skip(text, at)
    if at != len(text):
        raise json.JSONDecodeError("Extra data", text, at)


@overload
def decode(text: str, at: int) -> tuple[object, int]: ...
@overload
def decode(text: str, at: int, read: Callable[[int], _Found]) -> _Found: ...
def decode(
    text: str, at: int, read: Callable[[int], tuple[object, int] | None] | None = None
) -> tuple[object, int] | None:
    """Read the JSON value at `at` as `raw_decode` does (or by `read`); give it and its end.

    One that `json` cannot read though it is JSON (a number too long for an int, arrays
    nested too deep) is a JSONDecodeError at its start, which names its line.
    """
    try:
        return _DECODER.raw_decode(text, at) if read is None else read(at)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deep", text, at) from None
    except ValueError as error:  # Python's limit on the digits of an int, and its advice
        reason = str(error).partition(";")[0]
        raise json.JSONDecodeError(f"a number too long: {reason}", text, at) from None


def skip(text: str, at: int) -> int:
    """Give where the white space from `at` on ends."""
    space = _SPACE.match(text, at)
    return at if space is None else space.end()


async def _members(
    document: Document,
    at: int,
    read: Callable[[Document, str, int], Awaitable[tuple[object, int]]],
) -> tuple[dict[str, object], int]:
    """Read the object whose `{` is at `at`, each value by `read`; give it and where it ends.

    As `json.loads`, the last of two members of one name is kept. The loop is given back
    between members, as between tests.
    """
    text = document.text
    found: dict[str, object] = {}
    ended, at = _opened(text, at, "}")
    while not ended:
        if not text.startswith('"', at):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, at
            )
        name, at = _DECODER.raw_decode(text, at)  # a string: nothing `decode` adds
        at = skip(text, at)
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = skip(text, at + 1)
        found[name], at = await read(document, name, at)
        await share_loop()  # members of any name, read past: 100,000 held the loop 200 ms
        ended, at = _next_item(text, at, "}")
    return found, at


def _opened(text: str, at: int, closing: str) -> tuple[bool, int]:
    """Step into the object or array whose bracket is at `at`.

    Give whether it is empty, and where it ends (if so) or its first item begins.
    """
    at = skip(text, at + 1)
    return (True, at + 1) if text.startswith(closing, at) else (False, at)


def _next_item(text: str, at: int, closing: str) -> tuple[bool, int]:
    """Step past an item that ends at `at`, and the comma after it.

    Give whether its object or array ends there (at `closing`), and where it ends (if so) or
    the next item begins.
    """
    at = skip(text, at)
    if text.startswith(closing, at):
        return True, at + 1
    if not text.startswith(",", at):
        raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
    return False, skip(text, at + 1)


async def _results_or_value(document: Document, name: str, at: int) -> tuple[object, int]:
    """Read a member of the document: `results` walked for its tests, any other whole."""
    if name == "results" and document.text.startswith("{", at):
        document.large_tests.clear()  # a later `results` is the one kept, as json.loads keeps
        return await _members(document, at, _tests_or_value)
    return await document.value(at)


async def _tests_or_value(document: Document, name: str, at: int) -> tuple[object, int]:
    """Read a member of `results`: `tests` one test at a time, any other whole."""
    text = document.text
    if not (name == "tests" and text.startswith("[", at)):
        return await document.value(at)
    document.large_tests.clear()  # as above, for a later `tests`
    tests: list[object] = []
    ended, at = _opened(text, at, "]")
    while not ended:
        test, end = await document.value(at)
        if end - at > OFF_LOOP_SIZE:  # made a model off the loop too, as a long line is
            document.large_tests.add(len(tests))
        tests.append(test)
        await share_loop()
        ended, at = _next_item(text, end, "]")
    return tests, at
