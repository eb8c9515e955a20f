"""CRM sync settings of the API (``AGENCY_CRM_SYNC_*``), kept beside the routes that use them.

HubSpot signs webhooks with the app's client secret, so one secret usually serves every tenant;
``hubspot_webhook_secrets`` overrides it for tenants connected through another app.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CrmSyncSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENCY_CRM_SYNC_", extra="ignore")

    interval_s: float = Field(default=300.0, gt=0)  # between rounds when no webhook arrives
    rounds_per_run: int = Field(default=100, ge=1)  # then continue-as-new
    page_size: int = Field(default=100, ge=1, le=100)
    hubspot_webhook_secret: SecretStr | None = None
    hubspot_webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # Oldest webhook timestamp accepted (replay protection).
    webhook_max_age_s: float = 300.0


def crm_sync_settings() -> CrmSyncSettings:
    # Read per call: cheap, and a rotated secret applies without restarting the API.
    return CrmSyncSettings()


def webhook_secret_for(tenant: str) -> str | None:
    """The secret HubSpot signs ``tenant``'s webhooks with; None when none is configured."""
    settings = crm_sync_settings()
    secret = settings.hubspot_webhook_secrets.get(tenant) or settings.hubspot_webhook_secret
    return secret.get_secret_value() if secret is not None else None
