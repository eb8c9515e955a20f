"""Publishing router: each content item goes to the provider of its format.

``x_post`` -> X, ``linkedin_post`` -> LinkedIn, ``email`` -> Resend (to the configured list
address); everything else (blog posts, generic social posts, Instagram captions) -> the
existing :class:`~agency.channels.ChannelClient`. A format whose adapter is not configured also
goes to the channel, which accepts every format.

Errors come out as :mod:`agency.integrations.errors` for every route (the channel's own errors
are translated), so one ``provider_errors`` block in the activity maps them all onto Temporal.

Retries: every route is safe to call again with the same request. The channel and Resend
replay on the idempotency key; X and LinkedIn refuse duplicate content and the adapters turn
that refusal into the existing post (see :mod:`agency.integrations.social`). The result has
``duplicate=True`` when the provider already had the item.

Paid budget: X, LinkedIn and Resend publish organically; the item's ``budget_cents`` is then
set through the channel's budget API (the stand-in for the networks' ads APIs, where the
campaign's later budget rounds go too), keyed ``{idempotency_key}:promote`` so a retry sets it
once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import ContentFormat, PublishRequest, PublishResult
from agency.integrations.email import EmailSender, OutgoingEmail, ResendEmailSender
from agency.integrations.errors import ProviderRejected, ProviderUnavailable
from agency.integrations.http import CredentialSource, bearer
from agency.integrations.social import LinkedInPublisher, SocialPost, SocialPublisher, XPublisher
from agency.settings import Settings


class PublishingRouter:
    def __init__(
        self,
        channel: ChannelClient,
        *,
        x: SocialPublisher | None = None,
        linkedin: SocialPublisher | None = None,
        email: EmailSender | None = None,
        email_from: str = "",
        email_to: Sequence[str] = (),
        budgets_via_channel: bool = True,
    ) -> None:
        if email is not None and (not email_from or not email_to):
            raise ValueError("an email sender needs email_from and at least one email_to address")
        self._channel = channel
        self._social: dict[str, SocialPublisher] = {}
        if x is not None:
            self._social[ContentFormat.X_POST.value] = x
        if linkedin is not None:
            self._social[ContentFormat.LINKEDIN_POST.value] = linkedin
        self._email = email
        self._email_from = email_from
        self._email_to = tuple(email_to)
        self._budgets_via_channel = budgets_via_channel

    def route(self, req: PublishRequest) -> str:
        """Which provider publishes ``req``: ``x``, ``linkedin``, ``resend`` or ``channel``."""
        if req.format == ContentFormat.X_POST.value and req.format in self._social:
            return "x"
        if req.format == ContentFormat.LINKEDIN_POST.value and req.format in self._social:
            return "linkedin"
        if req.format == ContentFormat.EMAIL.value and self._email is not None:
            return "resend"
        return "channel"

    async def publish(self, req: PublishRequest) -> PublishResult:
        route = self.route(req)
        if route == "channel":
            with _channel_errors():
                return await self._channel.publish(req)
        if route == "resend":
            assert self._email is not None
            sent = await self._email.send(OutgoingEmail(
                sender=self._email_from, to=self._email_to, subject=req.title, text=req.body,
                idempotency_key=req.idempotency_key, campaign_id=req.campaign_id, item_id=req.item_id,
            ))
            external_id, url, duplicate = sent.id, "", sent.duplicate
        else:
            published = await self._social[req.format].publish(SocialPost(
                text=req.body, idempotency_key=req.idempotency_key,
                campaign_id=req.campaign_id, item_id=req.item_id,
            ))
            external_id, url, duplicate = published.id, published.url, published.duplicate
        if self._budgets_via_channel and req.budget_cents > 0:
            with _channel_errors():
                await self._channel.update_budget(
                    external_id, req.budget_cents, idempotency_key=f"{req.idempotency_key}:promote"
                )
        return PublishResult(item_id=req.item_id, external_id=external_id, url=url, duplicate=duplicate)

    async def aclose(self) -> None:
        """Close the adapters (the channel client belongs to whoever passed it in)."""
        for adapter in {id(a): a for a in [*self._social.values(), self._email] if a is not None}.values():
            await adapter.aclose()


@contextmanager
def _channel_errors() -> Iterator[None]:
    """The channel's errors as provider errors (``provider="channel"``)."""
    try:
        yield
    except ChannelUnavailable as exc:
        raise ProviderUnavailable(
            "channel", str(exc), status_code=exc.status_code, retry_after_s=exc.retry_after_s
        ) from exc
    except ChannelRejected as exc:
        raise ProviderRejected("channel", exc.status_code, exc.code, exc.message, exc.body) from exc


def build_publishing_router(
    settings: Settings,
    channel: ChannelClient,
    *,
    linkedin_author: str,
    email_from: str,
    email_to: Sequence[str],
    credentials: dict[str, CredentialSource] | None = None,
) -> PublishingRouter:
    """The router with every adapter at ``settings.provider_url``.

    ``credentials`` per provider (``x``, ``linkedin``, ``resend``); in sandbox mode a missing
    one is the channel token, which the sandbox's faces accept by default.
    """
    sandbox = settings.integrations_target != "live"
    credentials = dict(credentials or {})

    def credential(provider: str) -> CredentialSource:
        if provider in credentials:
            return credentials[provider]
        if not sandbox:
            raise ValueError(f"no credential for {provider} (integrations target is live)")
        return bearer(settings.channel_token.get_secret_value())

    timeout = settings.integration_timeout_s
    return PublishingRouter(
        channel,
        x=XPublisher(settings.provider_url("x"), credential("x"), timeout_s=timeout, correlate=sandbox),
        linkedin=LinkedInPublisher(settings.provider_url("linkedin"), credential("linkedin"),
                                   author=linkedin_author, timeout_s=timeout, correlate=sandbox),
        email=ResendEmailSender(settings.provider_url("resend"), credential("resend"), timeout_s=timeout,
                                correlate=sandbox),
        email_from=email_from,
        email_to=email_to,
    )
