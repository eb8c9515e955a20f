"""The last agreement between a campaign and the ad platform on each promoted item.

One row per (campaign, item): the ads campaign it is promoted as, the status and total budget
we last set or saw there, when, and a hash of those platform fields. A platform whose current
hash differs was edited by someone else since (see :mod:`agency.sync.ad_platform`). Same Base
and naming convention as agency.db.models (migration 0014).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in, _updated_at

AD_PLATFORMS = ("google-ads",)


class AdPlatformItemState(Base):
    __tablename__ = "ad_platform_item_states"
    __table_args__ = (
        CheckConstraint(_in("platform", AD_PLATFORMS), name="platform_valid"),
        CheckConstraint("total_budget_cents >= 0", name="total_budget_non_negative"),
        CheckConstraint(
            "pending_budget_cents IS NULL OR pending_budget_cents >= 0", name="pending_budget_non_negative"
        ),
    )

    # No foreign key to campaigns: the activity also serves workflows whose campaign row lives
    # elsewhere (tests, CLI runs); rows go with their tenant.
    campaign_id: Mapped[str] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str]
    ads_campaign_id: Mapped[str]
    status: Mapped[str]
    total_budget_cents: Mapped[int] = mapped_column(BigInteger)
    snapshot_hash: Mapped[str]
    # A total we started setting and have not recorded yet: on a retry it is ours, not an edit.
    pending_budget_cents: Mapped[int | None] = mapped_column(BigInteger)
    # The round whose decision kept a total edited on the platform (a retry of it keeps it too).
    kept_round: Mapped[int | None] = mapped_column(Integer)
    last_round: Mapped[int] = mapped_column(Integer)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
