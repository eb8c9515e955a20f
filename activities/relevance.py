"""Inference activity: how close a draft is to its brief, by embedding similarity."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import business_error
from agency.agents.formats import copy_of
from agency.agents.relevance import brief_text, cosine, draft_text, message_text, unit_vector
from agency.contracts import ActivityName, RelevanceRequest, RelevanceResult
from agency.inference import EMBEDDER_MODEL, InferenceUnavailable, TritonInference


class RelevanceActivities:
    def __init__(self, inference: TritonInference) -> None:
        self._inference = inference

    @activity.defn(name=ActivityName.SCORE_RELEVANCE)
    async def score_relevance(self, req: RelevanceRequest) -> RelevanceResult:
        try:
            # Message-based items must carry the set's message; legacy items their entry's angle.
            if req.message is not None:
                wanted = message_text(req.brief, req.message)
            else:
                wanted = brief_text(req.brief, req.entry)
            # Message-based copy is judged on what the model wrote: the CTA, hashtags and a subject
            # or title derived from the message would make any draft look on-message.
            # (No copy at all: the whole text, so the draft is scored and its validator blocks it.)
            written = copy_of(req.body, req.message.cta) if req.message is not None else ""
            written = written or draft_text(req.title, req.body)
            if not wanted.strip() or not written.strip():
                raise ValueError("relevance needs both a brief text and a draft text")
            # One request for both texts: one round trip, one batch on the embedder.
            brief_vector, draft_vector = await self._inference.embed([wanted, written])
            similarity = cosine(brief_vector, draft_vector)
        except InferenceUnavailable as err:
            # Retryable: Triton may be restarting; the retry policy backs off.
            raise ApplicationError(f"model server unavailable: {err}", type="InferenceUnavailable") from err
        except ValueError as err:
            raise business_error(err) from err
        # The draft's own vector travels on: the duplicate lookup and the stored item use it.
        return RelevanceResult(similarity=similarity, model=EMBEDDER_MODEL, embedding=unit_vector(draft_vector))

    def all(self) -> list:
        return [self.score_relevance]
