"""Contact import use cases: accept an upload, start and follow its workflow, page the results."""

from __future__ import annotations

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from agency.cleaning import csvfile
from agency.cleaning.contracts import CONTACT_IMPORT_WORKFLOW, ContactImportInput
from agency.cleaning.normalize import FieldError, normalize_region
from agency.cleaning.schema import REQUIRED_COLUMNS, duplicate_columns, missing_columns
from agency.db.contact_imports import ContactImportRepository
from agency.db.models_imports import ContactImport
from agency.security.rbac import Principal
from agency.settings import Settings
from api.contacts.schemas import (
    ContactOut,
    ContactPage,
    ImportAccepted,
    ImportOut,
    QuarantinePage,
    QuarantineRowOut,
)
from api.errors import AgencyError, Conflict, NotFound
from api.temporal_gateway import TemporalGateway, unavailable

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_ROWS = 200_000
CSV_MEDIA_TYPES = ("text/csv", "application/csv", "text/plain")
# A chunk is ~1 s of work; the limit is for a stuck database, not for slow rows.
CHUNK_TIMEOUT_S = 120.0


class PayloadTooLarge(AgencyError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AgencyError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidUpload(AgencyError):
    status_code = 422

    def __init__(self, code: str, message: str, **kwargs):
        super().__init__(message, **kwargs)
        self.code = code


def check_region(region: str | None) -> str | None:
    try:
        return normalize_region(region)
    except FieldError as err:
        raise InvalidUpload("region_invalid", err.message, details={"region": region}) from None


async def read_upload(request: Request) -> bytes:
    """The CSV body, refused (413) as soon as it passes the size limit instead of after reading it all."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in CSV_MEDIA_TYPES:
        raise UnsupportedMediaType(f"send the file as text/csv, not {media_type or 'no content type'}",
                                   details={"accepted": list(CSV_MEDIA_TYPES)})
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_UPLOAD_BYTES} bytes",
                              details={"max_bytes": MAX_UPLOAD_BYTES})
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"the file is larger than {MAX_UPLOAD_BYTES} bytes",
                                  details={"max_bytes": MAX_UPLOAD_BYTES})
    return bytes(body)


def check_csv(body: bytes) -> int:
    """Rows in a well-formed upload whose header names the required columns (else 422 / 413)."""
    try:
        text = csvfile.decode(body)
        header = csvfile.header(text)
        missing = missing_columns(header)
        if missing:
            raise InvalidUpload("missing_columns", f"the header lacks required columns: {', '.join(missing)}",
                                details={"missing": missing, "required": list(REQUIRED_COLUMNS), "header": header})
        duplicated = duplicate_columns(header)
        if duplicated:
            raise InvalidUpload("duplicate_columns", f"more than one column means: {', '.join(duplicated)}",
                                details={"duplicated": duplicated, "header": header})
        rows = 0
        for rows, _ in csvfile.rows(text):
            if rows > MAX_UPLOAD_ROWS:
                raise PayloadTooLarge(f"the file has more than {MAX_UPLOAD_ROWS} rows",
                                      details={"max_rows": MAX_UPLOAD_ROWS})
        return rows
    except csvfile.CsvError as err:
        raise InvalidUpload(err.code, err.message) from None


def import_out(record: ContactImport) -> ImportOut:
    total = record.rows_total or 0
    return ImportOut(
        id=record.id, filename=record.filename, status=record.status, region=record.region,
        rows_total=record.rows_total, rows_done=record.rows_done, clean=record.clean, merged=record.merged,
        quarantined=record.quarantined, progress=(record.rows_done / total) if total else 0.0,
        passes=record.passes, error=record.error, created_at=record.created_at, finished_at=record.finished_at,
    )


class ContactService:
    def __init__(self, session: AsyncSession, temporal: TemporalGateway, settings: Settings, principal: Principal):
        self._session = session
        self._temporal = temporal
        self._settings = settings
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._repo = ContactImportRepository(session)

    async def _start(self, import_id: uuid.UUID, pass_number: int) -> str:
        """Start the pass's workflow; if Temporal cannot take it the import is marked failed (503)."""
        workflow_id = f"contact-import/{import_id}/pass-{pass_number}"
        try:
            client = await self._temporal.client()
            await client.start_workflow(
                CONTACT_IMPORT_WORKFLOW,
                ContactImportInput(import_id=str(import_id), pass_number=pass_number,
                                   activity_timeout_s=max(CHUNK_TIMEOUT_S, self._settings.activity_timeout_s)),
                id=workflow_id,
                task_queue=self._settings.queue_orchestration,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except RPCError as err:
            async with self._session.begin():
                await self._repo.finish(import_id, failed=True, error=f"workflow not started: {err}")
            raise unavailable(err) from err
        async with self._session.begin():
            record = await self._repo.get(self._tenant_id, import_id)
            record.workflow_id = workflow_id
        return workflow_id

    async def create_import(self, body: bytes, *, filename: str, region: str | None) -> ImportAccepted:
        region = check_region(region)
        check_csv(body)
        await self._session.rollback()
        async with self._session.begin():
            record = await self._repo.create(self._tenant_id, filename=filename, region=region, upload=body)
            import_id = record.id
        workflow_id = await self._start(import_id, 0)
        return ImportAccepted(import_id=import_id, workflow_id=workflow_id, status="received", pass_number=0)

    async def _import(self, import_id: uuid.UUID) -> ContactImport:
        record = await self._repo.get(self._tenant_id, import_id)
        if record is None:
            raise NotFound(f"no contact import {import_id}")
        return record

    async def get_import(self, import_id: uuid.UUID) -> ImportOut:
        return import_out(await self._import(import_id))

    async def quarantine(self, import_id: uuid.UUID, *, status: str | None, after_row: int, limit: int) -> QuarantinePage:
        await self._import(import_id)
        rows = await self._repo.quarantine_page(import_id, status=status, after_row=after_row, limit=limit + 1)
        page = [QuarantineRowOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
        return QuarantinePage(rows=page, next_after_row=page[-1].row_number if len(rows) > limit else None)

    async def reprocess(self, import_id: uuid.UUID, *, region: str | None) -> ImportAccepted:
        """Re-run the quarantined rows through the current rules (and ``region``, else the import's)."""
        record = await self._import(import_id)
        region = check_region(region) if region is not None else record.region
        await self._session.rollback()
        async with self._session.begin():
            pass_number = await self._repo.begin_reprocessing(self._tenant_id, import_id, region)
        if pass_number is None:
            raise Conflict("the import is still being processed (or was never staged); wait for it to finish",
                           code="import_busy")
        workflow_id = await self._start(import_id, pass_number)
        return ImportAccepted(import_id=import_id, workflow_id=workflow_id, status="processing",
                              pass_number=pass_number)

    async def contacts(self, *, after: uuid.UUID | None, limit: int, email: str | None) -> ContactPage:
        rows = await self._repo.contacts_page(self._tenant_id, after=after, limit=limit + 1, email=email)
        page = [
            ContactOut(
                id=c.id, email=c.email, phone=c.phone, first_name=c.first_name, last_name=c.last_name,
                job_title=c.job_title, lifecycle_stage=c.lifecycle_stage, company_id=c.company_id,
                company_domain=domain, utm=c.utm, properties=c.properties, source=c.source,
                created_at=c.created_at, updated_at=c.updated_at,
            )
            for c, domain in rows[:limit]
        ]
        return ContactPage(contacts=page, next_after=page[-1].id if len(rows) > limit else None)
