"""Charts for the ROI report, drawn with matplotlib's object API on the Agg canvas.

Figures are built from ``matplotlib.figure.Figure`` and attached to their own
``FigureCanvasAgg``: pyplot is never imported, so nothing registers with its figure manager,
no backend is switched and nothing leaks between reports or threads. rcParams are touched only
inside ``_rc`` blocks, which restore them and hold a lock (see there).

Each ``*_figure`` function returns a Figure, or None when the report has no data for it (the
renderers then print a sentence instead of an empty chart).
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from agency.reports.roi import RoiReport

SPEND_COLOR, REVENUE_COLOR, CONVERSIONS_COLOR, CURRENT_COLOR = "#2c5aa0", "#2e8b57", "#c0392b", "#e67e22"
# Width that fills the PDF text column (A4 minus 15 mm margins); height per chart kind below.
WIDTH_IN = 180 / 25.4
# Text kept as text (smaller, selectable, searchable) rather than glyph paths.
_SVG_RC = {"svg.fonttype": "none"}
_LOCK = threading.RLock()
_BASE_RC = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


@contextmanager
def _rc(params: dict) -> Iterator[None]:
    """rcParams for one step of chart work, restored afterwards.

    rcParams are process-wide and matplotlib is not thread-safe, so chart work is serialized:
    otherwise one thread leaving its rc_context would reset the style under another.
    """
    with _LOCK, matplotlib.rc_context(params):
        yield


def _compact(value: float, _pos: object = None) -> str:
    """Short tick label: 1234 -> "1,234", 25000 -> "25k", 3000000 -> "3.0M", 0.25 -> "0.25"."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:,.1f}M"
    if size >= 10_000:
        return f"{value / 1_000:,.0f}k"
    if size >= 10 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2g}"


def _dollars(value: float, _pos: object = None) -> str:
    return f"{'-' if value < 0 else ''}${_compact(abs(value))}"


def _new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig


def _set_margins(fig: Figure, left: float, right: float, bottom: float, top: float, **spacing: float) -> None:
    """Fixed margins in inches around the axes grid.

    Fixed rather than constrained layout: the labels are bounded (compact dollar ticks, short
    titles, truncated campaign names) and constrained layout measured every text box again on
    each save, about 40% of the charts' CPU time.
    """
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, **spacing)


def spend_revenue_figure(report: RoiReport) -> Figure | None:
    """Grouped bars per channel: spend and revenue in dollars, ROI written above each group."""
    channels = report.channels
    if not channels:
        return None
    with _rc(_BASE_RC):
        fig = _new_figure(3.0)
        ax = fig.add_subplot()
        xs = range(len(channels))
        width = 0.38
        spend = [c.spend_cents / 100 for c in channels]
        revenue = [c.revenue_cents / 100 for c in channels]
        ax.bar([x - width / 2 for x in xs], spend, width, label="Spend", color=SPEND_COLOR)
        ax.bar([x + width / 2 for x in xs], revenue, width, label="Revenue", color=REVENUE_COLOR)
        top = max(spend + revenue + [0.0])
        for x, c in zip(xs, channels):
            label = "no spend" if c.roi is None else f"ROI {c.roi:.2f}x"
            ax.annotate(label, (x, max(spend[x], revenue[x])), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.set_xticks(list(xs), [c.channel for c in channels])
        ax.set_ylim(0, top * 1.12 if top > 0 else 1)
        ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
        ax.set_title("Spend vs revenue per channel", loc="left")
        # Outside the axes: inside, it collides with the tallest bar or its ROI label.
        fig.legend(loc="upper right", ncols=2, frameon=False)
        _set_margins(fig, left=0.7, right=0.15, bottom=0.35, top=0.45)
    return fig


def conversions_by_round_figure(report: RoiReport) -> Figure | None:
    """Cumulative conversions per metrics round, with cumulative spend on a second axis."""
    rounds = sorted(report.rounds, key=lambda r: r.round)
    if not rounds:
        return None
    with _rc(_BASE_RC):
        fig = _new_figure(2.8)
        ax = fig.add_subplot()
        xs = [r.round for r in rounds]
        ax.plot(xs, [r.conversions for r in rounds], marker="o", color=CONVERSIONS_COLOR, label="Conversions")
        ax.set_xlabel("Metrics round")
        ax.set_ylabel("Cumulative conversions")
        ax.yaxis.set_major_formatter(FuncFormatter(_compact))
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        spend_ax = ax.twinx()
        spend_ax.spines["right"].set_visible(True)
        spend_ax.plot(xs, [r.spend_cents / 100 for r in rounds], linestyle="--", color=SPEND_COLOR, label="Spend")
        spend_ax.set_ylabel("Cumulative spend")
        spend_ax.set_ylim(bottom=0)
        spend_ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
        handles = ax.get_legend_handles_labels()[0] + spend_ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, frameon=False, loc="upper left")
        ax.set_title("Cumulative conversions by round")
        _set_margins(fig, left=0.7, right=0.85, bottom=0.5, top=0.3)
    return fig


