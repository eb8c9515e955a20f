"""SQLite persistence for the sandbox channel: posts, budget changes, delivery log and faults.

Every operation opens its own connection (the app serves requests from a thread pool) and
writes inside ``BEGIN IMMEDIATE``, which takes SQLite's write lock before reading. That makes
"look up the idempotency key, then insert" atomic across threads and processes alike.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agency.sandbox import sqlite

# v2: budget_changes table; deliveries gained ``operation`` and ``budget_cents``.
_SCHEMA_VERSION = 2

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
    post_id TEXT,
    operation TEXT NOT NULL DEFAULT 'publish',
    budget_cents INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_by_campaign ON deliveries (campaign_id, seq);
CREATE TABLE IF NOT EXISTS budget_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id TEXT NOT NULL REFERENCES posts (id),
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    at REAL NOT NULL,
    at_simulated_s REAL NOT NULL,
    budget_cents INTEGER NOT NULL,
    spent_cents INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_changes_by_post ON budget_changes (post_id, seq);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    remaining INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    after_commit INTEGER NOT NULL
);
"""

# Columns added to tables that existed in schema v1 (CREATE TABLE IF NOT EXISTS skips them).
_ADDED_COLUMNS = {
    "deliveries": (
        ("operation", "TEXT NOT NULL DEFAULT 'publish'"),
        ("budget_cents", "INTEGER"),
    ),
}

DeliveryOutcome = Literal["created", "updated", "replayed", "rejected", "failed"]
DeliveryOperation = Literal["publish", "budget_update"]


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
class BudgetChange:
    """A new total paid budget for a live post."""

    at: float  # unix seconds
    at_simulated_s: float  # simulated seconds since publishing, fixed when the change was made
    budget_cents: int
    spent_cents: int  # reported spend when the change was made


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
    published_budget_cents: int
    created_at: float  # unix seconds
    budget_changes: tuple[BudgetChange, ...] = ()

    @property
    def budget_cents(self) -> int:
        """The current total paid budget: the latest change, else the published one."""
        if self.budget_changes:
            return self.budget_changes[-1].budget_cents
        return self.published_budget_cents

    def elapsed_simulated_s(self, now: float, time_scale: float) -> float:
        return max(0.0, now - self.created_at) * time_scale


@dataclass(frozen=True)
class Fault:
    """An injected failure: answer ``status_code``, before or after creating the post."""

    status_code: int
    after_commit: bool


@dataclass(frozen=True)
class PublishOutcome:
    kind: Literal["created", "replayed", "conflict"]
    post: Post


@dataclass(frozen=True)
class BudgetUpdateOutcome:
    """``post`` is the post as of the change (for a replay: as the first answer showed it);
    ``spent_cents`` is the spend when the request was evaluated (for ``below_spend``)."""

    kind: Literal["updated", "replayed", "conflict", "below_spend", "not_found"]
    post: Post | None
    spent_cents: int = 0


