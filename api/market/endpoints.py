"""PUT/GET /v1/market/weeks: the weekly spend per channel and outcome the market model learns from."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import Channel
from agency.db.decisions import DecisionRepository
from agency.security.rbac import Permission, Principal
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS

router = APIRouter(prefix="/v1/market", tags=["market"], responses=AUTHENTICATED_ERRORS)
MAX_WEEKS = 520  # ten years per request


class MarketWeekIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    week_start: date = Field(description="Monday of the week")
    spend_cents: dict[Channel, Annotated[int, Field(ge=0, le=10**12)]] = Field(min_length=1)
    conversions: Annotated[float, Field(ge=0, le=1e12)]

    @field_validator("week_start")
    @classmethod
    def _monday(cls, value: date) -> date:
        if value.weekday() != 0:
            raise ValueError("week_start must be a Monday")
        return value


class MarketWeeksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weeks: Annotated[list[MarketWeekIn], Field(min_length=1, max_length=MAX_WEEKS)]

    @field_validator("weeks")
    @classmethod
    def _unique(cls, weeks: list[MarketWeekIn]) -> list[MarketWeekIn]:
        if len({w.week_start for w in weeks}) != len(weeks):
            raise ValueError("each week_start may appear once")
        return weeks


class MarketWeekOut(BaseModel):
    week_start: date
    spend_cents: dict[str, int]
    conversions: float
    source: str


class MarketWeeksStored(BaseModel):
    stored: int
    total_weeks: int


@router.put("/weeks", name="market.put_weeks", response_model=MarketWeeksStored)
async def put_weeks(
    body: MarketWeeksIn,
    principal: Annotated[Principal, requires(Permission.MARKET_WRITE)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
) -> MarketWeeksStored:
    """Insert or replace weeks (by week_start); all or nothing."""
    tenant_id = uuid.UUID(principal.tenant_id)
    async with session.begin():
        repo = DecisionRepository(session)
        stored = await repo.upsert_market_weeks(
            tenant_id,
            [(w.week_start, {c.value: v for c, v in w.spend_cents.items()}, w.conversions) for w in body.weeks],
            source="api",
        )
        total = len(await repo.market_weeks(tenant_id))
    return MarketWeeksStored(stored=stored, total_weeks=total)


@router.get("/weeks", name="market.list_weeks", response_model=list[MarketWeekOut])
async def list_weeks(
    principal: Annotated[Principal, requires(Permission.CAMPAIGNS_READ)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
) -> list[MarketWeekOut]:
    weeks = await DecisionRepository(session).market_weeks(uuid.UUID(principal.tenant_id))
    return [
        MarketWeekOut(week_start=w.week_start, spend_cents=w.spend_cents, conversions=w.outcome, source=w.source)
        for w in weeks
    ]
