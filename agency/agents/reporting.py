"""Campaign report: numbers per channel, plain-language findings, HTML and Markdown views.

Channel metrics are cumulative counters (what a platform reports "so far"), so an item's
latest round is its total and earlier rounds are carried forward when an item is missing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from agency.contracts import (
    ApprovalState,
    BudgetAllocation,
    CampaignBrief,
    CampaignPlan,
    ItemMetrics,
    ItemStatus,
    MetricsSnapshot,
)

_COUNTERS = ("impressions", "clicks", "conversions", "spend_cents")


@dataclass
class ReportInput:
    campaign_id: str
    brief: CampaignBrief
    plan: CampaignPlan
    budget: BudgetAllocation
    items: list[ItemStatus]
    metrics: list[MetricsSnapshot]
    outcome: str


def summarize(inp: ReportInput) -> dict:
    """JSON-ready summary: per-channel and total performance, item counts, findings."""
    latest = latest_item_metrics(inp.metrics)
    budgets = {b.channel: b.amount_cents for b in inp.budget.channels}
    planned = {p.channel: p for p in inp.plan.channels}
    channel_names = _ordered_channels(inp, latest)

    channels = []
    for channel in channel_names:
        rows = [m for m in latest.values() if m.channel == channel]
        counters = {name: sum(getattr(m, name) for m in rows) for name in _COUNTERS}
        plan = planned.get(channel)
        channels.append(
            {
                "channel": channel,
                "role": plan.role if plan else "",
                "budget_cents": budgets.get(channel, 0),
                **counters,
                **_rates(counters),
                "planned_ctr": plan.expected_ctr if plan else None,
                "planned_cvr": plan.expected_cvr if plan else None,
                "items": sum(1 for i in inp.items if i.channel == channel),
            }
        )
    totals = {name: sum(c[name] for c in channels) for name in _COUNTERS}
    totals["budget_cents"] = inp.budget.total_budget_cents
    totals.update(_rates(totals))

    summary = {
        "campaign_id": inp.campaign_id,
        "name": inp.brief.name or inp.brief.product,
        "product": inp.brief.product,
        "audience": inp.brief.audience,
        "outcome": inp.outcome,
        "objective": inp.plan.objective,
        "period": {"start": inp.brief.start_date, "end": inp.brief.end_date, "days": inp.plan.duration_days},
        "channels": channels,
        "totals": totals,
        "items": _item_counts(inp.items),
        "best_channel": _best_channel(channels),
        "rounds": cumulative_rounds(inp.metrics),
    }
    summary["findings"] = _findings(summary)
    return summary


def render_markdown(inp: ReportInput, summary: dict) -> str:
    """Short plain-text version for terminals."""
    t, items = summary["totals"], summary["items"]
    lines = [
        f"# Campaign report: {summary['name']}",
        "",
        f"Outcome: {summary['outcome']} | objective: {summary['objective']} | "
        f"{summary['period']['start']} to {summary['period']['end']}",
        f"Items: {items['published']} published, {items['rejected']} rejected, "
        f"{items['expired']} expired, {items['blocked']} blocked, {items['pending']} pending",
        "",
        "| channel | budget | spend | impressions | clicks | conversions | CTR | CVR | CPA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in summary["channels"] + [{"channel": "total", **t}]:
        lines.append(
            f"| {c['channel']} | {_money(c['budget_cents'])} | {_money(c['spend_cents'])} | "
            f"{c['impressions']:,} | {c['clicks']:,} | {c['conversions']:,} | {_pct(c['ctr'])} | "
            f"{_pct(c['cvr'])} | {_money(c['cpa_cents'])} |"
        )
    lines += ["", "Findings:"] + [f"- {f}" for f in summary["findings"]]
    return "\n".join(lines) + "\n"


def render_html(inp: ReportInput, summary: dict) -> str:
    """Self-contained HTML page with inline SVG charts; every user-supplied string escaped."""
    channels = summary["channels"]
    names = [c["channel"] for c in channels]
    budget_chart = _bar_chart(
        "Budget vs spend per channel ($)",
        names,
        [("Budget", "#9db4d6", [c["budget_cents"] / 100 for c in channels]),
         ("Spend", "#2c5aa0", [c["spend_cents"] / 100 for c in channels])],
    )
    conversions_chart = _bar_chart(
        "Conversions per channel", names, [("Conversions", "#2e8b57", [c["conversions"] for c in channels])]
    )
    clicks_chart = _line_chart(
        "Cumulative clicks per metrics round",
        [r["round"] for r in summary["rounds"]],
        [r["clicks"] for r in summary["rounds"]],
    )
    title = escape(f"Campaign report: {summary['name']}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;width:100%;margin:1em 0}}
th,td{{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:right}}
th:first-child,td:first-child{{text-align:left}}
.charts{{display:flex;flex-wrap:wrap;gap:1em}} .muted{{color:#666}}
</style></head><body>
<h1>{title}</h1>
{_overview_html(inp, summary)}
<h2>Findings</h2>
<ul>{"".join(f"<li>{escape(f)}</li>" for f in summary["findings"])}</ul>
<h2>Performance by channel</h2>
{_channel_table_html(summary)}
<h2>Charts</h2>
<div class="charts">{budget_chart}{conversions_chart}{clicks_chart}</div>
<h2>Plan rationale</h2>
<ul>{"".join(f"<li>{escape(r)}</li>" for r in inp.plan.rationale)}</ul>
<h2>Budget method</h2>
<p>{escape(inp.budget.method)}</p>
<ul>{"".join(f"<li>{escape(n)}</li>" for n in inp.budget.notes)}</ul>
<h2>Content items</h2>
{_items_table_html(inp.items)}
</body></html>
"""


