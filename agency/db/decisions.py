"""Persistence of the decision agents: market history, fits, allocation changes, experiments, reports.

Same rules as agency.db.repository: idempotent writes (activities are retried), callers own
the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import (
    AllocationChange,
    Campaign,
    Experiment,
    MarketFitRecord,
    MarketWeek,
    Report,
    Tenant,
)

_NO_SYNC = {"synchronize_session": False}


def market_fit_id(campaign_id: str) -> str:
    """One market fit per campaign: a retried fit finds the first, readers find it by campaign."""
    return f"fit_{campaign_id}"


class DecisionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tenant_id(self, slug: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Tenant.id).where(Tenant.slug == slug))

    # ---- market history --------------------------------------------------------------
    async def upsert_market_weeks(
        self, tenant_id: uuid.UUID, rows: Sequence[tuple[date, dict[str, int], float]], *, source: str
    ) -> int:
        """Insert or replace weeks (week_start, spend cents per channel, outcome); returns the row count."""
        if not rows:
            return 0
        stmt = insert(MarketWeek).values(
            [
                {"tenant_id": tenant_id, "week_start": week, "spend_cents": spend, "outcome": outcome, "source": source}
                for week, spend, outcome in rows
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "week_start"],
            set_={"spend_cents": stmt.excluded.spend_cents, "outcome": stmt.excluded.outcome,
                  "source": stmt.excluded.source},
        )
        await self.session.execute(stmt)
        return len(rows)

    async def market_weeks(self, tenant_id: uuid.UUID) -> list[MarketWeek]:
        result = await self.session.scalars(
            select(MarketWeek).where(MarketWeek.tenant_id == tenant_id).order_by(MarketWeek.week_start)
        )
        return list(result)

    async def count_market_weeks(self, tenant_id: uuid.UUID) -> int:
        return await self.session.scalar(select(func.count()).where(MarketWeek.tenant_id == tenant_id)) or 0

    # ---- fits --------------------------------------------------------------------------
    async def save_fit(self, record: MarketFitRecord) -> None:
        values = {c.name: getattr(record, c.name) for c in MarketFitRecord.__table__.columns if c.name != "created_at"}
        await self.session.execute(insert(MarketFitRecord).values(**values).on_conflict_do_nothing(index_elements=["id"]))

    async def get_fit(self, fit_id: str) -> MarketFitRecord | None:
        return await self.session.scalar(
            select(MarketFitRecord).where(MarketFitRecord.id == fit_id).execution_options(populate_existing=True)
        )

    # ---- allocation changes ------------------------------------------------------------
    async def record_allocation_change(
        self,
        *,
        campaign_id: str,
        round: int,
        before_cents: dict[str, int],
        after_cents: dict[str, int],
        change: float,
        status: str,
        reason: str,
    ) -> AllocationChange:
        """The proposal of ``round``; a retry finds the first one unchanged."""
        await self.session.execute(
            insert(AllocationChange)
            .values(
                campaign_id=campaign_id, round=round, before_cents=before_cents, after_cents=after_cents,
                change=change, status=status, reason=reason,
                decided_by="agent:budget" if status == "applied" else "",
                decided_at=func.now() if status == "applied" else None,
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "round"])
        )
        row = await self.session.scalar(
            select(AllocationChange)
            .where(AllocationChange.campaign_id == campaign_id, AllocationChange.round == round)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row

    async def decide_allocation_change(
        self, campaign_id: str, round: int, status: str, decided_by: str, note: str
    ) -> bool:
        """Settle a pending change; False if it was already settled (a retry)."""
        result = await self.session.execute(
            update(AllocationChange)
            .where(
                AllocationChange.campaign_id == campaign_id,
                AllocationChange.round == round,
                AllocationChange.status == "pending",
            )
            .values(status=status, decided_by=decided_by, note=note, decided_at=func.now())
            .returning(AllocationChange.id)
            .execution_options(**_NO_SYNC)
        )
        return result.first() is not None

    async def allocation_changes(self, campaign_id: str) -> list[AllocationChange]:
        result = await self.session.scalars(
            select(AllocationChange)
            .where(AllocationChange.campaign_id == campaign_id)
            .order_by(AllocationChange.round)
            .execution_options(populate_existing=True)
        )
        return list(result)

    # ---- experiments -------------------------------------------------------------------
    async def create_experiment(self, **values: Any) -> None:
        await self.session.execute(insert(Experiment).values(**values).on_conflict_do_nothing(index_elements=["id"]))

    async def update_experiment(self, experiment_id: str, **values: Any) -> None:
        await self.session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id)
            .values(updated_at=func.now(), **values)
            .execution_options(**_NO_SYNC)
        )

    async def experiments(self, campaign_id: str) -> list[Experiment]:
        result = await self.session.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == campaign_id)
            .order_by(Experiment.id)
            .execution_options(populate_existing=True)
        )
        return list(result)

    # ---- reports -----------------------------------------------------------------------
    async def start_report(
        self, *, report_id: str, tenant_id: uuid.UUID, scope: str, campaign_id: str | None, trigger: str
    ) -> None:
        await self.session.execute(
            insert(Report)
            .values(id=report_id, tenant_id=tenant_id, scope=scope, campaign_id=campaign_id, trigger=trigger)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def finish_report(self, report_id: str, **values: Any) -> None:
        await self.session.execute(
            update(Report)
            .where(Report.id == report_id)
            .values(completed_at=func.now(), **values)
            .execution_options(**_NO_SYNC)
        )

    async def get_report(self, report_id: str, tenant_id: uuid.UUID | None = None) -> Report | None:
        stmt = select(Report).where(Report.id == report_id)
        if tenant_id is not None:
            stmt = stmt.where(Report.tenant_id == tenant_id)
        return await self.session.scalar(stmt.execution_options(populate_existing=True))

    async def tenants_with_campaigns(self) -> list[str]:
        result = await self.session.scalars(
            select(Tenant.slug).where(Tenant.id.in_(select(Campaign.tenant_id))).order_by(Tenant.slug)
        )
        return list(result)

    async def tenant_campaigns(self, tenant_id: uuid.UUID) -> list[Campaign]:
        result = await self.session.scalars(
            select(Campaign).where(Campaign.tenant_id == tenant_id).order_by(Campaign.created_at)
        )
        return list(result)
