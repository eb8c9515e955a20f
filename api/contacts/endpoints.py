"""/v1/contacts: the tenant's contacts, CSV imports into them, their quarantine and re-processing."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status

from agency.security.rbac import Permission
from api import deps
from api.contacts.schemas import ContactPage, ImportAccepted, ImportOut, QuarantinePage
from api.contacts.service import MAX_UPLOAD_BYTES, ContactService, read_upload
from api.errors import AUTHENTICATED_ERRORS, ErrorBody, error_responses

router = APIRouter(prefix="/v1/contacts", tags=["contacts"], responses=AUTHENTICATED_ERRORS)

Region = Annotated[str | None, Query(min_length=2, max_length=3, pattern=r"^[A-Za-z0-9]+$",
                                     description="default region for national phone numbers (ISO 3166 alpha-2)")]


service_for = deps.workflow_service(ContactService)


_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "maxLength": MAX_UPLOAD_BYTES}}},
        "description": "UTF-8 CSV with a header row naming at least an email column",
    }
}
_UPLOAD_ERRORS = {
    **error_responses(503),
    413: {"model": ErrorBody, "description": "The file is larger than the limit"},
    415: {"model": ErrorBody, "description": "The body is not text/csv"},
}


@router.post("/imports", name="contacts.import", status_code=status.HTTP_202_ACCEPTED,
             response_model=ImportAccepted, openapi_extra=_CSV_BODY, responses=_UPLOAD_ERRORS)
async def start_import(
    request: Request,
    service: Annotated[ContactService, Depends(service_for(Permission.CONTACTS_WRITE))],
    region: Region = None,
    filename: Annotated[str, Query(min_length=1, max_length=255, pattern=r"^[^\x00]*$")] = "upload.csv",
) -> ImportAccepted:
    """Import a CSV of contacts: validated, normalised, de-duplicated by email, rejects quarantined.

    Answers once the header is checked and the file stored; follow the import with GET
    /v1/contacts/imports/{id}.
    """
    body = await read_upload(request)
    return await service.create_import(body, filename=filename, region=region)


@router.get("/imports/{import_id}", name="contacts.import_status", response_model=ImportOut,
            responses=error_responses(404))
async def import_status(
    import_id: uuid.UUID,
    service: Annotated[ContactService, Depends(service_for(Permission.CONTACTS_READ))],
) -> ImportOut:
    """The import's status, progress and counts (rows = clean + merged + quarantined once done)."""
    return await service.get_import(import_id)


@router.get("/imports/{import_id}/quarantine", name="contacts.import_quarantine", response_model=QuarantinePage,
            responses=error_responses(404))
async def import_quarantine(
    import_id: uuid.UUID,
    service: Annotated[ContactService, Depends(service_for(Permission.CONTACTS_READ))],
    status_filter: Annotated[Literal["quarantined", "reprocessed", "all"], Query(alias="status")] = "quarantined",
    after_row: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> QuarantinePage:
    """Rejected rows as uploaded, each with its reasons ({field, code, message})."""
    return await service.quarantine(import_id, status=None if status_filter == "all" else status_filter,
                                    after_row=after_row, limit=limit)


@router.post("/imports/{import_id}/reprocess", name="contacts.import_reprocess",
             status_code=status.HTTP_202_ACCEPTED, response_model=ImportAccepted,
             responses=error_responses(404, 409, 503))
async def reprocess_import(
    import_id: uuid.UUID,
    service: Annotated[ContactService, Depends(service_for(Permission.CONTACTS_WRITE))],
    region: Region = None,
) -> ImportAccepted:
    """Run the quarantined rows through the current rules (optionally another phone region)."""
    return await service.reprocess(import_id, region=region)


@router.get("", name="contacts.list", response_model=ContactPage)
async def list_contacts(
    service: Annotated[ContactService, Depends(service_for(Permission.CONTACTS_READ))],
    after: uuid.UUID | None = None,
    email: Annotated[str | None, Query(min_length=3, max_length=320, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ContactPage:
    """Live contacts, ordered by id; ``email`` finds one (case-insensitive)."""
    return await service.contacts(after=after, limit=limit, email=email)
