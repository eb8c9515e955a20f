"""PostgreSQL-backed activities: campaign records, steps, content versions, reviews, metrics."""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agency.contracts import (
    ActivityName,
    CampaignHistory,
    FinishCampaignRequest,
    MetricsSnapshot,
    PublishedRecord,
    RegisterCampaignRequest,
    ReviewerNotice,
    ReviewRecord,
    SaveContentRequest,
    SavedContent,
    SimilarContentRequest,
    SimilarContentResult,
    StepRecord,
)
from agency.db.repository import CampaignRepository
from agency.serialization import to_json

log = logging.getLogger(__name__)

_FINAL_STATUS = {"completed": "completed", "cancelled": "cancelled", "failed": "failed"}


class CampaignStoreActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=ActivityName.REGISTER_CAMPAIGN)
    async def register_campaign(self, req: RegisterCampaignRequest) -> None:
        async with self._sessions() as session, session.begin():
            await CampaignRepository(session).create_campaign(
                campaign_id=req.campaign_id,
                tenant_slug=req.brief.tenant,
                name=req.brief.name or req.brief.product,
                brief=to_json(req.brief),
                workflow_id=req.workflow_id,
            )

    @activity.defn(name=ActivityName.LOAD_CAMPAIGN_HISTORY)
    async def load_campaign_history(self, campaign_id: str) -> CampaignHistory:
        async with self._sessions() as session:
            repo = CampaignRepository(session)
            campaign = await repo.get_campaign(campaign_id)
            if campaign is None:
                raise ApplicationError(f"unknown campaign {campaign_id}", non_retryable=True)
            return await repo.channel_history(campaign.brief["tenant"], exclude_campaign_id=campaign_id)

    @activity.defn(name=ActivityName.RECORD_STEP)
    async def record_step(self, step: StepRecord) -> None:
        async with self._sessions() as session, session.begin():
            await CampaignRepository(session).record_step(step.campaign_id, step.phase, step.detail)

    @activity.defn(name=ActivityName.SAVE_CONTENT)
    async def save_content(self, req: SaveContentRequest) -> SavedContent:
        draft = req.draft
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            version = await repo.save_content_version(
                item_id=draft.item_id,
                campaign_id=draft.campaign_id,
                channel=draft.channel,
                format=draft.format,
                publish_on=date.fromisoformat(req.publish_on),
                version=draft.attempt,
                title=draft.title,
                body=draft.body,
                model=draft.model,
                prompt_tokens=draft.prompt_tokens,
                completion_tokens=draft.completion_tokens,
                compliance=to_json(req.compliance),
                approval_state=req.approval_state,
                parts=draft.parts,
                generation=req.generation,
                embedding=req.embedding,
            )
            await repo.record_agent_action(
                campaign_id=draft.campaign_id,
                actor="agent:content",
                action="content.drafted",
                subject_type="content_item",
                subject_id=draft.item_id,
                detail={"compliance_passed": req.compliance.passed, "approval_state": req.approval_state},
                once_per={"version": version},
            )
        return SavedContent(item_id=draft.item_id, version=version)

    @activity.defn(name=ActivityName.FIND_SIMILAR_CONTENT)
    async def find_similar_content(self, req: SimilarContentRequest) -> SimilarContentResult:
        """The tenant's earlier content closest to a draft (cosine of sentence embeddings)."""
        if not req.embedding:
            return SimilarContentResult(similarity=None)
        async with self._sessions() as session:
            earlier = await CampaignRepository(session).earlier_content_embeddings(
                req.campaign_id, exclude_item=req.item_id, exclude_message=req.message_id
            )
        earlier = [(item_id, vector) for item_id, vector in earlier if len(vector) == len(req.embedding)]
        if not earlier:
            return SimilarContentResult(similarity=None)
        matrix = np.asarray([vector for _, vector in earlier], dtype=float)
        query = np.asarray(req.embedding, dtype=float)
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        scores = matrix @ query / np.maximum(norms, 1e-12)
        best = int(np.argmax(scores))
        return SimilarContentResult(similarity=float(min(1.0, scores[best])), item_id=earlier[best][0])

    @activity.defn(name=ActivityName.RECORD_REVIEW)
    async def record_review(self, review: ReviewRecord) -> None:
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.record_review(review.item_id, review.approval_state, review.reviewer, review.note)
            await repo.record_agent_action(
                campaign_id=review.campaign_id,
                actor=review.reviewer,
                action=f"content.{review.approval_state}",
                subject_type="content_item",
                subject_id=review.item_id,
                detail={"campaign_id": review.campaign_id, "note": review.note},
                once_per={"version": review.version},
            )

    @activity.defn(name=ActivityName.NOTIFY_REVIEWERS)
    async def notify_reviewers(self, notice: ReviewerNotice) -> None:
        # The audit trail is the notification record; delivery channels (email, chat) hook in here.
        log.info("campaign %s: %s for %d item(s)", notice.campaign_id, notice.kind, len(notice.pending_item_ids))
        async with self._sessions() as session, session.begin():
            await CampaignRepository(session).record_agent_action(
                campaign_id=notice.campaign_id,
                actor="system",
                action=f"approval.{notice.kind}",
                subject_type="campaign",
                subject_id=notice.campaign_id,
                detail={"pending_item_ids": notice.pending_item_ids},
            )

    @activity.defn(name=ActivityName.MARK_PUBLISHED)
    async def mark_published(self, record: PublishedRecord) -> None:
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.mark_published(record.item_id, record.external_id)
            await repo.record_agent_action(
                campaign_id=record.campaign_id,
                actor="agent:publisher",
                action="content.published",
                subject_type="content_item",
                subject_id=record.item_id,
                detail={"external_id": record.external_id},
            )

    @activity.defn(name=ActivityName.SAVE_METRICS)
    async def save_metrics(self, snapshot: MetricsSnapshot) -> None:
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.save_metrics(snapshot.campaign_id, snapshot.round, snapshot.items)
            await repo.record_agent_action(
                campaign_id=snapshot.campaign_id,
                actor="agent:analyst",
                action="metrics.collected",
                subject_type="campaign",
                subject_id=snapshot.campaign_id,
                detail={"items": len(snapshot.items)},
                once_per={"round": snapshot.round},
            )

    @activity.defn(name=ActivityName.FINISH_CAMPAIGN)
    async def finish_campaign(self, req: FinishCampaignRequest) -> None:
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.update_campaign(
                req.campaign_id, phase=req.outcome, status=_FINAL_STATUS[req.outcome], completed=True
            )
            await repo.record_agent_action(
                campaign_id=req.campaign_id,
                actor="system",
                action=f"campaign.{req.outcome}",
                subject_type="campaign",
                subject_id=req.campaign_id,
                detail={"detail": req.detail} if req.detail else None,
            )

    def all(self) -> list:
        return [
            self.register_campaign,
            self.load_campaign_history,
            self.record_step,
            self.save_content,
            self.find_similar_content,
            self.record_review,
            self.notify_reviewers,
            self.mark_published,
            self.save_metrics,
            self.finish_campaign,
        ]
