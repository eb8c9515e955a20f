"""SQLite state of the sandbox's HubSpot face: records, unique values, search index history,
face settings and the log of webhook deliveries.

Tables live in the sandbox's own SQLite file under a ``hubspot_`` prefix. Every operation opens
its own connection and writes inside ``BEGIN IMMEDIATE``, so "check the unique values, then
insert" is atomic across the server's threads (as in :mod:`agency.sandbox.store`).

Search sees the index, not the records: every write appends a version of the record that
becomes searchable ``index_lag_s`` (a face setting, read at write time) later, and a search reads,
per record, the newest searchable version. That is how HubSpot's eventually consistent search
behaves: a just-changed record is found with its old values (or not at all, when just created)
until the index catches up. :meth:`HubSpotStore.refresh_index` makes everything searchable now.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agency.sandbox import sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hubspot_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_type TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    archived_at REAL
);
CREATE INDEX IF NOT EXISTS hubspot_records_by_type ON hubspot_records (object_type, archived, id);
CREATE TABLE IF NOT EXISTS hubspot_unique_values (
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    PRIMARY KEY (object_type, property, value)
);
CREATE INDEX IF NOT EXISTS hubspot_unique_values_by_record ON hubspot_unique_values (record_id);
CREATE TABLE IF NOT EXISTS hubspot_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id INTEGER NOT NULL,
    object_type TEXT NOT NULL,
    at REAL NOT NULL,
    indexed_at REAL NOT NULL,
    properties TEXT NOT NULL,
    created_at REAL NOT NULL,
    archived INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hubspot_versions_by_record ON hubspot_versions (record_id, seq);
CREATE INDEX IF NOT EXISTS hubspot_versions_by_type ON hubspot_versions (object_type, indexed_at);
CREATE TABLE IF NOT EXISTS hubspot_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hubspot_webhook_attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    batch_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    target_url TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    event_ids TEXT NOT NULL
);
"""

# Record ids look like HubSpot's (numeric strings) without starting at 1.
_FIRST_ID = 1001

ChangeKind = Literal["creation", "propertyChange", "deletion"]



@dataclass(frozen=True)
class Record:
    id: int
    object_type: str
    properties: dict[str, str]  # user-set values only; system date properties are derived
    created_at: float  # unix seconds
    updated_at: float
    archived: bool = False
    archived_at: float | None = None


@dataclass(frozen=True)
class Change:
    """One thing a webhook subscriber hears about (a property change carries name and value)."""

    kind: ChangeKind
    object_type: str
    record_id: int
    occurred_at: float
    version_seq: int
    property_name: str | None = None
    property_value: str | None = None


@dataclass(frozen=True)
class Conflict:
    """A unique value already held by another live record."""

    property: str
    value: str
    existing_id: int


@dataclass(frozen=True)
class WriteResult:
    record: Record | None = None
    conflict: Conflict | None = None
    created: bool = False
    changes: list[Change] = field(default_factory=list)


def normalized_unique(property_name: str, value: str) -> str:
    # Email addresses and domains are case-insensitive identifiers; other unique values are exact.
    return value.strip().lower() if property_name in ("email", "domain") else value


