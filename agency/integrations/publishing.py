"""Publishing router: each content item goes to the provider of its format.

``blog_post`` -> WordPress, ``x_post`` -> X, ``linkedin_post`` -> LinkedIn,
``instagram_caption`` -> Instagram, ``email`` -> Resend (to the configured list address). The
foundation's generic channel protocol (:class:`~agency.channels.ChannelClient`) is only an
explicitly configured ``fallback`` for formats no provider has (the legacy generic
``social_post``); without it such a format is refused (:class:`ProviderRejected`, not retried),
as is a format whose provider is not connected.

Errors come out as :mod:`agency.integrations.errors` for every route (the channel's own errors
are translated), so one ``provider_errors`` block in the activity maps them all onto Temporal.

Retries: every route is safe to call again with the same request. Resend (and the channel)
replay on the idempotency key; X and LinkedIn refuse duplicate content and the adapters turn
that refusal into the existing post (:mod:`agency.integrations.social`); WordPress finds the post
by a slug derived from the key (:mod:`agency.integrations.cms`); Instagram publishes a container
once and finds an earlier attempt's post by caption (:mod:`agency.integrations.instagram`). The
result has ``duplicate=True`` when the provider already had the item.

Paid budget: the networks publish organically; the item's ``budget_cents`` is then set as the
total budget of its Google Ads campaign (``customers/{cid}/campaignBudgets/{post id}``), where the
campaign's later budget rounds go too. The amount is absolute, so a retry sets it once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import ContentFormat, PublishRequest, PublishResult
from agency.integrations.ads import MICROS_PER_UNIT, GoogleAdsClient
from agency.integrations.cms import BlogPost, WordPressPublisher
from agency.integrations.email import EmailSender, OutgoingEmail, ResendEmailSender
from agency.integrations.errors import ProviderRejected, ProviderUnavailable, not_connected
from agency.integrations.http import CredentialSource, bearer
from agency.integrations.instagram import InstagramPublisher
from agency.integrations.social import LinkedInPublisher, SocialPost, SocialPublisher, XPublisher
from agency.settings import Settings

MICROS_PER_CENT = MICROS_PER_UNIT // 100

# Route name per format (the names are the providers, as errors and counters call them).
FORMAT_ROUTES = {
    ContentFormat.BLOG_POST.value: "wordpress",
    ContentFormat.X_POST.value: "x",
    ContentFormat.LINKEDIN_POST.value: "linkedin",
    ContentFormat.INSTAGRAM_CAPTION.value: "instagram",
    ContentFormat.EMAIL.value: "resend",
}


class PublishingRouter:
    def __init__(
        self,
        *,
        ads: GoogleAdsClient | None = None,
        wordpress: WordPressPublisher | None = None,
        x: SocialPublisher | None = None,
        linkedin: SocialPublisher | None = None,
        instagram: SocialPublisher | None = None,
        email: EmailSender | None = None,
        email_from: str = "",
        email_to: Sequence[str] = (),
        fallback: ChannelClient | None = None,
    ) -> None:
        if email is not None and (not email_from or not email_to):
            raise ValueError("an email sender needs email_from and at least one email_to address")
        self._ads = ads
        self._wordpress = wordpress
        self._social: dict[str, SocialPublisher] = {
            name: adapter for name, adapter in (("x", x), ("linkedin", linkedin), ("instagram", instagram))
            if adapter is not None
        }
        self._email = email
        self._email_from = email_from
        self._email_to = tuple(email_to)
        self._fallback = fallback

    def route(self, req: PublishRequest) -> str:
        """Which provider publishes ``req``: its format's adapter; ``channel`` (the fallback) for a
        format that has none; ``none`` when neither is configured."""
        route = FORMAT_ROUTES.get(req.format)
        if route is None:
            # Only formats no provider has (the legacy generic social_post) may use the channel.
            return "channel" if self._fallback is not None else "none"
        configured = route in self._social or (route == "wordpress" and self._wordpress is not None) \
            or (route == "resend" and self._email is not None)
        return route if configured else "none"

    async def publish(self, req: PublishRequest) -> PublishResult:
        route = self.route(req)
        if route == "none":
            provider = FORMAT_ROUTES.get(req.format)
            if provider:
                raise not_connected(provider, "no_publisher")
            raise ProviderRejected(
                "agency", 422, "no_publisher",
                f"no provider publishes {req.format!r} and no fallback channel is configured",
            )
        if route == "channel":
            assert self._fallback is not None
            with _channel_errors():
                return await self._fallback.publish(req)  # the channel takes the budget with the post
        if req.budget_cents > 0 and self._ads is None:
            # Checked before publishing: a post whose promotion cannot be set would be half done.
            raise ProviderRejected("agency", 422, "no_ads_account",
                                   f"{req.item_id} has a paid budget but no Google Ads account is configured")
        if route == "resend":
            assert self._email is not None
            sent = await self._email.send(OutgoingEmail(
                sender=self._email_from, to=self._email_to, subject=req.title, text=req.body,
                idempotency_key=req.idempotency_key, campaign_id=req.campaign_id, item_id=req.item_id,
            ))
            external_id, url, duplicate = sent.id, "", sent.duplicate
        elif route == "wordpress":
            assert self._wordpress is not None
            published = await self._wordpress.publish(BlogPost(
                title=req.title, body=req.body, idempotency_key=req.idempotency_key,
                campaign_id=req.campaign_id, item_id=req.item_id,
            ))
            external_id, url, duplicate = published.id, published.url, published.duplicate
        else:
            published = await self._social[route].publish(SocialPost(
                text=req.body, idempotency_key=req.idempotency_key,
                campaign_id=req.campaign_id, item_id=req.item_id,
            ))
            external_id, url, duplicate = published.id, published.url, published.duplicate
        if req.budget_cents > 0:
            assert self._ads is not None
            await self._ads.set_total_budget(self.budget_resource_name(external_id), req.budget_cents * MICROS_PER_CENT)
        return PublishResult(item_id=req.item_id, external_id=external_id, url=url, duplicate=duplicate)

    def budget_resource_name(self, external_id: str) -> str:
        """The Google Ads campaign budget that promotes the post ``external_id``."""
        assert self._ads is not None
        return f"customers/{self._ads.customer_id}/campaignBudgets/{external_id}"

    async def aclose(self) -> None:
        """Close the publishing adapters (the ads client and the fallback belong to whoever passed them)."""
        adapters = [self._wordpress, *self._social.values(), self._email]
        for adapter in {id(a): a for a in adapters if a is not None}.values():
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
    *,
    ads: GoogleAdsClient | None,
    linkedin_author: str,
    instagram_user_id: str,
    instagram_image_url: str | None,
    email_from: str,
    email_to: Sequence[str],
    wordpress_url: str | None = None,
    credentials: dict[str, CredentialSource] | None = None,
    fallback: ChannelClient | None = None,
    connected: Collection[str] | None = None,
) -> PublishingRouter:
    """The router with every adapter at ``settings.provider_url`` (WordPress at ``wordpress_url``,
    the tenant's site, when given); only the ``connected`` providers' when that is given.

    ``credentials`` per provider (``wordpress``, ``x``, ``linkedin``, ``instagram``, ``resend``); in
    sandbox mode a missing one is the channel token, which the sandbox's faces accept by default.
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

    def wanted(provider: str) -> bool:
        return connected is None or provider in connected

    return PublishingRouter(
        ads=ads,
        wordpress=WordPressPublisher(wordpress_url or settings.provider_url("wordpress"), credential("wordpress"),
                                     timeout_s=timeout, correlate=sandbox) if wanted("wordpress") else None,
        x=XPublisher(settings.provider_url("x"), credential("x"), timeout_s=timeout, correlate=sandbox)
        if wanted("x") else None,
        linkedin=LinkedInPublisher(settings.provider_url("linkedin"), credential("linkedin"),
                                   author=linkedin_author, timeout_s=timeout, correlate=sandbox)
        if wanted("linkedin") else None,
        instagram=InstagramPublisher(settings.provider_url("instagram"), credential("instagram"),
                                     ig_user_id=instagram_user_id, image_url=instagram_image_url,
                                     timeout_s=timeout, correlate=sandbox) if wanted("instagram") else None,
        email=ResendEmailSender(settings.provider_url("resend"), credential("resend"), timeout_s=timeout,
                                correlate=sandbox) if wanted("resend") else None,
        email_from=email_from,
        email_to=email_to,
        fallback=fallback,
    )
