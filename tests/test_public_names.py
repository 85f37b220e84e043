"""The blocks that README and GUARANTEES describe to users are exported by the package."""

from __future__ import annotations

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
