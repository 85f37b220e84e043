"""What a benchmark section is: its settings in, its figures, Markdown and verdicts out.

A section is a key (its figures go under that key in results.json), a title and an
introduction for the report, and `measure`, an async function of the run's `Run` settings
that gives its figures, its Markdown and the verdicts of its targets (which join the
report's targets table). A section that needs PostgreSQL or
Redis says so, and is skipped, with the reason in the report, when the server does not
answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from bench._targets import Verdict

__all__ = ["Outcome", "Run", "Section"]


@attrs.frozen
class Run:
    """What every section is given: the size of the run and the servers that answered."""

    quick: bool
    """BENCH_QUICK: a smoke run at small sizes (each section names its sizes)."""
    postgres: str | None
    """The admin URL of the PostgreSQL server, or None when it does not answer."""
    redis: str | None
    """The Redis URL (a non-zero database index), or None when it does not answer."""


@attrs.frozen
class Outcome:
    """What a section measured: figures for results.json, Markdown, and its verdicts."""

    figures: dict[str, object]
    markdown: str
    verdicts: list[Verdict] = attrs.Factory(list)


@attrs.frozen
class Section:
    """One benchmark section of the report."""

    key: str
    title: str
    intro: str
    measure: Callable[[Run], Awaitable[Outcome]]
    needs_postgres: bool = False
    needs_redis: bool = False

    def missing(self, run: Run) -> str | None:
        """Say why this section cannot run, or None when it can."""
        if self.needs_postgres and run.postgres is None:
            return "it needs PostgreSQL, which did not answer"
        if self.needs_redis and run.redis is None:
            return "it needs Redis, which did not answer"
        return None
