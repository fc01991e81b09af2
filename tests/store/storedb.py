"""Reach behind the store's back into its SQLite file, as an attacker or a bad disk would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from secretd.store import LocalStore

StoreFactory = Callable[..., LocalStore]  # the make_store fixture


def sealed_of(db: Path, name: str, version: int) -> bytes:
    """The stored ciphertext of one version."""
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT sealed FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
    assert row is not None, f"no version {version} of {name}"
    return bytes(row[0])


def write_sealed(db: Path, name: str, version: int, sealed: bytes) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE versions SET sealed = ? WHERE name = ? AND version = ?", (sealed, name, version)
        )


def versions_of(db: Path, name: str) -> list[int]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT version FROM versions WHERE name = ? ORDER BY version", (name,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def integrity(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
