"""Email adapters: SMTP (any relay, the local server of :mod:`agency.services.smtp`) and Resend.

Delivery guarantees differ, and callers should know which they get:

* Resend takes an ``Idempotency-Key``: the same key with the same body within 24 hours answers
  the first email's id without sending again; the same key with another body is refused (409
  ``invalid_idempotent_request``); a retry while the first is still in flight gets 409
  ``concurrent_idempotent_requests``, which is transient. A retry more than 24 hours later
  sends again; activity retries here give up long before that.
* SMTP cannot promise exactly-once. The server takes responsibility for a message only when it
  answers the final ``250`` after ``DATA``; if the connection drops or times out after the
  message went out but before that reply arrived, the client cannot tell whether it was
  accepted, and the only safe choice for delivery is to send again. So SMTP is at-least-once.
  What we can do is make the copies recognisable: the ``Message-ID`` is derived from the
  idempotency key, so a resend carries the same ``Message-ID`` and a receiver (or our local
  server, or a mailbox's duplicate filter) can drop the second copy.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, parseaddr
from typing import Protocol

import aiosmtplib
import httpx

from agency.integrations.errors import ProviderError, ProviderRejected, ProviderUnavailable
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import RetryPolicy
from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER
from agency.net import is_loopback

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str  # "Name <address>" or an address
    to: tuple[str, ...]
    subject: str
    text: str
    idempotency_key: str  # one key per logical email; retries reuse it
    html: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    campaign_id: str = ""
    item_id: str = ""


@dataclass(frozen=True)
class SentEmail:
    id: str  # the provider's id (Resend) or the Message-ID (SMTP)
    message_id: str | None  # the RFC 5322 Message-ID when we set it
    duplicate: bool  # the provider answered a replay of an email it had already accepted


class EmailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> SentEmail: ...

    async def aclose(self) -> None: ...


def html_from_text(text: str) -> str:
    """A minimal HTML part: escaped paragraphs, line breaks kept."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html_lib.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


# ---- SMTP ---------------------------------------------------------------------------------
def message_id_for(idempotency_key: str, sender: str) -> str:
    """A Message-ID that depends only on the key (and the sender's domain, as RFC 5322 asks)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class SmtpEmailSender:
    """Sends through an SMTP relay; STARTTLS and AUTH when configured. One connection per email."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if username and not (starttls or use_tls) and not is_loopback(host):
            # AUTH PLAIN/LOGIN over cleartext would hand the password to anyone on the path.
            raise ValueError("SMTP AUTH to a non-loopback host needs STARTTLS or implicit TLS")
        self._host, self._port = host, port
        self._starttls, self._use_tls = starttls, use_tls
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._tls_context = tls_context

    async def aclose(self) -> None:
        return None

    def build(self, email: OutgoingEmail) -> MimeMessage:
        message = MimeMessage()
        message["From"] = email.sender
        message["To"] = ", ".join(email.to)
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id_for(email.idempotency_key, email.sender)
        for name, value in email.tags.items():
            message[f"X-Agency-{_TAG_UNSAFE.sub('-', name)}"] = value
        message.set_content(email.text)
        message.add_alternative(email.html or html_from_text(email.text), subtype="html")
        return message

    async def send(self, email: OutgoingEmail) -> SentEmail:
        message = self.build(email)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                start_tls=self._starttls,
                use_tls=self._use_tls,
                username=self._username,
                password=self._password,
                timeout=self._timeout_s,
                tls_context=self._tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(400 <= c < 500 for c in codes):
                raise ProviderUnavailable("smtp", f"recipients deferred: {exc}") from exc
            raise ProviderRejected("smtp", max(codes, default=550), "recipients_refused", str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is "try again later" in SMTP; 5xx is permanent.
            if 400 <= exc.code < 500:
                raise ProviderUnavailable("smtp", f"{exc.code} {exc.message}") from exc
            raise ProviderRejected("smtp", exc.code, "smtp_rejected", exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection failures and timeouts; after DATA this is the ambiguous case the
            # module docstring describes, and a retry resends with the same Message-ID.
            raise ProviderUnavailable("smtp", f"{type(exc).__name__}: {exc}") from exc
        message_id = str(message["Message-ID"])
        return SentEmail(id=message_id, message_id=message_id, duplicate=False)


# ---- Resend -------------------------------------------------------------------------------
def _resend_classify(response: httpx.Response) -> ProviderError | None:
    if response.status_code != 409:
        return None
    try:
        name = str(response.json().get("name", ""))
    except (ValueError, AttributeError):
        return None
    if name == "concurrent_idempotent_requests":
        # The first request with this key is still being processed; its answer comes soon.
        return ProviderUnavailable("resend", "a request with this idempotency key is in flight", status_code=409, retry_after_s=1.0)
    return None


def resend_tag_value(value: str) -> str:
    """Resend tag values take ASCII letters, digits, ``_`` and ``-`` only (256 at most)."""
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


class ResendEmailSender(ProviderAdapter):
    """Sends through Resend's ``POST /emails`` with the email's idempotency key."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        correlate: bool = False,
    ) -> None:
        self._http = ProviderHttp("resend", base_url, credentials=credentials, timeout_s=timeout_s,
                                  retry=retry, classify=_resend_classify)
        self._correlate = correlate

    async def send(self, email: OutgoingEmail) -> SentEmail:
        headers = {"Idempotency-Key": email.idempotency_key}
        if self._correlate:
            headers.update({SANDBOX_CAMPAIGN_HEADER: email.campaign_id, SANDBOX_ITEM_HEADER: email.item_id})
        tags = dict(email.tags)
        if email.campaign_id:
            tags.setdefault("campaign_id", email.campaign_id)
        if email.item_id:
            tags.setdefault("item_id", email.item_id)
        body = {
            "from": email.sender,
            "to": list(email.to),
            "subject": email.subject,
            "text": email.text,
            "html": email.html or html_from_text(email.text),
            "tags": [{"name": resend_tag_value(k), "value": resend_tag_value(v)} for k, v in sorted(tags.items())],
        }
        # The Idempotency-Key header makes this POST retry-safe in-call as well.
        response = await self._http.request("POST", "/emails", headers=headers, json=body)
        email_id = json_object("resend", response).get("id")
        if not email_id:
            raise ProviderUnavailable("resend", f"send reply has no id (HTTP {response.status_code})")
        # Resend does not flag replays; the sandbox does, with the channel protocol's header.
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return SentEmail(id=str(email_id), message_id=None, duplicate=replayed)
