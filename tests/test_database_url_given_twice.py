"""A PostgreSQL URL giving a value before its `?` and again as a query option.

asyncpg takes the value before the `?` and reads past the option, saying nothing:
`postgresql://u:pw1@h/db?password=pw2` connected with pw1, and `?host=h2` beside a host
went to the first. Such a URL is refused, naming the option and hiding any password.
"""

from __future__ import annotations

import pytest

from _url_helpers import refused_both_ways
from persistence.database import engine_of

GIVEN_TWICE = [
    ("postgresql://u:Xq7Zk1@h/db?password=Yr8Wm2", "password"),
    ("postgresql://u:Xq7Zk1@h/db?pass%77ord=Yr8Wm2", "password"),
    ("postgresql://u@h/db?user=v", "user"),
    ("postgresql://u@h1/db?host=h2", "host"),
    ("postgresql://u@h1:5432/db?port=5433", "port"),
    ("postgresql://u@[::1]:5432/db?port=5433", "port"),
    ("postgresql://u@h/db1?dbname=db2", "dbname"),
    ("postgresql://u@h/db1?database=db2", "dbname"),
    ("postgresql://u@h/?dbname=db2", "dbname"),
]
"""Each URL, and the option the driver would read past."""


@pytest.mark.parametrize(("url", "name"), GIVEN_TWICE)
async def test_a_value_given_before_the_query_and_in_it_is_refused(url: str, name: str) -> None:
    """Refused when the URL is read and when it is opened, before anything connects."""
    for message in await refused_both_ways(url):
        assert f"{name}= is given in" in message, message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@/db?host=h1,h2&port=5432,5433",
        "postgresql://u@h/db?port=5433",  # a host without its port: the option gives it
        "postgresql://h/db?user=u&password=Xq7Zk1",
        "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql",
        "postgresql://u@h?dbname=db",
        "postgresql://u@h/db?password=",  # blank: the driver reads past it, as nothing
    ],
)
def test_a_value_given_once_is_taken(url: str) -> None:
    """A value the URL's own part leaves out may come from the query."""
    engine_of(url)
