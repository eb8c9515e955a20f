"""Server-sent events: a content item's draft streamed as the model writes it (approval UI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse

from agency.security.rbac import Permission, Principal
from api.auth.principal import requires
from api.drafts.schemas import DraftStreamParams
from api.drafts.service import DraftPreviewService
from api.errors import AUTHENTICATED_ERRORS, error_responses

router = APIRouter(
    prefix="/v1/campaigns",
    tags=["drafts"],
    responses={**AUTHENTICATED_ERRORS, **error_responses(404, 409)},
)

STREAM_PATH = "/{campaign_id}/items/{item_id}/draft/stream"
_SSE_RESPONSE = {
    200: {
        "description": "`event: delta` ({text}) per chunk, then `event: done` "
        "({completion_tokens, prompt_tokens, model}) or `event: error` ({error: {code, message}})",
        # One schema per event (how OpenAPI tools read text/event-stream); data is JSON text.
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["delta", "done", "error"]},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    },
                }
            }
        },
    }
}


def preview_service(
    request: Request, principal: Principal = requires(Permission.CONTENT_READ)
) -> DraftPreviewService:
    state = request.app.state
    return DraftPreviewService(state.sessions, state.inference, state.settings, principal)


PreviewService = Annotated[DraftPreviewService, Depends(preview_service)]


async def _stream(svc: DraftPreviewService, campaign_id: str, item_id: str, params: DraftStreamParams) -> StreamingResponse:
    preview = await svc.prepare(campaign_id, item_id, params)
    events = await svc.open_stream(preview)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No caching, and no proxy buffering that would hold the deltas back.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(STREAM_PATH, name="drafts.stream", response_class=StreamingResponse, responses=_SSE_RESPONSE)
async def stream_draft(
    campaign_id: str, item_id: str, svc: PreviewService, params: Annotated[DraftStreamParams, Query()]
) -> StreamingResponse:
    """Generate a preview of the item's draft live (not stored), as server-sent events."""
    return await _stream(svc, campaign_id, item_id, params)


@router.post(STREAM_PATH, name="drafts.stream_with_params", response_class=StreamingResponse, responses=_SSE_RESPONSE)
async def stream_draft_with_params(
    campaign_id: str,
    item_id: str,
    svc: PreviewService,
    params: Annotated[DraftStreamParams | None, Body()] = None,
) -> StreamingResponse:
    """Like GET, with generation parameters in an optional JSON body."""
    return await _stream(svc, campaign_id, item_id, params or DraftStreamParams())
