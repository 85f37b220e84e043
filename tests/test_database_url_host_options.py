"""The `host=` and `port=` options of a PostgreSQL URL, checked as the hosts before its path."""

from __future__ import annotations

import pytest

from _url_helpers import refused_both_ways
from persistence.database import engine_of, open_database
from persistence.exceptions import DatabaseError

BAD_OPTIONS = [
    ("postgresql://u:Xq7Zk@/db?host=,127.0.0.1", "its host= option's host 1 of 2 is empty"),
    ("postgresql://u:Xq7Zk@/db?host=127.0.0.1%2C", "its host= option's host 2 of 2 is empty"),
    ("postgresql://u:Xq7Zk@/db?host=127.0.0.1&port=99999", "port= option's ports must be"),
    ("postgresql://u:Xq7Zk@/db?host=127.0.0.1&port=x", "got 'x'"),
    ("postgresql://u:Xq7Zk@/db?host=a,b&port=5432,", "got ''"),
    ("postgresql://u:Xq7Zk@/db?%70ort=-1", "got '-1'"),
    (
        "postgresql://u:Xq7Zk@/db?target_session_attrs=bogus",
        (
            "its target_session_attrs= option must be one of any, primary, standby,"
            " prefer-standby, read-write, read-only, got 'bogus'"
        ),
    ),
    ("postgresql://u:Xq7Zk@/db?target_session_attrs=Primary", "got 'Primary'"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_OPTIONS)
async def test_a_bad_host_or_port_option_is_refused_by_name(url: str, reason: str) -> None:
    """The driver raised a bare IndexError or OverflowError, or `invalid literal for int()`.

    A `target_session_attrs` it lacks it refused naming a method object where it meant to
    list the values (`<built-in method values of mappingproxy object ...>`).
    """
    for message in await refused_both_ways(url):
        assert reason in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@/db?host=",
        "postgresql://u@/db?port=",
        "postgresql://u@/db?host=%2Frun%2Fpostgresql,h2&port=5432,5433",
        "postgresql://u@/db?host=h1:5432",
        "postgresql://u@/db?target_session_attrs=",
    ],
)
def test_host_and_port_options_the_driver_reads_are_taken(url: str) -> None:
    """An empty option is read past; a socket folder and a list of ports are the driver's."""
    engine_of(url)


async def test_a_bad_target_session_attrs_in_the_environment_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`$PGTARGETSESSIONATTRS`, which the driver reads where the URL gives none, alike."""
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "bogus")
    with pytest.raises(DatabaseError, match=r"^\$PGTARGETSESSIONATTRS must be one of any, "):
        await open_database("postgresql://u@127.0.0.1/db", connect_timeout=0.5)
    engine_of("postgresql://u@127.0.0.1/db?target_session_attrs=read-write")  # the URL's wins
