"""/v1/integrations: connect providers with per-tenant credentials; rotate and retire them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from agency.integrations.credentials import CredentialCipher
from agency.security.rbac import Permission, Principal
from agency.settings import Settings
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS, error_responses
from api.integrations.schemas import CredentialIn, CredentialSaved, CredentialVersionOut, IntegrationsOut, Provider
from api.integrations.service import IntegrationService

router = APIRouter(prefix="/v1/integrations", tags=["integrations"], responses=AUTHENTICATED_ERRORS)

# Provider secrets are human-only to manage (rbac.HUMAN_ONLY); admins and owners hold it.
MANAGE = Permission.INTEGRATIONS_MANAGE


def _cipher(request: Request, settings: Settings) -> CredentialCipher:
    # Built once per app: deriving and checking keys on every request would be wasted work.
    cipher = getattr(request.app.state, "credential_cipher", None)
    if cipher is None:
        cipher = request.app.state.credential_cipher = CredentialCipher.from_settings(settings)
    return cipher


def service(
    request: Request,
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    settings: Annotated[Settings, Depends(deps.settings)],
    principal: Principal = requires(MANAGE),
) -> IntegrationService:
    return IntegrationService(session, _cipher(request, settings), principal, request)


Service = Annotated[IntegrationService, Depends(service)]


@router.put(
    "/{provider}/credentials",
    name="integrations.put_credentials",
    status_code=status.HTTP_201_CREATED,
    response_model=CredentialSaved,
    summary="Store a provider credential as the next version (the previous one keeps working for the overlap)",
)
async def put_credentials(provider: Provider, body: CredentialIn, svc: Service) -> CredentialSaved:
    return await svc.put(provider, body)


@router.get("", name="integrations.list", response_model=IntegrationsOut,
            summary="Connected providers and their credential versions (metadata only, never secrets)")
async def list_integrations(svc: Service) -> IntegrationsOut:
    return await svc.overview()


@router.post(
    "/{provider}/credentials/{version}/retire",
    name="integrations.retire_credentials",
    response_model=CredentialVersionOut,
    responses=error_responses(404, 409),
    summary="Retire a retiring version now (its secret is erased); the active version cannot be retired",
)
async def retire_credentials(
    provider: Provider, version: Annotated[int, Path(ge=1, le=2**31 - 1)], svc: Service
) -> CredentialVersionOut:
    return await svc.retire(provider, version)
