"""SmtpEmailSender against the local SMTP server (agency.services.smtp) over a real socket."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agency.integrations.email import OutgoingEmail, SmtpEmailSender, message_id_for
from agency.integrations.errors import ProviderUnavailable
from agency.services.smtp import LocalSmtpServer, MessageStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def _email(key: str, **overrides) -> OutgoingEmail:
    values = dict(
        sender="Agency <campaigns@agency.example>",
        to=("list@audience.example",),
        subject="Spring launch: 20% off",
        text="Hello!\n\nOur spring range is here. Shop now.",
        idempotency_key=key,
        tags={"campaign": "spring"},
    )
    values.update(overrides)
    return OutgoingEmail(**values)


@pytest.fixture
def smtp_server(tmp_path: Path):
    with LocalSmtpServer(tmp_path / "smtp.sqlite", port=0) as server:
        yield server


async def test_message_arrives_with_its_message_id(smtp_server: LocalSmtpServer) -> None:
    key = f"camp-{uuid.uuid4().hex[:8]}:item-1:v1"
    sender = SmtpEmailSender("127.0.0.1", smtp_server.port, timeout_s=10)
    sent = await sender.send(_email(key))

    assert sent.message_id == message_id_for(key, "campaigns@agency.example")
    received = smtp_server.messages(sent.message_id)
    assert len(received) == 1
    message = received[0]
    assert message.mail_from == "campaigns@agency.example"
    assert message.rcpt_to == ("list@audience.example",)
    assert message.subject == "Spring launch: 20% off"
    assert message.size == len(message.raw) > 0
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    assert parsed["Message-ID"] == sent.message_id
    assert parsed["X-Agency-campaign"] == "spring"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and "spring range" in plain.get_content()
    assert html is not None and "<p>Hello!</p>" in html.get_content()
    assert smtp_server.duplicate_message_ids() == {}


async def test_resend_of_the_same_key_is_a_detectable_duplicate(smtp_server: LocalSmtpServer) -> None:
    key = f"camp-{uuid.uuid4().hex[:8]}:item-2:v1"
    other_key = f"camp-{uuid.uuid4().hex[:8]}:item-3:v1"
    sender = SmtpEmailSender("127.0.0.1", smtp_server.port, timeout_s=10)

    first = await sender.send(_email(key))
    # An activity retry after an ambiguous failure sends the same email again.
    again = await sender.send(_email(key))
    other = await sender.send(_email(other_key))

    assert first.message_id == again.message_id != other.message_id
    assert len(smtp_server.messages(first.message_id)) == 2
    assert smtp_server.duplicate_message_ids() == {first.message_id: 2}


async def test_unreachable_server_is_transient(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    sender = SmtpEmailSender("127.0.0.1", port, timeout_s=2)
    with pytest.raises(ProviderUnavailable):
        await sender.send(_email("k:unreachable"))


def test_auth_without_tls_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="STARTTLS"):
        SmtpEmailSender("smtp.example.com", 587, username="u", password="p")
    SmtpEmailSender("smtp.example.com", 587, username="u", password="p", starttls=True)


def _outbound_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            return sock.getsockname()[0]
        except OSError:
            return None


def test_server_listens_on_loopback_only(smtp_server: LocalSmtpServer) -> None:
    assert smtp_server.bound_addresses == [("127.0.0.1", smtp_server.port)]
    with socket.create_connection(("127.0.0.1", smtp_server.port), timeout=5) as conn:
        assert conn.recv(1024).startswith(b"220")
    outbound = _outbound_address()
    if outbound and not outbound.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((outbound, smtp_server.port), timeout=2).close()


def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "cli.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agency.services.smtp", "--port", str(port), "--db", str(db)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert f"127.0.0.1:{port}" in line, line
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@agency.example", ["b@audience.example"],
                            b"Message-ID: <cli-1@agency.example>\r\nSubject: hi\r\n\r\nbody\r\n")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    stored = MessageStore(db).messages()
    assert [(m.message_id, m.subject, m.rcpt_to) for m in stored] == [("<cli-1@agency.example>", "hi", ("b@audience.example",))]


def test_store_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.sqlite"
    with LocalSmtpServer(db, port=0) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.sendmail("a@x.example", ["b@y.example"], b"Message-ID: <r-1@x.example>\r\nSubject: s\r\n\r\nb\r\n")
    # The server is stopped here; the file is all that is left.
    assert [m.message_id for m in MessageStore(db).messages()] == ["<r-1@x.example>"]
