"""Hypothesis strategies: valid models, and the hostile values thrown at them.

Every strategy the tests use lives in this package. The valid ones (values.py) build models
that each engine must store and give back unchanged; the hostile ones (hostile.py) are what a
careless or malicious caller might pass instead: unusual Unicode, NUL characters, lone
surrogates, integers past 64 bits, NaN, infinities, wrong types and extreme datetimes.
filters.py draws filters, with their meaning written out in Python, and search texts. Here:
the settings the tests run their examples with.
"""

from __future__ import annotations

from typing import Final

from hypothesis import HealthCheck, settings

IN_MEMORY: Final = settings(max_examples=60, deadline=None)
"""For tests that touch no database."""

ON_DATABASE: Final = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""For tests on the `db` fixture: examples share its database, so each must stand alone."""
