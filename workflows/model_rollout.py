"""ModelRolloutWorkflow: load a new model version beside the serving one, test it, promote or roll back.

stage (load ``<model>_canary`` vN+1) -> canary evaluation on a fixed prompt set -> promote
(Triton serves vN+1 as ``<model>``) or roll back (unload the canary; vN never stopped serving).
Every step is audited. While Triton is unreachable the Triton-side steps retry with backoff.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from agency.contracts import (
    ActivityName,
    CanaryEvaluationRequest,
    CanaryReport,
    ModelRolloutInput,
    ModelRolloutResult,
    ModelRolloutStatus,
    RolloutStepRecord,
    StagedCandidate,
    WorkflowName,
)


def activity_failure_message(err: ActivityError) -> str:
    """The message the activity raised (its ApplicationError), not the library error below it."""
    cause: BaseException | None = err
    while isinstance(cause, FailureError):
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = cause.cause
    return str(err)

# Model loads take seconds to minutes; Triton being down is retried for as long as it takes
# (the workflow is durable), business failures (a candidate that does not load) are not.
TRITON_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
AUDIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=WorkflowName.MODEL_ROLLOUT)
class ModelRolloutWorkflow:
    def __init__(self) -> None:
        self._status = ModelRolloutStatus(rollout_id="", model="", phase="staging")

    @workflow.query(name="status")
    def status(self) -> ModelRolloutStatus:
        return self._status

    @workflow.run
    async def run(self, inp: ModelRolloutInput) -> ModelRolloutResult:
        self._input = inp
        self._status = ModelRolloutStatus(rollout_id=inp.rollout_id, model=inp.model, phase="staging")
        await self._audit("requested", {"parameters": ", ".join(f"{k}={v}" for k, v in sorted(inp.parameters.items()))})

        try:
            candidate = await self._triton(ActivityName.STAGE_CANDIDATE, inp, StagedCandidate)
        except ActivityError as err:
            # The candidate did not load: nothing serves it; clean up what was staged.
            reason = activity_failure_message(err)
            unstaged = StagedCandidate(inp.rollout_id, inp.model, f"{inp.model}_canary", 0, 0)
            return await self._roll_back(unstaged, [reason], None)
        self._status.version = candidate.version
        await self._audit("staged", {"version": str(candidate.version), "serving_version": str(candidate.serving_version)})

        self._status.phase = "evaluating"
        try:
            report = await self._triton(
                ActivityName.EVALUATE_CANDIDATE, CanaryEvaluationRequest(candidate, inp.policy), CanaryReport
            )
        except ActivityError as err:
            return await self._roll_back(candidate, [activity_failure_message(err)], None)
        await self._audit(
            "evaluated",
            {
                "version": str(candidate.version),
                "passed": str(report.passed).lower(),
                "length_violation_rate": str(report.length_violation_rate),
                "bad_output_rate": str(report.bad_output_rate),
                "mean_agreement": str(report.mean_agreement),
                "latency_ratio": str(report.latency_ratio),
                "reasons": "; ".join(report.reasons),
            },
        )
        if not report.passed:
            return await self._roll_back(candidate, report.reasons, report)

        self._status.phase = "promoting"
        serving = await self._triton(ActivityName.PROMOTE_CANDIDATE, candidate, int)
        self._status.phase = "promoted"
        await self._audit("promoted", {"version": str(serving), "previous_version": str(candidate.serving_version)})
        return ModelRolloutResult(
            rollout_id=inp.rollout_id,
            model=inp.model,
            version=candidate.version,
            outcome="promoted",
            serving_version=serving,
            report=report,
        )

    async def _roll_back(
        self, candidate: StagedCandidate, reasons: list[str], report: CanaryReport | None
    ) -> ModelRolloutResult:
        self._status.phase = "rolling_back"
        self._status.reasons = list(reasons)
        serving = await self._triton(ActivityName.ROLL_BACK_CANDIDATE, candidate, int)
        self._status.phase = "rolled_back"
        await self._audit(
            "rolled_back",
            {"version": str(candidate.version), "serving_version": str(serving), "reasons": "; ".join(reasons)},
        )
        return ModelRolloutResult(
            rollout_id=candidate.rollout_id,
            model=candidate.model,
            version=candidate.version,
            outcome="rolled_back",
            serving_version=serving,
            reasons=list(reasons),
            report=report,
        )

    async def _triton(self, name: str, arg, result_type):
        timeout = timedelta(seconds=self._input.activity_timeout_s)
        return await workflow.execute_activity(
            name,
            arg,
            task_queue=self._input.model_control_queue,
            result_type=result_type,
            start_to_close_timeout=timeout,
            retry_policy=TRITON_RETRY,
        )

    async def _audit(self, step: str, detail: dict[str, str]) -> None:
        await workflow.execute_activity(
            ActivityName.RECORD_ROLLOUT_STEP,
            RolloutStepRecord(
                rollout_id=self._input.rollout_id,
                model=self._input.model,
                step=step,
                actor=self._input.requested_by,
                detail=detail,
            ),
            task_queue=self._input.orchestration_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=AUDIT_RETRY,
        )

