"""Swap folders under a storage root for symlinks to outside folders, and back, in a loop.

Run as `python _symlink_swapper.py ROOT SECONDS FOLDER=OUTSIDE...`: prints `ready`, then
for SECONDS keeps renaming each FOLDER (relative to ROOT) aside, putting a symlink to
OUTSIDE in its place, and restoring it; prints the number of swaps at the end.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path


def _restore(folder: Path, aside: Path) -> None:
    """Put the real folder back, clearing whatever the store made in its place meanwhile."""
    while True:
        try:
            aside.rename(folder)
        except OSError:
            if folder.is_symlink() or not folder.is_dir():
                folder.unlink(missing_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
        else:
            return


def swap(folder: Path, outside: str) -> None:
    """Replace `folder` by a symlink to `outside` for a moment, then restore it."""
    aside = folder.with_name(folder.name + ".aside")
    try:
        folder.rename(aside)
    except OSError:
        return
    try:
        folder.symlink_to(outside)
    except FileExistsError:
        pass  # the store made the folder again, which is fine
    else:
        time.sleep(0)
        folder.unlink(missing_ok=True)  # clean_temp may have removed it
    time.sleep(0)
    _restore(folder, aside)


def main(root: str, seconds: float, pairs: list[str]) -> None:
    """Swap every pair in turn until the time is up."""
    targets = [(Path(root, inside), outside) for inside, outside in (p.split("=") for p in pairs)]
    print("ready", flush=True)  # noqa: T201  # the parent waits for this line
    swaps = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for folder, outside in targets:
            swap(folder, outside)
            swaps += 1
    print(swaps, flush=True)  # noqa: T201  # the parent reads this line


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3:])
