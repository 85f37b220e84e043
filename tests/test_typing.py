"""Check with mypy that the generated interface rejects wrong uses of the queries.

Every file under tests/typing/, and each Python block of the README, is checked in one mypy
run: the README's examples must pass `--strict` as they are written. A line that must be
rejected ends with `# E: <part of the message>`; mypy must report an error on that line
containing that text, and no error on any other line. A file without such comments must pass
clean.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "typing"
FILES = sorted(CASES.glob("*.py"))
README_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
EXPECTATION = re.compile(r"#\s*E:\s*(?P<text>.+?)\s*$")
REPORT = re.compile(r"^(?P<path>.+?):(?P<line>\d+): error: (?P<message>.*)$")

Errors = dict[Path, dict[int, list[str]]]


def expectations(path: Path) -> dict[int, str]:
    """Map each line of a case file that carries `# E: text` to that text."""
    found: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = EXPECTATION.search(line)
        if match is not None:
            found[number] = match["text"]
    return found


@pytest.fixture(scope="module")
def readme_blocks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each Python block of the README, as a file of its own."""
    folder = tmp_path_factory.mktemp("readme")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for match in README_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        block = folder / f"readme_line_{line}.py"  # named by the line its code starts at
        block.write_text(match[1], encoding="utf-8")
        blocks.append(block.resolve())
    return blocks


@pytest.fixture(scope="module")
def mypy_errors(readme_blocks: list[Path]) -> Errors:
    """Run mypy once over every case file and README block; group its errors by file and line."""
    src = str(ROOT / "src")
    mypy_path = os.environ.get("MYPYPATH")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MYPYPATH", src if not mypy_path else os.pathsep.join([src, mypy_path]))
        stdout, stderr, _status = api.run(
            [
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--strict",
                "--no-error-summary",
                "--hide-error-context",
                "--no-pretty",
                "--show-absolute-path",
                *(str(path) for path in FILES),
                *(str(path) for path in readme_blocks),
            ]
        )
    assert not stderr, stderr
    errors: Errors = defaultdict(lambda: defaultdict(list))
    for line in stdout.splitlines():
        match = REPORT.match(line)
        if match is not None:
            errors[Path(match["path"]).resolve()][int(match["line"])].append(match["message"])
    return errors


def test_there_are_cases() -> None:
    """The case folder holds the clean file and at least one file of each rejected kind."""
    names = {path.stem for path in FILES}
    assert "correct_uses" in names
    assert len(names) >= 8


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_mypy_reports_exactly_the_expected_errors(path: Path, mypy_errors: Errors) -> None:
    """Mypy rejects each `# E:` line with the expected message and accepts every other line."""
    expected = expectations(path)
    reported = mypy_errors.get(path, {})
    if path.stem == "correct_uses":
        assert not expected, "the file of correct uses must not expect errors"
    else:
        assert expected, f"{path.name} expects no error: add `# E:` comments"
    missing = {
        line: text
        for line, text in expected.items()
        if not any(text in message for message in reported.get(line, []))
    }
    unexpected = {line: messages for line, messages in reported.items() if line not in expected}
    assert not missing, f"mypy did not report these in {path.name}: {missing}; it said {reported}"
    assert not unexpected, f"mypy reported unexpected errors in {path.name}: {unexpected}"


def test_the_readmes_examples_pass_strict_type_checking(
    readme_blocks: list[Path], mypy_errors: Errors
) -> None:
    """Every Python block of the README type-checks under `--strict` as it is written.

    The backup example built a `TestResult` from strings, which the model converts at run time
    and its types refuse: a user who copied it failed the check the README promises.
    """
    assert len(readme_blocks) >= 10
    reported = {path.name: dict(mypy_errors[path]) for path in readme_blocks if path in mypy_errors}
    assert not reported, reported
