"""open_redis_cache given a URL of another type than str: refused, never read as left out."""

from __future__ import annotations

import pytest

from persistence import Database, ValidationError
from persistence.cache import open_redis_cache


@pytest.mark.parametrize("url", [False, 0, b"", b"redis://127.0.0.1:6379/7", []])
async def test_a_url_of_another_type_is_refused_even_when_false(
    db: Database, redis_url: str, monkeypatch: pytest.MonkeyPatch, url: object
) -> None:
    """`url=False` (or `b""`, `0`) is refused naming `url`; `REDIS_URL` is not read for it.

    A false one was taken as left out: `open_redis_cache(db, False)` opened the Redis of
    `REDIS_URL`.
    """
    monkeypatch.setenv("REDIS_URL", redis_url)
    with pytest.raises(ValidationError, match=r"^RedisCache\.url: expected "):
        await open_redis_cache(db, url)  # type: ignore[arg-type]  # bad on purpose
