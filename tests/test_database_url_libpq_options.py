"""libpq's own connection options in a PostgreSQL URL, and the timeouts that stand for them.

asyncpg reads none of them: it sent `?connect_timeout=1` to the server as a setting, which
refused it after the connect (`unrecognized configuration parameter "connect_timeout"`), and
against a server that never answers the open waited the default 10 s. The options are refused
by name before anything connects, and `open_persistence` takes the timeouts `open_database`
takes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from _url_helpers import refused_both_ways
from persistence import DatabaseError, open_persistence
from test_bundle_listener_silent import silent_server

LIBPQ_OPTIONS = ["connect_timeout=1", "keepalives=1", "tcp_user_timeout=100", "hostaddr=1.2.3.4"]


@pytest.mark.parametrize("option", LIBPQ_OPTIONS)
async def test_a_libpq_option_is_refused_by_name_before_any_connect(option: str) -> None:
    """Each message names the option; the open connects nowhere (its port is closed)."""
    name = option.partition("=")[0]
    url = f"postgresql://u:Xq7Zk@127.0.0.1:1/db?{option}"
    for message in await refused_both_ways(url):
        assert f"{name}= is an option of libpq" in message, message


async def test_a_connect_timeout_in_a_url_names_the_argument_instead() -> None:
    """The refusal says where a connect timeout is given."""
    [message, _] = await refused_both_ways("postgresql://u@127.0.0.1:1/db?connect_timeout=1")
    assert "pass connect_timeout= to open_database or open_persistence" in message


async def test_open_persistence_takes_the_connect_timeout(tmp_path: Path) -> None:
    """Against a server that never answers, the open gives up within its connect timeout."""
    async with silent_server() as silent:
        started = time.monotonic()
        with pytest.raises(DatabaseError, match=r"no answer within 0\.3s"):
            async with open_persistence(
                f"postgresql://u@127.0.0.1:{silent.port}/db",
                files=tmp_path / "files",
                connect_timeout=0.3,
            ):
                pass
        assert time.monotonic() - started < 5
        assert silent.accepted >= 1


@pytest.mark.parametrize("name", ["connect_timeout", "command_timeout"])
async def test_open_persistence_refuses_a_bad_timeout_before_anything(
    tmp_path: Path, name: str
) -> None:
    """A timeout of no seconds is refused by name, and no folder or database is made."""
    with pytest.raises(ValueError, match=name):
        async with open_persistence(
            tmp_path / "app.db",
            files=tmp_path / "files",
            **{name: 0.0},  # type: ignore[arg-type]  # one of the two floats
        ):
            pass
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
