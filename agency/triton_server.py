"""Run the Triton Inference Server shipped in the nvidia-pytriton wheel as a child process.

The wheel holds ``tritonserver``, its shared libraries and a Python backend whose stub we
pick for this interpreter's version. Models come from the repository rendered from
``settings.model_repository`` (see ``agency.triton_repository``); their weights from
``settings.models_dir`` (see ``agency.models_prep``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

import httpx

from agency.models_prep import models_ready
from agency.settings import Settings
from agency.triton_repository import TritonRepository

# Never hand these to the model server: it needs none of them.
_SECRET_ENV_VARS = ("AGENCY_SECRET_KEY", "AGENCY_CHANNEL_TOKEN", "DATABASE_URL", "AGENCY_DATABASE_URL")
_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


def _pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed; it provides the tritonserver binary")
    return Path(list(spec.submodule_search_locations)[0])


def ensure_backend_directory(settings: Settings) -> Path:
    """Create ``data_dir/triton_backends/python`` with links to the wheel's Python backend.

    tritonserver looks for the stub next to ``libtriton_python.so``, and the wheel keeps
    one stub per Python version elsewhere, so we assemble the directory ourselves.
    Returns the ``--backend-directory`` root.
    """
    server_dir = _pytriton_dir() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    sources = {name: server_dir / "backends" / "python" / name for name in _BACKEND_FILES}
    sources["triton_python_backend_stub"] = (
        server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    )
    for name, source in sources.items():
        if not source.exists():
            raise RuntimeError(f"nvidia-pytriton lacks {source} (Python {version} backend)")

    backend_root = settings.data_dir / "triton_backends"
    python_dir = backend_root / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        link = python_dir / name
        if link.is_symlink() and os.readlink(link) == str(source):
            continue
        # Replace via rename so a concurrent start never sees a missing file.
        staging = python_dir / f".{name}.{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(source)
        staging.replace(link)
    return backend_root


def build_triton_command(
    settings: Settings, *, http_port: int, grpc_port: int, metrics_port: int
) -> tuple[list[str], dict[str, str]]:
    """argv and complete environment for a tritonserver process serving our model repository."""
    pytriton_dir = _pytriton_dir()
    binary = pytriton_dir / "tritonserver" / "bin" / "tritonserver"
    libs_dir = pytriton_dir.parent / "nvidia_pytriton.libs"
    backend_root = ensure_backend_directory(settings)
    repository = TritonRepository.from_settings(settings).render()
    host = settings.bind_host

    argv = [
        str(binary),
        f"--model-repository={repository}",
        # Explicit control: model versions are loaded and unloaded by the rollout workflow.
        "--model-control-mode=explicit",
        "--load-model=*",
        f"--cache-directory={pytriton_dir / 'tritonserver' / 'caches'}",
        f"--cache-config=local,size={settings.triton_response_cache_mb * 1024 * 1024}",
        f"--backend-directory={backend_root}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        # A model that fails to load stops the server, so startup errors surface at once.
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--exit-timeout-secs=10",
        "--log-verbose=0",
    ]

    env = {key: value for key, value in os.environ.items() if key not in _SECRET_ENV_VARS}
    site_packages = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env.update(
        {
            "LD_LIBRARY_PATH": os.pathsep.join(
                p for p in (str(libs_dir), os.environ.get("LD_LIBRARY_PATH", "")) if p
            ),
            "AGENCY_MODELS_DIR": str(settings.models_dir),
            "AGENCY_SITE_PACKAGES": os.pathsep.join(site_packages),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return argv, env


def triton_is_ready(http_port: int, host: str = "127.0.0.1") -> bool:
    """True when Triton answers GET /v2/health/ready with 200 (server and all models ready)."""
    try:
        return httpx.get(f"http://{host}:{http_port}/v2/health/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _log_excerpt(log_path: Path, max_lines: int = 12) -> str:
    """Error lines from the end of the server log, for exception messages."""
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            lines = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
    return "\n".join((errors or lines)[-max_lines:])


class TritonServer:
    """A tritonserver child process in its own process group; a context manager."""

    def __init__(
        self, settings: Settings, *, http_port: int, grpc_port: int, metrics_port: int, log_path: Path
    ) -> None:
        self.settings = settings
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self.settings.bind_host

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 240) -> None:
        """Start tritonserver and wait until it and every model are ready."""
        if self.is_running():
            return
        if not models_ready(self.settings):
            raise RuntimeError(
                f"models are not prepared in {self.settings.models_dir}; run `agency models prepare` first"
            )
        argv, env = build_triton_command(
            self.settings, http_port=self.http_port, grpc_port=self.grpc_port, metrics_port=self.metrics_port
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() also reaches the backend stubs
            )

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise RuntimeError(
                    f"tritonserver exited with code {code} during startup; see {self.log_path}\n"
                    f"{_log_excerpt(self.log_path)}"
                )
            if triton_is_ready(self.http_port, self.host):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"tritonserver not ready after {timeout_s:.0f} s; see {self.log_path}\n{_log_excerpt(self.log_path)}"
        )

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``, and reap the server."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # Stubs may outlive the server by a moment; make sure nothing of the group remains.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(timeout=10.0)

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
