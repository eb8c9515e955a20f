"""API keys for machine clients: create (shown once), list, rotate with overlap, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models_identity import ApiKey
from agency.security.api_keys import (
    API_KEY_PREFIX,
    ApiKeyRejected,
    IssuedApiKey,
    create_api_key,
    revoke_api_key,
    rotate_api_key,
)
from agency.security.identities import check_service_scopes
from agency.security.rbac import (
    AGENT_SCOPES,
    HUMAN_ONLY,
    Permission,
    Principal,
    principal_permissions,
    scope_permissions,
)
from api import deps
from api.audit_trail import record_call
from api.auth.principal import requires, utcnow
from api.errors import AUTHENTICATED_ERRORS, Conflict, Forbidden, NotFound, error_responses

router = APIRouter(
    prefix="/v1/api-keys", tags=["api keys"], responses={**AUTHENTICATED_ERRORS, **error_responses(404, 409)}
)
Manager = Annotated[Principal, requires(Permission.API_KEYS_MANAGE)]
Session = Annotated[AsyncSession, Depends(deps.db_session)]
MAX_OVERLAP = timedelta(days=7)
# What a machine credential may hold, listed in the schema: agent scopes and single permissions.
MachineScope = Literal[tuple(sorted({*AGENT_SCOPES, *(p.value for p in Permission)} - {p.value for p in HUMAN_ONLY}))]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: Annotated[list[MachineScope], Field(min_length=1, max_length=20)]
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = None

    @field_validator("scopes")
    @classmethod
    def _known_machine_scopes(cls, scopes: list[str]) -> list[str]:
        return sorted(check_service_scopes(scopes))  # same rules as service identities


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: Annotated[int | None, Field(ge=0, le=int(MAX_OVERLAP.total_seconds()))] = None


class ApiKeyView(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    status: Literal["active", "rotating", "revoked", "expired"]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by_id: uuid.UUID | None
    overlap_until: datetime | None

    @classmethod
    def of(cls, row: ApiKey, now: datetime) -> "ApiKeyView":
        if row.revoked_at is not None:
            state = "revoked"
        elif (row.expires_at is not None and now >= row.expires_at) or (
            row.overlap_until is not None and now >= row.overlap_until
        ):
            state = "expired"
        elif row.overlap_until is not None:
            state = "rotating"
        else:
            state = "active"
        return cls(
            id=row.id, name=row.name, prefix=f"{API_KEY_PREFIX}{row.lookup_id}", scopes=list(row.scopes),
            status=state, created_at=row.created_at, expires_at=row.expires_at, last_used_at=row.last_used_at,
            revoked_at=row.revoked_at, replaced_by_id=row.replaced_by_id, overlap_until=row.overlap_until,
        )


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    key: str = Field(description="The key itself. Shown only in this response; store it now.")
    name: str
    scopes: list[str]
    expires_at: datetime | None
    replaces_id: uuid.UUID | None = None
    replaced_key_valid_until: datetime | None = None

    @classmethod
    def of(cls, issued: IssuedApiKey, **extra) -> "ApiKeyCreated":
        return cls(
            id=issued.id, key=issued.key, name=issued.name, scopes=list(issued.scopes),
            expires_at=issued.expires_at, **extra,
        )


@router.post("", name="api_keys.create", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, request: Request, principal: Manager, session: Session) -> ApiKeyCreated:
    beyond = scope_permissions(body.scopes) - principal_permissions(principal)
    if beyond:
        # No escalation: a key can do at most what its creator can.
        raise Forbidden(
            "a key cannot hold permissions its creator lacks", details={"permissions": sorted(beyond)}
        )
    now = utcnow()
    async with session.begin():
        issued = await create_api_key(
            session,
            tenant_id=uuid.UUID(principal.tenant_id),
            name=body.name,
            scopes=body.scopes,
            now=now,
            expires_at=now + timedelta(days=body.expires_in_days) if body.expires_in_days else None,
        )
        await record_call(
            request, session, subject_type="api_key", subject_id=str(issued.id),
            detail={"name": body.name, "scopes": body.scopes},
        )
    return ApiKeyCreated.of(issued)


@router.get("", name="api_keys.list", response_model=list[ApiKeyView])
async def list_keys(principal: Manager, session: Session) -> list[ApiKeyView]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == uuid.UUID(principal.tenant_id)).order_by(ApiKey.created_at.desc())
    )
    now = utcnow()
    return [ApiKeyView.of(row, now) for row in rows]


@router.post("/{key_id}/rotate", name="api_keys.rotate", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def rotate_key(
    key_id: uuid.UUID, request: Request, principal: Manager, session: Session, body: ApiKeyRotate | None = None
) -> ApiKeyCreated:
    overlap = timedelta(seconds=body.overlap_seconds) if body and body.overlap_seconds is not None else None
    now = utcnow()
    async with session.begin():
        try:
            successor = await rotate_api_key(
                session, tenant_id=uuid.UUID(principal.tenant_id), key_id=key_id, now=now, overlap=overlap,
                settings=request.app.state.settings,
            )
        except ApiKeyRejected as error:
            if error.reason == "unknown":
                raise NotFound(f"API key {key_id} not found") from error
            raise Conflict(f"API key {key_id} cannot be rotated ({error.reason})", code="api_key_not_rotatable") from error
        old = await session.get(ApiKey, key_id)
        await record_call(
            request, session, subject_type="api_key", subject_id=str(key_id),
            detail={"successor_id": str(successor.id), "old_valid_until": old.overlap_until.isoformat()},
        )
    return ApiKeyCreated.of(successor, replaces_id=key_id, replaced_key_valid_until=old.overlap_until)


@router.delete("/{key_id}", name="api_keys.revoke", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: uuid.UUID, request: Request, principal: Manager, session: Session) -> Response:
    async with session.begin():
        if not await revoke_api_key(session, tenant_id=uuid.UUID(principal.tenant_id), key_id=key_id, now=utcnow()):
            raise NotFound(f"API key {key_id} not found or already revoked")
        await record_call(request, session, subject_type="api_key", subject_id=str(key_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
