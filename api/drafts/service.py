"""Live preview of one content item's draft: the prompt the workflow would use, streamed from
the model as it is generated. Nothing is stored; the durable draft comes from the workflow."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agency.agents.calendar import build_calendar
from agency.agents.content import build_prompt
from agency.contracts import (
    CalendarEntry,
    CalendarRequest,
    CampaignBrief,
    CampaignPlan,
    GenerationRequest,
    MessageBrief,
)
from agency.db.repository import CampaignRepository
from agency.inference import GenerationChunk, InferenceError, InferenceUnavailable, TritonInference
from agency.security.rbac import Principal
from agency.serialization import from_json
from agency.settings import Settings
from api.drafts.schemas import DraftStreamParams
from api.errors import AgencyError, Conflict, NotFound, ServiceUnavailable


class ModelFailed(AgencyError):
    """The model server answered with an error that retrying will not fix."""

    status_code = 502
    code = "model_error"


@dataclass
class PreviewRequest:
    tenant: str
    system: str
    prompt: str
    max_tokens: int
    temperature: float
    seed: int


def sse_event(event: str, data: dict) -> bytes:
    """One server-sent event; JSON data never contains a raw newline, so one data line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _error_body(exc: Exception) -> dict:
    code = "triton_unavailable" if isinstance(exc, InferenceUnavailable) else "model_error"
    return {"error": {"code": code, "message": str(exc)}}


class DraftPreviewService:
    """Draft previews for one caller; every lookup is scoped to the caller's tenant."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inference: TritonInference,
        settings: Settings,
        principal: Principal,
    ) -> None:
        self._sessions = sessions
        self._inference = inference
        self._settings = settings
        self._tenant_id = uuid.UUID(principal.tenant_id)

    async def prepare(self, campaign_id: str, item_id: str, params: DraftStreamParams) -> PreviewRequest:
        """The item's prompt, built from the stored brief and plan as the content workflow does."""
        # A short session of its own: no connection stays checked out while the text streams.
        async with self._sessions() as session:
            campaign = await CampaignRepository(session).get_tenant_campaign(self._tenant_id, campaign_id)
        if campaign is None:  # another tenant's campaign reads exactly like a missing one
            raise NotFound(f"campaign {campaign_id} not found")
        if campaign.plan is None:
            raise Conflict(f"campaign {campaign_id} has no plan yet (phase: {campaign.phase})", code="plan_not_ready")
        brief = from_json(CampaignBrief, campaign.brief)
        plan = from_json(CampaignPlan, campaign.plan)
        entry, message = await self._stored_entry(campaign_id, item_id)
        if entry is None:
            # Campaigns before the strategy calendar: the calendar is a pure function of brief and plan.
            calendar = build_calendar(CalendarRequest(campaign_id=campaign_id, brief=brief, plan=plan))
            entry = next((e for e in calendar.entries if e.item_id == item_id), None)
        if entry is None:
            raise NotFound(f"campaign {campaign_id} has no content item {item_id}")
        s = self._settings
        request = GenerationRequest(
            campaign_id=campaign_id,
            entry=entry,
            brief=brief,
            plan=plan,
            max_tokens=params.max_tokens or s.generation_max_tokens,
            temperature=s.generation_temperature if params.temperature is None else params.temperature,
            message=message,
        )
        system, prompt = build_prompt(request)
        return PreviewRequest(
            tenant=brief.tenant,
            system=system,
            prompt=prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=params.seed,
        )

    async def _stored_entry(self, campaign_id: str, item_id: str) -> tuple[CalendarEntry | None, MessageBrief | None]:
        """The calendar entry and message the item's drafts were written from, when stored with them."""
        async with self._sessions() as session:
            repo = CampaignRepository(session)
            item = await repo.get_content_item(item_id)
            if item is None or item.campaign_id != campaign_id:
                return None, None
            version = await repo.get_content_version(item_id, item.current_version)
        generation = (version.generation or {}) if version is not None else {}
        if not generation.get("entry"):
            return None, None
        message = generation.get("message")
        return from_json(CalendarEntry, generation["entry"]), (from_json(MessageBrief, message) if message else None)

    async def open_stream(self, preview: PreviewRequest) -> AsyncIterator[bytes]:
        """Start generating and wait for the first chunk, so a model server that is down is an
        HTTP error (503) rather than a stream that fails at once; then the SSE body."""
        chunks = self._inference.stream_chunks(
            preview.prompt,
            system=preview.system,
            max_tokens=preview.max_tokens,
            temperature=preview.temperature,
            seed=preview.seed,
            tenant=preview.tenant,
        )
        try:
            first = await anext(chunks, None)
        except InferenceUnavailable as exc:
            await chunks.aclose()
            raise ServiceUnavailable("triton", f"the model server is not available: {exc}") from exc
        except (InferenceError, ValueError) as exc:
            await chunks.aclose()
            raise ModelFailed(f"the model could not generate the draft: {exc}") from exc
        return self._events(first, chunks)

    @staticmethod
    async def _events(first: GenerationChunk | None, chunks: AsyncIterator[GenerationChunk]) -> AsyncIterator[bytes]:
        """``delta`` per chunk with text, then ``done`` (or ``error`` if the model fails midway).

        Closing this iterator (the client went away) closes the gRPC stream, which stops the model.
        """
        last = first
        try:
            if first is not None and first.text:
                yield sse_event("delta", {"text": first.text})
            async for chunk in chunks:
                last = chunk
                if chunk.text:
                    yield sse_event("delta", {"text": chunk.text})
        except (InferenceError, ValueError) as exc:
            yield sse_event("error", _error_body(exc))
            return
        finally:
            await chunks.aclose()
        yield sse_event(
            "done",
            {
                "completion_tokens": last.completion_tokens if last else 0,
                "prompt_tokens": last.prompt_tokens if last else 0,
                "model": last.model if last else "",
            },
        )
