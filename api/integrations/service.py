"""Credential use cases for one caller; everything is scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from agency.integrations.credentials import (
    SECRET_MODELS,
    CredentialCipher,
    CredentialInUse,
    CredentialMeta,
    list_credentials,
    retire_credential,
    store_credential,
)
from agency.security.rbac import Principal
from api.audit_trail import record_call
from api.errors import Conflict, NotFound
from api.integrations.schemas import CredentialIn, CredentialSaved, CredentialVersionOut, IntegrationOut, IntegrationsOut


def version_out(meta: CredentialMeta) -> CredentialVersionOut:
    return CredentialVersionOut(
        provider=meta.provider, version=meta.version, status=meta.status, created_by=meta.created_by,
        created_at=meta.created_at, retire_after=meta.retire_after, retired_at=meta.retired_at,
    )


def _invalid_credential(error: ValidationError) -> RequestValidationError:
    # Field paths, messages and types only: pydantic's "input" would echo the secret back.
    return RequestValidationError([
        {"loc": ("body", "credential", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()
    ])


class IntegrationService:
    def __init__(self, session: AsyncSession, cipher: CredentialCipher, principal: Principal, request: Request) -> None:
        self._session = session
        self._cipher = cipher
        self._principal = principal
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._request = request

    async def put(self, provider: str, body: CredentialIn) -> CredentialSaved:
        """Store the next version; the previous one keeps working for ``overlap_seconds``."""
        try:
            secret = SECRET_MODELS[provider].model_validate(body.credential).model_dump(exclude_none=True)
        except ValidationError as error:
            raise _invalid_credential(error) from None
        async with self._session.begin():
            saved, previous = await store_credential(
                self._session, self._cipher, self._tenant_id, provider, secret,
                created_by=self._principal.subject, overlap=timedelta(seconds=body.overlap_seconds),
            )
            # Same transaction: the version and its audit record commit together; no secret in it.
            await record_call(
                self._request, self._session, subject_type="integration_credential",
                subject_id=f"{provider}:v{saved.version}",
                detail={"provider": provider, "version": saved.version, "key_id": saved.key_id,
                        "previous_version": previous.version if previous else None,
                        "overlap_seconds": body.overlap_seconds},
            )
        return CredentialSaved(**version_out(saved).model_dump(), previous=version_out(previous) if previous else None)

    async def overview(self) -> IntegrationsOut:
        by_provider: dict[str, list[CredentialVersionOut]] = {}
        for meta in await list_credentials(self._session, self._tenant_id):
            by_provider.setdefault(meta.provider, []).append(version_out(meta))
        return IntegrationsOut(integrations=[
            IntegrationOut(
                provider=provider,
                active_version=next((v.version for v in versions if v.status == "active"), None),
                versions=versions,
            )
            for provider, versions in sorted(by_provider.items())
        ])

    async def retire(self, provider: str, version: int) -> CredentialVersionOut:
        async with self._session.begin():
            try:
                meta = await retire_credential(self._session, self._tenant_id, provider, version)
            except LookupError as err:
                raise NotFound(str(err)) from err
            except CredentialInUse as err:
                raise Conflict(str(err), code="credential_in_use") from err
            await record_call(
                self._request, self._session, subject_type="integration_credential",
                subject_id=f"{provider}:v{version}", detail={"provider": provider, "version": version},
            )
        return version_out(meta)
