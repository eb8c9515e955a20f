"""Tamper-evident audit log: an append-only, SHA-256 hash chain over ``audit_events``.

Each record's ``hash`` covers its content and the previous record's hash (``prev_hash``), so
altering a record breaks its own hash and deleting one breaks the next record's link. The
single-row ``audit_chain_head`` (written in the same transaction as every append) records the
last id, last hash and record count, so deleting the newest records or emptying the table is
detected as well.

The chain has no secret: it detects edits by anyone who does not recompute every later hash
and the head. Appends are serialised by a transaction-scoped advisory lock, held until the
caller's transaction ends, so concurrent writers extend one chain instead of forking it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
# Arbitrary constant shared by every writer: pg_advisory_xact_lock(key) serialises appends.
AUDIT_CHAIN_LOCK_KEY = 0x61756469745F6C67  # "audit_lg"
VERIFY_BATCH_SIZE = 1000

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuditFields:
    """The hashed content of one audit record (everything except id, prev_hash and hash)."""

    tenant_id: uuid.UUID | None
    actor: str
    action: str
    subject_type: str
    subject_id: str
    outcome: str
    request_id: str | None
    detail: Mapping[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AuditFields:
        """The hashed fields of a stored audit_events row (ORM object or Core row)."""
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def as_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class ChainRecord:
    """A stored audit record as the verifier sees it."""

    id: int
    prev_hash: str
    hash: str
    fields: AuditFields


@dataclass(frozen=True)
class ChainHead:
    """The ``audit_chain_head`` row: what the chain must end with."""

    last_id: int | None
    last_hash: str
    count: int


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    records_checked: int
    bad_record_id: int | None = None
    reason: str | None = None


def _timestamp(value: datetime) -> str:
    # Fixed format (always with microseconds, always UTC) so a value read back in any session
    # time zone encodes exactly like the one hashed before the insert.
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_encoding(prev_hash: str, fields: AuditFields) -> bytes:
    """The exact bytes that are hashed: sorted-key, compact, ASCII-only JSON."""
    payload = {
        "prev_hash": prev_hash,
        "tenant_id": str(fields.tenant_id) if fields.tenant_id is not None else None,
        "actor": fields.actor,
        "action": fields.action,
        "subject_type": fields.subject_type,
        "subject_id": fields.subject_id,
        "outcome": fields.outcome,
        "request_id": fields.request_id,
        "detail": fields.detail,
        "created_at": _timestamp(fields.created_at),
    }
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def record_hash(prev_hash: str, fields: AuditFields) -> str:
    """SHA-256 (hex) of a record's content chained to the previous record's hash."""
    if not _HEX64.fullmatch(prev_hash):
        raise ValueError("prev_hash must be 64 lowercase hex characters")
    return hashlib.sha256(canonical_encoding(prev_hash, fields)).hexdigest()


class ChainVerifier:
    """Checks records one at a time (in id order), so a log of any size verifies in constant memory."""

    def __init__(self, head: ChainHead | None) -> None:
        self._head = head
        self._checked = 0
        self._last_id: int | None = None
        self._last_hash = GENESIS_HASH
        self._head_reached = False
        self.failure: ChainVerification | None = None
        if head is not None and head.count == 0:
            # An empty chain: the head must still be at genesis.
            if head.last_id is not None or head.last_hash != GENESIS_HASH:
                self._fail(head.last_id, "chain head is inconsistent: zero records but a last record set")
            self._head_reached = True

    def _fail(self, record_id: int | None, reason: str) -> None:
        if self.failure is None:
            self.failure = ChainVerification(False, self._checked, record_id, reason)

    def feed(self, record: ChainRecord) -> bool:
        """Check the next record; False once the chain is known to be broken."""
        if self.failure is not None:
            return False
        head = self._head
        if head is not None and not self._head_reached and head.last_id is not None and record.id > head.last_id:
            self._fail(head.last_id, f"record {head.last_id} (the chain head) is missing")
            return False
        self._checked += 1
        if record.prev_hash != self._last_hash:
            after = f"record {self._last_id}" if self._last_id is not None else "the genesis hash"
            self._fail(
                record.id,
                f"record {record.id}: prev_hash does not match {after}"
                " (a record before it was deleted or altered)",
            )
            return False
        try:
            expected = record_hash(record.prev_hash, record.fields)
        except (ValueError, TypeError) as exc:
            self._fail(record.id, f"record {record.id}: cannot be hashed ({exc})")
            return False
        if expected != record.hash:
            self._fail(record.id, f"record {record.id}: content does not match its hash (record altered)")
            return False
        self._last_id, self._last_hash = record.id, record.hash
        if head is not None and not self._head_reached and record.id == head.last_id:
            if record.hash != head.last_hash or self._checked != head.count:
                self._fail(
                    record.id,
                    f"record {record.id}: does not match the chain head"
                    f" (head: {head.count} records, found {self._checked})",
                )
                return False
            self._head_reached = True
        return True

    def finish(self) -> ChainVerification:
        if self.failure is not None:
            return self.failure
        head = self._head
        if head is None:
            self._fail(None, "chain head row is missing (audit_chain_head was deleted or never initialised)")
        elif not self._head_reached:
            found = (
                f"the last record present is {self._last_id}" if self._last_id is not None else "no records remain"
            )
            self._fail(
                head.last_id,
                f"record {head.last_id} is missing: the chain head records {head.count} records"
                f" ending at {head.last_id}, but {found} (records deleted from the end)",
            )
        if self.failure is not None:
            return self.failure
        return ChainVerification(True, self._checked)


def verify_chain(records: Iterable[ChainRecord], head: ChainHead | None) -> ChainVerification:
    """Verify records in id order against the chain head; reports the first bad record.

    Records after the head's last id are accepted when they chain correctly: they were
    appended after the head was read (verification does not block writers).
    """
    verifier = ChainVerifier(head)
    for record in records:
        if not verifier.feed(record):
            break
    return verifier.finish()


# ---- database ---------------------------------------------------------------------------
async def append_audit_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    tenant_id: uuid.UUID | None = None,
    detail: Mapping[str, Any] | None = None,
    outcome: str = "ok",
    request_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Append one record to the chain in the caller's transaction; returns its id.

    The advisory lock is held until the caller's transaction ends: keep that transaction short.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    created_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    # Hash the detail exactly as jsonb will return it (key order, number forms), so the
    # verifier recomputes the same bytes from the stored row.
    stored_detail = (
        await session.execute(select(cast(bindparam("detail", dict(detail or {}), type_=JSONB), JSONB)))
    ).scalar_one()
    await session.execute(select(func.pg_advisory_xact_lock(AUDIT_CHAIN_LOCK_KEY)))
    # FOR UPDATE: under REPEATABLE READ a stale head raises a serialisation error instead of forking.
    head = (
        await session.execute(select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update())
    ).scalar_one_or_none()
    if head is None:
        raise RuntimeError("audit_chain_head is missing: run `agency migrate`, then `agency audit verify`")
    fields = AuditFields(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        outcome=outcome,
        request_id=request_id,
        detail=stored_detail,
        created_at=created_at,
    )
    digest = record_hash(head.last_hash, fields)
    new_id = (
        await session.execute(
            insert(AuditEvent)
            .values(**fields.as_values(), prev_hash=head.last_hash, hash=digest)
            .returning(AuditEvent.id)
        )
    ).scalar_one()
    await session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_id=new_id, last_hash=digest, count=AuditChainHead.count + 1)
        .execution_options(synchronize_session=False)
    )
    return new_id


def _record_from_row(row: Any) -> ChainRecord:
    return ChainRecord(
        id=row.id,
        prev_hash=row.prev_hash,
        hash=row.hash,
        fields=AuditFields.from_row(row),
    )


async def verify_audit_log(session: AsyncSession, *, batch_size: int = VERIFY_BATCH_SIZE) -> ChainVerification:
    """Verify the whole stored chain, reading it in id-ordered batches (bounded memory).

    The head is read first; records appended concurrently afterwards extend it and verify too.
    """
    head_row = (
        await session.execute(
            select(AuditChainHead.last_id, AuditChainHead.last_hash, AuditChainHead.count).where(
                AuditChainHead.id == 1
            )
        )
    ).one_or_none()
    head = ChainHead(head_row.last_id, head_row.last_hash, head_row.count) if head_row is not None else None
    columns = [
        AuditEvent.id, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.tenant_id, AuditEvent.actor,
        AuditEvent.action, AuditEvent.subject_type, AuditEvent.subject_id, AuditEvent.outcome,
        AuditEvent.request_id, AuditEvent.detail, AuditEvent.created_at,
    ]
    verifier = ChainVerifier(head)
    after_id: int | None = None
    # Keyset pages rather than a server-side cursor: works inside any transaction and pool.
    while True:
        query = select(*columns).order_by(AuditEvent.id).limit(batch_size)
        if after_id is not None:
            query = query.where(AuditEvent.id > after_id)
        rows = (await session.execute(query)).all()
        for row in rows:
            if not verifier.feed(_record_from_row(row)):
                return verifier.finish()
        if len(rows) < batch_size:
            return verifier.finish()
        after_id = rows[-1].id