class HubSpotStore:
    def __init__(self, db_path: Path, unique_properties: dict[str, tuple[str, ...]]) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.unique_properties = unique_properties
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO sqlite_sequence (name, seq) SELECT 'hubspot_records', ?"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'hubspot_records')",
                (_FIRST_ID - 1,),
            )

    def _connect(self):
        return sqlite.connect(self.db_path)

    def _write(self):
        return sqlite.write_transaction(self.db_path)

    # ---- reads -------------------------------------------------------------------------
    def get(self, object_type: str, record_id: int) -> Record | None:
        with self._connect() as conn:
            return _load(conn, object_type, record_id)

    def find_unique(self, object_type: str, property_name: str, value: str) -> Record | None:
        """The live record holding ``value`` in a unique property."""
        with self._connect() as conn:
            record_id = _holder(conn, object_type, property_name, value)
            return None if record_id is None else _load(conn, object_type, record_id)

    def list_page(self, object_type: str, *, after: int, limit: int, archived: bool) -> tuple[list[Record], bool]:
        """Records with id > ``after`` in id order, and whether more follow."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM hubspot_records WHERE object_type = ? AND archived = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (object_type, int(archived), after, limit + 1),
            ).fetchall()
        records = [_record(row) for row in rows[:limit]]
        return records, len(rows) > limit

    def indexed(self, object_type: str, as_of: float) -> list[Record]:
        """What the search index holds at ``as_of``: each record's newest searchable version."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT v.* FROM hubspot_versions v JOIN ("
                "  SELECT record_id, MAX(seq) AS seq FROM hubspot_versions"
                "  WHERE object_type = ? AND indexed_at <= ? GROUP BY record_id"
                ") newest ON v.seq = newest.seq WHERE v.archived = 0 ORDER BY v.record_id",
                (object_type, as_of),
            ).fetchall()
        return [
            Record(row["record_id"], object_type, json.loads(row["properties"]), row["created_at"], row["at"])
            for row in rows
        ]

    # ---- writes ------------------------------------------------------------------------
    def create(self, object_type: str, properties: dict[str, str]) -> WriteResult:
        now = time.time()
        with self._write() as conn:
            conflict = self._conflict(conn, object_type, None, properties)
            if conflict is not None:
                return WriteResult(conflict=conflict)
            return self._insert(conn, object_type, properties, now)

    def update(self, object_type: str, record_id: int, changes: dict[str, str]) -> WriteResult:
        """Apply ``changes`` (an empty string clears a property); no record -> empty result."""
        now = time.time()
        with self._write() as conn:
            current = _load(conn, object_type, record_id)
            if current is None or current.archived:
                return WriteResult()
            return self._apply(conn, current, changes, now)

    def upsert(self, object_type: str, id_property: str, inputs: list[tuple[str, dict[str, str]]]) -> WriteResult | list[WriteResult]:
        """Create or update each (unique value, properties) in one transaction: all or nothing.

        Returns a list of results, or the first failing result (a conflict) when any input
        cannot be applied; then nothing is written.
        """
        now = time.time()
        results: list[WriteResult] = []
        with self._write() as conn:
            conn.execute("SAVEPOINT upsert")
            for key, properties in inputs:
                properties = {**properties, id_property: key}
                holder = _holder(conn, object_type, id_property, key)
                if holder is None:
                    conflict = self._conflict(conn, object_type, None, properties)
                    result = WriteResult(conflict=conflict) if conflict else self._insert(conn, object_type, properties, now)
                else:
                    current = _load(conn, object_type, holder)
                    assert current is not None
                    result = self._apply(conn, current, properties, now)
                if result.conflict is not None:
                    conn.execute("ROLLBACK TO upsert")
                    conn.execute("RELEASE upsert")
                    return result
                results.append(result)
            conn.execute("RELEASE upsert")
        return results

    def archive(self, object_type: str, record_id: int) -> WriteResult:
        """Archive a live record; an unknown or already archived one gives an empty result."""
        now = time.time()
        with self._write() as conn:
            current = _load(conn, object_type, record_id)
            if current is None or current.archived:
                return WriteResult(record=current)
            conn.execute(
                "UPDATE hubspot_records SET archived = 1, archived_at = ? WHERE id = ?", (now, record_id)
            )
            # An archived record no longer holds its unique values (a new record may take them).
            conn.execute("DELETE FROM hubspot_unique_values WHERE record_id = ?", (record_id,))
            archived = Record(current.id, object_type, current.properties, current.created_at,
                              current.updated_at, True, now)
            seq = self._version(conn, archived, now)
            return WriteResult(record=archived, changes=[Change("deletion", object_type, record_id, now, seq)])

    def refresh_index(self) -> int:
        """Let the index catch up: every version written so far becomes searchable now."""
        now = time.time()
        with self._write() as conn:
            return conn.execute(
                "UPDATE hubspot_versions SET indexed_at = ? WHERE indexed_at > ?", (now, now)
            ).rowcount

    # ---- settings and webhook log ------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        with self._connect() as conn:
            rows = conn.execute("SELECT key, value FROM hubspot_settings").fetchall()
        return {row["key"]: json.loads(row["value"]) for row in rows}

    def put_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Set (or, with None, remove) settings; returns them all."""
        with self._write() as conn:
            for key, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM hubspot_settings WHERE key = ?", (key,))
                else:
                    conn.execute(
                        "INSERT INTO hubspot_settings (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, json.dumps(value)),
                    )
        return self.settings()

    def log_attempt(self, batch_id: str, attempt: int, target_url: str, status_code: int | None,
                    error: str | None, event_ids: list[int]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO hubspot_webhook_attempts (at, batch_id, attempt, target_url, status_code,"
                " error, event_ids) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), batch_id, attempt, target_url, status_code, error, json.dumps(event_ids)),
            )

    def attempts(self, after_seq: int = 0) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM hubspot_webhook_attempts WHERE seq > ? ORDER BY seq", (after_seq,)
            ).fetchall()
        return [{**dict(row), "event_ids": json.loads(row["event_ids"])} for row in rows]

    # ---- internals ---------------------------------------------------------------------
    def _conflict(self, conn: sqlite3.Connection, object_type: str, record_id: int | None,
                  properties: dict[str, str]) -> Conflict | None:
        for name in self.unique_properties.get(object_type, ()):
            value = properties.get(name)
            if not value:
                continue
            holder = _holder(conn, object_type, name, value)
            if holder is not None and holder != record_id:
                return Conflict(name, value, holder)
        return None

    def _insert(self, conn: sqlite3.Connection, object_type: str, properties: dict[str, str], now: float) -> WriteResult:
        values = {k: v for k, v in properties.items() if v != ""}
        cursor = conn.execute(
            "INSERT INTO hubspot_records (object_type, properties, created_at, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (object_type, json.dumps(values), now, now),
        )
        record = Record(int(cursor.lastrowid), object_type, values, now, now)
        self._claim(conn, record)
        seq = self._version(conn, record, now)
        return WriteResult(record=record, created=True, changes=[Change("creation", object_type, record.id, now, seq)])

    def _apply(self, conn: sqlite3.Connection, current: Record, changes: dict[str, str], now: float) -> WriteResult:
        conflict = self._conflict(conn, current.object_type, current.id, changes)
        if conflict is not None:
            return WriteResult(conflict=conflict)
        values = dict(current.properties)
        changed: list[tuple[str, str]] = []
        for name, value in changes.items():
            if values.get(name, "") == value:
                continue
            changed.append((name, value))
            if value == "":
                values.pop(name, None)
            else:
                values[name] = value
        if not changed:
            # HubSpot leaves an unchanged record (and its modification date) alone.
            return WriteResult(record=current)
        conn.execute(
            "UPDATE hubspot_records SET properties = ?, updated_at = ? WHERE id = ?",
            (json.dumps(values), now, current.id),
        )
        record = Record(current.id, current.object_type, values, current.created_at, now)
        self._claim(conn, record)
        seq = self._version(conn, record, now)
        return WriteResult(record=record, changes=[
            Change("propertyChange", record.object_type, record.id, now, seq, name, value)
            for name, value in changed
        ])

    def _claim(self, conn: sqlite3.Connection, record: Record) -> None:
        """Make the unique-value table match the record's current values."""
        conn.execute("DELETE FROM hubspot_unique_values WHERE record_id = ?", (record.id,))
        for name in self.unique_properties.get(record.object_type, ()):
            value = record.properties.get(name)
            if value:
                conn.execute(
                    "INSERT INTO hubspot_unique_values (object_type, property, value, record_id)"
                    " VALUES (?, ?, ?, ?)",
                    (record.object_type, name, normalized_unique(name, value), record.id),
                )

    def _version(self, conn: sqlite3.Connection, record: Record, now: float) -> int:
        row = conn.execute("SELECT value FROM hubspot_settings WHERE key = 'index_lag_s'").fetchone()
        lag = float(json.loads(row["value"])) if row is not None else 0.0
        cursor = conn.execute(
            "INSERT INTO hubspot_versions (record_id, object_type, at, indexed_at, properties, created_at,"
            " archived) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.object_type, now, now + lag, json.dumps(record.properties),
             record.created_at, int(record.archived)),
        )
        # Versions hidden behind a newer searchable one can never be read again.
        conn.execute(
            "DELETE FROM hubspot_versions WHERE record_id = ? AND seq < ("
            " SELECT COALESCE(MAX(seq), 0) FROM hubspot_versions WHERE record_id = ? AND indexed_at <= ?)",
            (record.id, record.id, now),
        )
        return int(cursor.lastrowid)


def _holder(conn: sqlite3.Connection, object_type: str, property_name: str, value: str) -> int | None:
    row = conn.execute(
        "SELECT record_id FROM hubspot_unique_values WHERE object_type = ? AND property = ? AND value = ?",
        (object_type, property_name, normalized_unique(property_name, value)),
    ).fetchone()
    return None if row is None else int(row["record_id"])


def _load(conn: sqlite3.Connection, object_type: str, record_id: int) -> Record | None:
    row = conn.execute(
        "SELECT * FROM hubspot_records WHERE id = ? AND object_type = ?", (record_id, object_type)
    ).fetchone()
    return None if row is None else _record(row)


def _record(row: sqlite3.Row) -> Record:
    return Record(
        id=int(row["id"]),
        object_type=row["object_type"],
        properties=json.loads(row["properties"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        archived=bool(row["archived"]),
        archived_at=row["archived_at"],
    )
