"""Describe one big file and print its SHA-256 and how much the peak memory grew meanwhile.

Run as `python _hash_memory.py ROOT NAME`; prints `<sha256> <growth in bytes>`.
"""

from __future__ import annotations

import asyncio
import resource
import sys

from persistence.storage import info, open_storage


def peak() -> int:
    """Return the peak resident memory of this process so far, in bytes (Linux counts KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def main(root: str, name: str) -> None:
    """Hash the file through `info` and report the digest and the growth of the peak."""
    storage = await open_storage(root)
    before = peak()
    described = await info(storage, name)
    print(described.sha256, peak() - before)  # noqa: T201 - the parent reads this line


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
