"""open_persistence on PostgreSQL whose change listener is refused: it opens without waiting.

Timed: the open is measured against the wait it used to make. PERSISTENCE_TEST_OPEN_BOUND
sets the bound in seconds (3 by default).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from _cli_helpers import free_port
from _proxy import peer_answering
from persistence import get_config_value, open_persistence, set_config

HEARTBEAT = 5.0
"""Long, as a quiet service may choose: the open waited the connect timeout and one of these."""


async def test_a_refused_listener_does_not_hold_the_open_back(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listen_url whose server refuses connections: the open ends at once, the feed down.

    The open waited the connect timeout and a heartbeat (10 s and 5 s here), though the
    listener's connect had been refused in a millisecond. The caches read the database until
    the listener is back, and the warning says so.
    """
    listen_url = _at_port(postgres_url, free_port())
    bound = float(os.environ.get("PERSISTENCE_TEST_OPEN_BOUND", "3"))
    started = time.monotonic()
    async with open_persistence(
        postgres_url, files=tmp_path / "f", listen_url=listen_url, heartbeat=HEARTBEAT
    ) as p:
        opened = time.monotonic() - started
        await set_config(p.db, "runner", "workers", 3)
        assert await p.cache.get_config_value("runner", "workers", int) == 3
        assert await get_config_value(p.db, "runner", "workers", int) == 3
    assert opened < bound, f"the open took {opened:.1f} s"
    assert "change notifications lost" in caplog.text


async def test_a_listener_whose_server_answers_garbage_backs_off_and_closes(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listen_url whose peer gives a reply asyncpg cannot read: the feed is down, quietly.

    asyncpg raises its own `InternalClientError` there (as when the server ends the listener
    mid-heartbeat), which the listener did not catch: its task ended, every read started it
    again with no pause (1,721 connects and warnings in 2 s), the open waited its whole
    heartbeat, and the close raised the driver's error.
    """
    met: list[None] = []
    bound = float(os.environ.get("PERSISTENCE_TEST_OPEN_BOUND", "3"))
    # an authentication request of length 0
    with peer_answering(b"R\x00\x00\x00\x00", met) as port:
        listen_url = _at_port(postgres_url, port, "sslmode=disable")
        started = time.monotonic()
        async with open_persistence(
            postgres_url, files=tmp_path / "f", listen_url=listen_url, heartbeat=HEARTBEAT
        ) as p:
            assert time.monotonic() - started < bound
            await set_config(p.db, "runner", "workers", 3)
            reads = time.monotonic()
            while time.monotonic() - reads < 1.0:
                assert await p.cache.get_config_value("runner", "workers", int) == 3
    assert len(met) <= 8, len(met)  # backing off from 50 ms, not once a read
    assert caplog.text.count("change notifications lost") == 1


def _at_port(url: str, port: int, query: str = "") -> str:
    """The URL of the same role and database, on 127.0.0.1 at `port`."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}", query=query))
