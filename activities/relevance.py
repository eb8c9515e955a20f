"""Inference activity: how close a draft is to its brief, by embedding similarity."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import business_error
from agency.agents.relevance import brief_text, cosine, draft_text
from agency.contracts import ActivityName, RelevanceRequest, RelevanceResult
from agency.inference import EMBEDDER_MODEL, InferenceUnavailable, TritonInference


class RelevanceActivities:
    def __init__(self, inference: TritonInference) -> None:
        self._inference = inference

    @activity.defn(name=ActivityName.SCORE_RELEVANCE)
    async def score_relevance(self, req: RelevanceRequest) -> RelevanceResult:
        try:
            wanted, written = brief_text(req.brief, req.entry), draft_text(req.title, req.body)
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
        return RelevanceResult(similarity=similarity, model=EMBEDDER_MODEL)

    def all(self) -> list:
        return [self.score_relevance]
