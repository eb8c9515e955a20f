"""ModelRolloutWorkflow on a real Triton (explicit model control): promote a good candidate,
roll back a bad one, and keep answering production requests throughout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from api_flow import record_workflow_history
from conftest import running_triton, running_workers

from agency.contracts import CanaryPolicy, ModelRolloutInput, ModelRolloutResult
from agency.db.models import AuditEvent
from agency.inference import TritonInference
from agency.triton_server import TritonServer
from workflows.model_rollout import ModelRolloutWorkflow

pytestmark = pytest.mark.integration

MODEL = "content_generator"


@pytest.fixture(scope="module")
def rollout_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A Triton of its own: rollouts change what it serves, other tests must not see that."""
    with running_triton(tmp_path_factory.mktemp("rollout-triton")) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def triton_client(rollout_triton: TritonServer) -> AsyncIterator[TritonInference]:
    client = TritonInference(rollout_triton.grpc_url)
    try:
        yield client
    finally:
        await client.close()


class ProductionTraffic:
    """Keeps sending small generation requests (as campaigns would) and records the outcome."""

    def __init__(self, client: TritonInference) -> None:
        self.client = client
        self.served_by: list[str] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            try:
                generation = await self.client.generate(
                    f"Write a short slogan for a bike shop, variant {number}.",
                    system="You are a marketing copywriter.",
                    max_tokens=8,
                    temperature=0.0,
                )
                self.served_by.append(generation.model)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                self.failures.append(repr(exc))
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        self._stop.set()


async def loaded_versions(client: TritonInference) -> dict[str, set[str]]:
    loaded: dict[str, set[str]] = {}
    for model in await client.repository_index():
        if model.get("state") == "READY":
            loaded.setdefault(model["name"], set()).add(str(model["version"]))
    return loaded


async def run_rollout(
    make_settings, temporal_env, server: TritonServer, client, parameters, history_name: str
) -> tuple[ModelRolloutResult, ProductionTraffic]:
    settings = make_settings(triton_url=server.grpc_url, triton_home_dir=server.settings.triton_home)
    traffic = ProductionTraffic(client)
    async with running_workers(temporal_env.client, settings, kinds=("orchestration", "model_control")):
        sender = asyncio.create_task(traffic.run())
        try:
            rollout_id = f"rollout-{uuid.uuid4().hex[:8]}"
            result = await temporal_env.client.execute_workflow(
                ModelRolloutWorkflow.run,
                ModelRolloutInput(
                    rollout_id=rollout_id,
                    model=MODEL,
                    parameters=parameters,
                    policy=CanaryPolicy(),
                    model_control_queue=settings.queue_model_control,
                    orchestration_queue=settings.queue_orchestration,
                    requested_by="test-admin",
                ),
                id=f"model-rollout/{rollout_id}",
                task_queue=settings.queue_orchestration,
            )
        finally:
            traffic.stop()
            await sender
        await record_workflow_history(temporal_env.client, f"model-rollout/{rollout_id}", history_name)
    assert not traffic.failures, traffic.failures[:3]
    assert len(traffic.served_by) >= 3  # traffic really ran during the rollout
    return result, traffic


async def rollout_audit(db_session, rollout_id: str) -> list[str]:
    rows = await db_session.scalars(
        select(AuditEvent).where(AuditEvent.subject_type == "model").order_by(AuditEvent.id)
    )
    return [row.action for row in rows if row.detail.get("rollout_id") == rollout_id]


async def test_good_candidate_is_promoted_while_the_old_version_keeps_serving(
    make_settings, temporal_env, rollout_triton, triton_client, db_session
):
    assert (await loaded_versions(triton_client))[MODEL] == {"1"}

    result, traffic = await run_rollout(
        make_settings, temporal_env, rollout_triton, triton_client, {"repetition_penalty": "1.2"},
        "model_rollout_promoted",
    )

    assert result.outcome == "promoted", result.reasons
    assert result.version == 2 and result.serving_version == 2
    assert result.report is not None and result.report.passed
    assert result.report.mean_agreement >= 0.5
    loaded = await loaded_versions(triton_client)
    assert loaded[MODEL] == {"2"}  # the old version is unloaded only after the new one serves
    assert f"{MODEL}_canary" not in loaded
    # Production traffic was answered by v1 until the switch, then by v2, never by the canary.
    assert set(traffic.served_by) <= {f"{MODEL}@1", f"{MODEL}@2"}
    assert (await triton_client.generate("Say hi.", system="Be brief.", max_tokens=4, temperature=0)).model == f"{MODEL}@2"
    assert await rollout_audit(db_session, result.rollout_id) == [
        "model.rollout.requested",
        "model.rollout.staged",
        "model.rollout.evaluated",
        "model.rollout.promoted",
    ]
    # The promotion survives a restart: the rendered repository says v2.
    state = Path(rollout_triton.settings.triton_home) / "rollouts" / f"{MODEL}.json"
    assert '"serving": 2' in state.read_text()


async def test_candidate_breaking_length_limits_is_rolled_back_and_old_version_keeps_serving(
    make_settings, temporal_env, rollout_triton, triton_client, db_session
):
    before = (await loaded_versions(triton_client))[MODEL]
    serving = f"{MODEL}@{next(iter(before))}"

    # Forced to write at least 200 tokens: every short-format canary output breaks its limit.
    result, traffic = await run_rollout(
        make_settings, temporal_env, rollout_triton, triton_client, {"min_tokens": "200", "max_tokens_ceiling": "260"},
        "model_rollout_rolled_back",
    )

    assert result.outcome == "rolled_back"
    assert any("length limit" in reason for reason in result.reasons), result.reasons
    assert result.report is not None and result.report.length_violation_rate > 0.5
    loaded = await loaded_versions(triton_client)
    assert loaded[MODEL] == before
    assert f"{MODEL}_canary" not in loaded
    assert set(traffic.served_by) == {serving}  # nothing but the old version answered
    assert not (Path(rollout_triton.settings.triton_home) / "repository" / f"{MODEL}_canary").exists()
    assert await rollout_audit(db_session, result.rollout_id) == [
        "model.rollout.requested",
        "model.rollout.staged",
        "model.rollout.evaluated",
        "model.rollout.rolled_back",
    ]


async def test_candidate_that_cannot_load_is_rolled_back(
    make_settings, temporal_env, rollout_triton, triton_client, db_session
):
    before = (await loaded_versions(triton_client))[MODEL]

    result, traffic = await run_rollout(
        make_settings, temporal_env, rollout_triton, triton_client, {"compute_type": "int3"}, "model_rollout_load_failed"
    )

    assert result.outcome == "rolled_back"
    assert any("failed to load" in reason for reason in result.reasons), result.reasons
    assert (await loaded_versions(triton_client))[MODEL] == before
    assert await rollout_audit(db_session, result.rollout_id) == [
        "model.rollout.requested",
        "model.rollout.rolled_back",
    ]
