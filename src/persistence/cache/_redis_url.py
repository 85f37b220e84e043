"""What a Redis URL may be: one server, one database, and options the cache can keep to.

redis-py reads much of a URL only when it first connects, and takes some mistakes quietly
(a missing host for this machine's Redis, `/abc` for database 0): each is refused here,
before anything is opened, with what is wrong in the URL (its password hidden).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from contextlib import suppress
from typing import Final
from urllib.parse import SplitResult, parse_qs, urlsplit

from persistence.database import redact_url
from persistence.exceptions import ValidationError

REDIS_URL_VARIABLE: Final = "REDIS_URL"
"""The environment variable read when no Redis URL is given."""

_OWN_OPTIONS: Final = frozenset({"decode_responses", "encoding", "encoding_errors"})
"""Options that set how replies are decoded, which the cache does itself."""


def redis_url(url: str | None) -> str:
    """Name the Redis server: `url`, else `$REDIS_URL`; refuse to guess one or to misread one.

    A redis:// or rediss:// URL must have a numeric port, if any, and a path that is empty or
    a database number: `/abc` is refused, where redis-py would quietly take database 0, as is
    a database named twice (`/3?db=14`). Its query must be one redis-py takes (`?db=abc` or
    an option it does not know is refused): redis-py reads the query only when it makes a
    connection, and raised then on every read.
    Nor may it set how replies are decoded (`decode_responses`, `encoding`, `encoding_errors`).
    """
    refuse = functools.partial(ValidationError, "RedisCache", "url")
    given_url: object = url  # callers without type checking may pass anything: False, b""
    if given_url is not None and not isinstance(given_url, str):
        raise refuse(f"expected a redis:// URL or None, got {type(given_url).__name__}")
    found = url or os.environ.get(REDIS_URL_VARIABLE)
    if not found:
        raise refuse(f"give a redis:// URL, or set {REDIS_URL_VARIABLE}")
    given: object = found  # callers without type checking may pass anything
    if not isinstance(given, str) or not found.startswith(("redis://", "rediss://", "unix://")):
        raise refuse(f"expected redis://, rediss:// or unix://, got {redact_url(str(found))!r}")
    tcp = found.startswith(("redis://", "rediss://"))
    try:
        parts = urlsplit(found)
        if tcp:
            parts.port  # noqa: B018  # reading it checks it
    except ValueError as error:  # a port that is no number, or out of range; a bad IPv6 host
        raise refuse(f"{error}: {redact_url(found)!r}") from None
    if (problem := _server_problem(found, parts)) is not None:
        raise refuse(f"{problem}: {redact_url(found)!r}")
    if (problem := _database_problem(parts, tcp=tcp)) is not None:
        raise refuse(f"{problem}: {redact_url(found)!r}")
    from redis.asyncio import ConnectionPool  # noqa: PLC0415  # see the module
    from redis.exceptions import RedisError  # noqa: PLC0415

    try:  # the connection redis-py would make, unconnected: it reads the query here
        pool = ConnectionPool.from_url(found)
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, RedisError) as error:
        raise refuse(f"redis-py cannot take it ({error}): {redact_url(found)!r}") from None
    if (problem := _option_problem(parts.query, pool.connection_kwargs)) is not None:
        raise refuse(f"{problem}: {redact_url(found)!r}")
    return found


def _option_problem(query: str, options: Mapping[str, object]) -> str | None:
    """Say why the URL's options are refused: a bound of none, or decoding the cache does."""
    for value in parse_qs(query).get("max_connections", ()):
        with suppress(ValueError):  # as redis-py reads it: `00`, `-0`, `0_0` are 0 too
            if int(value) == 0:
                return "max_connections must be 1 or more (redis-py takes 0 for 100)"
    if chosen := sorted(_OWN_OPTIONS & options.keys()):
        return f"the cache decodes its entries itself; drop {', '.join(chosen)}"
    return None


def _database_problem(parts: SplitResult, *, tcp: bool) -> str | None:
    """Say why the URL names no one database: `/abc`, or a database named twice.

    redis-py took `/abc` for database 0; `redis://host/3?db=14` used database 14, and
    `?db=3&db=5` database 3, unsaid: the entries went where the URL's reader did not look.
    """
    if tcp and not re.fullmatch(r"/?[0-9]*", parts.path):
        return "the path must be a database number, as in /3"
    given = parse_qs(parts.query).get("db", [])
    if len(given) > 1:
        return f"it gives db {len(given)} times in its query: give it once"
    if given and tcp and (path := parts.path.strip("/")):
        return f"it names database {path} in its path and {given[0]} in its query: give one"
    return None


def _server_problem(url: str, parts: SplitResult) -> str | None:
    """Say why `url` names no server a call could reach, as written; None if it names one.

    redis-py takes a missing host for this machine's Redis: another server than the one meant.
    """
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, from os.environb: no call could send it
        return "it holds bytes that are not UTF-8"
    if re.search(r"[\x00-\x1f\x7f]", url):
        return "it holds a control character (a line end from an env file?)"
    if url.startswith("unix://"):
        return None if parts.path else "it names no socket, as unix:///run/redis.sock does"
    return None if parts.hostname else "it names no host, as redis://localhost:6379/0 does"
