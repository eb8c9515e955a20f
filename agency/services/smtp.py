"""A local SMTP server for local mode and tests: accepts every message, keeps it in SQLite.

Bound to 127.0.0.1 only (it relays nothing and authenticates no one, so it must not be
reachable from elsewhere). Each message received is one row: Message-ID, envelope sender and
recipients, Subject, size, receipt time and the raw message. Receipts are never merged, so a
message sent twice (SMTP is at-least-once; see :mod:`agency.integrations.email`) shows up as
two rows with the same Message-ID, which :meth:`LocalSmtpServer.duplicate_message_ids` reports.

Use::

    with LocalSmtpServer(db_path, port=0) as server:   # port 0: pick a free one
        ... send to 127.0.0.1:server.port ...
        server.messages()

or run it: ``python -m agency.services.smtp --port 8025 --db data/smtp.sqlite``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    raw BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_message_id ON messages (message_id);
"""


@dataclass(frozen=True)
class ReceivedMessage:
    seq: int
    message_id: str | None
    mail_from: str
    rcpt_to: tuple[str, ...]
    subject: str
    size: int  # bytes of the message as received (headers and body)
    received_at: float  # unix seconds
    raw: bytes


class MessageStore:
    """The SQLite file of received messages; one connection per operation (any thread)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30.0)
        try:
            conn.row_factory = sqlite3.Row
            with conn:  # commit on success
                yield conn
        finally:
            conn.close()

    def add(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> int:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        message_id = parsed.get("Message-ID")
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (message_id, mail_from, rcpt_to, subject, size, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(message_id).strip() if message_id else None, mail_from, json.dumps(rcpt_to),
                 str(parsed.get("Subject", "")), len(raw), time.time(), raw),
            )
            return int(cursor.lastrowid or 0)

    def messages(self, message_id: str | None = None) -> list[ReceivedMessage]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM messages WHERE (? IS NULL OR message_id = ?) ORDER BY seq",
                (message_id, message_id),
            ).fetchall()
        return [
            ReceivedMessage(r["seq"], r["message_id"], r["mail_from"], tuple(json.loads(r["rcpt_to"])),
                            r["subject"], r["size"], r["received_at"], bytes(r["raw"]))
            for r in rows
        ]

    def duplicate_message_ids(self) -> dict[str, int]:
        """Message-IDs received more than once, with how many times."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT message_id, COUNT(*) AS n FROM messages WHERE message_id IS NOT NULL"
                " GROUP BY message_id HAVING COUNT(*) > 1 ORDER BY message_id"
            ).fetchall()
        return {r["message_id"]: r["n"] for r in rows}


class _StoringHandler:
    """aiosmtpd handler: accept every recipient, store each message on DATA."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        # A quick local insert; the controller runs its own event loop thread.
        self._store.add(str(envelope.mail_from or ""), [str(r) for r in envelope.rcpt_tos], raw)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LocalSmtpServer:
    """The SMTP server on 127.0.0.1:``port`` (0: a free port), storing into ``db_path``."""

    def __init__(self, db_path: Path, port: int = 8025) -> None:
        self.store = MessageStore(db_path)
        self._requested_port = port
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> LocalSmtpServer:
        if self._controller is not None:
            return self
        attempts = 3 if self._requested_port == 0 else 1
        for attempt in range(attempts):
            # aiosmtpd's controller checks readiness by connecting to the port it was given,
            # so a free port is chosen here rather than letting the OS pick one at bind time.
            self.port = self._requested_port or _free_port()
            controller = Controller(
                _StoringHandler(self.store), hostname=HOST, port=self.port,
                data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True,
            )
            try:
                controller.start()
            except OSError:
                if attempt == attempts - 1:
                    raise
                continue
            self._controller = controller
            return self
        raise RuntimeError("unreachable")

    @property
    def bound_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket; empty when stopped."""
        server = self._controller.server if self._controller is not None else None
        return [tuple(sock.getsockname()[:2]) for sock in (server.sockets if server else [])]

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def messages(self, message_id: str | None = None) -> list[ReceivedMessage]:
        return self.store.messages(message_id)

    def duplicate_message_ids(self) -> dict[str, int]:
        return self.store.duplicate_message_ids()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agency.services.smtp", description="Local SMTP server (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--db", type=Path, required=True, help="SQLite file the received messages go to")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with LocalSmtpServer(args.db, port=args.port) as server:
        print(f"smtp listening on {HOST}:{server.port}, storing to {args.db}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
