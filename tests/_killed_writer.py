"""Overwrite one file with two known contents, in turn, until killed: the crash test's writer.

Run as `python _killed_writer.py ROOT SIZE`; prints `ready` once the file first exists.
With a third argument, `backup`, it backs the file up again and again instead.
"""

from __future__ import annotations

import asyncio
import sys

from persistence.storage import backup, open_storage, write_bytes

TARGET = "target.bin"


def contents(size: int) -> tuple[bytes, bytes]:
    """Return the two contents the writer alternates: different bytes and different lengths."""
    return b"a" * size, b"b" * (size + 4099)


async def main(root: str, size: int, mode: str) -> None:
    """Write the first content, say so, then alternate both (or back it up) forever."""
    storage = await open_storage(root)
    first, second = contents(size)
    await write_bytes(storage, TARGET, first)
    print("ready", flush=True)  # noqa: T201 - the parent waits for this line
    while mode == "backup":
        await backup(storage, TARGET, keep=1)
    while True:
        await write_bytes(storage, TARGET, second)
        await write_bytes(storage, TARGET, first)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), (sys.argv[3:] or ["write"])[0]))
