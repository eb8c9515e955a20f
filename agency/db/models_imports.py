"""Contact imports: the upload, its staged rows, the chunk ledger and the quarantine.

An upload is stored once (``contact_imports.upload``) and staged as one row per CSV record, so
workflows pass ids, never rows. ``contact_import_chunks`` records each finished chunk of a pass
(pass 0 = the import, 1.. = re-processing the quarantine): a chunk is written in one transaction
together with its ledger row, so a retried chunk is recognised instead of inserted or counted twice.
Same Base and naming convention as agency.db.models (migration 0012).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in, _updated_at

IMPORT_STATUSES = ("received", "processing", "completed", "failed")
ROW_OUTCOMES = ("inserted", "merged", "quarantined")
QUARANTINE_STATUSES = ("quarantined", "reprocessed")


class ContactImport(Base):
    __tablename__ = "contact_imports"
    __table_args__ = (
        CheckConstraint(_in("status", IMPORT_STATUSES), name="status_valid"),
        # Every processed row is in exactly one of the three counts.
        CheckConstraint("clean + merged + quarantined = rows_done", name="counts_add_up"),
        CheckConstraint("rows_total IS NULL OR rows_done <= rows_total", name="rows_done_within_total"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str]
    status: Mapped[str] = mapped_column(server_default="received")
    region: Mapped[str | None]  # default phone region (ISO 3166 alpha-2) of the latest pass
    upload: Mapped[bytes | None] = mapped_column(LargeBinary)  # the CSV as received; cleared once staged
    upload_bytes: Mapped[int] = mapped_column(Integer)
    rows_total: Mapped[int | None] = mapped_column(Integer)  # known once staged
    rows_done: Mapped[int] = mapped_column(Integer, server_default="0")
    clean: Mapped[int] = mapped_column(Integer, server_default="0")  # rows inserted as new contacts
    merged: Mapped[int] = mapped_column(Integer, server_default="0")  # rows merged into an earlier or stored contact
    quarantined: Mapped[int] = mapped_column(Integer, server_default="0")  # rows now in the quarantine
    passes: Mapped[int] = mapped_column(Integer, server_default="0")  # re-processing passes started
    workflow_id: Mapped[str | None]
    error: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ContactImportRow(Base):
    """One staged CSV record (header -> cell) and where it went."""

    __tablename__ = "contact_import_rows"
    __table_args__ = (CheckConstraint(f"outcome IS NULL OR {_in('outcome', ROW_OUTCOMES)}", name="outcome_valid"),)

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw: Mapped[dict[str, Any]]
    outcome: Mapped[str | None]
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))


class ContactImportChunk(Base):
    """A finished chunk of a pass, with what it counted (the idempotency key of chunk work)."""

    __tablename__ = "contact_import_chunks"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True)
    pass_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer, server_default="0")
    clean: Mapped[int] = mapped_column(Integer, server_default="0")
    merged: Mapped[int] = mapped_column(Integer, server_default="0")
    quarantined: Mapped[int] = mapped_column(Integer, server_default="0")
    finished_at: Mapped[datetime] = _created_at()


class ImportQuarantine(Base):
    """A rejected row with every reason ([{field, code, message}]); re-processing may release it."""

    __tablename__ = "import_quarantine"
    __table_args__ = (CheckConstraint(_in("status", QUARANTINE_STATUSES), name="status_valid"),)

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw: Mapped[dict[str, Any]]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(server_default="quarantined")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    reprocessed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
