"""Inference activity: write one piece of copy with the language model served by Triton."""

from __future__ import annotations

import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import business_error
from agency.agents.content import (
    build_prompt,
    is_message_request,
    max_tokens_for,
    parse_generation,
    parse_message_draft,
)
from agency.contracts import ActivityName, ContentDraft, GenerationRequest
from agency.inference import InferenceUnavailable, TritonInference


def generation_seed(req: GenerationRequest) -> int:
    """Stable per (campaign, item, attempt, variant): a retried activity asks for the same sample
    (and gets Triton's cached answer); a regeneration attempt or another variant a new one.
    Variant 1 keeps the key used before variants existed, so cached answers stay valid."""
    key = f"{req.campaign_id}:{req.entry.item_id}:{req.attempt}"
    if req.variant != 1:
        key += f":v{req.variant}"
    key = key.encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


class ContentGenerationActivities:
    def __init__(self, inference: TritonInference) -> None:
        self._inference = inference

    @activity.defn(name=ActivityName.GENERATE_CONTENT)
    async def generate_content(self, req: GenerationRequest) -> ContentDraft:
        system, prompt = build_prompt(req)
        try:
            generation = await self._inference.generate(
                prompt,
                system=system,
                max_tokens=max_tokens_for(
                    req.entry.format, req.max_tokens, message_based=is_message_request(req)
                ),
                temperature=req.temperature,
                seed=generation_seed(req),
                tenant=req.brief.tenant,
            )
        except InferenceUnavailable as err:
            # Retryable: Triton may be restarting; the retry policy backs off.
            raise ApplicationError(f"model server unavailable: {err}", type="InferenceUnavailable") from err
        except ValueError as err:
            raise business_error(err) from err
        parts: dict[str, str] = {}
        if is_message_request(req):
            title, body, parts = parse_message_draft(req.entry.format, generation.text, req)
        else:
            title, body = parse_generation(req.entry.format, generation.text, req)
        return ContentDraft(
            item_id=req.entry.item_id,
            campaign_id=req.campaign_id,
            channel=req.entry.channel,
            format=req.entry.format,
            title=title,
            body=body,
            model=generation.model,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            attempt=req.attempt,
            parts=parts,
            variant=req.variant,
        )

    @activity.defn(name=ActivityName.CHECK_MODEL_SERVER)
    async def check_model_server(self) -> None:
        """Succeeds once Triton and its models are ready; until then a retryable failure."""
        if not await self._inference.is_ready():
            raise ApplicationError("model server is not ready", type="InferenceUnavailable")

    def all(self) -> list:
        return [self.generate_content, self.check_model_server]
