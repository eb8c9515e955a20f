"""Brand activity (orchestration queue): the tenant's brand profile a campaign run uses."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agency.contracts import ActivityName, BrandProfile
from agency.db.brand import BrandRepository, brand_profile_from

UNKNOWN_CAMPAIGN = "UnknownCampaign"


class BrandActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=ActivityName.LOAD_BRAND_PROFILE)
    async def load_brand_profile(self, campaign_id: str) -> BrandProfile | None:
        """The tenant's current profile, its version recorded on the campaign (first call wins).

        None: the tenant has no profile yet (the campaign then records no version).
        """
        async with self._sessions() as session, session.begin():
            repo = BrandRepository(session)
            pinned = await repo.record_campaign_brand(campaign_id)
            if pinned is None:
                # The campaign is registered before anything loads its brand: a missing row is a bug
                # upstream that retrying cannot fix.
                raise ApplicationError(
                    f"campaign {campaign_id} is not registered", type=UNKNOWN_CAMPAIGN, non_retryable=True
                )
            tenant_id, version = pinned
            if version is None:
                return None
            record = await repo.version(tenant_id, version)
            assert record is not None  # versions are never deleted while the tenant exists
            return brand_profile_from(record)

    def all(self) -> list:
        return [self.load_brand_profile]
