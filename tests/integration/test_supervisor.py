"""The supervisor's building blocks against real processes and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from agency.services.process import ManagedProcess, ServiceStartError
from agency.services.temporal import (
    task_queue_has_poller,
    temporal_dev_server,
    temporal_is_ready,
    temporal_ui_url,
)
from agency.settings import REPO_ROOT, Settings
from agency.supervisor import Stack, port_is_free, settings_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes once it is a zombie.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def local_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings whose every port is free, so tests never touch other people's servers."""
    ports = dict(
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        triton_http_port=free_port(),
        triton_grpc_port=free_port(),
        triton_metrics_port=free_port(),
        api_port=free_port(),
        sandbox_port=free_port(),
    )
    return Settings(data_dir=tmp_path / "data", **{**ports, **overrides})


# ---- ManagedProcess -------------------------------------------------------------------
def test_child_that_never_becomes_ready_fails_with_its_log_and_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "slowpoke.log"
    proc = ManagedProcess(
        "slowpoke",
        [sys.executable, "-c", "import time; print('warming up the flux capacitor', flush=True); time.sleep(60)"],
        env=dict(os.environ),
        log_path=log,
        ready_check=lambda: False,
        ready_timeout_s=1.0,
        poll_interval_s=0.1,
    )
    with pytest.raises(ServiceStartError) as caught:
        proc.start()
    message = str(caught.value)
    assert "slowpoke" in message
    assert str(log) in message
    assert "not ready after 1 s" in message
    assert "warming up the flux capacitor" in message  # the log tail is in the error
    assert proc.pid is not None and process_gone(proc.pid)
    assert not proc.is_running()


def test_child_that_exits_early_reports_exit_code_and_output(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "crasher",
        [sys.executable, "-c", "import sys; print('config file missing', file=sys.stderr); sys.exit(3)"],
        env=dict(os.environ),
        log_path=tmp_path / "crasher.log",
        ready_check=lambda: False,
        ready_timeout_s=30.0,
        poll_interval_s=0.05,
    )
    started = time.monotonic()
    with pytest.raises(ServiceStartError) as caught:
        proc.start()
    assert time.monotonic() - started < 10  # did not wait for the full timeout
    assert "exited with code 3" in str(caught.value)
    assert "config file missing" in str(caught.value)  # stderr goes to the same log


