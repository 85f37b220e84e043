"""The checks a value passes before it reaches a query, each a ValidationError naming the field.

Each rule is written once, for the models' attrs validators and converters and for the
repository functions' arguments.
"""

from __future__ import annotations

import array
import datetime as dt
import enum
import math
import os
from collections import UserString
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypeGuard, TypeVar

import attrs

from persistence._interface import JsonObject, JsonObjectInput, JsonScalar, JsonValue
from persistence.exceptions import ValidationError

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.StrEnum)

MAX_INT = 2**63 - 1
"""The largest integer both engines store: in an integer column, in JSON, in a config value."""

MIN_INT = -(2**63)
"""The smallest integer both engines store."""

MAX_KEY_BYTES = 1024
"""The longest section, key or path, in UTF-8 bytes: a PostgreSQL btree index row holds 2,704
at most, so without it a long key would be stored on SQLite and refused on PostgreSQL."""

MAX_JSON_DEPTH = 64
"""How deeply JSON may nest; SQLite's JSON functions stop at 1,000 levels."""

MAX_JSON_FLOAT = 2.0**53
"""JSON floats must be below this: PostgreSQL's jsonb rewrites larger ones as integers."""

_SHOWN_BITS = 256
"""Integers up to this size are written out in messages; larger ones by their size."""

FIRST_INSTANT: Final = dt.datetime.min.replace(tzinfo=dt.UTC)
LAST_INSTANT: Final = dt.datetime.max.replace(tzinfo=dt.UTC)
"""The first and last instants of all, which the models reserve (`utc_instant`)."""


# Rules: each says what is wrong with a value, or None ------------------------------------


def text_problem(value: str) -> str | None:
    """Say why no engine would store this text faithfully, or None when it is fine."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def key_length_problem(value: str) -> str | None:
    """Say why `value` is too long to be an indexed key (section, key or path), or None."""
    if len(value) * 4 <= MAX_KEY_BYTES:  # no character takes more than 4 bytes
        return None
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        return f"must be at most {MAX_KEY_BYTES} bytes in UTF-8, got {size}"
    return None


def int_problem(value: int) -> str | None:
    """Say why an integer does not fit in 64 bits, where both engines store it, or None."""
    if MIN_INT <= value <= MAX_INT:
        return None
    return f"must fit in 64 bits (from -2**63 to 2**63 - 1), got {_shown(value)}"


def _shown(value: int) -> str:
    # Python refuses to write an int of more than 4,300 digits as text.
    return (
        str(value) if value.bit_length() <= _SHOWN_BITS else f"an int of {value.bit_length()} bits"
    )


def _type_problem(expected: str, value: object) -> str:
    return f"expected {expected}, got {type(value).__name__}"


# Argument guards: for the values repository functions are given -------------------------


def utc_instant(model: str, field: str, value: object) -> dt.datetime:
    """Check that value is an aware datetime both engines store, and give it in UTC."""
    if not isinstance(value, dt.datetime):
        raise ValidationError(model, field, _type_problem("datetime", value))
    try:
        offset = value.utcoffset()
    except (ValueError, TypeError) as error:  # a tzinfo of its own giving another offset
        reason = f"its tzinfo {value.tzinfo!r:.80} gives no valid UTC offset: {error}"
        raise ValidationError(model, field, reason) from None
    if offset is None:
        raise ValidationError(model, field, "must be timezone-aware")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError(model, field, f"{value} is out of range in UTC") from None
    if utc in {FIRST_INSTANT, LAST_INSTANT}:
        # asyncpg stores these two as -infinity and infinity, and reads them back naive.
        raise ValidationError(
            model, field, f"{utc} is reserved: use a time after year 1 and before the end of 9999"
        )
    return utc


def key_id(model: str, value: object, field: str = "id") -> int:
    """Check an id given to look a row up by: any int that an id column can hold.

    The package's own rows are numbered from 1, but plain SQL may store 0 or below, and a row
    that a listing gives must be one that a get, a delete and the models take.
    """
    if type(value) is int and MIN_INT <= value <= MAX_INT:  # most ids: one call less
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(model, field, _type_problem("int", value))
    if not MIN_INT <= value <= MAX_INT:
        raise ValidationError(
            model, field, f"must be between {MIN_INT} and {MAX_INT}, got {_shown(value)}"
        )
    return value


def key_text(model: str, field: str, value: object) -> str:
    """Check a text given to look a row up by, such as a path or a config key."""
    if not isinstance(value, str):
        raise ValidationError(model, field, _type_problem("str", value))
    problem = text_problem(value) or key_length_problem(value)
    if problem is not None:
        raise ValidationError(model, field, problem)
    return value


def nonempty_text(model: str, field: str, value: object) -> str:
    """Check a key given to look rows up by, which no row holds empty, such as a test id."""
    text = key_text(model, field, value)
    if not text:
        raise ValidationError(model, field, "must not be empty")
    return text


def of_type(kind: type[_T], value: object, name: str, index: int | None = None) -> _T:
    """Check that a function was given the model (or cursor, or filter) its `name` takes."""
    if not isinstance(value, kind):
        where = name if index is None else f"{name}[{index}]"
        raise ValidationError(kind.__name__, where, _type_problem(kind.__name__, value))
    return value


def argument(model: str, field: str, kind: type[_T], value: object, expected: str = "") -> _T:
    """Check that an argument is a `kind`, a bool being no int; `expected` words the kind."""
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise ValidationError(model, field, _type_problem(expected or kind.__name__, value))


def type_among(model: str, field: str, value: object, kinds: Iterable[type]) -> type:
    """Check that an argument is one of `kinds` itself, such as the type to read a value as."""
    if type(value) is type and value in kinds:  # a plain class: hashable, named by __name__
        return value
    shown = value.__name__ if type(value) is type else repr(value)  # list[int], not `list`
    names = ", ".join(kind.__name__ for kind in kinds)
    raise ValidationError(model, field, f"expected one of the types {names}, got {shown:.80}")


def with_method(model: str, field: str, value: _T, method: str, expected: str) -> _T:
    """Check that an argument has `method` to call, such as a store's `sweep`, before it is used.

    A class is refused: its method is there to call, unbound, and fails only once called.
    """
    if isinstance(value, type) or not callable(getattr(value, method, None)):
        raise ValidationError(model, field, _type_problem(expected, value))
    return value


def at_least(
    model: str, field: str, value: object, minimum: int, maximum: int | None = None
) -> int:
    """Check an int argument of `minimum` or more (and `maximum` at most), such as a budget."""
    number = argument(model, field, int, value, "an int")
    if number < minimum:
        raise ValidationError(model, field, f"must be {minimum} or more, got {_shown(number)}")
    if maximum is not None and number > maximum:
        raise ValidationError(model, field, f"must be {maximum} at most, got {_shown(number)}")
    return number


def whole_numbers(model: str, field: str, value: object, maximum: int) -> set[int]:
    """Check a collection of ints from 0 to `maximum`, such as versions; one int or text is none."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(model, field, _type_problem("a collection of ints", value))
    return {at_least(model, field, item, 0, maximum) for item in value}


