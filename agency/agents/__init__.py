"""Domain agents: deterministic planning, budgeting, scheduling, copy handling, compliance
and reporting logic over the typed contracts. No I/O here; activities call these."""

from agency.agents.budget import allocate_budget
from agency.agents.calendar import build_calendar
from agency.agents.compliance import check_compliance
from agency.agents.content import build_prompt, content_issues, enforce_limits, parse_generation
from agency.agents.planning import plan_campaign
from agency.agents.reporting import ReportInput, render_html, render_markdown, summarize

__all__ = [
    "ReportInput",
    "allocate_budget",
    "build_calendar",
    "build_prompt",
    "check_compliance",
    "content_issues",
    "enforce_limits",
    "parse_generation",
    "plan_campaign",
    "render_html",
    "render_markdown",
    "summarize",
]
