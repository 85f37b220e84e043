"""A PostgreSQL URL's options of this package's own: PgBouncer in transaction mode.

Behind `?pgbouncer=transaction` each transaction may run on another server connection, so
asyncpg's statement cache is off, and the change feed's LISTEN, which needs a session of its
own, connects to `listen_url` (PostgreSQL's own address; with none, no feed). The options
are taken out of the URL before asyncpg reads it.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import unquote

import attrs

_OPTIONS: Final = ("pgbouncer", "listen_url")
_LOG: Final = logging.getLogger("persistence.postgres")


@attrs.frozen
class Pooling:
    """How the URL reaches PostgreSQL: directly, or through PgBouncer in transaction mode."""

    transaction: bool = False  # through PgBouncer's transaction pooling
    listen_dsn: str | None = None  # where LISTEN connects, when not to the URL itself


def split_pooling(dsn: str) -> tuple[str, Pooling]:
    """Split our own options out of a PostgreSQL URL; a ValueError says why one is unusable."""
    head, hash_sign, fragment = dsn.partition("#")
    base, _, query = head.partition("?")
    kept: list[str] = []
    found: dict[str, str] = {}
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        name = unquote(key)
        if name not in _OPTIONS:
            kept.append(part)
        elif name in found:
            raise ValueError(f"{name}= is given twice")
        else:
            found[name] = unquote(value)
    mode = found.get("pgbouncer")
    if mode is not None and (problem := pgbouncer_mode_problem(mode)) is not None:
        raise ValueError(f"pgbouncer= {problem}")
    listen = found.get("listen_url")
    if listen is not None:
        check_listen_url(listen)
    rest = base + ("?" + "&".join(kept) if kept else "") + hash_sign + fragment
    return rest, Pooling(transaction=mode is not None, listen_dsn=listen)


def pgbouncer_mode_problem(mode: object) -> str | None:
    """Say why a PgBouncer mode is not one the package can run on, or None for `transaction`."""
    if mode == "transaction":
        return None
    return (
        f"takes 'transaction' (PgBouncer's pool_mode = transaction), got {mode!r}; session "
        "pooling needs no option, and statement pooling cannot run a transaction of several "
        "statements"
    )


def check_listen_url(listen: str) -> None:
    """Refuse, with a ValueError that says why, a listen URL that is not PostgreSQL's own."""
    scheme = listen.partition("://")[0].lower()
    if scheme not in {"postgres", "postgresql"} or "://" not in listen:
        raise ValueError(
            "listen_url= takes PostgreSQL's own URL, percent-encoded "
            "(postgresql%3A%2F%2Fuser%40host%3A5432%2Fdb), got one that is not postgresql://"
        )
    query = listen.partition("?")[2].partition("#")[0]
    keys = {unquote(part.partition("=")[0]) for part in query.split("&") if part}
    if keys & set(_OPTIONS):
        msg = "listen_url= must reach PostgreSQL directly: it takes no pgbouncer= or listen_url="
        raise ValueError(msg)


class NoFeed:
    """The change watch without LISTEN: it vouches for no table, so caches read the database."""

    def __init__(self, shown: str) -> None:
        _LOG.warning(
            "%s goes through PgBouncer in transaction mode with no listen_url=: there is no "
            "change feed, so the caches read the database on every call",
            shown,
        )

    def version(self, table: str) -> int | None:  # noqa: ARG002  # the ChangeWatch protocol
        """Never known: a cache must not be trusted."""
        return None

    def stamp(self, table: str) -> str | None:  # noqa: ARG002  # the ChangeWatch protocol
        """Never known: a shared cache must not be trusted."""
        return None

    def identity(self) -> str | None:
        """Unknown without a session of its own to ask."""
        return None

    async def sync(self) -> bool:
        """Never in step with commits."""
        return False

    async def close(self) -> None:
        """Nothing to stop."""
