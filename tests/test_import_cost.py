"""What `import persistence` loads: redis-py only once a Redis cache or URL is asked for.

redis-py's import took more CPU than the rest of the package's: every command of the CLI
and every program that never uses Redis paid for it at start-up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _loaded_after(script: str, cwd: Path) -> set[str]:
    """Run `script` in a new interpreter; give the top-level modules it had imported."""
    code = f"{script}\nimport sys\nprint(*sorted({{m.partition('.')[0] for m in sys.modules}}))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "script",
    [
        "import persistence",
        "import persistence.__main__",
        "import persistence.cache",
        "from persistence.cache import RedisCache, open_redis_cache",
    ],
)
def test_importing_the_package_leaves_redis_out(script: str, tmp_path: Path) -> None:
    """The package, its command line and its cache names load without redis-py."""
    loaded = _loaded_after(script, tmp_path)
    assert "persistence" in loaded
    assert "redis" not in loaded


def test_opening_without_redis_leaves_redis_out(tmp_path: Path) -> None:
    """A whole open, use and close with the memory cache never imports redis-py."""
    script = (
        "import asyncio\n"
        "from persistence import open_persistence, set_config, get_config_value\n"
        "async def main():\n"
        "    async with open_persistence('app.db', files='files') as p:\n"
        "        await set_config(p.db, 'runner', 'workers', 3)\n"
        "        assert await p.cache.get_config_value('runner', 'workers', int) == 3\n"
        "asyncio.run(main())\n"
    )
    loaded = _loaded_after(script, tmp_path)
    assert "sqlite3" in loaded
    assert "redis" not in loaded


def test_checking_a_redis_url_brings_redis_in(tmp_path: Path) -> None:
    """The check that asks redis-py how it reads a URL still runs: a bad query is refused."""
    script = (
        "from persistence import ValidationError\n"
        "from persistence.cache.distributed import redis_url\n"
        "try:\n"
        "    redis_url('redis://127.0.0.1:6379/?db=abc')\n"
        "except ValidationError as error:\n"
        "    assert 'redis-py cannot take it' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('accepted')\n"
    )
    assert "redis" in _loaded_after(script, tmp_path)
