"""SQLite persistence for the sandbox channel: posts, delivery log and injected faults.

Every operation opens its own connection (the app serves requests from a thread pool) and
writes inside ``BEGIN IMMEDIATE``, which takes SQLite's write lock before reading. That makes
"look up the idempotency key, then insert" atomic across threads and processes alike.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    channel TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    format TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    budget_cents INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_by_campaign ON posts (campaign_id, created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    channel TEXT NOT NULL,
    idempotency_key TEXT,
    campaign_id TEXT,
    item_id TEXT,
    outcome TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    error_code TEXT,
    post_id TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_campaign ON deliveries (campaign_id, seq);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    remaining INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    after_commit INTEGER NOT NULL
);
"""

DeliveryOutcome = Literal["created", "replayed", "rejected", "failed"]


@dataclass(frozen=True)
class PostInput:
    channel: str
    campaign_id: str
    item_id: str
    format: str
    title: str
    body: str
    budget_cents: int


@dataclass(frozen=True)
class Post:
    id: str
    idempotency_key: str
    fingerprint: str
    channel: str
    campaign_id: str
    item_id: str
    format: str
    title: str
    body: str
    budget_cents: int
    created_at: float  # unix seconds


@dataclass(frozen=True)
class Fault:
    """An injected failure: answer ``status_code``, before or after creating the post."""

    status_code: int
    after_commit: bool


@dataclass(frozen=True)
class PublishOutcome:
    kind: Literal["created", "replayed", "conflict"]
    post: Post


class SandboxStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.db_path} has sandbox schema v{version}; this code knows v{_SCHEMA_VERSION}"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: transactions are explicit, so BEGIN IMMEDIATE is honoured.
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---- publishing -------------------------------------------------------------------
    def publish(
        self, idempotency_key: str, fingerprint: str, post: PostInput, *, status_code: int = 201
    ) -> PublishOutcome:
        """Create the post unless this key was seen; log the delivery in the same transaction.

        ``status_code`` is what the caller will answer for a new post (an injected fault
        may answer 5xx after committing, to simulate a response lost on the way back).
        """
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM posts WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                existing = _post_from_row(row)
                if existing.fingerprint == fingerprint:
                    kind: Literal["replayed", "conflict"] = "replayed"
                    self._log(conn, now, post, idempotency_key, "replayed", 200, None, existing.id)
                else:
                    kind = "conflict"
                    self._log(
                        conn, now, post, idempotency_key, "rejected", 409,
                        "idempotency_key_reused", None,
                    )
                return PublishOutcome(kind, existing)
            created = Post(
                id=f"{post.channel}_{uuid.uuid4().hex[:24]}",
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                channel=post.channel,
                campaign_id=post.campaign_id,
                item_id=post.item_id,
                format=post.format,
                title=post.title,
                body=post.body,
                budget_cents=post.budget_cents,
                created_at=now,
            )
            conn.execute(
                "INSERT INTO posts (id, idempotency_key, fingerprint, channel, campaign_id,"
                " item_id, format, title, body, budget_cents, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    created.id, created.idempotency_key, created.fingerprint, created.channel,
                    created.campaign_id, created.item_id, created.format, created.title,
                    created.body, created.budget_cents, created.created_at,
                ),
            )
            self._log(conn, now, post, idempotency_key, "created", status_code, None, created.id)
            return PublishOutcome("created", created)

    def record_rejection(
        self,
        *,
        channel: str,
        idempotency_key: str | None,
        campaign_id: str | None,
        item_id: str | None,
        outcome: DeliveryOutcome,
        status_code: int,
        error_code: str,
    ) -> None:
        """Log an attempt that created nothing (invalid request or injected outage)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO deliveries (received_at, channel, idempotency_key, campaign_id,"
                " item_id, outcome, status_code, error_code, post_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (time.time(), channel, idempotency_key, campaign_id, item_id, outcome,
                 status_code, error_code),
            )

    @staticmethod
    def _log(
        conn: sqlite3.Connection,
        now: float,
        post: PostInput,
        key: str,
        outcome: DeliveryOutcome,
        status_code: int,
        error_code: str | None,
        post_id: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO deliveries (received_at, channel, idempotency_key, campaign_id,"
            " item_id, outcome, status_code, error_code, post_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, post.channel, key, post.campaign_id, post.item_id, outcome, status_code,
             error_code, post_id),
        )

    # ---- reads ------------------------------------------------------------------------
    def get_post(self, post_id: str) -> Post | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
        return _post_from_row(row) if row is not None else None

    def list_posts(self, campaign_id: str | None = None, channel: str | None = None) -> list[Post]:
        query = "SELECT * FROM posts WHERE (? IS NULL OR campaign_id = ?)" \
            " AND (? IS NULL OR channel = ?) ORDER BY created_at, id"
        with self._connect() as conn:
            rows = conn.execute(query, (campaign_id, campaign_id, channel, channel)).fetchall()
        return [_post_from_row(r) for r in rows]

    def list_deliveries(self, campaign_id: str | None = None) -> list[dict[str, object]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM deliveries WHERE (? IS NULL OR campaign_id = ?) ORDER BY seq",
                (campaign_id, campaign_id),
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- fault injection --------------------------------------------------------------
    def set_fault(self, count: int, status_code: int, after_commit: bool) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM faults")
            if count > 0:
                conn.execute(
                    "INSERT INTO faults (id, remaining, status_code, after_commit)"
                    " VALUES (1, ?, ?, ?)",
                    (count, status_code, int(after_commit)),
                )

    def take_fault(self) -> Fault | None:
        """Consume one pending injected failure, if any (atomically)."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM faults WHERE id = 1").fetchone()
            if row is None:
                return None
            if row["remaining"] <= 1:
                conn.execute("DELETE FROM faults")
            else:
                conn.execute("UPDATE faults SET remaining = remaining - 1")
            return Fault(status_code=row["status_code"], after_commit=bool(row["after_commit"]))

    def pending_faults(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT remaining FROM faults WHERE id = 1").fetchone()
        return int(row["remaining"]) if row is not None else 0


def _post_from_row(row: sqlite3.Row) -> Post:
    return Post(**{key: row[key] for key in row.keys()})
