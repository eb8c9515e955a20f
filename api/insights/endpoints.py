"""GET /v1/content/recommendations: what the performance analyzer found, as the strategy agent will apply it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.content_insights import ContentInsightsRepository
from agency.security.rbac import Permission, Principal
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS, NotFound, error_responses

router = APIRouter(prefix="/v1/content", tags=["content"], responses={**AUTHENTICATED_ERRORS, **error_responses(404)})


class RecommendationsView(BaseModel):
    created_at: datetime
    campaign_id: str | None = Field(description="The campaign whose end triggered the analysis")
    recommendations: list[dict[str, Any]] = Field(
        description="Numbered ContentRecommendations, confident ones first (factor, level, metric, effect, interval)"
    )
    summary: dict[str, Any] = Field(description="What the analysis rested on: items, tests, own topic trends")


@router.get("/recommendations", name="content.recommendations", response_model=RecommendationsView)
async def get_recommendations(
    principal: Annotated[Principal, requires(Permission.CAMPAIGNS_READ)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
) -> RecommendationsView:
    """The recommendations in force for the caller's tenant (its newest analysis); the next
    campaign's calendar applies the confident ones and cites them by number."""
    latest = await ContentInsightsRepository(session).latest_recommendations(uuid.UUID(principal.tenant_id))
    if latest is None:
        raise NotFound("no content performance analysis yet: one runs when a campaign with published items ends")
    return RecommendationsView(
        created_at=latest.created_at,
        campaign_id=latest.campaign_id,
        recommendations=latest.recommendations,
        summary=latest.summary,
    )
