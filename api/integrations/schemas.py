"""Request/response bodies of the integration endpoints. Responses never carry secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agency.integrations.credentials import DEFAULT_OVERLAP

Provider = Literal["hubspot", "ga4", "google-ads", "linkedin", "x", "resend", "wordpress", "instagram"]
MAX_OVERLAP_S = 30 * 86_400


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any] = Field(
        description=(
            "The provider's secret and account ids. ga4: access_token, property_id. google-ads: "
            "access_token, developer_token, customer_id, login_customer_id?. hubspot: access_token, "
            "client_secret?, portal_id?. linkedin: access_token, organization_id. x: access_token, "
            "user_id?. resend: api_key. wordpress: username + application_password, or access_token; "
            "site_url?. instagram: access_token, ig_user_id, image_url?."
        ),
    )
    overlap_seconds: int = Field(
        default=int(DEFAULT_OVERLAP.total_seconds()), ge=0, le=MAX_OVERLAP_S,
        description="How long the previous version keeps working (0: retire it now).",
    )


class CredentialVersionOut(BaseModel):
    provider: Provider
    version: int
    status: Literal["active", "retiring", "retired"]
    created_by: str
    created_at: datetime
    retire_after: datetime | None
    retired_at: datetime | None


class CredentialSaved(CredentialVersionOut):
    previous: CredentialVersionOut | None = Field(description="The version this one replaced, now retiring or retired")


class IntegrationOut(BaseModel):
    provider: Provider
    active_version: int | None
    versions: list[CredentialVersionOut] = Field(description="Newest first")


class IntegrationsOut(BaseModel):
    integrations: list[IntegrationOut]
