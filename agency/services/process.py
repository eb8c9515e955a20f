"""Child processes the supervisor owns: start, wait until healthy, stop the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

LOG_TAIL_LINES = 20


def log_tail(log_path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a log file, or "" when there is none."""
    if log_path is None or not log_path.is_file():
        return ""
    with log_path.open("rb") as f:
        # Logs can be large; the tail lives in the last few KiB.
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        data = f.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])


class ServiceStartError(RuntimeError):
    """A service did not become healthy; the message says which, why, and where its log is."""

    def __init__(self, service: str, log_path: Path | None, reason: str) -> None:
        self.service = service
        self.log_path = log_path
        self.reason = reason
        message = f"{service} failed to start: {reason}"
        if log_path is not None:
            message += f"\n  log: {log_path}"
            tail = log_tail(log_path)
            if tail:
                indented = "\n".join("    " + line for line in tail.splitlines())
                message += f"\n  last lines of the log:\n{indented}"
        super().__init__(message)


class ManagedProcess:
    """One service as a child process in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        ready_check: Callable[[], bool],
        ready_timeout_s: float = 60.0,
        poll_interval_s: float = 0.25,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.ready_check = ready_check
        self.ready_timeout_s = ready_timeout_s
        self.poll_interval_s = poll_interval_s
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the child and block until ``ready_check`` passes; raise ServiceStartError if not."""
        if self.is_running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    # Own group: Ctrl-C reaches only the supervisor, which then stops
                    # children in order; stop() can signal the child and its descendants.
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServiceStartError(self.name, self.log_path, f"cannot run {self.argv[0]}: {exc}") from exc
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            code = self.returncode
            if code is not None:
                self.stop(grace_s=1)  # reap leftovers of its group
                raise ServiceStartError(
                    self.name, self.log_path, f"process exited with code {code} before it was ready"
                )
            if self._check_ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise ServiceStartError(
                    self.name, self.log_path, f"not ready after {self.ready_timeout_s:g} s"
                )
            time.sleep(self.poll_interval_s)

    def _check_ready(self) -> bool:
        try:
            return bool(self.ready_check())
        except Exception:  # a probe that errors means "not ready yet"
            return False

    def terminate(self) -> None:
        """Send SIGTERM to the group without waiting (lets several services drain in parallel)."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL. Safe to call repeatedly."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait()
        # The leader is gone; descendants still in its group must not outlive it.
        if self._group_alive():
            time.sleep(min(grace_s, 0.5))
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _group_alive(self) -> bool:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited({self.returncode})"
        return f"ManagedProcess({self.name!r}, pid={self.pid}, {state})"
