"""Approval inbox requests: which decisions are well formed, and the REVIEW payload each becomes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from agency.contracts import ReviewDecision
from api.approvals.schemas import ApprovalAction
from api.approvals.service import InvalidRequest, decode_cursor, encode_cursor, review_decision

ITEM = "cmp_1:blog:1"


def refused_fields(payload: dict) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        ApprovalAction.model_validate(payload)
    return {str(e["loc"][-1]) for e in caught.value.errors()}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"action": "reject"}, "reason"),
        ({"action": "reject", "reason": "   "}, "reason"),
        ({"action": "edit", "title": "T"}, "body"),
        ({"action": "edit", "body": "  "}, "body"),
        ({"action": "approve", "body": "new copy"}, "body"),
        ({"action": "reject", "reason": "r", "title": "T"}, "title"),
        ({"action": "publish"}, "action"),
        ({"action": "approve", "reviewer": "someone else"}, "reviewer"),
    ],
)
def test_malformed_decisions_name_the_field(payload, field):
    assert field in refused_fields(payload)


def test_approve_and_reject_payloads():
    approve = review_decision("blog_post", ApprovalAction(action="approve"), "user:1", ITEM)
    assert approve == ReviewDecision(item_id=ITEM, approve=True, reviewer="user:1", note="")
    reject = review_decision("x_post", ApprovalAction(action="reject", reason=" too salesy "), "user:1", ITEM)
    assert reject == ReviewDecision(item_id=ITEM, approve=False, reviewer="user:1", note="too salesy")


def test_edit_approves_the_reviewers_copy():
    edit = ApprovalAction(action="edit", title=" Dry feet, all day ", body="Our boots kept us dry.", reason="tone")
    decision = review_decision("blog_post", edit, "user:1", ITEM)
    assert decision == ReviewDecision(
        item_id=ITEM, approve=True, reviewer="user:1", note="tone",
        edited_title="Dry feet, all day", edited_body="Our boots kept us dry.",
    )
    social = review_decision("x_post", ApprovalAction(action="edit", body="Dry feet. #hike"), "user:1", ITEM)
    assert social.approve and social.edited_title is None and social.edited_body == "Dry feet. #hike"


@pytest.mark.parametrize(
    "item_format, edit",
    [
        ("email", ApprovalAction(action="edit", body="new body")),  # a subject is part of an email
        ("blog_post", ApprovalAction(action="edit", body="new body", title="")),
        ("linkedin_post", ApprovalAction(action="edit", body="new body", title="no titles here")),
    ],
)
def test_edit_title_must_match_the_format(item_format, edit):
    with pytest.raises(InvalidRequest) as caught:
        review_decision(item_format, edit, "user:1", ITEM)
    assert caught.value.status_code == 422
    assert caught.value.body()["error"]["fields"][0]["loc"] == ["body", "title"]


def test_cursor_round_trips_and_rejects_forgeries():
    at = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=timezone.utc)
    assert decode_cursor(encode_cursor(at, ITEM)) == (at, ITEM)
    for forged in ("not-base64!!", encode_cursor(at, ITEM)[:-3], "WzEsMl0", "WyIyMDI2LTExLTI5IiwiYSJd"):
        with pytest.raises(InvalidRequest):
            decode_cursor(forged)


def test_cursor_with_nul_is_refused_before_the_database():
    at = datetime(2026, 11, 29, tzinfo=timezone.utc)
    with pytest.raises(InvalidRequest):
        decode_cursor(encode_cursor(at, "cmp_1\x00:blog:1"))


@pytest.mark.parametrize(
    "error_type, details, status, code",
    [
        ("UnknownContentItem", (), 404, "not_found"),
        ("ContentItemNotPending", (), 409, "not_pending"),
        ("InvalidReview", (), 422, "invalid_review"),
        ("EditedCopyBlocked", ([{"rule": "pii.email", "message": "an e-mail address", "excerpt": "j@x.io"}],), 422,
         "edited_copy_blocked"),
    ],
)
def test_workflow_refusals_become_http_errors(error_type, details, status, code):
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError

    from api.campaigns.service import CampaignService

    failure = WorkflowUpdateFailedError(ApplicationError("refused", *details, type=error_type))
    error = CampaignService._map_review_failure(failure)
    assert (error.status_code, error.code) == (status, code)
    if details:
        assert error.body()["error"]["details"] == {"findings": details[0]}
