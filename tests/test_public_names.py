"""The blocks that README and GUARANTEES describe to users are exported by the package."""

from __future__ import annotations

import functools
import importlib
import re
import types
from pathlib import Path

import pytest

import persistence
import persistence.database


def test_read_snapshot_is_exported_beside_transaction() -> None:
    """`read_snapshot(db)`, documented beside `transaction(db)`, was reachable only privately.

    `from persistence import read_snapshot` failed, at run time and under mypy.
    """
    for name in ("transaction", "read_snapshot", "connection"):
        assert name in persistence.__all__
        assert name in persistence.database.__all__
        assert getattr(persistence, name) is getattr(persistence.database, name)


_ARGUMENTS = frozenset({"slow_query"})
"""Names in backquotes in the table that are arguments of what a module holds, not names in it."""


def _readme_modules() -> dict[str, list[str]]:
    """The README's table of modules: each module's name, and the names it says it holds."""
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = text.split("| module | what it holds |", 1)[1].split("\n\n", 1)[0]
    modules: dict[str, list[str]] = {}
    for line in table.splitlines()[2:]:
        module, holds = line.strip("|").split("|", 1)
        module = module.strip().strip("`")
        # the names in backquotes, before any parenthesis says more of them
        modules[module] = re.findall(r"`([A-Za-z_]+)`", re.sub(r"\([^)]*\)", "", holds))
    return modules


@pytest.mark.parametrize("module", sorted(_readme_modules()))
def test_each_module_of_the_readme_imports_as_that_module(module: str) -> None:
    """`import persistence.X as m` gives that module, holding the names the README lists.

    `import persistence.counterexamples as store` gave the history function of that name,
    which the package exports, not the module the README listed: the store's names were not
    reachable through it.
    """
    imported = importlib.import_module(module)
    assert isinstance(imported, types.ModuleType)
    attribute = functools.reduce(getattr, module.split(".")[1:], persistence)
    assert attribute is imported, f"persistence.{module.split('.', 1)[-1]} is {attribute!r}"
    names = [name for name in _readme_modules()[module] if name not in _ARGUMENTS]
    missing = [name for name in names if not hasattr(imported, name)]
    assert not missing, f"{module} lacks {missing}"
