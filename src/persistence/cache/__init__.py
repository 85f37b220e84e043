"""Caches: hot reads in memory or through Redis, and artifacts on disk by their content.

`open_memory_cache(db)` and `open_redis_cache(db, url)` give caches with one API (`Cache`):
the reads of settings and recent results that workers repeat, never older than the last
commit as each module says. `open_artifact_cache(storage)` keeps files such as compiled
binaries under the storage root, by the SHA-256 of their content.
"""

from persistence.cache._core import Cache, CacheStats
from persistence.cache.disk import ArtifactCache, ArtifactStats, open_artifact_cache
from persistence.cache.distributed import RedisCache, open_redis_cache
from persistence.cache.memory import MemoryCache, open_memory_cache

__all__ = [
    "ArtifactCache",
    "ArtifactStats",
    "Cache",
    "CacheStats",
    "MemoryCache",
    "RedisCache",
    "open_artifact_cache",
    "open_memory_cache",
    "open_redis_cache",
]
