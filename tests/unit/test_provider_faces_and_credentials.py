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
