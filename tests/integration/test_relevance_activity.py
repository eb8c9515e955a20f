"""The relevance activity against the real embedder served by Triton: drafts the generator
wrote for a brief score above the off-topic threshold, drafts about something else below."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.relevance import RelevanceActivities
from agency.agents.relevance import OFF_TOPIC_THRESHOLD
from agency.contracts import CalendarEntry, CampaignBrief, RelevanceRequest
from agency.inference import EMBEDDER_MODEL, TritonInference
from tests.integration.conftest import free_port

LEDGER_BRIEF = CampaignBrief(
    tenant="acme", product="LedgerLite budgeting app", audience="university students", goals=["signups"],
    channels=["blog"], total_budget_cents=1000, start_date="2026-03-01", end_date="2026-03-07",
)
LEDGER_ENTRY = CalendarEntry("c1:blog:1", "blog", "blog_post", "2026-03-03", "Track spending without spreadsheets")

# Real outputs of the content generator (SmolLM2-135M) from the threshold measurement.
ON_TOPIC_TITLE = "LedgerLite budgeting app: Track spending without spreadsheets"
ON_TOPIC_BODY = (
    "The LedgerLite budgeting app is a convenient tool for students to manage their finances without "
    "the need of spreadsheets. The app allows users with access to unlimited amounts of financial data "
    "and provides them with easy tracking of all spending, from savings towards debt repayment plans."
)
# Written for an Acme CRM email brief, it never mentions the product: a genuine miss.
OFF_TOPIC_GENERATED = "Daily News\nEmail subject: Daily News & Daily News Marketable Brand News"
OFF_TOPIC_UNRELATED = "Preheat the oven to 200 degrees and roast the vegetables for 25 minutes."
ACME_BRIEF = CampaignBrief(
    tenant="acme", product="Acme CRM", audience="small business owners", goals=["signups"],
    channels=["email"], total_budget_cents=1000, start_date="2026-03-01", end_date="2026-03-07",
)
ACME_ENTRY = CalendarEntry("c2:email:1", "email", "email", "2026-03-03", "Set up in 10 minutes")
LEDGER = (LEDGER_BRIEF, LEDGER_ENTRY)
ACME = (ACME_BRIEF, ACME_ENTRY)


async def score(inference: TritonInference, brief_and_entry: tuple, title: str, body: str):
    brief, entry = brief_and_entry
    return await ActivityEnvironment().run(
        RelevanceActivities(inference).score_relevance,
        RelevanceRequest(brief=brief, entry=entry, title=title, body=body),
    )


async def test_on_topic_draft_scores_above_the_threshold(inference: TritonInference) -> None:
    result = await score(inference, LEDGER, ON_TOPIC_TITLE, ON_TOPIC_BODY)
    assert result.model == EMBEDDER_MODEL
    assert result.similarity > OFF_TOPIC_THRESHOLD + 0.2, result


@pytest.mark.parametrize(
    "brief, title, body",
    [
        (ACME, "", OFF_TOPIC_GENERATED),
        (LEDGER, "", OFF_TOPIC_UNRELATED),
        # A good draft, but for another brief.
        (ACME, ON_TOPIC_TITLE, ON_TOPIC_BODY),
    ],
)
async def test_off_topic_draft_scores_below_the_threshold(
    inference: TritonInference, brief: tuple, title: str, body: str
) -> None:
    result = await score(inference, brief, title, body)
    assert result.similarity < OFF_TOPIC_THRESHOLD, result


async def test_blank_text_is_a_non_retryable_business_error(inference: TritonInference) -> None:
    with pytest.raises(ApplicationError) as err:
        await score(inference, ACME, "", "  \n")
    assert err.value.non_retryable


async def test_unreachable_model_server_is_a_retryable_error() -> None:
    client = TritonInference(f"127.0.0.1:{free_port()}", timeout_s=5)
    try:
        with pytest.raises(ApplicationError) as err:
            await score(client, ACME, "", OFF_TOPIC_UNRELATED)
    finally:
        await client.close()
    assert err.value.type == "InferenceUnavailable"
    assert not err.value.non_retryable