# ---- numbers --------------------------------------------------------------------------
def latest_item_metrics(snapshots: list[MetricsSnapshot]) -> dict[str, ItemMetrics]:
    """Each item's newest counters (they are cumulative: the newest round is the item's total)."""
    latest: dict[str, tuple[int, ItemMetrics]] = {}
    for snapshot in snapshots:
        for m in snapshot.items:
            if m.item_id not in latest or snapshot.round >= latest[m.item_id][0]:
                latest[m.item_id] = (snapshot.round, m)
    return {item_id: m for item_id, (_, m) in latest.items()}


def cumulative_rounds(snapshots: list[MetricsSnapshot]) -> list[dict]:
    """Campaign totals after each round, carrying forward items a round did not report."""
    by_round: dict[int, list[ItemMetrics]] = defaultdict(list)
    for snapshot in snapshots:
        by_round[snapshot.round].extend(snapshot.items)
    current: dict[str, ItemMetrics] = {}
    rounds = []
    for round_no in sorted(by_round):
        current.update({m.item_id: m for m in by_round[round_no]})
        rounds.append(
            {
                "round": round_no,
                "clicks": sum(m.clicks for m in current.values()),
                "conversions": sum(m.conversions for m in current.values()),
                "spend_cents": sum(m.spend_cents for m in current.values()),
            }
        )
    return rounds


def _ordered_channels(inp: ReportInput, latest: dict[str, ItemMetrics]) -> list[str]:
    names = [p.channel for p in inp.plan.channels]
    for extra in [b.channel for b in inp.budget.channels] + [m.channel for m in latest.values()]:
        if extra not in names:
            names.append(extra)
    return names


def _rates(counters: dict) -> dict:
    impressions, clicks, conversions = counters["impressions"], counters["clicks"], counters["conversions"]
    return {
        "ctr": clicks / impressions if impressions else None,
        "cvr": conversions / clicks if clicks else None,
        "cpa_cents": round(counters["spend_cents"] / conversions) if conversions else None,
    }