def test_stop_kills_a_child_that_ignores_sigterm_and_its_descendants(tmp_path: Path) -> None:
    ready_file = tmp_path / "ready"
    grandchild_pid_file = tmp_path / "grandchild.pid"
    code = f"""
import signal, subprocess, sys, time, pathlib
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
pathlib.Path({str(grandchild_pid_file)!r}).write_text(str(grandchild.pid))
pathlib.Path({str(ready_file)!r}).touch()
while True:
    time.sleep(1)
"""
    proc = ManagedProcess(
        "stubborn",
        [sys.executable, "-c", code],
        env=dict(os.environ),
        log_path=tmp_path / "stubborn.log",
        ready_check=ready_file.exists,
        ready_timeout_s=20.0,
        poll_interval_s=0.05,
    )
    proc.start()
    assert proc.is_running()
    grandchild_pid = int(grandchild_pid_file.read_text())

    began = time.monotonic()
    proc.stop(grace_s=1.0)
    elapsed = time.monotonic() - began
    assert 1.0 <= elapsed < 6.0  # waited the grace period, then SIGKILL
    assert proc.returncode == -signal.SIGKILL
    assert proc.pid is not None and process_gone(proc.pid)
    deadline = time.monotonic() + 5
    while not process_gone(grandchild_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(grandchild_pid)

    proc.stop()  # idempotent
    assert not proc.is_running()


# ---- Temporal dev server ----------------------------------------------------------------
def test_temporal_dev_server_starts_ready_with_ui_and_stops_cleanly(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, temporal_namespace="agency-test")
    server = temporal_dev_server(settings, env=dict(os.environ), log_path=settings.logs_dir / "temporal.log")
    try:
        server.start()
        assert temporal_is_ready(settings.temporal_target, "agency-test")
        assert not temporal_is_ready(settings.temporal_target, "no-such-namespace")
        assert settings.temporal_db_file.is_file()  # persisted in SQLite, not in memory
        ui = httpx.get(temporal_ui_url(settings), timeout=10)
        assert ui.status_code == 200
    finally:
        server.stop()
    assert server.pid is not None and process_gone(server.pid)
    assert not temporal_is_ready(settings.temporal_target, "agency-test")
    assert port_is_free("127.0.0.1", settings.temporal_port)
    assert port_is_free("127.0.0.1", settings.temporal_ui_port)


@pytest.fixture
def temporal_settings(tmp_path: Path) -> Iterator[Settings]:
    settings = local_settings(tmp_path)
    server = temporal_dev_server(settings, env=dict(os.environ), log_path=settings.logs_dir / "temporal.log")
    try:
        server.start()
        yield settings
    finally:
        server.stop()


@activity.defn(name="noop")
async def noop_activity() -> None:
    return None


async def test_worker_readiness_sees_a_live_poller_but_not_a_stale_one(temporal_settings: Settings) -> None:
    target, namespace, queue = temporal_settings.temporal_target, temporal_settings.temporal_namespace, "probe-q"
    assert not task_queue_has_poller(target, namespace, queue)

    client = await Client.connect(target, namespace=namespace)
    async with Worker(client, task_queue=queue, activities=[noop_activity]):
        # Probe from a thread, as the supervisor does, so this loop keeps driving the worker.
        deadline = time.monotonic() + 15
        while not await asyncio.to_thread(task_queue_has_poller, target, namespace, queue):
            assert time.monotonic() < deadline, "worker never showed up as a poller"
            await asyncio.sleep(0.2)
        # A launch after the last poll must not count this poller as its own.
        future = datetime.now(timezone.utc) + timedelta(hours=1)
        assert not await asyncio.to_thread(task_queue_has_poller, target, namespace, queue, since=future)


# ---- Stack pre-flight -----------------------------------------------------------------
def test_stack_refuses_a_taken_port_naming_the_setting_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        settings = local_settings(tmp_path, api_port=taken)
        with pytest.raises(ServiceStartError) as caught:
            Stack(settings, progress=lambda _: None).start()
    message = str(caught.value)
    assert f"port {taken}" in message
    assert "AGENCY_API_PORT" in message
    assert not settings.pgdata_dir.exists()  # refused before PostgreSQL was touched


def test_stack_refuses_two_settings_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    settings = local_settings(tmp_path, sandbox_port=port, api_port=port)
    with pytest.raises(ServiceStartError, match="AGENCY_SANDBOX_PORT and AGENCY_API_PORT are both set to port"):
        Stack(settings, progress=lambda _: None).start()


def test_agency_up_reports_a_port_conflict_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        settings = local_settings(tmp_path, temporal_ui_port=taken)
        env = {**os.environ, **settings_env(settings)}
        result = subprocess.run(
            [sys.executable, "-m", "agency.cli", "up"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"port {taken}" in result.stderr and "AGENCY_TEMPORAL_UI_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_survive_the_trip_to_a_child_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = local_settings(
        tmp_path,
        database_url="postgresql+psycopg://agency@db.internal/agency",
        approval_timeout_s=12.5,
        metrics_rounds=2,
        secret_key="not-the-default",
        triton_url="triton.internal:8001",
    )
    for name in list(os.environ):
        if name.startswith("AGENCY_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.model_dump(exclude={"secret_key"}) == original.model_dump(exclude={"secret_key"})
    assert child.secret_key.get_secret_value() == "not-the-default"


# ---- the stack itself (Triton and the API are covered by their own tests) ----------------
def test_stack_starts_in_order_and_stops_everything_when_a_worker_dies(tmp_path: Path) -> None:
    from agency.services.postgres import embedded_database_url

    suffix = tmp_path.name[-12:]
    settings = local_settings(
        tmp_path,
        environment="test",
        # An external Triton address makes the stack skip starting one; workers connect lazily.
        triton_url=f"127.0.0.1:{free_port()}",
        # Custom queue names prove the children got the supervisor's settings, not defaults.
        queue_orchestration=f"orchestration-{suffix}",
        queue_inference=f"inference-{suffix}",
        queue_integrations=f"integrations-{suffix}",
    )
    messages: list[str] = []
    stack = Stack(settings, with_api=False, progress=messages.append)
    try:
        stack.start()
        names = [proc.name for proc in stack.processes]
        assert names == ["temporal", "sandbox", "worker-orchestration", "worker-inference", "worker-integrations"]
        urls = stack.urls()
        assert "api" not in urls
        assert httpx.get(urls["temporal_ui"], timeout=10).status_code == 200
        assert httpx.get(f"{urls['sandbox']}/healthz", timeout=10).status_code == 200
        assert embedded_database_url(settings.pgdata_dir) is not None
        for queue in (settings.queue_orchestration, settings.queue_inference, settings.queue_integrations):
            assert task_queue_has_poller(settings.temporal_target, settings.temporal_namespace, queue)

        victim = next(proc for proc in stack.processes if proc.name == "worker-integrations")
        pids = [proc.pid for proc in stack.processes]
        os.kill(victim.pid, signal.SIGKILL)
        assert stack.run_forever(poll_interval_s=0.2) == 1
    finally:
        stack.stop()
    assert any("worker-integrations exited unexpectedly" in m and "worker-integrations.log" in m for m in messages)
    assert all(pid is not None and process_gone(pid) for pid in pids)
    assert embedded_database_url(settings.pgdata_dir) is None  # PostgreSQL stopped last
    assert port_is_free("127.0.0.1", settings.temporal_port)
