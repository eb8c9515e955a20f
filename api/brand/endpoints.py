"""PUT/GET /v1/brand: the tenant's brand profile, one immutable version per change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from agency.security.rbac import Permission, Principal
from api import deps
from api.auth.principal import requires
from api.brand.schemas import BrandProfileIn, BrandProfileSaved, BrandProfileView, BrandVersionSummary
from api.brand.service import BrandService
from api.errors import AUTHENTICATED_ERRORS, error_responses

router = APIRouter(prefix="/v1/brand", tags=["brand"], responses={**AUTHENTICATED_ERRORS, **error_responses(404)})

# Writing the brand changes what every later campaign may say: marketers and up (rbac.py).
BRAND_WRITE = Permission.BRAND_WRITE
# Reading: whoever reads campaigns (viewers, and agent:content, which writes copy in this voice).
BRAND_READ = Permission.CAMPAIGNS_READ


def service_for(permission: Permission):
    def service(
        request: Request,
        session: Annotated[AsyncSession, Depends(deps.db_session)],
        principal: Principal = requires(permission),
    ) -> BrandService:
        return BrandService(session, principal, request)

    return Annotated[BrandService, Depends(service)]


@router.put(
    "",
    name="brand.put",
    response_model=BrandProfileSaved,
    responses={status.HTTP_201_CREATED: {"model": BrandProfileSaved, "description": "A new version was stored"}},
    summary="Store the tenant's brand profile as its next version (200, unchanged, when it equals the current one)",
)
async def put_brand(body: BrandProfileIn, response: Response, svc: service_for(BRAND_WRITE)) -> BrandProfileSaved:
    saved = await svc.save(body)
    response.status_code = status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK
    return saved


@router.get("", name="brand.get", response_model=BrandProfileView, summary="The brand profile in force")
async def get_brand(svc: service_for(BRAND_READ)) -> BrandProfileView:
    return await svc.current()


@router.get("/versions", name="brand.versions", response_model=list[BrandVersionSummary])
async def list_versions(svc: service_for(BRAND_READ)) -> list[BrandVersionSummary]:
    """Every version, oldest first."""
    return await svc.versions()


@router.get("/versions/{version}", name="brand.version", response_model=BrandProfileView)
async def get_version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)], svc: service_for(BRAND_READ)
) -> BrandProfileView:
    return await svc.version(version)
