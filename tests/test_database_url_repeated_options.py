"""A query option given twice in a PostgreSQL URL: refused by its name, never one value taken."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from _url_helpers import refused_both_ways
from persistence import DatabaseError, ValidationError, open_database
from persistence.database import engine_of

REPEATED = [
    ("postgresql://u@h/db?sslmode=require&sslmode=disable", "sslmode"),
    ("postgresql://u@h/db?password=Xq7Zk1&password=Yr8Wm2", "password"),
    ("postgresql://u@h/db?pass%77ord=Xq7Zk1&password=Yr8Wm2", "password"),
    ("postgresql://u@h/db?sslpassword=Xq7Zk1&x=1&sslpassword=Yr8Wm2", "sslpassword"),
    ("postgresql://u@h/db?options=-csearch_path%3Da&options=-csearch_path%3Db", "options"),
    ("postgresql://u@h/db?application_name=a&application_name=b#frag", "application_name"),
    ("postgresql://u@h/db?host=h1&host=h2", "host"),
    ("postgresql://u@h/db?sslmode=require&sslmode=", "sslmode"),
    ("postgresql://u@h/db?a+b=1&a%20b=2", "a b"),
    ("postgresql://u@h/db?a=1&a=2", "a"),
    ("postgresql://u@h/db?dbname=a&database=b", "database"),
]
"""Each URL, and the option it gives twice as the driver reads its name."""


@pytest.mark.parametrize(("url", "name"), REPEATED)
async def test_an_option_given_twice_is_refused_by_name(url: str, name: str) -> None:
    """The driver took the last value of each (`sslmode=disable`, the second password) unsaid.

    A blank repeat, which asyncpg reads past, and `dbname=` beside its alias `database=`,
    of which asyncpg takes `dbname=`, are refused alike: a reader cannot tell which holds.
    """
    for message in await refused_both_ways(url):
        assert f"{name}= is given twice" in message


async def test_an_option_given_twice_in_the_listen_url_is_refused() -> None:
    """The feed's own URL is checked as the URL is, in the URL and as an argument."""
    inner = "postgresql://u@db/app?sslmode=require&sslmode=disable"
    url = f"postgresql://u@bouncer/app?pgbouncer=transaction&listen_url={quote(inner, safe='')}"
    with pytest.raises(DatabaseError, match="sslmode= is given twice"):
        engine_of(url)
    with pytest.raises(ValidationError, match="sslmode= is given twice") as refused:
        await open_database("postgresql://u@bouncer/app", pgbouncer="transaction", listen_url=inner)
    assert refused.value.field == "listen_url"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?sslmode=require&application_name=a&options=-cwork_mem%3D64MB",
        "postgresql://u@/db?host=h1,h2&port=5432,5433",
    ],
)
def test_options_given_once_are_taken(url: str) -> None:
    """Different options, and a list of values in one option, are no repeat."""
    engine_of(url)
