"""What the tests of refused database URLs share: the refusal, read and opened, secrets hidden."""

from __future__ import annotations

from persistence import DatabaseError, open_database
from persistence.database import engine_of

SECRETS = ("Xq7Zk", "Yr8Wm2")
"""Passwords the tests' URLs hold, which no message may show."""


async def refused_both_ways(url: str) -> list[str]:
    """Give the messages of `url`'s refusal when read and when opened, after checking both.

    Each is an invalid database URL that shows none of `SECRETS`; opening connects nowhere.
    """
    messages = []
    try:
        engine_of(url)
    except DatabaseError as refused:
        messages.append(str(refused))
    try:
        await open_database(url, connect_timeout=0.5)
    except DatabaseError as refused:
        messages.append(str(refused))
    assert len(messages) == 2, (url, messages)  # read, and opened
    for message in messages:
        assert "invalid database URL" in message, message
        assert not any(secret in message for secret in SECRETS), message
    return messages