# Spend (cents, as reported in metrics) of a post at a simulated time since publishing.
SpendAt = Callable[[Post, float], int]


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
            for table, columns in _ADDED_COLUMNS.items():
                present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
                for name, declaration in columns:
                    if name not in present:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _connect(self):
        return sqlite.connect(self.db_path)

    def _write(self):
        return sqlite.write_transaction(self.db_path)

    # ---- publishing -------------------------------------------------------------------
    def publish(
        self,
        idempotency_key: str,
        fingerprint: str,
        post: PostInput,
        *,
        status_code: int = 201,
        post_id: str | None = None,
        replay_logged_as: tuple[DeliveryOutcome, int, str | None] = ("replayed", 200, None),
        on_create: Callable[[sqlite3.Connection, Post], None] | None = None,
    ) -> PublishOutcome:
        """Create the post unless this key was seen; log the delivery in the same transaction.

        ``status_code`` is what the caller will answer for a new post (an injected fault
        may answer 5xx after committing, to simulate a response lost on the way back).

        Provider faces (:mod:`agency.sandbox.providers`) publish here too, so their posts get
        metrics, budgets and delivery log entries like channel posts: ``post_id`` is the
        provider's own id for the post, ``replay_logged_as`` how a repeat is logged (a network
        refusing duplicate content logs a rejection, not a replay), and ``on_create`` writes
        the face's own row in the same transaction.
        """
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM posts WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                existing = _load_post(conn, row)
                if existing.fingerprint == fingerprint:
                    kind: Literal["replayed", "conflict"] = "replayed"
                    logged_outcome, logged_status, logged_error = replay_logged_as
                    self._log(
                        conn, now, post.channel, post.campaign_id, post.item_id,
                        idempotency_key, logged_outcome, logged_status, logged_error,
                        existing.id, "publish", post.budget_cents,
                    )
                else:
                    kind = "conflict"
                    self._log(
                        conn, now, post.channel, post.campaign_id, post.item_id,
                        idempotency_key, "rejected", 409, "idempotency_key_reused", None,
                        "publish", post.budget_cents,
                    )
                return PublishOutcome(kind, existing)
            created = Post(
                id=post_id or f"{post.channel}_{uuid.uuid4().hex[:24]}",
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                channel=post.channel,
                campaign_id=post.campaign_id,
                item_id=post.item_id,
                format=post.format,
                title=post.title,
                body=post.body,
                published_budget_cents=post.budget_cents,
                created_at=now,
            )
            conn.execute(
                "INSERT INTO posts (id, idempotency_key, fingerprint, channel, campaign_id,"
                " item_id, format, title, body, budget_cents, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    created.id, created.idempotency_key, created.fingerprint, created.channel,
                    created.campaign_id, created.item_id, created.format, created.title,
                    created.body, created.published_budget_cents, created.created_at,
                ),
            )
            if on_create is not None:
                on_create(conn, created)
            self._log(
                conn, now, post.channel, post.campaign_id, post.item_id, idempotency_key,
                "created", status_code, None, created.id, "publish", post.budget_cents,
            )
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
        operation: DeliveryOperation = "publish",
        post_id: str | None = None,
        budget_cents: int | None = None,
    ) -> None:
        """Log an attempt that changed nothing (invalid request or injected outage)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO deliveries (received_at, channel, idempotency_key, campaign_id,"
                " item_id, outcome, status_code, error_code, post_id, operation, budget_cents)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), channel, idempotency_key, campaign_id, item_id, outcome,
                 status_code, error_code, post_id, operation, budget_cents),
            )

    # ---- budget changes ---------------------------------------------------------------
    def update_budget(
        self,
        post_id: str,
        idempotency_key: str,
        fingerprint: str,
        budget_cents: int,
        *,
        time_scale: float,
        spend_at: SpendAt,
        status_code: int = 200,
        raise_to_spend: bool = False,
    ) -> BudgetUpdateOutcome:
        """Set a post's total budget unless this key was seen; log it in the same transaction.

        ``raise_to_spend``: a total below the spend at this instant becomes that spend (a pause:
        "stop here"), instead of being refused.

        The spend check, the clock reading and the insert happen under the write lock, so a
        concurrent change or metrics read (see :meth:`post_at_now`) cannot interleave: the
        recorded ``at_simulated_s`` is the exact time the spend was checked at.
        """
        with self._write() as conn:
            row = conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
            if row is None:
                return BudgetUpdateOutcome("not_found", None)
            post = _load_post(conn, row)
            seen = conn.execute(
                "SELECT seq, fingerprint FROM budget_changes WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            now = time.time()

            def log(outcome: DeliveryOutcome, status: int, error: str | None) -> None:
                self._log(
                    conn, now, post.channel, post.campaign_id, post.item_id, idempotency_key,
                    outcome, status, error, post.id, "budget_update", budget_cents,
                )

            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    log("rejected", 409, "idempotency_key_reused")
                    return BudgetUpdateOutcome("conflict", post)
                log("replayed", 200, None)
                as_first_answered = _load_post(conn, row, up_to_seq=seen["seq"])
                return BudgetUpdateOutcome("replayed", as_first_answered)
            at_simulated_s = post.elapsed_simulated_s(now, time_scale)
            spent = spend_at(post, at_simulated_s)
            if raise_to_spend:
                budget_cents = max(budget_cents, spent)
            if budget_cents < spent:
                log("rejected", 422, "budget_below_spend")
                return BudgetUpdateOutcome("below_spend", post, spent)
            conn.execute(
                "INSERT INTO budget_changes (post_id, idempotency_key, fingerprint, at,"
                " at_simulated_s, budget_cents, spent_cents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (post.id, idempotency_key, fingerprint, now, at_simulated_s, budget_cents, spent),
            )
            log("updated", status_code, None)
            return BudgetUpdateOutcome("updated", _load_post(conn, row), spent)

    @staticmethod
    def _log(
        conn: sqlite3.Connection,
        now: float,
        channel: str,
        campaign_id: str,
        item_id: str,
        key: str,
        outcome: DeliveryOutcome,
        status_code: int,
        error_code: str | None,
        post_id: str | None,
        operation: DeliveryOperation,
        budget_cents: int,
    ) -> None:
        conn.execute(
            "INSERT INTO deliveries (received_at, channel, idempotency_key, campaign_id,"
            " item_id, outcome, status_code, error_code, post_id, operation, budget_cents)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, channel, key, campaign_id, item_id, outcome, status_code, error_code,
             post_id, operation, budget_cents),
        )

    # ---- reads ------------------------------------------------------------------------
    def get_post(self, post_id: str) -> Post | None:
        with self._connect() as conn:
            conn.execute("BEGIN")  # one snapshot for the post and its budget changes
            row = conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
            post = _load_post(conn, row) if row is not None else None
            conn.execute("COMMIT")
        return post

    def post_at_now(self, post_id: str) -> tuple[Post | None, float]:
        """The post and the clock, read under the write lock.

        Budget changes read the clock under the same lock, so a metrics reading can never
        evaluate the pre-change schedule at a time after a change it did not see; that keeps
        the counters monotone across changes.
        """
        with self._write() as conn:
            row = conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
            post = _load_post(conn, row) if row is not None else None
            return post, time.time()

    def list_posts(self, campaign_id: str | None = None, channel: str | None = None) -> list[Post]:
        query = "SELECT * FROM posts WHERE (? IS NULL OR campaign_id = ?)" \
            " AND (? IS NULL OR channel = ?) ORDER BY created_at, id"
        with self._connect() as conn:
            conn.execute("BEGIN")
            rows = conn.execute(query, (campaign_id, campaign_id, channel, channel)).fetchall()
            posts = [_load_post(conn, r) for r in rows]
            conn.execute("COMMIT")
        return posts

    def list_deliveries(self, campaign_id: str | None = None) -> list[dict[str, object]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM deliveries WHERE (? IS NULL OR campaign_id = ?) ORDER BY seq",
                (campaign_id, campaign_id),
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- tables of provider faces -------------------------------------------------------
    def create_tables(self, ddl: str) -> None:
        """Create a provider face's own tables (``CREATE TABLE IF NOT EXISTS ...``) in this file."""
        with self._connect() as conn:
            conn.executescript(ddl)

    def query(self, sql: str, params: tuple = ()) -> list[dict[str, object]]:
        """Rows of a read-only query (provider faces reading their own tables), as dicts."""
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]

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


def _load_post(conn: sqlite3.Connection, row: sqlite3.Row, up_to_seq: int | None = None) -> Post:
    """The post in ``row`` with its budget changes (only those up to ``up_to_seq`` if given)."""
    changes = conn.execute(
        "SELECT at, at_simulated_s, budget_cents, spent_cents FROM budget_changes"
        " WHERE post_id = ? AND (? IS NULL OR seq <= ?) ORDER BY seq",
        (row["id"], up_to_seq, up_to_seq),
    ).fetchall()
    return Post(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        channel=row["channel"],
        campaign_id=row["campaign_id"],
        item_id=row["item_id"],
        format=row["format"],
        title=row["title"],
        body=row["body"],
        published_budget_cents=row["budget_cents"],
        created_at=row["created_at"],
        budget_changes=tuple(
            BudgetChange(c["at"], c["at_simulated_s"], c["budget_cents"], c["spent_cents"])
            for c in changes
        ),
    )
