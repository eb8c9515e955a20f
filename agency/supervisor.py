"""`agency up`: start the whole local stack in dependency order, watch it, stop it cleanly.

Order: PostgreSQL -> migrations -> Temporal -> Triton -> sandbox channel -> workers -> API.
Each step is health-checked before the next; a failure stops what already started.
"""

from __future__ import annotations

import json

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType

import httpx
from pydantic import SecretStr

from agency.services.process import ManagedProcess, ServiceStartError, log_tail
from agency.services.temporal import task_queue_has_poller, temporal_dev_server, temporal_ui_url
from agency.settings import REPO_ROOT, Settings

WORKER_KINDS = ("orchestration", "inference", "integrations")


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """GET ``url`` returns 200; False on any connection error."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """Can a server bind ``host:port`` now? (SO_REUSEADDR, as servers do, so TIME_WAIT is no conflict.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redact_url(url: str) -> str:
    """A database URL safe to print (password hidden)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the AGENCY_* variable that reproduces it in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, (list, dict)):
            # pydantic-settings reads complex values as JSON.
            value = json.dumps(
                [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
                if isinstance(value, list)
                else value
            )
        if name == "database_url":
            env["DATABASE_URL"] = str(value)
        else:
            env[f"AGENCY_{name.upper()}"] = str(value)
    return env


class Stack:
    """The local stack as child processes (plus embedded PostgreSQL), started in order."""

    POSTGRES = "postgres"
    TEMPORAL_READY_TIMEOUT_S = 60.0
    # Loading the models into Triton's Python backend is slow on 2 cores.
    TRITON_READY_TIMEOUT_S = 240.0
    SANDBOX_READY_TIMEOUT_S = 30.0
    WORKER_READY_TIMEOUT_S = 90.0
    API_READY_TIMEOUT_S = 60.0
    SERVICE_GRACE_S = 10.0

    def __init__(
        self,
        settings: Settings,
        *,
        with_api: bool = True,
        with_workers: bool = True,
        progress: Callable[[str], None] = print,
        sandbox_time_scale: float | None = None,
    ) -> None:
        self.settings = settings
        self.with_api = with_api
        self.with_workers = with_workers
        self.progress = progress
        self.sandbox_time_scale = sandbox_time_scale
        self.database_url: str | None = None
        self._processes: list[ManagedProcess] = []
        self._workers: list[ManagedProcess] = []
        self._owns_postgres = False
        # AGENCY_*/DATABASE_URL values every child gets on top of the current environment.
        self._service_vars: dict[str, str] = {}

    # ---- what runs locally vs. what is external ------------------------------------
    @property
    def runs_temporal(self) -> bool:
        return self.settings.temporal_address is None

    @property
    def runs_triton(self) -> bool:
        return self.settings.triton_url is None

    @property
    def runs_sandbox(self) -> bool:
        return self.settings.channel_base_url is None

    @property
    def runs_postgres(self) -> bool:
        return not self.settings.database_url

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)

    def ports_to_claim(self) -> list[tuple[str, str, int]]:
        """(service, setting env var, port) for every port this stack will listen on."""
        s = self.settings
        ports: list[tuple[str, str, int]] = []
        if self.runs_temporal:
            ports += [
                ("temporal", "AGENCY_TEMPORAL_PORT", s.temporal_port),
                ("temporal", "AGENCY_TEMPORAL_UI_PORT", s.temporal_ui_port),
            ]
        if self.runs_triton:
            ports += [
                ("triton", "AGENCY_TRITON_HTTP_PORT", s.triton_http_port),
                ("triton", "AGENCY_TRITON_GRPC_PORT", s.triton_grpc_port),
                ("triton", "AGENCY_TRITON_METRICS_PORT", s.triton_metrics_port),
            ]
        if self.runs_sandbox:
            ports.append(("sandbox", "AGENCY_SANDBOX_PORT", s.sandbox_port))
        if self.with_api:
            ports.append(("api", "AGENCY_API_PORT", s.api_port))
        return ports

    def check_ports(self) -> None:
        """Refuse to start when a port is taken, naming the port and the setting to change."""
        host = self.settings.bind_host
        seen: dict[int, str] = {}
        for service, env_name, port in self.ports_to_claim():
            if port in seen:
                raise ServiceStartError(
                    service, None, f"{seen[port]} and {env_name} are both set to port {port}; give each its own port"
                )
            seen[port] = env_name
            if not port_is_free(host, port):
                raise ServiceStartError(
                    service,
                    None,
                    f"port {port} on {host} is already in use (another program, or a stack that is "
                    f"already running); stop it or set {env_name} to a free port",
                )

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start everything in order; on any failure stop what started and re-raise."""
        started = time.monotonic()
        try:
            self.check_ports()
            self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
            self._start_postgres()
            self._migrate()
            self._service_vars = self._build_service_vars()
            if self.runs_temporal:
                self._start_temporal()
            if self.runs_triton:
                self._start_triton()
            if self.runs_sandbox:
                self._start_sandbox()
            if self.with_workers:
                self._start_workers()
            if self.with_api:
                self._start_api()
        except BaseException:
            if self._processes or self._owns_postgres:
                self.progress("start failed; stopping what was started")
            self.stop()
            raise
        self.progress(f"stack ready in {time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        """Stop in reverse order: API, workers (SIGTERM together, drain), servers, PostgreSQL."""
        workers = set(map(id, self._workers))
        # Workers drain in-flight activities after SIGTERM for up to their graceful-shutdown
        # timeout (generation is the longest); kill only after that.
        worker_grace = max(self.settings.activity_timeout_s, self.settings.generation_timeout_s) + 5
        for proc in [p for p in self._workers if p.is_running()]:
            proc.terminate()
        for proc in reversed(self._processes):
            grace = worker_grace if id(proc) in workers else self.SERVICE_GRACE_S
            if proc.is_running():
                self.progress(f"stopping {proc.name}")
            proc.stop(grace_s=grace)
        self._processes.clear()
        self._workers.clear()
        if self._owns_postgres:
            from agency.services.postgres import stop_embedded_postgres

            self.progress("stopping postgres")
            try:
                stop_embedded_postgres(self.settings.pgdata_dir)
            finally:
                self._owns_postgres = False

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def dead_services(self) -> list[str]:
        """Services that were started and are no longer running, each with its log tail."""
        reports = []
        for proc in self._processes:
            if not proc.is_running():
                tail = log_tail(proc.log_path)
                reports.append(
                    f"{proc.name} exited unexpectedly with code {proc.returncode}; log: {proc.log_path}"
                    + (f"\n{tail}" if tail else "")
                )
        return reports

    def run_forever(self, poll_interval_s: float = 1.0) -> int:
        """Block until SIGINT/SIGTERM (exit 0) or a child dies (exit 1); always stops the stack.

        Must be called from the main thread (signal handlers).
        """
        stop_requested = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop_requested.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            postgres_checked = time.monotonic()
            while not stop_requested.wait(poll_interval_s):
                dead = self.dead_services()
                if not dead and self._owns_postgres and time.monotonic() - postgres_checked > 5:
                    postgres_checked = time.monotonic()
                    dead = self._postgres_death()
                if dead:
                    for report in dead:
                        self.progress(report)
                    self.progress("stopping the stack because a service died")
                    return 1
            self.progress("shutting down")
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def urls(self) -> dict[str, str]:
        """Where to reach each part of the stack (database password hidden)."""
        s = self.settings
        urls: dict[str, str] = {}
        if self.with_api:
            urls["api"] = f"http://{s.bind_host}:{s.api_port}"
            urls["api_docs"] = f"http://{s.bind_host}:{s.api_port}/docs"
        if self.runs_temporal:
            urls["temporal_ui"] = temporal_ui_url(s)
        urls["temporal"] = s.temporal_target
        if self.runs_triton:
            urls["triton"] = f"http://{s.bind_host}:{s.triton_http_port}"
        urls["triton_grpc"] = s.triton_grpc_target
        urls["sandbox"] = s.channel_url
        if self.database_url:
            urls["database"] = redact_url(self.database_url)
        return urls

    # ---- steps ----------------------------------------------------------------------
    def _start_postgres(self) -> None:
        if not self.runs_postgres:
            from agency.db.session import resolve_database_url

            try:
                self.database_url = resolve_database_url(self.settings)
            except Exception as exc:
                raise ServiceStartError(self.POSTGRES, None, str(exc)) from exc
            self.progress(f"postgres: using {redact_url(self.database_url)}")
            return
        from agency.services.postgres import embedded_database_url, start_embedded_postgres

        self.progress("starting postgres (embedded)")
        pgdata = self.settings.pgdata_dir
        already_running = embedded_database_url(pgdata) is not None
        try:
            self.database_url = start_embedded_postgres(pgdata)
        except Exception as exc:
            server_log = pgdata / "server.log"  # written by pg_ctl (see agency.services.postgres)
            raise ServiceStartError(
                self.POSTGRES, server_log if server_log.exists() else None, str(exc)
            ) from exc
        # A server someone else started (e.g. `agency migrate` earlier) is left running on stop.
        self._owns_postgres = not already_running
        self.progress(f"postgres ready: {redact_url(self.database_url)}")

    def _migrate(self) -> None:
        from agency.db.migrate import upgrade_head

        assert self.database_url is not None
        self.progress("applying database migrations")
        try:
            upgrade_head(self.database_url)
        except Exception as exc:
            raise ServiceStartError("migrations", None, f"alembic upgrade head failed: {exc}") from exc

    def _start_temporal(self) -> None:
        try:
            proc = temporal_dev_server(
                self.settings,
                env=dict(os.environ),  # the server needs none of our settings or secrets
                log_path=self._log_path("temporal"),
                ready_timeout_s=self.TEMPORAL_READY_TIMEOUT_S,
            )
        except FileNotFoundError as exc:
            raise ServiceStartError("temporal", None, str(exc)) from exc
        self._run(proc)

    def _start_triton(self) -> None:
        from agency.models_prep import models_ready
        from agency.triton_server import build_triton_command, triton_is_ready

        s = self.settings
        if not models_ready(s):
            raise ServiceStartError(
                "triton", None, f"models are not prepared in {s.models_dir}: run `agency models prepare` first"
            )
        try:
            argv, triton_env = build_triton_command(
                s, http_port=s.triton_http_port, grpc_port=s.triton_grpc_port, metrics_port=s.triton_metrics_port
            )
        except Exception as exc:
            raise ServiceStartError("triton", None, str(exc)) from exc
        proc = ManagedProcess(
            "triton",
            argv,
            env=triton_env,  # complete already, and deliberately without our secrets
            log_path=self._log_path("triton"),
            ready_check=lambda: triton_is_ready(s.triton_http_port, host=s.bind_host),
            ready_timeout_s=self.TRITON_READY_TIMEOUT_S,
            poll_interval_s=1.0,
        )
        self._run(proc, note="loading models can take a few minutes")

    def _start_sandbox(self) -> None:
        s = self.settings
        argv = [
            sys.executable, "-m", "agency.sandbox",
            "--host", s.bind_host,
            "--port", str(s.sandbox_port),
            "--db", str(s.data_dir / "sandbox.sqlite"),
        ]
        if self.sandbox_time_scale is not None:
            argv += ["--time-scale", str(self.sandbox_time_scale)]
        health = f"{s.channel_url}/healthz"
        self._run(self._python_service("sandbox", argv, lambda: http_ok(health), self.SANDBOX_READY_TIMEOUT_S))

    def _start_workers(self) -> None:
        s = self.settings
        # Model control writes Triton's repository, so it runs only beside a Triton we run.
        kinds = (*WORKER_KINDS, "model_control") if self.runs_triton else WORKER_KINDS
        for kind in kinds:
            queue = getattr(s, f"queue_{kind}")
            # Only pollers seen after this launch count: the server remembers dead ones for minutes.
            since = datetime.now(timezone.utc) - timedelta(seconds=1)
            proc = self._python_service(
                f"worker-{kind}",
                [sys.executable, "-m", "workers", "--queue", kind],
                lambda queue=queue, since=since: task_queue_has_poller(
                    s.temporal_target, s.temporal_namespace, queue, since=since
                ),
                self.WORKER_READY_TIMEOUT_S,
            )
            self._workers.append(proc)
            self._run(proc, note=f"task queue {queue}")

    def _start_api(self) -> None:
        s = self.settings
        argv = [
            sys.executable, "-m", "uvicorn",
            "--factory", "api.app:create_app",
            "--host", s.bind_host,
            "--port", str(s.api_port),
        ]
        readyz = f"http://{s.bind_host}:{s.api_port}/readyz"
        self._run(self._python_service("api", argv, lambda: http_ok(readyz), self.API_READY_TIMEOUT_S))

    # ---- helpers --------------------------------------------------------------------
    def _python_service(
        self, name: str, argv: list[str], ready_check: Callable[[], bool], timeout_s: float
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            argv,
            env=self._child_env(),
            log_path=self._log_path(name),
            ready_check=ready_check,
            ready_timeout_s=timeout_s,
            cwd=REPO_ROOT,  # `python -m workers` / `api.app` resolve from the repo root
        )

    def _run(self, proc: ManagedProcess, note: str = "") -> None:
        self.progress(f"starting {proc.name}" + (f" ({note})" if note else ""))
        began = time.monotonic()
        # Tracked before start so a Ctrl-C during the readiness wait still stops it.
        self._processes.append(proc)
        proc.start()
        self.progress(f"{proc.name} ready in {time.monotonic() - began:.1f} s (log: {proc.log_path})")

    def _child_env(self) -> dict[str, str]:
        return {**os.environ, **self._service_vars}

    def _build_service_vars(self) -> dict[str, str]:
        """Settings as env vars plus resolved addresses, so children never guess."""
        s = self.settings
        env = settings_env(s)
        assert self.database_url is not None
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "AGENCY_TEMPORAL_ADDRESS": s.temporal_target,
                "AGENCY_TRITON_URL": s.triton_grpc_target,
                "AGENCY_CHANNEL_BASE_URL": s.channel_url,
                "AGENCY_DATA_DIR": str(s.data_dir),
                "PYTHONUNBUFFERED": "1",  # log lines reach the file as they happen
            }
        )
        return env

    def _log_path(self, service: str) -> Path:
        return self.settings.logs_dir / f"{service}.log"

    def _postgres_death(self) -> list[str]:
        from agency.services.postgres import embedded_database_url

        try:
            alive = embedded_database_url(self.settings.pgdata_dir) is not None
        except Exception:
            alive = False
        if alive:
            return []
        self._owns_postgres = False  # nothing left to stop
        return [f"postgres (embedded, data in {self.settings.pgdata_dir}) is no longer running"]
