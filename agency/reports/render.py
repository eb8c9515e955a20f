"""HTML and PDF views of an ``RoiReport``.

Both views print the same tables, built once as rows of already formatted strings
(``_summary_table``, ``_channel_table``, ...), so a number reads identically in either view
and in a test that formats database values with ``roi.money``/``roi.ratio``/``roi.pct``.

PDF: A4 portrait, core Helvetica only (no font files to ship). Core fonts encode Latin-1, so
every string is first passed through ``pdf_safe``, which spells common symbols in ASCII and
turns anything else unencodable into "?". Page 1 holds the summary, channel table, findings
(and the campaign table for a tenant report); the charts start on a new page; experiments and
the allocation-change log start on the page after. Each page has a "Page N of M" footer.
"""

from __future__ import annotations

import io
import struct
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos

from agency.reports import charts
from agency.reports.roi import (
    AllocationChangeLine,
    ExperimentLine,
    RoiReport,
    count,
    money,
    number,
    p_value,
    pct,
    ratio,
    totals,
)

NO_CHANNELS = "No channel data."
NO_FINDINGS = "No findings."
NO_EXPERIMENTS = "No experiments ran."
NO_ALLOCATION_CHANGES = "No allocation changes were proposed."
NO_CAMPAIGNS = "No campaigns in this period."
NO_DATA_FOR_CHART = {
    "spend_revenue": "No spend or revenue recorded.",
    "conversions_by_round": "No metrics rounds recorded.",
    "response_curves": "No response curves fitted.",
    "campaign_roi": "No campaign has spend yet.",
}
CHART_TITLES = {
    "spend_revenue": "Spend vs revenue per channel",
    "conversions_by_round": "Cumulative conversions by round",
    "response_curves": "Response curves",
    "campaign_roi": "ROI per campaign",
}


@dataclass
class TableData:
    headers: list[str]
    rows: list[list[str]]
    align: list[str]  # "L" or "R" per column
    widths: list[float]  # relative column widths (PDF)
    bold_last_row: bool = False


# ---- shared content -------------------------------------------------------------------
def _subtitle(report: RoiReport) -> str:
    subject = "Campaign" if report.scope == "campaign" else "Tenant"
    return (
        f"{subject} {report.subject_id} | tenant {report.tenant} | "
        f"{report.period_start} to {report.period_end} | generated {report.generated_at}"
    )


def _summary_table(report: RoiReport) -> TableData:
    t = totals(report)
    rows = [
        ["Total spend", money(t["spend_cents"])],
        ["Total budget", money(t["budget_cents"])],
        ["Conversions", count(t["conversions"])],
        ["Revenue", money(t["revenue_cents"])],
        ["ROI", ratio(t["roi"])],
        ["CAC", money(t["cac_cents"])],
        ["Value per conversion", money(report.value_per_conversion_cents)],
    ]
    if report.allocation_method:
        rows.append(["Allocation method", report.allocation_method])
    if report.expected_outcome is not None:
        expected = number(report.expected_outcome)
        if report.expected_interval is not None:
            low, high = report.expected_interval
            expected += f" ({number(low)} to {number(high)})"
        rows.append(["Expected conversions (allocation)", expected])
    return TableData(["Measure", "Value"], rows, ["L", "R"], [2, 1])


def _channel_table(report: RoiReport) -> TableData:
    rows = [
        [c.channel, money(c.spend_cents), money(c.budget_cents), count(c.conversions), money(c.revenue_cents),
         ratio(c.roi), ratio(c.mroi), money(c.cac_cents)]
        for c in report.channels
    ]
    t = totals(report)
    # Marginal ROI has no meaningful total (each channel sits on its own curve).
    rows.append(["Total", money(t["spend_cents"]), money(t["budget_cents"]), count(t["conversions"]),
                 money(t["revenue_cents"]), ratio(t["roi"]), "", money(t["cac_cents"])])
    return TableData(
        ["Channel", "Spend", "Budget", "Conversions", "Revenue", "ROI", "mROI", "CAC"],
        rows, ["L"] + ["R"] * 7, [1.6, 1.2, 1.2, 1.0, 1.2, 0.7, 0.7, 1.0], bold_last_row=True,
    )


