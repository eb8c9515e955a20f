"""SQLite connections for the sandbox's stores: one connection per operation (requests are served
from a thread pool), writes inside ``BEGIN IMMEDIATE``, which takes the write lock before
reading, so "look up, then insert" is atomic across threads and processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    # isolation_level=None: transactions are explicit, so BEGIN IMMEDIATE is honoured.
    conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        yield conn
    finally:
        conn.close()


@contextmanager
def write_transaction(db_path: Path) -> Iterator[sqlite3.Connection]:
    with connect(db_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