def finite_amount(
    model: str, field: str, value: object, expected: str = "a number", *, above_zero: bool = False
) -> float:
    """Check a finite number of 0 or more (more than 0 if `above_zero`), such as an age.

    NaN and infinities are refused, as is an int past the largest float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(model, field, _type_problem(expected, value))
    wanted = "must be a finite number > 0" if above_zero else "must be a finite number >= 0"
    try:
        number = float(value)
    except OverflowError:  # an int past the largest float, 2**1024 less a little
        assert isinstance(value, int)  # noqa: S101  # only an int can be too large
        raise ValidationError(model, field, f"{wanted}, got {_shown(value)}") from None
    if not math.isfinite(number) or number < 0 or (above_zero and number == 0):
        raise ValidationError(model, field, f"{wanted}, got {number}")
    return number


def seconds(model: str, field: str, value: object, *, zero_ok: bool = False) -> float:
    """Check a time limit: a finite number of seconds, more than 0 unless `zero_ok`."""
    return finite_amount(model, field, value, "a number of seconds", above_zero=not zero_ok)


def byte_string(model: str, field: str, value: object) -> bytes:
    """Check a bytes-like argument (bytes, bytearray, memoryview) and give it as bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ValidationError(model, field, _type_problem("bytes", value))


def json_object(model: str, field: str, value: object) -> JsonObject:
    """Check a JSON object both engines keep unchanged, such as labels, and give a copy.

    A copy even when empty: the caller's own dict, filled later, changed the model.
    """
    if type(value) is dict and not value:
        return {}
    if not isinstance(value, dict):
        if not isinstance(value, Mapping):
            got = type(value).__name__
            raise ValidationError(model, field, f"expected a JSON object (dict), got {got}")
        value = dict(value.items())
    return _json_object(value, model, field, 0)


