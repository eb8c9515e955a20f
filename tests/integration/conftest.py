"""The real stack for integration tests: Temporal dev server, Triton, the sandbox channel,
PostgreSQL (tests/conftest.py), in-process workers and the API on ASGI.

Each service binds to 127.0.0.1 on a free port and is stopped even when tests fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agency.inference import TritonInference
from agency.models_prep import prepare_models
from agency.settings import REPO_ROOT, Settings, get_settings
from agency.triton_server import TritonServer

SANDBOX_TOKEN = "sandbox-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temporal_cli() -> str:
    path = Path(sys.executable).parent / "temporal"
    return str(path) if path.exists() else (shutil.which("temporal") or "temporal")


# ---- services (session-scoped) -------------------------------------------------------------
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), ip="127.0.0.1", port=free_port()
    )
    try:
        yield env
    finally:
        await env.shutdown()


def private_triton_server(directory: Path) -> TritonServer:
    """A Triton on free ports with a rendered repository of its own under ``directory``, so
    rollouts and restarts in one test never reach another; the caller starts and stops it."""
    return TritonServer(
        get_settings().model_copy(update={"triton_home_dir": directory / "home"}),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_path=directory / "triton.log",
    )


@contextmanager
def running_triton(directory: Path) -> Iterator[TritonServer]:
    """``private_triton_server``, started, and stopped however the test ends."""
    server = private_triton_server(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def settled_count(client: TritonInference, model: str, expected: int, timeout_s: float = 5.0) -> int:
    """Triton's computed-request count once it reaches ``expected`` (or the timeout passes).

    The server records a request's statistics after its response has gone out, so a count read
    right after the last response can still lag by a few requests.
    """
    deadline = time.monotonic() + timeout_s
    while (count := await client.inference_count(model)) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    # Prepared models are cached in the real data dir (conversion happens once per machine).
    prepare_models(get_settings(), progress=lambda msg: None)
    with running_triton(tmp_path_factory.mktemp("triton")) as server:
        yield server


@dataclass
class Sandbox:
    url: str
    db_path: Path
    process: subprocess.Popen


def start_sandbox(db_path: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "AGENCY_SANDBOX_TOKEN": SANDBOX_TOKEN}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agency.sandbox", "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"sandbox did not become ready; see {log_path}")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    proc = start_sandbox(folder / "sandbox.sqlite", port, folder / "sandbox.log")
    try:
        yield Sandbox(url=f"http://127.0.0.1:{port}", db_path=folder / "sandbox.sqlite", process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sandbox_client(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)


# ---- settings and running stack -----------------------------------------------------------
def stack_settings(
    *,
    database_url: str,
    temporal: WorkflowEnvironment,
    triton_url: str,
    sandbox_url: str,
    data_dir: Path,
    queue_suffix: str,
    **overrides,
) -> Settings:
    """Settings for one test's stack; distinct queue names keep tests' workers apart."""
    values = dict(
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        triton_url=triton_url,
        channel_base_url=sandbox_url,
        channel_token=SANDBOX_TOKEN,
        queue_orchestration=f"orchestration-{queue_suffix}",
        queue_inference=f"inference-{queue_suffix}",
        queue_integrations=f"integrations-{queue_suffix}",
        queue_model_control=f"model-control-{queue_suffix}",
        approval_timeout_s=600,
        approval_reminder_s=300,
        metrics_interval_s=0.5,
        metrics_rounds=2,
        # A reallocation above the approval threshold waits this long for a person, then expires.
        reallocation_decision_timeout_s=5,
        generation_max_tokens=96,
        activity_timeout_s=10,
        generation_timeout_s=90,
        # One candidate per item and round keeps the model calls of campaign tests down, and a
        # rejection closes the item as before; the content agents' test asks for candidates and redrafts.
        generation_variants=1,
        review_regenerations=0,
        # One post per channel (one social slot is still its X + LinkedIn + Instagram set): 5 drafts
        # per campaign instead of 13. Tests about calendars, experiments or many items ask for more.
        max_posts_per_channel=1,
        # Generous limits: tests share one database (and so every bucket) and poll often; the
        # rate-limit tests set their own.
        rate_limit_tenant_per_minute=60_000,
        rate_limit_tenant_burst=1_000,
        rate_limit_identity_per_minute=60_000,
        rate_limit_identity_burst=1_000,
        rate_limit_login_per_minute=60_000,
        rate_limit_login_burst=1_000,
    )
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for worker subprocesses."""
    from agency.supervisor import settings_env as as_env_vars

    return {**os.environ, **as_env_vars(settings)}


@asynccontextmanager
async def running_workers(client: Client, settings: Settings, kinds=("orchestration", "inference", "integrations")):
    from workers.main import build_workers

    async with AsyncExitStack() as stack:
        for worker in await build_workers(client, settings, list(kinds), stack):
            await stack.enter_async_context(worker)
        yield


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """The API as its own uvicorn process (as deployed); the caller terminates it."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"API exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"API not healthy in {timeout_s}s:\n{log.read_text()[-3000:]}")


def fresh_tenant(prefix: str = "t") -> str:
    """A tenant of its own for one test: content checks compare drafts with the tenant's earlier
    content, so campaigns of other tests on a shared tenant can block a draft as a near-duplicate."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def api_client(
    settings: Settings, *, tenant: str = "acme-outdoor", role: str | None = "owner"
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process; signed in (password grant) as a new ``role`` user of ``tenant``.

    ``role=None`` gives an anonymous client.
    """
    from api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agency.test", timeout=60) as client:
            if role is not None:
                client.headers["Authorization"] = f"Bearer {await sign_in(client, app, tenant=tenant, role=role)}"
            yield client


async def sign_in(client: httpx.AsyncClient, app, *, tenant: str, role: str) -> str:
    """Create a user with ``role`` in ``tenant`` and log in through /v1/auth/token; the access token."""
    from agency.security.identities import create_user

    email = f"{role}-{uuid.uuid4().hex[:10]}@{tenant}.test"
    password = uuid.uuid4().hex + uuid.uuid4().hex
    async with app.state.sessions() as session, session.begin():
        await create_user(session, tenant_slug=tenant, email=email, role=role, password=password)
    response = await client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "tenant": tenant, "username": email, "password": password},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def make_settings(migrated_database_url, temporal_env, triton, sandbox, tmp_path, request):
    def make(**overrides) -> Settings:
        stack = dict(
            database_url=migrated_database_url,
            temporal=temporal_env,
            triton_url=triton.grpc_url,
            triton_home_dir=triton.settings.triton_home,
            triton_metrics_url=f"http://127.0.0.1:{triton.metrics_port}/metrics",
            sandbox_url=sandbox.url,
            data_dir=tmp_path / "data",
            queue_suffix=request.node.name.replace("[", "-").replace("]", ""),
        )
        stack.update(overrides)  # a test may point one dependency somewhere else (e.g. a dead port)
        return stack_settings(**stack)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(migrated_database_url: str):
    """A session factory of the test's own, for tests that read or write the database directly."""
    from agency.db.session import create_engine, session_factory

    engine = create_engine(migrated_database_url, pool_size=4, max_overflow=2)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def inference(triton: TritonServer) -> AsyncIterator[TritonInference]:
    client = TritonInference(triton.grpc_url)
    try:
        yield client
    finally:
        await client.close()
