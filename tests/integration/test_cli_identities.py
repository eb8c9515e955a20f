"""`agency users create` and `agency service-identities create` against the test database.

The CLI commits, so every test uses a tenant of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agency import cli
from agency.db.models import AuditEvent, Tenant, User
from agency.security.identities import authenticate_client
from agency.security.passwords import verify_password
from agency.settings import REPO_ROOT, get_settings

pytestmark = pytest.mark.integration

PASSWORD = "cli-password-" + uuid.uuid4().hex  # unique, so finding it in output is meaningful


def _agency(
    database_url: str, *args: str, password_env: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "AGENCY_ENVIRONMENT": "test"}
    env.pop(cli.NEW_USER_PASSWORD_ENV, None)
    if password_env is not None:
        env[cli.NEW_USER_PASSWORD_ENV] = password_env
    return subprocess.run(
        [sys.executable, "-m", "agency.cli", *args],
        cwd=REPO_ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60,
    )


async def _run(database_url: str, *args: str, **kwargs: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_agency, database_url, *args, **kwargs)


def _tenant() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def _user(engine: AsyncEngine, tenant: str, email: str) -> User | None:
    async with AsyncSession(engine) as session:
        return await session.scalar(
            select(User).join(Tenant, Tenant.id == User.tenant_id).where(Tenant.slug == tenant, User.email == email)
        )


async def test_users_create_with_password_from_env(migrated_database_url: str, db_engine: AsyncEngine) -> None:
    tenant = _tenant()
    result = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "Owner@Example.com", "--role", "owner",
        password_env=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "owner@example.com" in result.stdout

    user = await _user(db_engine, tenant, "owner@example.com")
    assert user is not None and user.role == "owner"
    assert verify_password(user.password_hash, PASSWORD).ok
    assert str(user.id) in result.stdout

    async with AsyncSession(db_engine) as session:
        audit = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "users.create", AuditEvent.subject_id == str(user.id))
        )
    assert audit is not None and audit.actor == "cli"
    assert PASSWORD not in str(audit.detail)


async def test_users_create_with_password_from_stdin_keeps_inner_whitespace(
    migrated_database_url: str, db_engine: AsyncEngine
) -> None:
    tenant, password = _tenant(), f" {PASSWORD} with spaces "
    result = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "m@example.com", "--role", "marketer",
        "--password-stdin", stdin=password + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    user = await _user(db_engine, tenant, "m@example.com")
    assert user is not None
    assert verify_password(user.password_hash, password).ok  # only the newline was dropped


async def test_users_create_refuses_a_weak_password_without_echoing_it(
    migrated_database_url: str, db_engine: AsyncEngine
) -> None:
    tenant, weak = _tenant(), "Sh0rt!pw"
    result = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "w@example.com", "--role", "viewer",
        password_env=weak,
    )
    assert result.returncode == 2
    assert "at least 12 characters" in result.stderr
    assert weak not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert await _user(db_engine, tenant, "w@example.com") is None


async def test_users_create_refuses_a_duplicate_and_bad_input(migrated_database_url: str) -> None:
    tenant = _tenant()
    create = ("users", "create", "--tenant", tenant, "--email", "d@example.com", "--role", "viewer")
    assert (await _run(migrated_database_url, *create, password_env=PASSWORD)).returncode == 0

    duplicate = await _run(migrated_database_url, *create, password_env=PASSWORD)
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr and "Traceback" not in duplicate.stderr

    bad_role = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "x@example.com", "--role", "root",
        password_env=PASSWORD,
    )
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr

    bad_email = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "nope", "--role", "viewer",
        password_env=PASSWORD,
    )
    assert bad_email.returncode == 2 and "not an email address" in bad_email.stderr

    empty_stdin = await _run(
        migrated_database_url, "users", "create", "--tenant", tenant, "--email", "e@example.com", "--role", "viewer",
        "--password-stdin",
    )
    assert empty_stdin.returncode == 2 and "stdin is empty" in empty_stdin.stderr


def test_users_create_prompts_twice_and_refuses_a_mismatch(
    migrated_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The interactive path, in-process: getpass is replaced, there is no terminal here."""
    monkeypatch.setenv("DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("AGENCY_ENVIRONMENT", "test")
    monkeypatch.delenv(cli.NEW_USER_PASSWORD_ENV, raising=False)
    get_settings.cache_clear()
    tenant = _tenant()
    args = ["users", "create", "--tenant", tenant, "--email", "p@example.com", "--role", "admin"]
    try:
        answers = iter([PASSWORD, PASSWORD + "typo"])
        monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
        assert cli.main(args) == 2
        assert "do not match" in capsys.readouterr().err

        prompts: list[str] = []
        monkeypatch.setattr("getpass.getpass", lambda prompt="": prompts.append(prompt) or PASSWORD)
        assert cli.main(args) == 0
        assert len(prompts) == 2
        out = capsys.readouterr()
        assert "p@example.com" in out.out and PASSWORD not in out.out + out.err
    finally:
        get_settings.cache_clear()


async def test_service_identities_create_prints_working_credentials_once(
    migrated_database_url: str, db_engine: AsyncEngine
) -> None:
    tenant = _tenant()
    result = await _run(
        migrated_database_url, "service-identities", "create", "--tenant", tenant, "--name", "budget-agent",
        "--scope", "agent:budget", "--scope", "reports:read",
    )
    assert result.returncode == 0, result.stderr
    fields = dict(
        line.split(":", 1) for line in result.stdout.splitlines() if line.startswith(("client_id:", "client_secret:"))
    )
    client_id, client_secret = fields["client_id"].strip(), fields["client_secret"].strip()
    assert "shown only this once" in result.stdout
    assert client_secret not in result.stderr

    async with AsyncSession(db_engine) as session:
        identity = await authenticate_client(session, client_id, client_secret)
        assert identity is not None
        assert identity.name == "budget-agent" and identity.scopes == ["agent:budget", "reports:read"]
        assert identity.secret_hash != client_secret
        audit = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "service_identities.create", AuditEvent.subject_id == client_id
            )
        )
    assert audit is not None and client_secret not in str(audit.detail)


async def test_service_identities_create_refuses_human_only_and_unknown_scopes(migrated_database_url: str) -> None:
    tenant = _tenant()
    base = ("service-identities", "create", "--tenant", tenant, "--name", "bad")
    human = await _run(migrated_database_url, *base, "--scope", "agent:content", "--scope", "users:manage")
    assert human.returncode == 2
    assert "users:manage" in human.stderr and "client_secret" not in human.stdout

    unknown = await _run(migrated_database_url, *base, "--scope", "campaigns:everything")
    assert unknown.returncode == 2 and "unknown scope 'campaigns:everything'" in unknown.stderr
    assert "Traceback" not in human.stderr + unknown.stderr