def _item_counts(items: list[ItemStatus]) -> dict:
    def count(state: ApprovalState) -> int:
        return sum(1 for i in items if i.approval_state == state.value)

    return {
        "total": len(items),
        "published": sum(1 for i in items if i.external_id),
        "approved": count(ApprovalState.APPROVED),
        "rejected": count(ApprovalState.REJECTED),
        "expired": count(ApprovalState.EXPIRED),
        "blocked": count(ApprovalState.BLOCKED),
        "pending": count(ApprovalState.PENDING),
    }


def _best_channel(channels: list[dict]) -> str | None:
    """Most conversions (cheaper CPA breaks ties); most clicks when nothing converted."""
    if any(c["conversions"] for c in channels):
        return max(channels, key=lambda c: (c["conversions"], -(c["cpa_cents"] or 0)))["channel"]
    if any(c["clicks"] for c in channels):
        return max(channels, key=lambda c: c["clicks"])["channel"]
    return None


def _findings(summary: dict) -> list[str]:
    t, items, channels = summary["totals"], summary["items"], summary["channels"]
    out = [f"Campaign ended {summary['outcome']}: {items['published']} of {items['total']} items published."]
    if t["budget_cents"]:
        out.append(
            f"Spent {_money(t['spend_cents'])} of the {_money(t['budget_cents'])} budget "
            f"({t['spend_cents'] / t['budget_cents']:.0%})."
        )
    if t["impressions"]:
        out.append(
            f"{t['impressions']:,} impressions, {t['clicks']:,} clicks (CTR {_pct(t['ctr'])}), "
            f"{t['conversions']:,} conversions (CVR {_pct(t['cvr'])}, CPA {_money(t['cpa_cents'])})."
        )
    else:
        out.append("No audience metrics were collected.")
    best = summary["best_channel"]
    if best is not None:
        c = next(c for c in channels if c["channel"] == best)
        if t["conversions"]:
            out.append(
                f"{best} was the best channel: {c['conversions']} of {t['conversions']} conversions "
                f"({c['conversions'] / t['conversions']:.0%}) on {_share(c['budget_cents'], t['budget_cents'])} of the budget."
            )
        else:
            out.append(f"Nothing converted; {best} drew the most clicks ({c['clicks']:,}).")
    for c in channels:
        if c["ctr"] is not None and c["planned_ctr"]:
            change = c["ctr"] / c["planned_ctr"] - 1
            if abs(change) >= 0.25:
                direction = "above" if change > 0 else "below"
                out.append(
                    f"{c['channel']} CTR {_pct(c['ctr'])} was {abs(change):.0%} {direction} the planned {_pct(c['planned_ctr'])}."
                )
    if items["blocked"]:
        out.append(f"{items['blocked']} item(s) were blocked by compliance checks and never offered for approval.")
    if items["rejected"] or items["expired"]:
        out.append(f"Reviewers rejected {items['rejected']} item(s); {items['expired']} expired without a decision.")
    return out


def _money(cents: int | float | None) -> str:
    return "n/a" if cents is None else f"${cents / 100:,.2f}"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


# ---- HTML pieces ----------------------------------------------------------------------
def _overview_html(inp: ReportInput, summary: dict) -> str:
    rows = [
        ("Campaign", inp.campaign_id),
        ("Tenant", inp.brief.tenant),
        ("Product", inp.brief.product),
        ("Audience", inp.brief.audience),
        ("Goals", "; ".join(inp.brief.goals)),
        ("Objective", inp.plan.objective),
        ("Tone", inp.plan.tone),
        ("Period", f"{inp.brief.start_date} to {inp.brief.end_date} ({inp.plan.duration_days} days)"),
        ("Outcome", summary["outcome"]),
        ("Key messages", "; ".join(inp.plan.key_messages)),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td style='text-align:left'>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _channel_table_html(summary: dict) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Channel", "Role", "Budget", "Spend", "Impressions", "Clicks", "Conversions", "CTR", "CVR", "CPA")
    )
    rows = []
    for c in summary["channels"] + [{"channel": "Total", "role": "", **summary["totals"]}]:
        cells = (
            c["channel"], c["role"], _money(c["budget_cents"]), _money(c["spend_cents"]),
            f"{c['impressions']:,}", f"{c['clicks']:,}", f"{c['conversions']:,}",
            _pct(c["ctr"]), _pct(c["cvr"]), _money(c["cpa_cents"]),
        )
        rows.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _items_table_html(items: list[ItemStatus]) -> str:
    if not items:
        return "<p class='muted'>No content items.</p>"
    rows = "".join(
        "<tr>" + "".join(
            f"<td>{escape(str(v))}</td>"
            for v in (i.item_id, i.channel, i.format, i.approval_state, i.version, i.external_id or "—")
        ) + "</tr>"
        for i in items
    )
    head = "".join(f"<th>{h}</th>" for h in ("Item", "Channel", "Format", "State", "Version", "External id"))
    return f"<table><tr>{head}</tr>{rows}</table>"


