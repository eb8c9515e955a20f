"""Persistence of brand profiles: immutable versions per tenant, and the version a campaign used.

Same rules as agency.db.repository: idempotent writes (activities are retried, clients repeat
PUTs), callers own the transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import BrandProfile, Persona
from agency.db.models import BrandProfileRecord, Campaign, Tenant

# The parts of a profile a person writes; tenant and version are assigned by storage.
PROFILE_FIELDS = ("voice", "vocabulary_use", "vocabulary_avoid", "claims_needing_substantiation", "personas")


def profile_content(profile: dict[str, Any]) -> dict[str, Any]:
    """The stored fields, absent lists as empty: what makes two versions the same profile."""
    return {name: profile.get(name, [] if name != "voice" else "") for name in PROFILE_FIELDS}


def brand_profile_from(record: BrandProfileRecord) -> BrandProfile:
    data = record.profile
    return BrandProfile(
        tenant=data.get("tenant", ""),
        version=record.version,
        voice=data["voice"],
        vocabulary_use=list(data.get("vocabulary_use", [])),
        vocabulary_avoid=list(data.get("vocabulary_avoid", [])),
        claims_needing_substantiation=list(data.get("claims_needing_substantiation", [])),
        personas=[
            Persona(name=p["name"], description=p["description"], needs=list(p.get("needs", [])))
            for p in data.get("personas", [])
        ],
    )


class BrandRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current(self, tenant_id: uuid.UUID) -> BrandProfileRecord | None:
        """The tenant's newest version (the one in force), or None when it never wrote one."""
        return await self.session.scalar(
            select(BrandProfileRecord)
            .where(BrandProfileRecord.tenant_id == tenant_id)
            .order_by(BrandProfileRecord.version.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )

    async def version(self, tenant_id: uuid.UUID, version: int) -> BrandProfileRecord | None:
        return await self.session.scalar(
            select(BrandProfileRecord).where(
                BrandProfileRecord.tenant_id == tenant_id, BrandProfileRecord.version == version
            )
        )

    async def versions(self, tenant_id: uuid.UUID) -> list[BrandProfileRecord]:
        result = await self.session.scalars(
            select(BrandProfileRecord)
            .where(BrandProfileRecord.tenant_id == tenant_id)
            .order_by(BrandProfileRecord.version)
        )
        return list(result)

    async def save(
        self, tenant_id: uuid.UUID, profile: dict[str, Any], *, created_by: str
    ) -> tuple[BrandProfileRecord, bool]:
        """Store ``profile`` (the PROFILE_FIELDS) as the tenant's next version; (record, created).

        Saving the profile already in force creates nothing and returns the current version.
        """
        # Concurrent saves of one tenant queue on its row: each sees the other's version and
        # numbers (or skips) accordingly instead of failing on the unique (tenant, version).
        slug = await self.session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id).with_for_update())
        if slug is None:
            raise LookupError(f"tenant {tenant_id} does not exist")
        content = profile_content(profile)
        current = await self.current(tenant_id)
        if current is not None and profile_content(current.profile) == content:
            return current, False
        version = (current.version if current is not None else 0) + 1
        await self.session.execute(
            insert(BrandProfileRecord).values(
                tenant_id=tenant_id,
                version=version,
                profile={"tenant": slug, "version": version, **content},
                created_by=created_by,
            )
        )
        record = await self.version(tenant_id, version)
        assert record is not None  # inserted above, same transaction
        return record, True

    async def record_campaign_brand(self, campaign_id: str) -> tuple[uuid.UUID, int | None] | None:
        """Pin the tenant's current version on the campaign unless one is pinned already.

        Returns (tenant id, pinned version; None when the tenant has no profile), or None when the
        campaign does not exist. Once set, the campaign's version never changes: a retried load
        gets the profile the first attempt recorded, even if a newer one was saved since.
        """
        newest = (
            select(func.max(BrandProfileRecord.version))
            .where(BrandProfileRecord.tenant_id == Campaign.tenant_id)
            .scalar_subquery()
        )
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.brand_version.is_(None))
            .values(brand_version=newest)
            .execution_options(synchronize_session=False)
        )
        row = (
            await self.session.execute(
                select(Campaign.tenant_id, Campaign.brand_version).where(Campaign.id == campaign_id)
            )
        ).one_or_none()
        return None if row is None else (row.tenant_id, row.brand_version)
