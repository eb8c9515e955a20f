"""Content Strategy Agent: the campaign's content calendar (date × channel × topic × format).

Inputs: the plan (key messages, posts per channel), each channel's cadence rules, topic trends
(rising in the tenant's own results or in competitors' feeds) and the performance analyzer's
numbered recommendations. Rising trends pick the topics and are tied to the key message they
fit best; confident recommendations move weekdays, hours and topic order. Every choice that
came from a trend or a recommendation is stated in the rationale with its number.

The social channel publishes one coordinated set per post: the same message on the same day
on every network (X, LinkedIn, Instagram). Same input, same calendar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from agency.agents.calendar import spread_offsets
from agency.agents.content import call_to_action_for
from agency.agents.performance import (
    FORMAT,
    FORMAT_WEEKDAY,
    HOUR,
    HOUR_BUCKET_DEFAULT,
    LENGTH,
    TOPIC,
    WEEKDAY,
    WEEKDAYS,
)
from agency.agents.planning import campaign_duration_days
from agency.contracts import (
    CHANNEL_FORMAT,
    SOCIAL_NETWORK_FORMATS,
    CalendarEntry,
    CalendarRequest,
    Channel,
    ContentCalendar,
    ContentRecommendation,
    MessageBrief,
    TopicTrend,
)

ALL_WEEKDAYS = tuple(range(7))  # 0 = Monday, as date.weekday()


@dataclass(frozen=True)
class CadenceRule:
    """How often a channel may publish."""

    max_per_week: int  # per calendar week, Monday to Sunday
    min_days_between: int  # two publish dates of the channel are at least this many days apart
    weekdays: tuple[int, ...] = ALL_WEEKDAYS  # allowed weekdays, 0 = Monday
    default_hour: int = 9  # local hour, unless a confident recommendation says otherwise

    def __post_init__(self) -> None:
        if self.max_per_week < 1:
            raise ValueError(f"max_per_week must be at least 1, got {self.max_per_week}")
        if self.min_days_between < 0:
            raise ValueError(f"min_days_between must be >= 0, got {self.min_days_between}")
        if not self.weekdays or any(d not in ALL_WEEKDAYS for d in self.weekdays):
            raise ValueError(f"weekdays must be a non-empty subset of 0..6, got {self.weekdays}")
        if not 0 <= self.default_hour <= 23:
            raise ValueError(f"default_hour must be 0..23, got {self.default_hour}")

    def describe(self) -> str:
        days = ", ".join(WEEKDAYS[d][:3] for d in sorted(self.weekdays))
        return (
            f"at most {self.max_per_week}/week, at least {self.min_days_between} day(s) apart, "
            f"on {days}, at {self.default_hour:02d}:00"
        )


# Defaults: a blog post a few times a week on workdays, social daily at most, one email a week midweek.
DEFAULT_CADENCE: dict[str, CadenceRule] = {
    Channel.BLOG.value: CadenceRule(max_per_week=2, min_days_between=2, weekdays=(0, 1, 2, 3, 4), default_hour=9),
    Channel.SOCIAL.value: CadenceRule(max_per_week=5, min_days_between=1, default_hour=12),
    Channel.EMAIL.value: CadenceRule(max_per_week=1, min_days_between=5, weekdays=(1, 2, 3), default_hour=10),
}

_STOPWORDS = frozenset(
    (
        "a an and are as at be by for from get how in into is it its of on or our the this to up us we "
        "what when why with you your today more"
    ).split()
)
_WORD = re.compile(r"[a-z0-9]+")


def channel_formats(channel: str) -> tuple[str, ...]:
    """The formats one post of the channel becomes: one per network for social."""
    if channel == Channel.SOCIAL.value:
        return SOCIAL_NETWORK_FORMATS
    if channel not in CHANNEL_FORMAT:
        raise ValueError(f"no content format for channel {channel!r}")
    return (CHANNEL_FORMAT[channel],)


def build_content_calendar(
    req: CalendarRequest, cadence: dict[str, CadenceRule] | None = None
) -> ContentCalendar:
    """The calendar, its message briefs and why; ``cadence`` overrides DEFAULT_CADENCE per channel.

    Raises ValueError for a channel without a format or cadence rule.
    """
    rules = {**DEFAULT_CADENCE, **(cadence or {})}
    start = date.fromisoformat(req.brief.start_date)
    days = campaign_duration_days(req.brief.start_date, req.brief.end_date)
    confident = sorted((r for r in req.recommendations if r.confident), key=lambda r: r.number)
    rationale: list[str] = []

    messages = _messages(req, confident, rationale)
    entries: list[CalendarEntry] = []
    for channel_plan in req.plan.channels:
        channel = channel_plan.channel
        formats = channel_formats(channel)
        rule = rules.get(channel)
        if rule is None:
            raise ValueError(f"no cadence rule for channel {channel!r}")
        preferred, avoided = _weekday_preferences(channel, formats, rule, confident, rationale)
        dates = _schedule(start, days, channel_plan.posts, rule, preferred, avoided)
        hour = _publish_hour(rule, confident, channel, rationale)
        rationale.append(
            f"{channel}: {len(dates)} of {channel_plan.posts} planned posts fit the cadence ({rule.describe()})"
            + (f"; {channel_plan.posts - len(dates)} dropped" if len(dates) < channel_plan.posts else "")
            + (f"; each post is a set of {len(formats)} network formats on the same day" if len(formats) > 1 else "")
        )
        n = 0
        for slot, day in enumerate(dates):
            # Slot i of every channel carries message i: a message goes out everywhere at about the same time.
            message = messages[slot % len(messages)]
            for fmt in formats:
                n += 1
                entries.append(
                    CalendarEntry(
                        item_id=f"{req.campaign_id}:{channel}:{n}", channel=channel, format=fmt,
                        publish_on=day.isoformat(), angle=message.message, topic=message.topic,
                        message_id=message.message_id, publish_hour=hour,
                    )
                )
    used = {e.message_id for e in entries}
    for m in messages:
        if m.message_id not in used:
            rationale.append(f"Message {m.message_id.rsplit(':', 1)[1]} {m.message!r} not scheduled: too few posts")
    messages = [m for m in messages if m.message_id in used]
    _note_unused(req.recommendations, confident, rationale)
    entries.sort(key=lambda e: (e.publish_on, e.channel, int(e.item_id.rsplit(":", 1)[1])))
    return ContentCalendar(campaign_id=req.campaign_id, entries=entries, messages=messages, rationale=rationale)


# ---- topics and messages ------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1]


def _camel(text: str) -> str:
    return "".join(w.capitalize() for w in _WORD.findall(text.lower()))


@dataclass
class _TopicChoice:
    topic: str
    trend: TopicTrend | None
    recommendation: ContentRecommendation | None


def _ranked_topics(
    trends: list[TopicTrend], confident: list[ContentRecommendation], rationale: list[str]
) -> list[_TopicChoice]:
    """Rising trends and topics with a confident positive lift, best first; dropped topics out."""
    lifts = {r.level.strip().lower(): r for r in confident if r.factor == TOPIC and r.effect > 0}
    drops = {r.level.strip().lower(): r for r in confident if r.factor == TOPIC and r.effect < 0}
    rising: dict[str, TopicTrend] = {}
    for t in sorted(trends, key=lambda t: (-t.momentum, t.source, t.topic)):
        key = t.topic.strip().lower()
        if t.momentum > 0 and key and key not in rising:
            rising[key] = t
    choices = []
    for key in sorted(set(rising) | set(lifts), key=lambda k: (
        k not in lifts, -(rising[k].momentum if k in rising else 0.0), k
    )):
        if key in drops:
            rationale.append(
                f"Topic {key!r} left out despite its trend: recommendation {drops[key].number} "
                f"({drops[key].metric.upper()} {drops[key].effect * 100:+.0f}%)"
            )
            continue
        trend = rising.get(key)
        choices.append(_TopicChoice(trend.topic.strip() if trend else key, trend, lifts.get(key)))
    return choices


def _messages(req: CalendarRequest, confident: list[ContentRecommendation], rationale: list[str]) -> list[MessageBrief]:
    texts = [m.strip() for m in req.plan.key_messages if m.strip()] or [req.brief.product.strip()]
    topics = _ranked_topics(req.trends, confident, rationale)
    assigned: dict[int, _TopicChoice] = {}
    for choice in topics[: len(texts)]:
        # The key message sharing most words with the topic carries it; else the first free one.
        vocabulary = set(_words(choice.topic)) | set(
            w for k in (choice.trend.keywords if choice.trend else []) for w in _words(k)
        )
        free = [i for i in range(len(texts)) if i not in assigned]
        best = max(free, key=lambda i: (len(vocabulary & set(_words(texts[i]))), -i))
        assigned[best] = choice
    for choice in topics[len(texts):]:
        rationale.append(f"Topic {choice.topic!r} not used: the plan has {len(texts)} key message(s)")
    # Messages with a chosen topic lead, in topic rank; then the plan's order.
    order = [i for c in topics for i, a in assigned.items() if a is c] + [
        i for i in range(len(texts)) if i not in assigned
    ]
    product = req.brief.product.strip()
    cta = call_to_action_for(req.plan.objective, product)
    messages = []
    for n, i in enumerate(order, start=1):
        choice = assigned.get(i)
        topic = choice.topic if choice else " ".join(_words(texts[i])[:3]) or product.lower()
        trend_keywords = choice.trend.keywords if choice and choice.trend else []
        message = MessageBrief(
            message_id=f"{req.campaign_id}:m{n}", topic=topic, message=texts[i], cta=cta,
            hashtags=_unique([_camel(topic), _camel(product), *(_camel(k) for k in trend_keywords)])[:4],
            keywords=_unique([*_words(topic), *(w for k in trend_keywords for w in _words(k)), *_words(product)])[:8],
        )
        messages.append(message)
        if choice is not None:
            rationale.append(f"Message m{n} {texts[i]!r} carries the topic {topic!r}: {_why_topic(choice)}")
    return messages


def _why_topic(choice: _TopicChoice) -> str:
    reasons = []
    if choice.trend is not None:
        t = choice.trend
        reasons.append(
            f"rising in {'competitor feeds' if t.source == 'competitor' else 'our own results'} "
            f"(momentum {t.momentum * 100:+.0f}% per period{'; ' + t.evidence if t.evidence else ''})"
        )
    if choice.recommendation is not None:
        r = choice.recommendation
        reasons.append(f"recommendation {r.number}: {r.metric.upper()} {r.effect * 100:+.0f}%")
    return "; ".join(reasons)


def _unique(values) -> list[str]:
    seen: list[str] = []
    for v in values:
        if v and v not in seen:
            seen.append(v)
    return seen


# ---- days and hours ---------------------------------------------------------------------------------
def _applies(rec: ContentRecommendation, formats: tuple[str, ...]) -> str | None:
    """The weekday a weekday-type recommendation names, if it applies to these formats."""
    if rec.factor == WEEKDAY:
        return rec.level
    if rec.factor == FORMAT_WEEKDAY:
        fmt, _, day = rec.level.partition("@")
        return day if fmt in formats else None
    return None


def _weekday_preferences(
    channel: str, formats: tuple[str, ...], rule: CadenceRule, confident: list[ContentRecommendation],
    rationale: list[str],
) -> tuple[set[int], set[int]]:
    preferred: set[int] = set()
    avoided: set[int] = set()
    for rec in confident:
        day = _applies(rec, formats)
        if day not in WEEKDAYS:
            continue
        weekday = WEEKDAYS.index(day)
        low, high = rec.interval
        change = f"{rec.metric.upper()} {rec.effect * 100:+.0f}% (90% CI {low * 100:+.0f}%..{high * 100:+.0f}%)"
        cited = f"recommendation {rec.number} ({change})"
        if weekday not in rule.weekdays:
            if rec.effect > 0:
                rationale.append(f"{channel}: {day} per {cited} not applied: the cadence excludes {day}")
            continue
        if rec.effect > 0 and weekday not in avoided:
            preferred.add(weekday)
            rationale.append(f"{channel}: posts moved to {day} where the cadence allows, per {cited}")
        elif rec.effect < 0 and weekday not in preferred:
            avoided.add(weekday)
            rationale.append(f"{channel}: {day} used only when no other day fits, per {cited}")
    return preferred, avoided


def _schedule(
    start: date, days: int, posts: int, rule: CadenceRule, preferred: set[int], avoided: set[int]
) -> list[date]:
    """Publish dates: near evenly spread targets, on allowed (preferably recommended) weekdays,
    within the weekly maximum and minimum gap. Fewer than ``posts`` when the cadence can't fit them."""
    candidates = [start + timedelta(days=o) for o in range(days)]
    candidates = [d for d in candidates if d.weekday() in rule.weekdays]
    chosen: list[date] = []
    for offset in spread_offsets(posts, days):
        target = start + timedelta(days=offset)
        feasible = [d for d in candidates if _fits(d, chosen, rule)]
        if not feasible:
            break
        chosen.append(min(feasible, key=lambda d: (_tier(d, preferred, avoided), abs((d - target).days), d)))
    return sorted(chosen)