# ---- SVG charts -----------------------------------------------------------------------
_W, _H, _PAD_L, _PAD_B, _PAD_T = 300, 220, 44, 30, 34


def _axis_max(values: list[float]) -> float:
    top = max(values, default=0)
    return top if top > 0 else 1.0


def _svg_open(title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="{_W / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>'
        f'<line x1="{_PAD_L}" y1="{_H - _PAD_B}" x2="{_W - 6}" y2="{_H - _PAD_B}" stroke="#444"/>'
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_H - _PAD_B}" stroke="#444"/>'
    )


def _y_labels(top: float) -> str:
    plot_h = _H - _PAD_B - _PAD_T
    return "".join(
        f'<text x="{_PAD_L - 4}" y="{_H - _PAD_B - plot_h * f + 4:.1f}" text-anchor="end" font-size="10">'
        f"{top * f:,.0f}</text>"
        for f in (0, 0.5, 1)
    )


def _bar_chart(title: str, labels: list[str], series: list[tuple[str, str, list[float]]]) -> str:
    """Grouped bars: one group per label, one bar per series, with a legend."""
    top = _axis_max([v for _, _, values in series for v in values])
    plot_w, plot_h = _W - _PAD_L - 10, _H - _PAD_B - _PAD_T
    group_w = plot_w / max(len(labels), 1)
    bar_w = group_w * 0.7 / max(len(series), 1)
    parts = [_svg_open(title), _y_labels(top)]
    for g, label in enumerate(labels):
        x0 = _PAD_L + g * group_w + group_w * 0.15
        for s, (name, color, values) in enumerate(series):
            height = plot_h * values[g] / top
            parts.append(
                f'<rect x="{x0 + s * bar_w:.1f}" y="{_H - _PAD_B - height:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="{color}"><title>{escape(f"{label} {name}: {values[g]:,.2f}")}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + group_w * 0.35:.1f}" y="{_H - _PAD_B + 14}" text-anchor="middle" '
            f'font-size="11">{escape(label)}</text>'
        )
    for s, (name, color, _) in enumerate(series):
        parts.append(
            f'<rect x="{_PAD_L + 8 + s * 90}" y="22" width="10" height="10" fill="{color}"/>'
            f'<text x="{_PAD_L + 22 + s * 90}" y="31" font-size="10">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _line_chart(title: str, xs: list[int], ys: list[float]) -> str:
    parts = [_svg_open(title)]
    if not xs:
        parts.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="11">no metrics yet</text></svg>')
        return "".join(parts)
    top = _axis_max(ys)
    plot_w, plot_h = _W - _PAD_L - 16, _H - _PAD_B - _PAD_T
    step = plot_w / max(len(xs) - 1, 1)
    points = [(_PAD_L + 6 + i * step, _H - _PAD_B - plot_h * y / top) for i, y in enumerate(ys)]
    parts.append(_y_labels(top))
    parts.append(
        '<polyline fill="none" stroke="#c0392b" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>'
    )
    for (x, y), round_no, value in zip(points, xs, ys):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#c0392b"><title>round {round_no}: {value:,.0f}</title></circle>'
            f'<text x="{x:.1f}" y="{_H - _PAD_B + 14}" text-anchor="middle" font-size="10">{round_no}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
