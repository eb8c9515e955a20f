"""Response bodies of the contact endpoints (requests are a CSV body and query parameters)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ImportAccepted(BaseModel):
    import_id: uuid.UUID
    workflow_id: str
    status: str
    pass_number: int = Field(description="0 for the import, n for its n-th re-processing")


class ImportOut(BaseModel):
    id: uuid.UUID
    filename: str
    status: str = Field(description="received | processing | completed | failed")
    region: str | None = Field(description="default region for national phone numbers (latest pass)")
    rows_total: int | None = Field(description="data rows in the file; null until staged")
    rows_done: int
    clean: int = Field(description="rows inserted as new contacts")
    merged: int = Field(description="rows merged into an earlier row or a stored contact")
    quarantined: int = Field(description="rows held in the quarantine with their reasons")
    progress: float = Field(description="rows_done / rows_total (0 until staged)")
    passes: int = Field(description="re-processing passes started")
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ReasonOut(BaseModel):
    field: str
    code: str
    message: str


class QuarantineRowOut(BaseModel):
    row_number: int
    raw: dict[str, Any]
    reasons: list[ReasonOut]
    status: str = Field(description="quarantined | reprocessed (released by a later pass)")
    updated_at: datetime
    reprocessed_at: datetime | None


class QuarantinePage(BaseModel):
    rows: list[QuarantineRowOut]
    # Pass as after_row (with the same status) for the next page; null on the last page.
    next_after_row: int | None


class ContactOut(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    job_title: str | None
    lifecycle_stage: str | None
    company_id: uuid.UUID | None
    company_domain: str | None
    utm: dict[str, Any]
    properties: dict[str, Any]
    source: str
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    contacts: list[ContactOut]
    next_after: uuid.UUID | None = Field(description="pass as after for the next page; null on the last page")
