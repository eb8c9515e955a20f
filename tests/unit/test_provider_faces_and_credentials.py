"""Pure parts of the Google Ads face (GAQL subset, page tokens) and of credential encryption."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from agency.integrations.ads import _gaql_literal, normalize_customer_id
from agency.integrations.credentials import (
    SECRET_MODELS,
    CredentialCipher,
    CredentialUndecryptable,
    auth_headers,
    derive_local_key,
)
from agency.sandbox.providers.google_ads import (
    _RESOURCE_FIELDS,
    AdsError,
    decode_page_token,
    encode_page_token,
    parse_gaql,
)
from agency.settings import Settings


def parse(text: str):
    return parse_gaql(text, _RESOURCE_FIELDS.get)


def test_gaql_subset_parses_select_where_order_limit():
    query = parse(
        "select campaign.id, metrics.cost_micros FROM campaign WHERE campaign.id IN ('a_1', 22) "
        "AND campaign.status != 'PAUSED' ORDER BY metrics.cost_micros DESC, campaign.id LIMIT 5"
    )
    assert query.fields == ("campaign.id", "metrics.cost_micros")
    assert query.resource == "campaign"
    assert [(c.field, c.operator, c.values) for c in query.conditions] == [
        ("campaign.id", "IN", ("a_1", "22")), ("campaign.status", "!=", ("PAUSED",))
    ]
    assert query.order_by == (("metrics.cost_micros", True), ("campaign.id", False))
    assert query.limit == 5


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT campaign.id FROM ad_group", "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"),
        ("SELECT campaign.bogus FROM campaign", "UNRECOGNIZED_FIELD"),
        ("SELECT campaign.id FROM campaign_budget", "UNRECOGNIZED_FIELD"),  # not a field of that resource
        ("SELECT campaign.id FROM campaign WHERE campaign.id LIKE 'x'", "UNEXPECTED_INPUT"),
        ("SELECT campaign.id FROM campaign WHERE campaign.id IN ()", "UNEXPECTED_INPUT"),
        ("SELECT campaign.id FROM campaign WHERE", "UNEXPECTED_END_OF_QUERY"),
        ("SELECT campaign.id FROM campaign LIMIT 0", "LIMIT_VALUE_NOT_POSITIVE"),
        ("SELECT campaign.id FROM campaign; DROP", "UNEXPECTED_INPUT"),
        ("campaign.id FROM campaign", "UNEXPECTED_INPUT"),
    ],
)
def test_gaql_outside_the_subset_is_invalid_argument(text, code):
    with pytest.raises(AdsError) as info:
        parse(text)
    assert info.value.status_code == 400 and info.value.error_code == {"queryError": code}


def test_page_tokens_belong_to_their_query():
    query = "SELECT campaign.id FROM campaign"
    token = encode_page_token(query, 20, 1_700_000_000.5)
    assert decode_page_token(token, "SELECT  campaign.id\nFROM campaign") == (20, 1_700_000_000.5)
    for bad_query, bad_token in ((query + " LIMIT 3", token), (query, "not-a-token"), (query, token[:-4])):
        with pytest.raises(AdsError) as info:
            decode_page_token(bad_token, bad_query)
        assert info.value.error_code == {"requestError": "INVALID_PAGE_TOKEN"}


def test_ads_ids_and_customer_ids_are_checked_before_use():
    assert _gaql_literal("123") == "123" and _gaql_literal("social_ab12") == "'social_ab12'"
    for hostile in ("a' OR 'b", "x)", "", "a b"):
        with pytest.raises(ValueError):
            _gaql_literal(hostile)
    assert normalize_customer_id("123-456-7890") == "1234567890"
    with pytest.raises(ValueError):
        normalize_customer_id("12a")


def test_cipher_first_key_encrypts_all_decrypt_and_local_key_is_derived():
    a, b = Fernet.generate_key(), Fernet.generate_key()
    old, rotated = CredentialCipher([a]), CredentialCipher([b, a])
    token = old.encrypt({"access_token": "s3cret-value"})
    assert "s3cret" not in token
    assert rotated.decrypt(token) == {"access_token": "s3cret-value"}
    assert CredentialCipher([b]).decrypt(rotated.rotate(token)) == {"access_token": "s3cret-value"}
    with pytest.raises(CredentialUndecryptable):
        CredentialCipher([b]).decrypt(token)
    assert rotated.primary_key_id != old.primary_key_id and rotated.key_ids[1] == old.primary_key_id

    local = Settings(environment="test", secret_key=SecretStr("one-secret"))
    assert CredentialCipher.from_settings(local).primary_key_id == CredentialCipher([derive_local_key("one-secret")]).primary_key_id
    assert derive_local_key("one-secret") != derive_local_key("another-secret")
    with pytest.raises(RuntimeError):
        CredentialCipher.from_settings(Settings(environment="production", secret_key=SecretStr("x" * 40)))
    with pytest.raises(ValueError):
        CredentialCipher(["not-a-fernet-key"])


def test_secret_models_validate_and_turn_into_headers():
    ads = SECRET_MODELS["google-ads"].model_validate(
        {"access_token": "ya29.token", "developer_token": "devtoken1", "customer_id": "123-456-7890",
         "login_customer_id": "9998887777"}
    ).model_dump(exclude_none=True)
    assert auth_headers("google-ads", ads) == {
        "Authorization": "Bearer ya29.token", "developer-token": "devtoken1", "login-customer-id": "9998887777"
    }
    assert auth_headers("resend", {"api_key": "re_123456789"}) == {"Authorization": "Bearer re_123456789"}
    for provider, bad in (("resend", {"api_key": "sk_123456789"}), ("ga4", {"access_token": "short", "property_id": "1"}),
                          ("linkedin", {"access_token": "long-enough-token"})):
        with pytest.raises(ValidationError):
            SECRET_MODELS[provider].model_validate(bad)


def test_wordpress_credentials_are_an_application_password_or_a_token():
    model = SECRET_MODELS["wordpress"]
    # The password as WordPress displays it (groups of four) is stored without the spaces.
    stored = model.model_validate(
        {"username": "editor", "application_password": "abcd EFGH ijkl MNOP qrst 1234",
         "site_url": "https://blog.example.com/"}
    ).model_dump(exclude_none=True)
    assert stored == {"username": "editor", "application_password": "abcdEFGHijklMNOPqrst1234",
                      "site_url": "https://blog.example.com"}
    assert auth_headers("wordpress", stored) == {"Authorization": "Basic ZWRpdG9yOmFiY2RFRkdIaWprbE1OT1BxcnN0MTIzNA=="}
    token = model.model_validate({"access_token": "jwt-token-123"}).model_dump(exclude_none=True)
    assert auth_headers("wordpress", token) == {"Authorization": "Bearer jwt-token-123"}
    for bad in (
        {"username": "editor"},  # half a pair
        {"application_password": "abcdEFGHijklMNOPqrst1234"},
        {"username": "editor", "application_password": "abcdEFGHijklMNOPqrst1234", "access_token": "jwt-token-123"},
        {},  # no way to sign in
        {"username": "editor", "application_password": "too-short"},
        {"username": "editor", "application_password": "abcd-EFGH-ijkl-MNOP-qrst-1234"},  # not its alphabet
        {"access_token": "jwt-token-123", "site_url": "http://blog.example.com"},  # not https
        {"access_token": "jwt-token-123", "site_url": "https://user:pw@blog.example.com"},
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_instagram_credentials_carry_the_account_and_its_campaign_image():
    model = SECRET_MODELS["instagram"]
    stored = model.model_validate(
        {"access_token": "EAAG-token-123", "ig_user_id": "17841400000000001", "image_url": "https://cdn.example/a.jpg"}
    ).model_dump(exclude_none=True)
    assert auth_headers("instagram", stored) == {"Authorization": "Bearer EAAG-token-123"}
    for bad in (
        {"access_token": "EAAG-token-123"},  # which account
        {"access_token": "EAAG-token-123", "ig_user_id": "me"},
        {"access_token": "EAAG-token-123", "ig_user_id": "1784", "image_url": "ftp://cdn.example/a.jpg"},
        {"access_token": "EAAG-token-123", "ig_user_id": "1784", "extra": "field"},
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_live_wordpress_needs_a_configured_site_url():
    live = Settings(integrations_target="live")
    assert live.provider_url("instagram") == "https://graph.facebook.com"
    with pytest.raises(ValueError, match="AGENCY_PROVIDER_BASE_URLS"):
        live.provider_url("wordpress")
    configured = Settings(integrations_target="live", provider_base_urls={"wordpress": "https://blog.example.com/"})
    assert configured.provider_url("wordpress") == "https://blog.example.com"
    assert Settings(channel_base_url="http://127.0.0.1:9").provider_url("wordpress") == "http://127.0.0.1:9/wordpress"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, {"code": 4, "message": "(#4) Application request limit reached"}, "unavailable"),
        (403, {"code": 17, "message": "(#17) User request limit reached"}, "unavailable"),
        (400, {"code": 32, "message": "Page request limit reached"}, "unavailable"),
        (500, {"code": 2, "message": "Service temporarily unavailable", "is_transient": True}, "unavailable"),
        (400, {"code": 100, "message": "odd", "is_transient": True}, "unavailable"),
        (400, {"code": 190, "message": "Invalid OAuth access token"}, "auth"),
        (400, {"code": 9007, "error_subcode": 2207006, "message": "already published"}, None),
        (400, {"code": 100, "error_subcode": 33, "message": "Unsupported get request"}, None),
    ],
)
def test_graph_errors_are_split_by_code_not_by_status(status, error, kind):
    import httpx

    from agency.integrations.errors import ProviderAuthFailed, ProviderUnavailable
    from agency.integrations.instagram import graph_classify, graph_error_reader

    response = httpx.Response(status, json={"error": {**error, "type": "OAuthException", "fbtrace_id": "A1"}},
                              headers={"Retry-After": "3"})
    found = graph_classify(response)
    if kind is None:
        assert found is None  # the generic mapping applies: a 400 is a ProviderRejected
    else:
        assert isinstance(found, ProviderAuthFailed if kind == "auth" else ProviderUnavailable)
        if kind == "unavailable":
            assert found.retry_after_s == 3.0
    code, _ = graph_error_reader(response)
    assert code == (f"{error['code']}.{error['error_subcode']}" if "error_subcode" in error else str(error["code"]))


def test_wordpress_slugs_are_readable_and_unique_per_key():
    from agency.integrations.cms import html_paragraphs, slug_for

    slug = slug_for("Spring Sale: 20% off — this week!", "c1:item-1:v1")
    assert slug.startswith("spring-sale-20-off-this-week-") and len(slug.rsplit("-", 1)[1]) == 12
    assert slug == slug_for("Spring Sale: 20% off — this week!", "c1:item-1:v1")
    assert slug != slug_for("Spring Sale: 20% off — this week!", "c1:item-1:v2")
    assert slug_for("!!!", "k").startswith("post-")
    assert len(slug_for("word " * 100, "k")) <= 60 + 13
    assert html_paragraphs("a <b>\n\nc & d\ne") == "<p>a &lt;b&gt;</p>\n\n<p>c &amp; d<br />e</p>"
