"""What the artifact-cache tests share: a cache of 64 KiB, a child's environment, descriptors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TypeVar

import pytest

from persistence.cache import ArtifactCache, open_artifact_cache
from persistence.storage import open_storage

HERE = Path(__file__).parent
T = TypeVar("T")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


@pytest.fixture(name="artifacts")
async def artifact_cache(tmp_path: Path) -> ArtifactCache:
    """An artifact cache of 64 KiB under a fresh storage root."""
    return await open_artifact_cache(await open_storage(tmp_path / "files"), budget=64 * 1024)


def open_descriptors() -> int:
    """How many descriptors this process has open; 0 without /proc."""
    folder = Path("/proc/self/fd")
    return len(list(folder.iterdir())) if folder.is_dir() else 0
