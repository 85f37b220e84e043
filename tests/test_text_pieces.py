"""A long text escaped a piece at a time gives exactly what one call over it gives.

`persistence._loop.map_text` escapes a text of megabytes in pieces, the loop given back
between (`test_loop_lag_long_texts.py`): its pieces must join to the one call's text for any
text cut anywhere, here with pieces of a few characters. A Python str holds code points, so
no cut splits an astral character; surrogates, CR LF and the characters XML 1.0 cannot hold
are drawn often, as are the ones each escaper rewrites.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from hypothesis import given
from hypothesis import strategies as st

from persistence._loop import map_text
from persistence.report_junit_export import _content
from strategies import IN_MEMORY

_TRICKY: Final = [
    *"\r\n&<>\"'\\\x00\x1b\x7f\x85\udfff\ufffe\uffff\u2028é😀",
    "\r\n",
    "\ud800\udc00",
]
"""Characters the escapers rewrite or refuse, and pairs that a cut between the two could break."""

_TEXTS: Final = st.lists(
    st.one_of(st.sampled_from(_TRICKY), st.characters(blacklist_categories=())), max_size=40
).map("".join)


def _pieced(escape: Callable[[str], str], text: str, piece: int) -> str:
    return "".join(asyncio.run(map_text(escape, text, piece)))


@IN_MEMORY
@given(text=_TEXTS, piece=st.integers(1, 5))
def test_xml_content_escaped_in_pieces_is_the_text_escaped_whole(text: str, piece: int) -> None:
    """JUnit export's element content: CR, `&`, `<`, `>`, and `#x1B` for what XML cannot hold."""
    assert _pieced(_content, text, piece) == _content(text)


def test_a_text_of_one_piece_is_escaped_in_one_call() -> None:
    """A short text, the usual one, is given as the one call's text, no piece cut."""
    assert asyncio.run(map_text(_content, "a < b\r", 6)) == ["a &lt; b&#13;"]