def path_problem(value: object) -> tuple[str, str | None]:
    """Give a path argument's text, and why it can name no file (None if it can).

    The one check of a path's text: a str or an os.PathLike of one, not empty, with no NUL,
    that the file system's encoding takes. `file_path` and `_files.paths.check_path` raise
    its reason as their own error; a value that is no path at all is shown by its repr.
    """
    text: object = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, os.PathLike):  # what os.fspath does, without its TypeError
        text = value.__fspath__()
    if not isinstance(text, str):
        shown = type(value).__name__ if text is None else f"a path of {type(text).__name__}"
        return repr(value), f"expected a str or os.PathLike, got {shown}"
    if not text:
        return text, "is empty: name a file"
    if "\0" in text:
        return text, f"holds a NUL character: {text!r:.200}"
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return text, f"cannot be encoded as a file name: {text!r:.200}"
    return text, None


def home_problem(path: str) -> str | None:
    """Give why a path starting with `~` or `~user` names no place here (None if it does not).

    Only a shell expands `~`, and only unquoted: from an env file, a quoted value or an
    argument it would be made as a folder named `~` in the working folder.
    """
    if path.split("/", 1)[0].startswith("~"):
        return "starts with '~', which only a shell expands to a home folder: give the full path"
    return None


def file_path(model: str, field: str, value: object) -> str:
    """Check a path argument (see `path_problem`); refuse it as a `ValidationError`."""
    text, problem = path_problem(value)
    if problem is not None:
        raise ValidationError(model, field, problem)
    return text


# Field validators: attrs calls them with the instance, the field and its value ----------


def _refuse(instance: object, field: attrs.Attribute[_T], problem: str) -> ValidationError:
    return ValidationError(type(instance).__name__, field.name, problem)


def text(instance: object, field: attrs.Attribute[_T], value: _T) -> None:
    """Validate a text field: a str without NUL characters or lone surrogates."""
    problem = text_problem(value) if isinstance(value, str) else _type_problem("str", value)
    if problem is not None:
        raise _refuse(instance, field, problem)


def nonempty_key(instance: object, field: attrs.Attribute[_T], value: _T) -> None:
    """Validate an indexed key (section, key or path): non-empty text of at most 1,024 bytes."""
    if not key_text(type(instance).__name__, field.name, value):
        raise _refuse(instance, field, "must not be empty")


def instance_of(kind: type) -> Callable[[object, attrs.Attribute[_T], _T], None]:
    """Make a validator that a field holds an instance of `kind` (a filter held by a cursor)."""

    def validate(instance: object, field: attrs.Attribute[_T], value: _T) -> None:
        if not isinstance(value, kind):
            raise _refuse(instance, field, _type_problem(kind.__name__, value))

    return validate


def count(instance: object, field: attrs.Attribute[_T], value: _T) -> None:
    """Validate a count or a size: an int from 0 to 2**63 - 1."""
    given: object = value
    if type(given) is int and 0 <= given <= MAX_INT:
        return
    if isinstance(given, bool) or not isinstance(given, int):
        raise _refuse(instance, field, _type_problem("int", given))
    if given < 0:
        raise _refuse(instance, field, f"must not be negative, got {_shown(given)}")
    if given > MAX_INT:
        raise _refuse(instance, field, f"must be at most {MAX_INT}, got {_shown(given)}")
    # An int of a subclass (an IntEnum's), taken as ids and floats of one are.


def row_id(instance: object, field: attrs.Attribute[_T], value: _T) -> None:
    """Validate a row id, or the id a cursor stops at: any int an id column holds (`key_id`)."""
    key_id(type(instance).__name__, value, field.name)


# Field converters: attrs calls them with the value, the instance and the field ----------


def converter(
    check: Callable[[object, object, attrs.Attribute[object]], _T],
) -> attrs.Converter[object, _T]:
    """Make an attrs converter of a check that is given the instance and the field."""
    return attrs.Converter(check, takes_self=True, takes_field=True)


def member_of(kind: type[_E]) -> attrs.Converter[object, _E]:
    """Make a converter to a member of `kind`, from the member or its value."""
    return converter(_member_check(kind))


def _member_check(kind: type[_E]) -> Callable[[object, object, attrs.Attribute[object]], _E]:
    members = {member.value: member for member in kind}
    allowed = ", ".join(members)

    def as_member(value: object, instance: object, field: attrs.Attribute[object]) -> _E:
        if type(value) is kind:
            return value
        if isinstance(value, str):
            member = members.get(value)
            if member is not None:
                return member
            raise _refuse(instance, field, f"{value!r} is not one of: {allowed}")
        raise _refuse(instance, field, _type_problem(f"one of {allowed}", value))

    return as_member


