"""Settings: environment variables in, local defaults refused in production."""

from __future__ import annotations

import pytest

from agency.settings import Settings

PRODUCTION_READY = {
    "AGENCY_ENVIRONMENT": "production",
    "AGENCY_SECRET_KEY": "a-real-secret-from-the-vault",
    "AGENCY_CHANNEL_TOKEN": "a-real-channel-token",
    "AGENCY_CHANNEL_BASE_URL": "https://publishing.example.com",
    "DATABASE_URL": "postgresql://agency@db.internal/agency",
    "AGENCY_INTEGRATIONS_TARGET": "live",
    "AGENCY_CREDENTIALS_KEYS": '["a-real-fernet-key-from-the-vault"]',
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in list(PRODUCTION_READY) + ["AGENCY_DATABASE_URL", "AGENCY_API_PORT"]:
        monkeypatch.delenv(name, raising=False)

    def apply(values: dict[str, str]) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return Settings()

    return apply


def test_local_defaults_run_locally(env) -> None:
    settings = env({})
    settings.check_safe_for_environment()
    assert settings.environment == "local"
    assert settings.bind_host == "127.0.0.1"
    assert settings.database_url is None  # the embedded PostgreSQL


def test_environment_variables_use_the_agency_prefix_and_database_url(env) -> None:
    settings = env({"AGENCY_API_PORT": "9191", "DATABASE_URL": "postgresql://u@h/db"})
    assert settings.api_port == 9191
    assert settings.database_url == "postgresql://u@h/db"


def test_production_with_every_secret_set_is_accepted(env) -> None:
    env(PRODUCTION_READY).check_safe_for_environment()


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("AGENCY_SECRET_KEY", "AGENCY_SECRET_KEY"),
        ("AGENCY_CHANNEL_TOKEN", "AGENCY_CHANNEL_TOKEN"),
        ("DATABASE_URL", "DATABASE_URL"),
        ("AGENCY_CHANNEL_BASE_URL", "AGENCY_CHANNEL_BASE_URL"),
        ("AGENCY_INTEGRATIONS_TARGET", "AGENCY_INTEGRATIONS_TARGET"),
        ("AGENCY_CREDENTIALS_KEYS", "AGENCY_CREDENTIALS_KEYS"),
    ],
)
def test_production_refuses_each_local_default(env, missing: str, named: str) -> None:
    settings = env({k: v for k, v in PRODUCTION_READY.items() if k != missing})
    with pytest.raises(RuntimeError, match=named):
        settings.check_safe_for_environment()


def test_secrets_never_appear_in_the_settings_repr(env) -> None:
    settings = env(PRODUCTION_READY)
    assert "a-real-secret-from-the-vault" not in repr(settings)
    assert "a-real-channel-token" not in repr(settings)
    assert "a-real-fernet-key-from-the-vault" not in repr(settings)


def test_app_refuses_to_start_in_production_with_default_secrets():
    from api.app import create_app

    with pytest.raises(RuntimeError, match="AGENCY_SECRET_KEY"):
        create_app(Settings(environment="production"))
