"""Reporting agent: per-channel numbers, item counts, findings, HTML/Markdown output."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agency.agents.reporting import ReportInput, render_html, render_markdown, summarize
from agency.contracts import (
    BudgetAllocation,
    CampaignBrief,
    CampaignPlan,
    ChannelBudget,
    ChannelPlan,
    ItemMetrics,
    ItemStatus,
    MetricsSnapshot,
)


def metrics(item: str, channel: str, impressions: int, clicks: int, conversions: int, spend: int) -> ItemMetrics:
    return ItemMetrics(item, channel, f"ext-{item}", impressions, clicks, conversions, spend)


def make_input(product: str = "Acme CRM", metric_rounds: list[MetricsSnapshot] | None = None) -> ReportInput:
    brief = CampaignBrief(
        tenant="acme", product=product, audience="owners", goals=["signups"], channels=["social", "email"],
        total_budget_cents=100_000, start_date="2026-03-01", end_date="2026-03-14", name="Spring push",
    )
    plan = CampaignPlan(
        campaign_id="c1", objective="conversion", key_messages=["Set up in 10 minutes"], tone="friendly",
        channels=[ChannelPlan("social", "awareness", 0.4, 0.015, 0.012, 2),
                  ChannelPlan("email", "conversion", 0.6, 0.04, 0.03, 2)],
        duration_days=14, rationale=["Objective conversion from goals."], used_history=False,
    )
    budget = BudgetAllocation("c1", 100_000, [ChannelBudget("social", 40_000, 0.4), ChannelBudget("email", 60_000, 0.6)],
                              "closed form", ["note"])
    items = [
        ItemStatus("c1:social:1", "social", "social_post", "approved", 1, "ext-c1:social:1"),
        ItemStatus("c1:social:2", "social", "social_post", "rejected", 1),
        ItemStatus("c1:email:1", "email", "email", "approved", 2, "ext-c1:email:1"),
        ItemStatus("c1:email:2", "email", "email", "blocked", 3),
    ]
    if metric_rounds is None:
        metric_rounds = [
            MetricsSnapshot("c1", 1, [metrics("c1:social:1", "social", 1000, 10, 0, 5_000),
                                      metrics("c1:email:1", "email", 500, 20, 1, 10_000)]),
            # Round 2 lacks the social item: its round-1 counters carry forward.
            MetricsSnapshot("c1", 2, [metrics("c1:email:1", "email", 2000, 80, 4, 40_000)]),
        ]
    return ReportInput("c1", brief, plan, budget, items, metric_rounds, "completed")


def test_channel_numbers_use_the_latest_cumulative_metrics() -> None:
    summary = summarize(make_input())
    email = next(c for c in summary["channels"] if c["channel"] == "email")
    assert (email["impressions"], email["clicks"], email["conversions"], email["spend_cents"]) == (2000, 80, 4, 40_000)
    assert email["ctr"] == 80 / 2000 and email["cvr"] == 4 / 80 and email["cpa_cents"] == 10_000
    assert email["budget_cents"] == 60_000
    social = next(c for c in summary["channels"] if c["channel"] == "social")
    assert social["conversions"] == 0 and social["cpa_cents"] is None
    totals = summary["totals"]
    assert (totals["impressions"], totals["clicks"], totals["spend_cents"]) == (3000, 90, 45_000)
    assert totals["budget_cents"] == 100_000


def test_cumulative_clicks_per_round_carry_items_forward() -> None:
    rounds = summarize(make_input())["rounds"]
    assert [(r["round"], r["clicks"]) for r in rounds] == [(1, 30), (2, 90)]


def test_item_counts_best_channel_and_findings() -> None:
    summary = summarize(make_input())
    assert summary["items"] == {"total": 4, "published": 2, "approved": 2, "rejected": 1,
                                "expired": 0, "blocked": 1, "pending": 0}
    assert summary["best_channel"] == "email"
    text = " ".join(summary["findings"])
    assert "Spent $450.00 of the $1,000.00 budget (45%)" in text
    assert "email was the best channel: 4 of 4 conversions (100%) on 60% of the budget" in text
    assert "blocked by compliance" in text


def test_no_metrics_is_reported_plainly() -> None:
    summary = summarize(make_input(metric_rounds=[]))
    assert summary["best_channel"] is None
    assert "No audience metrics were collected." in summary["findings"]
    assert "<svg" in render_html(make_input(metric_rounds=[]), summary)


def test_html_has_three_svg_charts_and_no_scripts_or_external_assets() -> None:
    inp = make_input()
    html = render_html(inp, summarize(inp))
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)  # each chart is well-formed XML
    assert "Budget vs spend" in svgs[0] and svgs[0].count("<rect") >= 4
    assert "Conversions per channel" in svgs[1]
    assert "<polyline" in svgs[2]
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"https?://", html)


def test_user_text_is_escaped_in_html() -> None:
    inp = make_input(product="<script>alert('x')</script> CRM")
    html = render_html(inp, summarize(inp))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_markdown_has_table_and_findings() -> None:
    inp = make_input()
    md = render_markdown(inp, summarize(inp))
    assert md.startswith("# Campaign report: Spring push")
    assert "| email | $600.00 | $400.00 | 2,000 | 80 | 4 | 4.00% | 5.00% | $100.00 |" in md
    assert "- email was the best channel" in md
