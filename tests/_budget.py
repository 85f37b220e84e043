"""Reads forced off the loop: a loop budget that is past its deadline at once."""

from __future__ import annotations

from persistence._sqlite.statements import Budget


def arm_past(budget: Budget) -> None:
    """Arm `budget` past its deadline, looked at every step: its read goes to a thread."""
    budget.deadline = -1.0
    budget.connection.set_progress_handler(budget, 1)