def _tier(d: date, preferred: set[int], avoided: set[int]) -> int:
    return 0 if d.weekday() in preferred else 2 if d.weekday() in avoided else 1


def _fits(d: date, chosen: list[date], rule: CadenceRule) -> bool:
    if any(abs((d - c).days) < max(1, rule.min_days_between) for c in chosen):
        return False
    week = d.isocalendar()[:2]
    return sum(c.isocalendar()[:2] == week for c in chosen) < rule.max_per_week


def _publish_hour(rule: CadenceRule, confident: list[ContentRecommendation], channel: str, rationale: list[str]) -> int:
    for rec in confident:
        if rec.factor == HOUR and rec.effect > 0 and rec.level in HOUR_BUCKET_DEFAULT:
            hour = HOUR_BUCKET_DEFAULT[rec.level]
            rationale.append(
                f"{channel}: published at {hour:02d}:00 ({rec.level}) per recommendation {rec.number} "
                f"({rec.metric.upper()} {rec.effect * 100:+.0f}%)"
            )
            return hour
    return rule.default_hour


def _note_unused(
    recommendations: list[ContentRecommendation], confident: list[ContentRecommendation], rationale: list[str]
) -> None:
    for rec in confident:
        if rec.factor in (LENGTH, FORMAT):
            rationale.append(
                f"Recommendation {rec.number} ({rec.factor} {rec.level}) is for the writers, not the calendar: "
                "every social post stays one coordinated set across the networks"
            )
    tentative = [r.number for r in recommendations if not r.confident]
    if tentative:
        numbers = ", ".join(map(str, sorted(tentative)))
        rationale.append(
            f"Recommendation {numbers} is not confident; the calendar ignores it"
            if len(tentative) == 1 else f"Recommendations {numbers} are not confident; the calendar ignores them"
        )
