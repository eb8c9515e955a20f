"""Model rollout activities: they write Triton's rendered repository and load/unload models.

They run on the inference queue, on workers that share the Triton home directory with the
server (same host, or a shared volume). Every step is idempotent: a retry after a crash
finds the files and the loaded models as the first attempt left them.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agency.agents.model_canary import CANARY_PROMPTS, CANARY_SYSTEM_PROMPT, evaluate_canary
from agency.agents.relevance import cosine
from agency.contracts import (
    ActivityName,
    CanaryEvaluationRequest,
    CanaryReport,
    CanarySample,
    ModelRolloutInput,
    RolloutStepRecord,
    StagedCandidate,
)
from agency.db.repository import CampaignRepository
from agency.inference import InferenceError, InferenceUnavailable, TritonInference
from agency.triton_repository import RepositoryError, TritonRepository, canary_model_name


def _unavailable(err: Exception) -> ApplicationError:
    return ApplicationError(f"model server unavailable: {err}", type="InferenceUnavailable")


class ModelRolloutActivities:
    def __init__(self, inference: TritonInference, repository: TritonRepository) -> None:
        self._inference = inference
        self._repository = repository

    async def _version_ready(self, model: str, version: int) -> bool:
        index = await self._inference.repository_index()
        return any(
            m.get("name") == model and str(m.get("version")) == str(version) and m.get("state") == "READY"
            for m in index
        )

    @activity.defn(name=ActivityName.STAGE_CANDIDATE)
    async def stage_candidate(self, inp: ModelRolloutInput) -> StagedCandidate:
        """Write the candidate as the next version of ``<model>_canary`` and load it."""
        try:
            serving = self._repository.state(inp.model).serving
            version = self._repository.stage_candidate(inp.model, inp.parameters, inp.rollout_id)
        except RepositoryError as err:
            raise ApplicationError(str(err), type="RepositoryError", non_retryable=True) from err
        canary = canary_model_name(inp.model)
        try:
            if not await self._version_ready(canary, version):
                await self._inference.load_model(canary)
        except InferenceUnavailable as err:
            raise _unavailable(err) from err
        except (InferenceError, ValueError) as err:
            # The candidate itself does not load (bad weights or parameters): a business failure.
            raise ApplicationError(
                f"candidate {inp.model} v{version} failed to load: {err}", type="CandidateLoadFailed", non_retryable=True
            ) from err
        return StagedCandidate(
            rollout_id=inp.rollout_id, model=inp.model, canary_model=canary, version=version, serving_version=serving
        )

    async def _timed_generation(self, model: str, prompt: str, max_tokens: int) -> tuple[str, float]:
        started = time.perf_counter()
        generation = await self._inference.generate(
            prompt, system=CANARY_SYSTEM_PROMPT, max_tokens=max_tokens, temperature=0.0, model=model
        )
        return generation.text, time.perf_counter() - started

    @activity.defn(name=ActivityName.EVALUATE_CANDIDATE)
    async def evaluate_candidate(self, req: CanaryEvaluationRequest) -> CanaryReport:
        """Run the fixed prompt set on candidate and serving version; judge by the policy."""
        candidate = req.candidate
        samples: list[CanarySample] = []
        try:
            for number, prompt in enumerate(CANARY_PROMPTS, start=1):
                activity.heartbeat(f"prompt {number}/{len(CANARY_PROMPTS)}")
                # Alternate which goes first so neither side always meets a warm cache/CPU.
                pair = [
                    self._timed_generation(candidate.canary_model, prompt.prompt, req.policy.max_tokens),
                    self._timed_generation(candidate.model, prompt.prompt, req.policy.max_tokens),
                ]
                if number % 2 == 0:
                    serving_text, serving_s = await pair[1]
                    candidate_text, candidate_s = await pair[0]
                else:
                    candidate_text, candidate_s = await pair[0]
                    serving_text, serving_s = await pair[1]
                vectors = await self._inference.embed([candidate_text or " ", serving_text or " "])
                samples.append(
                    CanarySample(
                        prompt_id=prompt.prompt_id,
                        max_chars=prompt.max_chars,
                        candidate_text=candidate_text,
                        serving_text=serving_text,
                        candidate_latency_s=round(candidate_s, 4),
                        serving_latency_s=round(serving_s, 4),
                        agreement=round(cosine(vectors[0], vectors[1]), 4),
                    )
                )
        except InferenceUnavailable as err:
            raise _unavailable(err) from err
        except (InferenceError, ValueError) as err:
            raise ApplicationError(f"candidate failed the canary run: {err}", type="CanaryFailed", non_retryable=True) from err
        return evaluate_canary(samples, req.policy)

    @activity.defn(name=ActivityName.PROMOTE_CANDIDATE)
    async def promote_candidate(self, candidate: StagedCandidate) -> int:
        """Serve the candidate as the model's only version; returns the serving version.

        Triton loads the new version before it unloads the old one, and keeps the old one
        if the load fails, so production requests are answered throughout.
        """
        try:
            self._repository.promote(candidate.model, candidate.version)
            if not await self._version_ready(candidate.model, candidate.version):
                await self._inference.load_model(candidate.model)
            if not await self._version_ready(candidate.model, candidate.version):
                raise InferenceError(f"{candidate.model} v{candidate.version} is not ready after loading")
            await self._unload_if_loaded(candidate.canary_model)
        except InferenceUnavailable as err:
            raise _unavailable(err) from err
        except RepositoryError as err:
            raise ApplicationError(str(err), type="RepositoryError", non_retryable=True) from err
        self._repository.finish_promotion(candidate.model)
        return candidate.version

    async def _unload_if_loaded(self, model: str) -> None:
        index = await self._inference.repository_index()
        if any(m.get("name") == model and m.get("state") in ("READY", "LOADING") for m in index):
            await self._inference.unload_model(model)
            # Unloading is asynchronous; wait so the files can go.
            for _ in range(100):
                index = await self._inference.repository_index()
                if not any(m.get("name") == model and m.get("state") in ("READY", "LOADING", "UNLOADING") for m in index):
                    return
                await asyncio.sleep(0.1)

    @activity.defn(name=ActivityName.ROLL_BACK_CANDIDATE)
    async def roll_back_candidate(self, candidate: StagedCandidate) -> int:
        """Unload and forget the rollout's candidate (also after a failed stage, when the
        version may be unknown); the serving version was never touched."""
        try:
            await self._unload_if_loaded(candidate.canary_model)
        except InferenceUnavailable as err:
            raise _unavailable(err) from err
        self._repository.discard_candidate(candidate.model, candidate.rollout_id)
        return self._repository.state(candidate.model).serving

    def all(self) -> list:
        return [self.stage_candidate, self.evaluate_candidate, self.promote_candidate, self.roll_back_candidate]


class RolloutAuditActivities:
    """Orchestration-queue side of a rollout: every step lands in the audit log, once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=ActivityName.RECORD_ROLLOUT_STEP)
    async def record_rollout_step(self, step: RolloutStepRecord) -> None:
        async with self._sessions() as session, session.begin():
            await CampaignRepository(session).record_action_once(
                tenant_id=None,  # a platform action: models serve every tenant
                actor=step.actor,
                action=f"model.rollout.{step.step}",
                subject_type="model",
                subject_id=step.model,
                detail=dict(step.detail),
                once_per={"rollout_id": step.rollout_id},
            )

    def all(self) -> list:
        return [self.record_rollout_step]
