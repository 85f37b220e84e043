"""Query keys spelt with percent-escapes: read as the driver reads them, and hidden alike."""

from __future__ import annotations

import pytest

from persistence import DatabaseError
from persistence.database import engine_of, redact_url

KEYS_SPELT_OTHERWISE = [
    (
        "postgresql://u@host/db?pass%77ord=Xq7Zk",
        "postgresql://u@host/db?pass%77ord=***",
    ),
    (
        "postgresql://u@host/db?sslmode=require&%73sl%70assword=Xq7Zk#x",
        "postgresql://u@host/db?sslmode=require&%73sl%70assword=***#x",
    ),
    (
        "postgresql://u@host/db?a=b?%50ASSWORD=Xq7Zk&b=c",
        "postgresql://u@host/db?a=b?%50ASSWORD=***&b=c",
    ),
    (
        "postgresql://u@host/db?listen%5Furl=postgresql%3A%2F%2Fv%3AXq7Zk%40h%2Fx",
        "postgresql://u@host/db?listen%5Furl=postgresql%3A%2F%2Fv%3A***%40h%2Fx",
    ),
    (
        "postgresql://u@host/db?listen%5furl=postgresql://v:Xq7Zk@h/x&sslmode=require",
        "postgresql://u@host/db?listen%5furl=postgresql%3A%2F%2Fv%3A***%40h%2Fx&sslmode=require",
    ),
]


@pytest.mark.parametrize(("url", "expected"), KEYS_SPELT_OTHERWISE)
def test_a_password_under_a_percent_encoded_key_is_hidden(url: str, expected: str) -> None:
    """The driver and the PgBouncer options decode escapes: `pass%77ord` is `password`."""
    assert redact_url(url) == expected


def test_a_bad_listen_url_under_an_encoded_key_is_refused_without_its_password() -> None:
    """The refusal quotes the outer URL too: the inner URL's password is hidden in both."""
    url = "postgresql://u@host/db?listen%5Furl=postgresql%3A%2F%2Fv%3AXq7Zk%40%5B%3A%3A1%5D%3A99999%2Fx"
    with pytest.raises(DatabaseError, match="the port must be a number") as raised:
        engine_of(url)
    assert "Xq7Zk" not in str(raised.value)