def _campaign_table(report: RoiReport) -> TableData:
    rows = [
        [str(c.get("campaign_id", "")), str(c.get("name", "")), str(c.get("status", "")),
         money(c.get("spend_cents")), count(c.get("conversions")), ratio(c.get("roi"))]
        for c in report.campaigns
    ]
    return TableData(["Campaign", "Name", "Status", "Spend", "Conversions", "ROI"], rows,
                     ["L", "L", "L", "R", "R", "R"], [1.3, 2.0, 0.9, 1.1, 0.9, 0.7])


def _experiment_heading(e: ExperimentLine) -> str:
    return f"Experiment {e.experiment_id} | {e.channel} | {e.mode} | status: {e.status} | winner: {e.winner or 'none'}"


def _arm_table(e: ExperimentLine) -> TableData:
    rows = [
        [a.arm_id, count(a.exposures), count(a.conversions), pct(a.rate), pct(a.prob_beats_control), p_value(a.p_value)]
        for a in e.arms
    ]
    return TableData(["Arm", *e.counts, "Rate", "P(beat control)", "p-value"], rows,
                     ["L"] + ["R"] * 5, [1.4, 1, 1, 0.8, 1.1, 0.9])


def _budget_shift(change: AllocationChangeLine) -> str:
    """Per-channel budget moves, e.g. "search +$50.00, social -$50.00" (unchanged channels omitted)."""
    moves = []
    for channel in list(change.before) + [c for c in change.after if c not in change.before]:
        delta = change.after.get(channel, 0) - change.before.get(channel, 0)
        if delta:
            moves.append(f"{channel} {'+' if delta > 0 else '-'}{money(abs(delta))}")
    return ", ".join(moves) or "no change"


def _allocation_table(report: RoiReport) -> TableData:
    rows = [
        [str(a.round), a.status, pct(a.change), _budget_shift(a), a.reason, a.decided_by]
        for a in sorted(report.allocation_changes, key=lambda a: a.round)
    ]
    return TableData(["Round", "Status", "Change", "Budget shift", "Reason", "Decided by"], rows,
                     ["R", "L", "R", "L", "L", "L"], [0.6, 0.9, 0.8, 2.0, 2.6, 1.1])