def response_curves_figure(report: RoiReport) -> Figure | None:
    """Small multiples, one panel per channel: weekly outcome against weekly spend.

    Channels have very different spend scales, so each gets its own axes rather than sharing one.
    The current weekly spend is marked with a dot on the curve and a dotted vertical line.
    """
    curves = [c for c in report.curves if c.points]
    if not curves:
        return None
    cols = min(len(curves), 3)
    rows = math.ceil(len(curves) / cols)
    with _rc(_BASE_RC):
        fig = _new_figure(2.1 * rows + 0.6)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, curve in zip(axes.flat, curves):
            points = sorted(curve.points, key=lambda p: p.weekly_spend_cents)
            xs = [p.weekly_spend_cents / 100 for p in points]
            ys = [p.weekly_outcome for p in points]
            ax.plot(xs, ys, color=SPEND_COLOR)
            current = curve.current_weekly_spend_cents
            if current is not None:
                x_now = current / 100
                y_now = float(np.interp(x_now, xs, ys))  # clamps outside the sampled range
                ax.axvline(x_now, color=CURRENT_COLOR, linestyle=":", linewidth=1)
                ax.plot([x_now], [y_now], marker="o", color=CURRENT_COLOR, label=f"current {_dollars(x_now)}/wk")
                ax.legend(frameon=False, loc="lower right", fontsize=7)
            ax.set_title(curve.channel)
            ax.set_xlabel("Weekly spend")
            ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
            ax.xaxis.set_major_locator(MaxNLocator(3))  # panels are narrow; more ticks collide
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(FuncFormatter(_compact))
        axes.flat[0].set_ylabel("Weekly conversions")
        for ax in list(axes.flat)[len(curves):]:
            ax.set_visible(False)
        fig.suptitle("Response curves (current spend marked)", y=1 - 0.08 / fig.get_figheight())
        axes_height = (fig.get_figheight() - 0.6 - 0.5) / rows
        _set_margins(fig, left=0.7, right=0.15, bottom=0.5, top=0.6, wspace=0.35, hspace=0.85 / axes_height)
    return fig


def campaign_roi_figure(report: RoiReport) -> Figure | None:
    """Tenant scope: horizontal bars of ROI per campaign (campaigns without spend are left out)."""
    rows = [c for c in report.campaigns if c.get("roi") is not None]
    if not rows:
        return None
    with _rc(_BASE_RC):
        fig = _new_figure(0.7 + 0.3 * len(rows))
        ax = fig.add_subplot()
        labels = [_shorten(str(c.get("name") or c["campaign_id"]), 32) for c in rows]
        ax.barh(range(len(rows)), [c["roi"] for c in rows], color=REVENUE_COLOR)
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        ax.axvline(1.0, color="#666", linestyle=":", linewidth=1, zorder=3)  # break-even, drawn over the bars
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.1f}x"))
        ax.set_title("ROI per campaign (dotted line: break-even)")
        # ~0.075 in per character of 9 pt DejaVu Sans, plus the tick gap.
        _set_margins(fig, left=0.25 + 0.075 * max(len(label) for label in labels), right=0.25, bottom=0.35, top=0.35)
    return fig


def report_figures(report: RoiReport) -> dict[str, Figure | None]:
    """Every chart of the report by section key, in display order."""
    builders = {
        "spend_revenue": spend_revenue_figure,
        "conversions_by_round": conversions_by_round_figure,
        "response_curves": response_curves_figure,
    }
    if report.scope == "tenant":
        builders["campaign_roi"] = campaign_roi_figure
    return {key: build(report) for key, build in builders.items()}


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def to_svg(fig: Figure, id_salt: str = "chart") -> str:
    """The figure as an SVG document without the XML prolog, ready to inline in HTML.

    Clip-path and marker ids are hashes salted with ``id_salt``: give each chart on a page its
    own salt so ids never collide between inline SVGs, and stay the same from run to run.
    """
    buf = io.StringIO()
    with _rc({**_SVG_RC, "svg.hashsalt": f"agency-roi-{id_salt}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def to_png(fig: Figure, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (no timestamp metadata, so output is reproducible)."""
    buf = io.BytesIO()
    with _rc({}):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()

