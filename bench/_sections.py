"""The benchmark's sections beyond the contenders: the one registration list.

They run in this order after the contenders, and appear in the report in this order. A new
benchmark module defines an `INTRO` and an async `section(run) -> Outcome`, and adds one
`Section` here (see bench/_section.py).
"""

from __future__ import annotations

from typing import Final

from bench import cache, loop, memory, more, search, writes
from bench._section import Section

__all__ = ["SECTIONS"]

SECTIONS: Final[list[Section]] = [
    # Search first: its 100,000 results are made once, and the next two use their start.
    Section("search", "Search", search.INTRO, search.section, needs_postgres=True),
    Section("loop", "The event loop in the longest calls", loop.INTRO, loop.section),
    Section("memory", "Memory per 100,000 results", memory.INTRO, memory.section),
    Section("search_under_writes", "Search while others write", writes.INTRO, writes.section),
    Section("caches", "Caches", cache.INTRO, cache.section, needs_postgres=True, needs_redis=True),
    Section(
        "history", "Run history", more.HISTORY_INTRO, more.history_section, needs_postgres=True
    ),
    Section(
        "copy", "The move to PostgreSQL", more.COPY_INTRO, more.copy_section, needs_postgres=True
    ),
    Section("tracing", "Tracing", more.TRACING_INTRO, more.tracing_section),
]