# ---- HTML -----------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:.8em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em}
th{background:#eef2f8} .r{text-align:right} .l{text-align:left} tr.total td{font-weight:bold}
figure{margin:1em 0} figure svg{max-width:100%;height:auto} .muted{color:#666}
"""


def render_html(report: RoiReport) -> str:
    """Self-contained page: tables, findings and the charts as inline SVG; all text escaped."""
    figures = charts.report_figures(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="muted">{escape(_subtitle(report))}</p>',
        "<h2>Summary</h2>", _html_table(_summary_table(report)),
        "<h2>Channels</h2>",
        _html_table(_channel_table(report)) if report.channels else _html_empty(NO_CHANNELS),
    ]
    if report.scope == "tenant":
        parts += ["<h2>Campaigns</h2>",
                  _html_table(_campaign_table(report)) if report.campaigns else _html_empty(NO_CAMPAIGNS)]
    parts += ["<h2>Findings</h2>", _html_list(report.findings) if report.findings else _html_empty(NO_FINDINGS)]
    parts.append("<h2>Charts</h2>")
    for key, fig in figures.items():
        if fig is None:
            parts += [f"<h3>{escape(CHART_TITLES[key])}</h3>", _html_empty(NO_DATA_FOR_CHART[key])]
        else:
            parts.append(f'<figure id="chart-{key}" aria-label="{escape(CHART_TITLES[key])}">{charts.to_svg(fig, key)}</figure>')
    parts.append("<h2>Experiments</h2>")
    if not report.experiments:
        parts.append(_html_empty(NO_EXPERIMENTS))
    for e in report.experiments:
        parts += [
            f"<h3>{escape(_experiment_heading(e))}</h3>",
            f"<p>Threshold: {escape(e.threshold)}<br>Reason: {escape(e.reason)}</p>",
            _html_table(_arm_table(e)),
        ]
    parts.append("<h2>Allocation changes</h2>")
    parts.append(_html_table(_allocation_table(report)) if report.allocation_changes
                 else _html_empty(NO_ALLOCATION_CHANGES))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(table: TableData) -> str:
    classes = ["r" if a == "R" else "l" for a in table.align]
    head = "".join(f'<th class="{c}">{escape(h)}</th>' for c, h in zip(classes, table.headers))
    body = []
    for i, row in enumerate(table.rows):
        total = table.bold_last_row and i == len(table.rows) - 1
        cells = "".join(f'<td class="{c}">{escape(v)}</td>' for c, v in zip(classes, row))
        body.append(f'<tr class="total">{cells}</tr>' if total else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_list(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _html_empty(sentence: str) -> str:
    return f'<p class="muted">{escape(sentence)}</p>'


# ---- PDF ------------------------------------------------------------------------------
# Symbols that reports plausibly contain, spelled in ASCII; anything else outside Latin-1 is
# decomposed (accents dropped) or becomes "?". No letters of other scripts here: spelling one
# Greek letter as "alpha" would garble Greek words.
_ASCII_SPELLING = {
    "\u00d7": "x", "\u2192": "->", "\u2190": "<-", "\u2194": "<->", "\u21d2": "=>", "\u2265": ">=",
    "\u2264": "<=", "\u2260": "!=", "\u2248": "~", "\u00b1": "+/-", "\u2212": "-", "\u2013": "-", "\u2014": "--",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2022": "*", "\u00a0": " ",
    "\u20ac": "EUR", "\u2122": "(TM)", "\u2030": " per mille", "\u221e": "inf",
    "\u2713": "v", "\u2717": "x",
}


def pdf_safe(text: str) -> str:
    """Text that Helvetica (Latin-1) can encode: symbols spelled in ASCII, others replaced by "?"."""
    out = []
    for ch in text:
        if ch in _ASCII_SPELLING:
            out.append(_ASCII_SPELLING[ch])
        elif ch in "\n\t" or 0x20 <= ord(ch) < 0x7F or 0xA0 <= ord(ch) <= 0xFF:
            out.append(ch)
        elif unicodedata.category(ch).startswith("C") or unicodedata.category(ch) == "Mn":
            continue  # control, format (zero-width joiners, variation selectors) and combining marks
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if 0x20 <= ord(c) <= 0xFF and ord(c) not in range(0x7F, 0xA0))
            out.append(base or "?")
    return "".join(out)


_PAGE_COUNT_ALIAS = "{nb}"  # fpdf2 swaps this for the page count when the document is written


class _ReportPdf(FPDF):
    def __init__(self, footer_text: str, created: datetime | None) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=18)
        self.alias_nb_pages(_PAGE_COUNT_ALIAS)
        # The document date is the report's generated_at, never the clock (None: no date at all).
        self.creation_date = created
        self._drawing_page_number = False

    def normalize_text(self, text: str) -> str:
        # Safety net: every string drawn goes through here, whichever call drew it. Report text
        # that happens to contain the alias must not turn into the page count.
        text = pdf_safe(text)
        if not self._drawing_page_number:
            text = text.replace(_PAGE_COUNT_ALIAS, "{ nb}")
        return super().normalize_text(text)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110)
        half = self.epw / 2
        self.cell(half, 5, self.footer_text, align="L")
        self._drawing_page_number = True
        try:
            self.cell(half, 5, f"Page {self.page_no()} of {_PAGE_COUNT_ALIAS}", align="R")
        finally:
            self._drawing_page_number = False
        self.set_text_color(0)


def render_pdf(report: RoiReport) -> bytes:
    """Multi-page A4 PDF (see the module docstring for the layout)."""
    pdf = _ReportPdf(pdf_safe(f"{report.title} | {report.generated_at}"), _parse_timestamp(report.generated_at))
    pdf.set_title(pdf_safe(report.title))
    pdf.set_author("agency")

    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, report.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    pdf.set_text_color(90)
    pdf.multi_cell(0, 5, _subtitle(report), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    _pdf_heading(pdf, "Summary")
    _pdf_table(pdf, _summary_table(report), width=110)
    _pdf_heading(pdf, "Channels")
    _pdf_table_or(pdf, _channel_table(report), bool(report.channels), NO_CHANNELS)
    if report.scope == "tenant":
        _pdf_heading(pdf, "Campaigns")
        _pdf_table_or(pdf, _campaign_table(report), bool(report.campaigns), NO_CAMPAIGNS)
    _pdf_heading(pdf, "Findings")
    if report.findings:
        for line in report.findings:
            pdf.multi_cell(0, 5, f"- {line}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        _pdf_paragraph(pdf, NO_FINDINGS)

    pdf.add_page()
    _pdf_heading(pdf, "Charts", top=False)
    for key, fig in charts.report_figures(report).items():
        if fig is None:
            _pdf_heading(pdf, CHART_TITLES[key], size=10)
            _pdf_paragraph(pdf, NO_DATA_FOR_CHART[key])
        else:
            _pdf_chart(pdf, charts.to_png(fig))

    pdf.add_page()
    _pdf_heading(pdf, "Experiments", top=False)
    if not report.experiments:
        _pdf_paragraph(pdf, NO_EXPERIMENTS)
    for e in report.experiments:
        _pdf_heading(pdf, _experiment_heading(e), size=10)
        _pdf_paragraph(pdf, f"Threshold: {e.threshold}")
        _pdf_paragraph(pdf, f"Reason: {e.reason}")
        _pdf_table(pdf, _arm_table(e))
    _pdf_heading(pdf, "Allocation changes")
    _pdf_table_or(pdf, _allocation_table(report), bool(report.allocation_changes), NO_ALLOCATION_CHANGES)
    return bytes(pdf.output())


def _parse_timestamp(iso: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _pdf_heading(pdf: FPDF, text: str, size: int = 12, top: bool = True) -> None:
    if top:
        pdf.ln(3)
    # Keep a heading with at least a few lines of what follows it.
    if pdf.will_page_break(size + 15):
        pdf.add_page()
    pdf.set_font("Helvetica", "B", size)
    pdf.multi_cell(0, size * 0.55, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.set_font("Helvetica", size=9)


def _pdf_paragraph(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(0, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _pdf_table_or(pdf: FPDF, table: TableData, has_rows: bool, empty: str) -> None:
    if has_rows:
        _pdf_table(pdf, table)
    else:
        _pdf_paragraph(pdf, empty)


def _pdf_table(pdf: FPDF, table: TableData, width: float | None = None) -> None:
    pdf.set_font("Helvetica", size=8.5)
    with pdf.table(
        col_widths=table.widths,
        text_align=table.align,
        width=width or pdf.epw,
        align="LEFT",
        line_height=4.6,
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 236, 245)),
        repeat_headings=1,
    ) as out:
        out.row(table.headers)
        for i, values in enumerate(table.rows):
            last = table.bold_last_row and i == len(table.rows) - 1
            row = out.row(style=FontFace(emphasis="BOLD") if last else None)
            for value in values:
                row.cell(value)
    pdf.ln(2)
    pdf.set_font("Helvetica", size=9)


def _pdf_chart(pdf: FPDF, png: bytes) -> None:
    """Full-width image; starts a new page when the chart would not fit below the cursor."""
    width_px, height_px = struct.unpack(">II", png[16:24])  # PNG IHDR: width, height
    height = pdf.epw * height_px / width_px
    if pdf.will_page_break(height):
        pdf.add_page()
    pdf.image(io.BytesIO(png), x=pdf.l_margin, w=pdf.epw, h=height)
    pdf.ln(3)
