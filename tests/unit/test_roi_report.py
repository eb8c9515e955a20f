"""ROI report: numbers, formatting, HTML with charts, and a PDF read back with pypdf."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from matplotlib import _pylab_helpers
from pypdf import PdfReader

from agency.reports.render import NO_ALLOCATION_CHANGES, NO_EXPERIMENTS, pdf_safe, render_html, render_pdf
from agency.reports.roi import (
    AllocationChangeLine,
    ArmLine,
    CurvePoint,
    ExperimentLine,
    ResponseCurve,
    RoiReport,
    RoundPoint,
    channel_roi,
    marginal_roi,
    merge_channels,
    money,
    p_value,
    pct,
    ratio,
    totals,
)

VALUE = 2_500  # $25 per conversion
ODD_FINDING = "Search ROI ≥ 2× target → scale up 🚀; 搜索 works; naïve café – “quoted” €5 {nb}"


def curve(channel: str, scale: float, current: int | None) -> ResponseCurve:
    """Concave curve outcome = scale * sqrt(spend in dollars), sampled every $100/week."""
    points = [CurvePoint(s, scale * (s / 100) ** 0.5) for s in range(0, 200_001, 10_000)]
    return ResponseCurve(channel, points, current)


def make_report(**overrides) -> RoiReport:
    curves = [curve("search", 2.0, 40_000), curve("social", 1.0, 90_000), curve("email", 0.5, None)]
    channels = [
        channel_roi("search", spend_cents=123_456, budget_cents=150_000, impressions=40_000, clicks=1_200,
                    conversions=116, value_per_conversion_cents=VALUE, curve=curves[0]),
        channel_roi("social", spend_cents=250_000, budget_cents=250_000, impressions=90_000, clicks=900,
                    conversions=40, value_per_conversion_cents=VALUE, curve=curves[1]),
        channel_roi("email", spend_cents=0, budget_cents=50_000, impressions=0, clicks=0,
                    conversions=0, value_per_conversion_cents=VALUE, curve=curves[2]),
    ]
    fields = dict(
        scope="campaign", subject_id="c-42", title="Spring <push> & co ROI", tenant="acme",
        period_start="2026-03-01", period_end="2026-03-28", generated_at="2026-03-29T08:00:00Z",
        value_per_conversion_cents=VALUE, channels=channels,
        rounds=[RoundPoint(1, 100_000, 30), RoundPoint(2, 250_000, 95), RoundPoint(3, 373_456, 156)],
        curves=curves,
        experiments=[ExperimentLine(
            "exp-7", "search", "ab", "winner", "B", "p <= 0.05 and P(beat) >= 95%", "B converts better",
            [ArmLine("A", 5_000, 100, 0.02, None, None), ArmLine("B", 5_000, 140, 0.028, 0.9937, 0.00003)],
        )],
        allocation_changes=[AllocationChangeLine(
            2, "applied", 0.125, {"search": 100_000, "social": 300_000}, {"search": 150_000, "social": 250_000},
            "search mROI above social", "alice@acme",
        )],
        allocation_method="equal marginal ROI", expected_outcome=180.4, expected_interval=(150.0, 211.25),
        findings=["search returned 2.35x.", ODD_FINDING],
    )
    fields.update(overrides)
    return RoiReport(**fields)


@pytest.fixture(scope="module")
def default_pdf() -> bytes:
    return render_pdf(make_report())


@pytest.fixture(scope="module")
def default_html() -> str:
    return render_html(make_report())


def pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


# ---- numbers and formatting --------------------------------------------------------------
def test_formatting_helpers() -> None:
    assert money(123_456) == "$1,234.56"
    assert money(-5) == "-$0.05"
    assert money(1234.5) == "$12.35"  # half a cent rounds up, not to even
    assert money(None) == "n/a"
    assert ratio(2.3456) == "2.35x" and ratio(None) == "n/a"
    assert pct(0.1234) == "12.34%" and pct(0.5, 0) == "50%"
    assert p_value(0.00003) == "<0.0001" and p_value(0.04321) == "0.0432"


def test_channel_and_total_numbers() -> None:
    report = make_report()
    search, social, email = report.channels
    assert search.revenue_cents == 116 * VALUE
    assert search.roi == pytest.approx(290_000 / 123_456)
    assert search.cac_cents == pytest.approx(123_456 / 116)
    assert email.roi is None and email.cac_cents is None and email.mroi is None  # no spend, no current point
    t = totals(report)
    assert t["spend_cents"] == 373_456 and t["budget_cents"] == 450_000 and t["conversions"] == 156
    assert t["roi"] == pytest.approx(156 * VALUE / 373_456)
    assert t["cac_cents"] == pytest.approx(373_456 / 156)


def test_marginal_roi_is_the_curve_slope_times_value() -> None:
    # outcome = 2 sqrt(d) with d in dollars: slope = 1/sqrt(d) per dollar = 1/(100 sqrt(d)) per cent.
    mroi = marginal_roi(curve("search", 2.0, 40_000), VALUE)
    assert mroi == pytest.approx(VALUE / (100 * 400**0.5), rel=0.02)
    assert marginal_roi(ResponseCurve("x", [CurvePoint(100, 1.0)], 100), VALUE) is None
    # Diminishing returns: more spend on the same curve earns less per extra dollar.
    assert marginal_roi(curve("s", 2.0, 150_000), VALUE) < mroi


def test_merge_channels_sums_counters_across_campaigns() -> None:
    a = [channel_roi("search", spend_cents=100, budget_cents=200, impressions=10, clicks=5, conversions=1,
                     value_per_conversion_cents=VALUE)]
    b = [channel_roi("social", spend_cents=50, budget_cents=50, impressions=1, clicks=1, conversions=0,
                     value_per_conversion_cents=VALUE),
         channel_roi("search", spend_cents=300, budget_cents=300, impressions=30, clicks=10, conversions=3,
                     value_per_conversion_cents=VALUE)]
    merged = merge_channels([a, b], VALUE)
    assert [c.channel for c in merged] == ["search", "social"]
    assert (merged[0].spend_cents, merged[0].conversions, merged[0].revenue_cents) == (400, 4, 4 * VALUE)
    assert merged[0].roi == pytest.approx(4 * VALUE / 400)
    # A campaign that values its conversions differently keeps its own revenue in the sum.
    c = [channel_roi("search", spend_cents=100, budget_cents=100, impressions=1, clicks=1, conversions=2,
                     value_per_conversion_cents=3 * VALUE)]
    with_c = merge_channels([a, b, c], VALUE)
    assert with_c[0].revenue_cents == 4 * VALUE + 6 * VALUE
    assert with_c[0].roi == pytest.approx(10 * VALUE / 500)


def test_pdf_safe_spells_symbols_and_replaces_the_rest() -> None:
    text = pdf_safe(ODD_FINDING)
    text.encode("latin-1")  # encodable by the core fonts
    assert ">= 2x target -> scale up ?;" in text
    assert "naïve café - \"quoted\" EUR5 {nb}" in text


# ---- PDF ------------------------------------------------------------------------------
def test_pdf_pages_footers_and_numbers(default_pdf: bytes) -> None:
    report = make_report()
    data = default_pdf
    assert data.startswith(b"%PDF-")
    pages = pdf_pages(data)
    assert len(pages) == 3
    for n, text in enumerate(pages, start=1):
        assert f"Page {n} of 3" in text
    first = pages[0]
    t = totals(report)
    assert "Spring <push> & co ROI" in first
    for value in (money(t["spend_cents"]), "$3,734.56", money(t["revenue_cents"]), "$3,900.00",
                  ratio(t["roi"]), "1.04x", money(t["cac_cents"]), "$23.94", "156"):
        assert value in first, value
    search = report.channels[0]
    search_line = next(line for line in first.splitlines() if line.startswith("search"))
    assert money(search.spend_cents) in search_line and "$1,234.56" in search_line
    assert ratio(search.roi) in search_line and "2.35x" in search_line
    assert ratio(search.mroi) in search_line and money(search.cac_cents) in search_line
    assert ">= 2x target -> scale up" in first  # the odd finding survived, in ASCII
    assert "EUR5 { nb}" in first  # text holding fpdf2's page-count alias is not replaced by the count
    last = pages[2]
    assert "exp-7" in last and "99.37%" in last and "<0.0001" in last and "B converts better" in last
    assert "12.50%" in last and "alice@acme" in last and "search +$500.00, social -$500.00" in last


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # matplotlib's DejaVu lacks CJK/emoji
def test_odd_text_anywhere_renders() -> None:
    odd_channel = "搜索🚀"
    report = make_report(
        title="ROI 🚀 → Ελλάδα ≥ 2×", tenant="тенант", scope="tenant", findings=[ODD_FINDING],
        channels=[channel_roi(odd_channel, spend_cents=1_000, budget_cents=2_000, impressions=10, clicks=2,
                              conversions=1, value_per_conversion_cents=VALUE)],
        allocation_changes=[AllocationChangeLine(1, "pending", 0.5, {odd_channel: 1_000}, {odd_channel: 2_000},
                                                 "moved \u2192 more", "bob\u200d🚀")],
        campaigns=[{"campaign_id": "c-1", "name": ODD_FINDING, "status": "running", "spend_cents": None,
                    "conversions": None, "roi": None}],
    )
    pages = pdf_pages(render_pdf(report))
    assert all(f"Page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1))
    text = "\n".join(pages)
    assert "ROI ? -> ?????? >= 2x" in text and "moved -> more" in text and "bob?" in text
    assert "??? $10.00 $20.00 1 $25.00 2.50x" in text  # the channel row, name replaced, numbers intact
    html = render_html(report)
    assert "ROI 🚀 → Ελλάδα ≥ 2×" in html and odd_channel in html


def test_pdf_embeds_one_image_per_chart_and_is_reproducible(default_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(default_pdf))
    assert [len(page.images) for page in reader.pages] == [0, 3, 0]
    assert reader.metadata.creation_date.isoformat().startswith("2026-03-29T08:00:00")  # generated_at, no clock
    assert render_pdf(make_report()) == default_pdf


def test_empty_sections_say_so() -> None:
    report = make_report(rounds=[], curves=[], experiments=[], allocation_changes=[], findings=[])
    pages = pdf_pages(render_pdf(report))
    text = "\n".join(pages)
    for sentence in (NO_EXPERIMENTS, NO_ALLOCATION_CHANGES, "No findings.", "No metrics rounds recorded.",
                     "No response curves fitted."):
        assert sentence in text
    html = render_html(report)
    assert NO_EXPERIMENTS in html and NO_ALLOCATION_CHANGES in html
    assert html.count("<svg") == 1  # only spend vs revenue has data


def test_tenant_report_lists_campaigns() -> None:
    report = make_report(scope="tenant", subject_id="acme", campaigns=[
        {"campaign_id": "c-42", "name": "Spring push", "status": "completed", "spend_cents": 373_456,
         "conversions": 156, "roi": 1.0443},
        {"campaign_id": "c-43", "name": "Idle", "status": "draft", "spend_cents": 0, "conversions": 0, "roi": None},
    ])
    first = pdf_pages(render_pdf(report))[0]
    assert "Tenant acme" in first and "Spring push" in first and "draft" in first
    html = render_html(report)
    assert html.count("<svg") == 4 and 'id="chart-campaign_roi"' in html


# ---- HTML -----------------------------------------------------------------------------
def test_html_has_charts_numbers_and_escapes_text(default_html: str) -> None:
    report = make_report()
    html = default_html
    assert not _pylab_helpers.Gcf.figs  # no figure was registered with pyplot's figure manager
    assert "<push>" not in html and "Spring &lt;push&gt; &amp; co ROI" in html
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)  # each inline chart is well-formed XML
    assert "Spend vs revenue per channel" in svgs[0]  # SVG keeps text as text
    clip_ids = re.findall(r'<clipPath id="([^"]+)"', html)
    assert clip_ids and len(clip_ids) == len(set(clip_ids))  # inline SVGs on one page must not share ids
    t = totals(report)
    search = report.channels[0]
    for value in (money(t["spend_cents"]), money(t["revenue_cents"]), ratio(t["roi"]), money(t["cac_cents"]),
                  money(search.spend_cents), ratio(search.roi), "99.37%", "&lt;0.0001"):
        assert value in html, value
    assert "搜索" in html and "🚀" in html  # HTML keeps the original text
    assert render_html(report) == html  # deterministic: no clock, fixed SVG ids
