"""One settings object for every process (API, workers, supervisor, CLI).

Values come from the environment with the ``AGENCY_`` prefix (``DATABASE_URL`` is also read
unprefixed, as every PostgreSQL tool expects). Defaults are for local mode only:
``Settings.check_safe_for_environment`` refuses them anywhere else.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

# Signing key used only in local mode; production must provide its own.
_LOCAL_ONLY_SECRET = "local-development-only-secret-change-me"

# The documented public endpoints of the providers the adapters speak to.
LIVE_PROVIDER_URLS = {
    "hubspot": "https://api.hubapi.com",
    "ga4": "https://analyticsdata.googleapis.com",
    "google-ads": "https://googleads.googleapis.com",
    "linkedin": "https://api.linkedin.com",
    "x": "https://api.x.com",
    "resend": "https://api.resend.com",
    # Instagram API with Facebook Login (content publishing) is served by the Graph API host.
    "instagram": "https://graph.facebook.com",
    # WordPress has no public endpoint: each tenant's site is its own (see provider_url).
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENCY_", extra="ignore", populate_by_name=True)

    environment: Literal["local", "test", "production"] = "local"
    # Everything the stack writes (pgdata, temporal sqlite, logs, prepared models, reports).
    data_dir: Path = REPO_ROOT / ".agency"
    secret_key: SecretStr = SecretStr(_LOCAL_ONLY_SECRET)
    # Where prepared (converted, quantized) weights live; defaults to data_dir/models. Set it
    # to share one prepared copy between stacks with different data dirs (tests, benchmarks).
    model_cache_dir: Path | None = None

    # PostgreSQL: an external server when DATABASE_URL is set, else the embedded one.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "AGENCY_DATABASE_URL")
    )

    bind_host: str = "127.0.0.1"

    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_namespace: str = "default"
    # host:port of an existing Temporal frontend; when unset the supervisor runs the dev server.
    temporal_address: str | None = None

    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    # host:port of an existing Triton gRPC endpoint; when unset the supervisor runs tritonserver.
    triton_url: str | None = None
    # Triton's rendered model repository and rollout state (defaults to data_dir/triton). The
    # rollout activities write here, so they must share it with the server they steer.
    triton_home_dir: Path | None = None
    # Triton's Prometheus endpoint; defaults to the local server's metrics port.
    triton_metrics_url: str | None = None
    # Templates Triton's repository is rendered from (defaults to the committed model_repository/;
    # the inference bench points it at a copy holding its model variants).
    model_repository_dir: Path | None = None
    # Compute type of the content generator's base version: INT8 (~2x faster on CPU) or FP32.
    generator_compute_type: Literal["int8", "float32"] = "int8"
    # Triton's response cache: identical requests (same model version, inputs, seed) are
    # answered without running the model.
    triton_response_cache_mb: int = 64
    # Triton priority level per tenant (1 = first; 2 is the default for unlisted tenants), and
    # how many requests a tenant may have in flight per process before the rest are demoted
    # to the lowest level (so one tenant's flood queues behind everyone else).
    tenant_priority_levels: dict[str, int] = Field(default_factory=dict)
    inference_tenant_fair_share: int = 4

    api_port: int = 8080
    sandbox_port: int = 8090
    # Base URL of the publishing channel; defaults to the local sandbox channel.
    channel_base_url: str | None = None
    # Bearer token for the publishing channel (the sandbox accepts this local default).
    channel_token: SecretStr = SecretStr("sandbox-local-token")

    # ---- service adapters (agency.integrations) -------------------------------------
    # "sandbox": every provider adapter talks to that provider's face on the local sandbox
    # (local mode, tests, the demo); "live": the providers' documented public endpoints.
    integrations_target: Literal["sandbox", "live"] = "sandbox"
    # Per-provider base URL overrides, e.g. {"hubspot": "https://api.hubapi.com"}.
    provider_base_urls: dict[str, str] = Field(default_factory=dict)
    # Fernet keys (url-safe base64 of 32 bytes) for tenant credentials at rest. The first one
    # encrypts, all of them decrypt: rotate by putting a new key first and re-encrypting.
    # Empty in local mode means a key derived from secret_key; production must set them.
    credentials_keys: list[SecretStr] = Field(default_factory=list)
    integration_timeout_s: float = 10.0
    # Campaign emails go out from this sender to this list address (the ESP expands the list).
    email_sender: str = "campaigns@agency.example"
    email_list_address: str = "subscribers@lists.agency.example"
    # Outgoing mail (SMTP). Local mode and tests run a local SMTP server.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_starttls: bool = False

    queue_orchestration: str = "agency-orchestration"
    queue_inference: str = "agency-inference"
    queue_integrations: str = "agency-integrations"
    # Model rollouts: served only by the worker beside Triton (it writes Triton's repository).
    queue_model_control: str = "agency-model-control"

    # Campaign timings (seconds). Tests and the demo shrink them; production uses hours/days.
    approval_timeout_s: float = 72 * 3600
    approval_reminder_s: float = 24 * 3600
    metrics_interval_s: float = 3600
    metrics_rounds: int = 3
    # Decision agents: value of a conversion when a brief names none (ROI = conversions x value / spend),
    # how far a reallocation may move a share before a person must approve, and how long one waits.
    conversion_value_cents: int = 5_000
    reallocation_approval_threshold: float = 0.10
    reallocation_min_change: float = 0.02
    reallocation_decision_timeout_s: float = 3600
    experiment_mode: str = "ab"
    # Weeks of tenant history the Budget Allocation Agent needs before it advises (see
    # agency.mmm.allocation.GateTolerances: 2 years left ~1 advised plan in 10 over 5% regret).
    market_min_history_weeks: int = Field(default=156, ge=26, le=520)
    # Tenant ROI reports: a Temporal Schedule runs ScheduledReportsWorkflow this often (0: off).
    report_schedule_interval_s: float = 7 * 24 * 3600

    # The planner's cap on posts per channel in one campaign (tests and small demos lower it).
    max_posts_per_channel: int = Field(default=3, ge=1, le=20)
    generation_max_tokens: int = 160
    generation_temperature: float = 0.7
    # Content agents: candidates per item and round (the ranking keeps the best), content
    # pipelines at once per campaign, and redrafts a reviewer's rejection reason may trigger per item.
    generation_variants: int = Field(default=2, ge=1, le=8)
    content_concurrency: int = Field(default=4, ge=1, le=64)
    review_regenerations: int = Field(default=1, ge=0, le=5)
    activity_timeout_s: float = 30.0
    # How long an API call waits on Temporal (a query, an update) before answering 503.
    api_workflow_rpc_timeout_s: float = 15.0
    generation_timeout_s: float = 120.0
    # While the model server is down, campaigns probe it with backoff up to this interval.
    model_server_probe_max_interval_s: float = 30.0

    # ---- security (tokens, keys, rate limits) ---------------------------------------
    jwt_issuer: str = "agency"
    jwt_audience: str = "agency-api"
    access_token_ttl_s: int = 15 * 60
    # Refresh tokens rotate on every use; idle lifetime per token, absolute per family (ASVS V10.4.8).
    refresh_token_ttl_s: int = 14 * 24 * 3600
    refresh_token_absolute_ttl_s: int = 30 * 24 * 3600
    # Retired signing keys still verify for this long, so rotation logs nobody out.
    signing_key_verify_grace_s: int = 24 * 3600
    # After rotation the old API key keeps working this long, so clients can switch over.
    api_key_rotation_overlap_s: int = 24 * 3600
    # Token buckets: sustained requests per minute and burst size.
    rate_limit_tenant_per_minute: float = 600
    rate_limit_tenant_burst: int = 120
    rate_limit_identity_per_minute: float = 300
    rate_limit_identity_burst: int = 60
    # Login/token endpoints, per client address and per account: brute-force protection.
    rate_limit_login_per_minute: float = 10
    rate_limit_login_burst: int = 5

    # ---- derived paths -------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def models_dir(self) -> Path:
        """Prepared (converted, quantized) model weights; never committed."""
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.sqlite"

    @property
    def model_repository(self) -> Path:
        """The committed templates; Triton serves a rendered copy (see agency.triton_repository)."""
        return self.model_repository_dir or REPO_ROOT / "model_repository"

    @property
    def triton_home(self) -> Path:
        return self.triton_home_dir or self.data_dir / "triton"

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"{self.bind_host}:{self.temporal_port}"

    @property
    def triton_grpc_target(self) -> str:
        return self.triton_url or f"{self.bind_host}:{self.triton_grpc_port}"

    @property
    def triton_metrics_target(self) -> str:
        return self.triton_metrics_url or f"http://{self.bind_host}:{self.triton_metrics_port}/metrics"

    def provider_url(self, provider: str) -> str:
        """Base URL of a provider's API: an override, else the sandbox face or the live endpoint."""
        if provider in self.provider_base_urls:
            return self.provider_base_urls[provider].rstrip("/")
        if self.integrations_target == "live":
            if provider not in LIVE_PROVIDER_URLS:
                raise ValueError(
                    f"{provider} has no public endpoint: set its site URL in AGENCY_PROVIDER_BASE_URLS"
                    f' (e.g. {{"{provider}": "https://blog.example.com"}}) or store it with the credential'
                )
            return LIVE_PROVIDER_URLS[provider]
        return f"{self.channel_url.rstrip('/')}/{provider}"

    @property
    def channel_url(self) -> str:
        return self.channel_base_url or f"http://{self.bind_host}:{self.sandbox_port}"

    def check_safe_for_environment(self) -> None:
        """Refuse local-only defaults outside local/test mode."""
        if self.environment == "production":
            if self.secret_key.get_secret_value() == _LOCAL_ONLY_SECRET:
                raise RuntimeError("AGENCY_SECRET_KEY must be set in production")
            if self.channel_token.get_secret_value() == "sandbox-local-token":
                raise RuntimeError("AGENCY_CHANNEL_TOKEN must be set in production")
            if not self.database_url:
                raise RuntimeError("DATABASE_URL must point at a managed PostgreSQL in production")
            if not self.channel_base_url:
                raise RuntimeError("AGENCY_CHANNEL_BASE_URL must name the real publishing channel in production")
            if self.integrations_target != "live":
                raise RuntimeError("AGENCY_INTEGRATIONS_TARGET=live is required in production (the sandbox is local-only)")
            if not self.credentials_keys:
                raise RuntimeError("AGENCY_CREDENTIALS_KEYS must be set in production (tenant credentials at rest)")


@lru_cache
def get_settings() -> Settings:
    settings = Settings()
    settings.check_safe_for_environment()
    return settings