def members_of(kind: type[_E]) -> attrs.Converter[object, frozenset[_E] | None]:
    """Convert to a frozenset of `kind` members (or values); None stays, text is refused."""
    as_member = _member_check(kind)

    def as_members(
        value: object, instance: object, field: attrs.Attribute[object]
    ) -> frozenset[_E] | None:
        if value is None:
            return None
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise _refuse(instance, field, _type_problem(f"a collection of {kind.__name__}", value))
        return frozenset(as_member(item, instance, field) for item in value)

    return converter(as_members)


def _to_metadata_subset(
    value: object, instance: object, field: attrs.Attribute[object]
) -> JsonObject | None:
    """Check a metadata filter: a JSON object of scalars; an empty one filters nothing (None)."""
    if value is None:
        return None
    subset = _to_json_object(value, instance, field)
    for key, item in subset.items():
        if isinstance(item, list | dict):
            raise _refuse(
                instance,
                field,
                f"the value of {key!r} must be a str, int, float, bool or None to compare, "
                f"got {type(item).__name__}",
            )
    return subset or None


def _to_utc(value: object, instance: object, field: attrs.Attribute[object]) -> dt.datetime:
    return utc_instant(type(instance).__name__, field.name, value)


def _to_json_object(value: object, instance: object, field: attrs.Attribute[object]) -> JsonObject:
    return json_object(type(instance).__name__, field.name, value)


if TYPE_CHECKING:
    # mypy's attrs plugin takes a field's __init__ type from its converter only when the
    # converter is a named function (python/mypy#15736): these give it the field types.

    def as_utc(value: dt.datetime, /) -> dt.datetime:
        """Convert an aware datetime to UTC."""

    def as_json_object(value: JsonObjectInput, /) -> JsonObject:
        """Convert a JSON object to plain dicts and lists."""

    def as_metadata_subset(value: Mapping[str, JsonScalar] | None, /) -> JsonObject | None:
        """Check a metadata filter: keys and the scalar values they must hold."""

else:
    as_utc = converter(_to_utc)
    as_json_object = converter(_to_json_object)
    as_metadata_subset = converter(_to_metadata_subset)


def json_value(value: object, model: str, field: str, depth: int = 0) -> JsonValue:
    """Give value as plain JSON both engines keep unchanged: 64-bit ints, finite floats < 2**53.

    A float of -0.0 is given as 0.0: PostgreSQL's jsonb, a number with no sign of zero, kept it so.
    """
    if isinstance(value, list | dict) and value and depth >= MAX_JSON_DEPTH:
        raise ValidationError(model, field, f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list):
        return [json_value(item, model, field, depth + 1) for item in value]
    if isinstance(value, dict):
        return _json_object(value, model, field, depth)
    if type(value) in JSON_SCALARS or not is_json_container(value):
        return _json_scalar(value, model, field)
    # The caller's own mapping or sequence (JsonInput): JSON's object or array, as plain ones.
    plain = dict(value.items()) if isinstance(value, Mapping) else list(value)
    return json_value(plain, model, field, depth)


JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
"""The types of JSON's scalars, told apart at once: no container check is asked of them."""
_NO_ARRAYS: Final = (str, UserString, bytes, bytearray, memoryview, array.array)
"""Sequences that are no JSON array: text (a `UserString` too), and bytes and typed arrays of
numbers, which JSON has no form of: each is refused as no JSON value, never read a character
or a byte at a time."""


def is_json_container(value: object) -> TypeGuard[Mapping[object, object] | Sequence[object]]:
    """Tell a mapping, or a sequence that is no text or bytes: a JSON object or array given."""
    return isinstance(value, Mapping) or (
        isinstance(value, Sequence) and not isinstance(value, _NO_ARRAYS)
    )


def _json_object(value: dict[object, object], model: str, field: str, depth: int) -> JsonObject:
    plain: JsonObject = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise ValidationError(
                model, field, f"JSON object keys must be str, got {type(name).__name__}"
            )
        problem = text_problem(name)
        if problem is not None:
            raise ValidationError(model, field, problem)
        plain[name] = json_value(item, model, field, depth + 1)
    return plain


def _json_scalar(value: object, model: str, field: str) -> JsonValue:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValidationError(model, field, problem)
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        problem = int_problem(value)
        if problem is not None:
            raise ValidationError(model, field, f"a JSON integer {problem}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(model, field, f"JSON numbers must be finite, got {value}")
        if abs(value) >= MAX_JSON_FLOAT:
            raise ValidationError(
                model, field, f"JSON floats must be below 2**53 in magnitude, got {value}"
            )
        return value + 0.0  # -0.0 is 0.0
    raise ValidationError(model, field, f"{type(value).__name__} is not a JSON value")
