"""Empty hosts in a PostgreSQL URL: refused naming them, never the driver's bare IndexError."""

from __future__ import annotations

import pytest

from _url_helpers import refused_both_ways
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
    for message in await refused_both_ways(url):
        assert reason in message


@pytest.mark.parametrize(
    "url", ["postgresql://u@/db", "postgresql:///db", "postgresql://h1,h2:5/db"]
)
def test_no_host_at_all_is_still_the_default(url: str) -> None:
    """Leaving the host out, as a whole, asks for the driver's default: nothing to refuse."""
    engine_of(url)
