"""Brand profile use cases for one caller; everything is scoped to the caller's tenant."""

from __future__ import annotations

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.brand import BrandRepository
from agency.db.models import BrandProfileRecord
from agency.security.rbac import Principal
from api.audit_trail import record_call
from api.brand.schemas import BrandProfileIn, BrandProfileSaved, BrandProfileView, BrandVersionSummary
from api.errors import NotFound


def profile_view(record: BrandProfileRecord) -> BrandProfileView:
    data = record.profile
    return BrandProfileView(
        version=record.version,
        voice=data["voice"],
        vocabulary_use=data.get("vocabulary_use", []),
        vocabulary_avoid=data.get("vocabulary_avoid", []),
        claims_needing_substantiation=data.get("claims_needing_substantiation", []),
        personas=data.get("personas", []),
        created_at=record.created_at,
        created_by=record.created_by,
    )


class BrandService:
    def __init__(self, session: AsyncSession, principal: Principal, request: Request) -> None:
        self._session = session
        self._principal = principal
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._request = request
        self._repo = BrandRepository(session)

    async def save(self, body: BrandProfileIn) -> BrandProfileSaved:
        """The next version, or the current one unchanged when ``body`` equals it."""
        async with self._session.begin():
            try:
                record, created = await self._repo.save(
                    self._tenant_id, body.to_profile(), created_by=self._principal.subject
                )
            except LookupError as err:
                raise NotFound("the caller's tenant no longer exists") from err
            # In the same transaction: the version and its audit record commit together.
            await record_call(
                self._request,
                self._session,
                subject_type="brand_profile",
                subject_id=f"{self._principal.tenant_id}:v{record.version}",
                detail={"version": record.version, "created": created},
            )
        return BrandProfileSaved(**profile_view(record).model_dump(), created=created)

    async def current(self) -> BrandProfileView:
        record = await self._repo.current(self._tenant_id)
        if record is None:
            raise NotFound("no brand profile yet", details={"reason": "no_brand_profile"})
        return profile_view(record)

    async def version(self, version: int) -> BrandProfileView:
        record = await self._repo.version(self._tenant_id, version)
        if record is None:
            raise NotFound(f"brand profile version {version} not found")
        return profile_view(record)

    async def versions(self) -> list[BrandVersionSummary]:
        return [
            BrandVersionSummary(version=r.version, created_at=r.created_at, created_by=r.created_by)
            for r in await self._repo.versions(self._tenant_id)
        ]
