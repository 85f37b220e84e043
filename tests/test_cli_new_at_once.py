"""`new` run twice at the same instant: each takes its own number, each pair whole."""

from __future__ import annotations

import threading
from contextlib import suppress
from pathlib import Path
from typing import IO

import pytest

from persistence.__main__ import main

pytestmark = pytest.mark.usefixtures("no_database_url")

_MEETING_SECONDS = 1.0
"""How long each `new` waits for the other before it writes: past it, it goes on alone."""


def test_two_new_at_once_take_two_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both numbered before either wrote (made to meet there) took 0001: now one waits its turn."""
    folder = tmp_path / "migrations"
    meeting = threading.Barrier(2, timeout=_MEETING_SECONDS)
    plain_open = Path.open

    def meeting_open(self: Path, mode: str = "r", *args: object, **kwargs: object) -> IO[str]:
        if mode == "x" and self.parent.name == "sqlite" and folder in self.parents:
            with suppress(threading.BrokenBarrierError):  # the other one is not coming
                meeting.wait()
        opened: IO[str] = plain_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]  # passed on as given
        return opened

    monkeypatch.setattr(Path, "open", meeting_open)
    codes: dict[str, int] = {}

    def new(name: str) -> None:
        codes[name] = main(["new", name, "--folder", str(folder)])

    threads = [threading.Thread(target=new, args=(name,)) for name in ("add_index", "add_view")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    capsys.readouterr()
    assert codes == {"add_index": 0, "add_view": 0}
    for engine in ("sqlite", "postgres"):
        names = sorted(path.name for path in (folder / engine).iterdir())
        assert [name[:4] for name in names] == ["0001", "0002"], names
        assert {name[5:] for name in names} == {"add_index.sql", "add_view.sql"}
    pairs = {path.name for path in (folder / "sqlite").iterdir()}
    assert pairs == {path.name for path in (folder / "postgres").iterdir()}
