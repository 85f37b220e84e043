"""The examples in docs/ run as they are written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs"


def block_under(path: Path, heading: str) -> str:
    """The first Python block under a heading of a document."""
    text = path.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"{path.name} has no Python block under {heading!r}"
    return match.group(1)


async def test_calling_a_query_yourself_runs(tmp_path: Path) -> None:
    """docs/QUERY_TYPES.md's example calls a generated query through connection()."""
    source = block_under(DOCS / "QUERY_TYPES.md", "## Calling a query yourself")
    namespace: dict[str, object] = {}
    exec(compile(source, "QUERY_TYPES.md", "exec"), namespace)  # noqa: S102  # our own docs
    newest_id = namespace["newest_id"]
    assert callable(newest_id)
    assert await newest_id(str(tmp_path / "x.db")) == 1


def test_every_test_the_guarantees_name_exists() -> None:
    """Each test that docs/GUARANTEES.md and docs/STORAGE.md cite is a test in tests/."""
    defined = {
        match[1]
        for path in Path(__file__).parent.glob("test_*.py")
        for match in re.finditer(
            r"^(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE
        )
    }
    cited = {
        name
        for doc in ("GUARANTEES.md", "STORAGE.md", "CACHE.md")
        for name in re.findall(r"`(test_\w+)`", (DOCS / doc).read_text(encoding="utf-8"))
    }
    assert len(cited) > 20
    assert cited - defined == set()
