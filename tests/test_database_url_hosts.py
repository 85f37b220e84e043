"""Empty hosts in a PostgreSQL URL: refused naming them, never the driver's bare IndexError."""

from __future__ import annotations

import pytest

from persistence import DatabaseError, open_database
from persistence.database import engine_of

EMPTY_HOSTS = [
    ("postgresql://u:Xq7Zk@h1:5432,/db", "host 2 of 2 is empty"),
    ("postgresql://u:Xq7Zk@,h1/db", "host 1 of 2 is empty"),
    ("postgresql://u:Xq7Zk@h1:1,,h2:2/db", "host 2 of 3 is empty"),
    ("postgresql://u:Xq7Zk@:5432/db", "an empty host before its port ':5432'"),
    ("postgresql://u:Xq7Zk@:/db", "an empty host before its port ':'"),
    ("postgresql://u:Xq7Zk@[::1]:1,:5432/db", "an empty host before its port ':5432'"),
]


@pytest.mark.parametrize(("url", "reason"), EMPTY_HOSTS)
async def test_an_empty_host_is_refused_by_its_place(url: str, reason: str) -> None:
    """The driver raised IndexError for an empty host of a list, a lookup error for `:5432`."""
    with pytest.raises(DatabaseError, match="invalid database URL") as refused:
        engine_of(url)
    with pytest.raises(DatabaseError, match="invalid database URL") as refused_at_open:
        await open_database(url, connect_timeout=1)
    for error in (refused.value, refused_at_open.value):
        assert reason in str(error)
        assert "Xq7Zk" not in str(error)


@pytest.mark.parametrize(
    "url", ["postgresql://u@/db", "postgresql:///db", "postgresql://h1,h2:5/db"]
)
def test_no_host_at_all_is_still_the_default(url: str) -> None:
    """Leaving the host out, as a whole, asks for the driver's default: nothing to refuse."""
    engine_of(url)
