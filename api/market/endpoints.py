"""PUT/GET /v1/market/weeks: the weekly spend per channel and outcome the market model learns from."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import Channel
from agency.db.decisions import DecisionRepository
from agency.security.rbac import Permission, Principal
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS

router = APIRouter(prefix="/v1/market", tags=["market"], responses=AUTHENTICATED_ERRORS)
MAX_WEEKS = 520  # ten years per request


# pydantic's lax mode would read true as 1, "12" as 12 and 0 as 1970-01-01; the schema says otherwise.
def _json_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a JSON number")
    return value


def _date_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


class MarketWeekIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    week_start: Annotated[date, BeforeValidator(_date_string)] = Field(
        description="A day of the week (YYYY-MM-DD); stored as that week's Monday"
    )
    spend_cents: dict[Channel, Annotated[int, Field(ge=0, le=10**12), BeforeValidator(_json_number)]] = Field(
        min_length=1
    )
    conversions: Annotated[float, Field(ge=0, le=1e12), BeforeValidator(_json_number)]

    @field_validator("week_start")
    @classmethod
    def _monday(cls, value: date) -> date:
        return value - timedelta(days=value.weekday())


class MarketWeeksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weeks: Annotated[list[MarketWeekIn], Field(min_length=1, max_length=MAX_WEEKS)]

    @field_validator("weeks")
    @classmethod
    def _last_entry_per_week_wins(cls, weeks: list[MarketWeekIn]) -> list[MarketWeekIn]:
        # As if the entries were PUT one after another (JSON Schema cannot say "unique week").
        return list({w.week_start: w for w in weeks}.values())


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
        total = await repo.count_market_weeks(tenant_id)
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
