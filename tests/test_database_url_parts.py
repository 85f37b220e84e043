"""PostgreSQL URL parts the server or the driver would fail on without naming them."""

from __future__ import annotations

import pytest

from persistence import DatabaseError
from persistence.database import engine_of

NUL_OR_NAMELESS = [
    ("postgresql://u:Xq7Zk@h/%00db", "a NUL character"),
    ("postgresql://u%00v:Xq7Zk@h/db", "a NUL character"),
    ("postgresql://u:Xq%007Zk@h/db", "a NUL character"),
    ("postgresql://u:Xq7Zk@h/db?application_name=a%00b", "a NUL character"),
    ("postgresql://u:Xq7Zk@h/db?a%00b=1", "a NUL character"),
    ("postgresql://u:Xq7Zk@h/db?options=-c%20x%3D\x00", "a NUL character"),
    ("postgresql://u:Xq7Zk@h/db?=x", "a query option without a name"),
    ("postgresql://u:Xq7Zk@h/db?sslmode=require&=x#f", "a query option without a name"),
]


@pytest.mark.parametrize(("url", "reason"), NUL_OR_NAMELESS)
def test_a_nul_or_a_nameless_option_is_refused_by_what_it_is(url: str, reason: str) -> None:
    """The server said `invalid startup packet layout: expected terminator as last byte`."""
    with pytest.raises(DatabaseError, match="invalid database URL") as refused:
        engine_of(url)
    assert reason in str(refused.value)
    assert "Xq7Zk" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h/db?application_name=",
        "postgresql://u:p@h/db?a=%2500",
        "postgresql://u:p@h/db#%00",
        "postgresql://u:p@h/db?",
        "postgresql://u:p@h/db?a=1&=&b=2",
    ],
)
def test_what_only_looks_like_them_is_taken(url: str) -> None:
    """An empty value, an escaped `%`, a fragment the driver never reads, empty options."""
    engine_of(url)
