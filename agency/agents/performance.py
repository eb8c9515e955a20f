"""Content Performance Analyzer: what works (topic, format, length, weekday, hour, format×weekday).

Each tested level is compared with the rest as a ratio of rates (CTR = clicks / impressions,
CVR = conversions / clicks). Items differ far more than binomial noise allows (one post goes
viral, another flops), so a pooled binomial test would call almost everything significant.
Instead every rate is a ratio estimator over *items* whose variance follows the
beta-binomial / negative-binomial form Var(y) = μ + κμ², with the overdispersion κ estimated
per format from all of its items (method of moments); the log lift gets a normal interval. Then
Holm's step-down controls the family-wise error over every level and metric tested: on data
with no real effect, the chance of even one confident recommendation stays at ``alpha``.

Confounding: a blog post and a tweet have different CTRs by nature, so factors other than
format are compared within format (observed vs expected from the item's format baseline), a
format is compared with the other formats of its own channel, and a format×weekday cell with
the same format on other weekdays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np

from agency.contracts import SOCIAL_NETWORK_FORMATS, ContentFormat, ContentRecommendation, TopicTrend

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Hour buckets (local hour of publication): name, hours, the hour the strategy agent posts at.
HOUR_BUCKETS: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("night", (22, 23, 0, 1, 2, 3, 4, 5), 22),
    ("morning", (6, 7, 8, 9, 10), 9),
    ("midday", (11, 12, 13), 12),
    ("afternoon", (14, 15, 16), 15),
    ("evening", (17, 18, 19, 20, 21), 19),
)
HOUR_BUCKET_HOURS = {name: hours for name, hours, _ in HOUR_BUCKETS}
HOUR_BUCKET_DEFAULT = {name: hour for name, _, hour in HOUR_BUCKETS}

# Length buckets in characters of copy (title + body): name, lower bound (inclusive).
LENGTH_BUCKETS: tuple[tuple[str, int], ...] = (("short", 0), ("medium", 300), ("long", 1200))

FORMAT_CHANNEL = {
    ContentFormat.BLOG_POST.value: "blog",
    ContentFormat.EMAIL.value: "email",
    ContentFormat.SOCIAL_POST.value: "social",
    **{f: "social" for f in SOCIAL_NETWORK_FORMATS},
}

# Factor names as they appear in ContentRecommendation.factor; a format×weekday level is
# written f"{format}@{weekday}", e.g. "linkedin_post@Tuesday".
TOPIC, FORMAT, LENGTH, WEEKDAY, HOUR, FORMAT_WEEKDAY = "topic", "format", "length", "weekday", "hour", "format_weekday"
FACTORS = (TOPIC, FORMAT, LENGTH, WEEKDAY, HOUR, FORMAT_WEEKDAY)


@dataclass(frozen=True)
class PerformanceRow:
    """One published item with its latest cumulative metrics."""

    item_id: str
    campaign_id: str
    channel: str
    format: str
    topic: str
    published_on: str  # YYYY-MM-DD
    publish_hour: int | None  # local hour 0-23; None when unknown
    length_chars: int
    impressions: int
    clicks: int
    conversions: int
    spend_cents: int = 0


@dataclass(frozen=True)
class AnalysisSettings:
    alpha: float = 0.05  # family-wise error rate (Holm) for "confident"
    interval: float = 0.90  # reported interval
    min_items: int = 15  # per side of a comparison
    min_clicks_for_cvr: int = 300  # per side: CVR is compared only with this many clicks
    max_tentative: int = 5  # non-confident findings listed after the confident ones


@dataclass
class LevelEffect:
    """One tested comparison: ``level`` of ``factor`` vs ``baseline`` (the rest)."""

    factor: str
    level: str
    metric: str
    effect: float  # relative lift
    interval: tuple[float, float]
    p_value: float
    p_adjusted: float = 1.0
    items: int = 0
    baseline_items: int = 0
    baseline: str = ""  # what the level is compared with, in words
    confident: bool = False  # Holm-adjusted p below alpha


@dataclass
class PerformanceAnalysis:
    recommendations: list[ContentRecommendation]
    effects: list[LevelEffect]  # every tested comparison, in recommendation order first
    items: int
    tests: int
    summary: dict = field(default_factory=dict)


# ---- bucketing -------------------------------------------------------------------------
def weekday_of(published_on: str) -> str:
    return WEEKDAYS[date.fromisoformat(published_on).weekday()]


def hour_bucket(hour: int | None) -> str | None:
    if hour is None:
        return None
    for name, hours, _ in HOUR_BUCKETS:
        if hour % 24 in hours:
            return name
    raise AssertionError("hour buckets cover the whole day")


def length_bucket(chars: int) -> str:
    name = LENGTH_BUCKETS[0][0]
    for bucket, lower in LENGTH_BUCKETS:
        if chars >= lower:
            name = bucket
    return name


def _length_words(bucket: str) -> str:
    bounds = dict(LENGTH_BUCKETS)
    uppers = {a: b for (a, _), (_, b) in zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:])}
    if bucket in uppers:
        return f"{bucket} ({bounds[bucket]}-{uppers[bucket] - 1} chars)"
    return f"{bucket} ({bounds[bucket]}+ chars)"


# ---- the ratio-estimator comparison --------------------------------------------------------
_NORMAL = NormalDist()


def overdispersion(y: np.ndarray, mu: np.ndarray) -> float:
    """Method-of-moments κ of Var(y) = μ + κμ² (beta-binomial / negative-binomial form).

    κ = 0 is plain binomial noise; real content has κ > 0 because items' true rates differ.
    Estimated over many items it is stable, unlike a per-group sandwich variance whose own
    noise in small groups makes the far tails (what Holm looks at) too optimistic.
    """
    denominator = float((mu**2).sum())
    if denominator <= 0:
        return 0.0
    return max(0.0, float(((y - mu) ** 2 - mu).sum()) / denominator)


def _log_rate(y: np.ndarray, x: np.ndarray, kappa: np.ndarray) -> tuple[float, float] | None:
    """log of the group's rate and its variance, under Var(y_i) = μ_i + κ_i μ_i², μ_i = rate · x_i.

    The rate solves the quasi-likelihood equation Σ w_i (y_i - rate·x_i) = 0 with weights
    w_i = 1 / (1 + κ_i μ_i): one viral item counts for less than its impressions would say, the
    efficient choice when rates vary item to item. Var(log rate) = 1 / Σ w_i μ_i.
    """
    sy, sx = float(y.sum()), float(x.sum())
    if sy <= 0 or sx <= 0:
        return None
    rate = sy / sx
    for _ in range(2):  # weights from the current rate; two passes settle it
        w = 1.0 / (1.0 + kappa * rate * x)
        rate = float((w * y).sum()) / float((w * x).sum())
    if rate <= 0:
        return None
    w = 1.0 / (1.0 + kappa * rate * x)
    return math.log(rate), 1.0 / float((w * rate * x).sum())


def compare(
    level: tuple[np.ndarray, np.ndarray, np.ndarray],
    rest: tuple[np.ndarray, np.ndarray, np.ndarray],
    interval: float,
) -> tuple[float, tuple[float, float], float] | None:
    """(lift, interval, two-sided p) of rate(level) / rate(rest) - 1 from (y, x, κ) per item."""
    a, b = _log_rate(*level), _log_rate(*rest)
    if a is None or b is None:
        return None
    se = math.sqrt(a[1] + b[1])
    if se <= 0:
        return None
    diff = a[0] - b[0]
    z = _NORMAL.inv_cdf(0.5 + interval / 2)
    p = math.erfc(abs(diff) / se / math.sqrt(2))
    return math.expm1(diff), (math.expm1(diff - z * se), math.expm1(diff + z * se)), p


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error under any dependence)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# ---- the analysis ----------------------------------------------------------------------------
class _Columns:
    """Per-item arrays and labels, built once per analysis."""

    def __init__(self, rows: list[PerformanceRow]) -> None:
        self.impressions = np.array([r.impressions for r in rows], dtype=float)
        self.clicks = np.array([r.clicks for r in rows], dtype=float)
        self.conversions = np.array([r.conversions for r in rows], dtype=float)
        self.format = np.array([r.format for r in rows], dtype=object)
        self.channel = np.array([FORMAT_CHANNEL.get(r.format, r.channel) for r in rows], dtype=object)
        weekdays = [weekday_of(r.published_on) for r in rows]
        self.labels: dict[str, np.ndarray] = {
            TOPIC: np.array([r.topic.strip().lower() or None for r in rows], dtype=object),
            FORMAT: self.format,
            LENGTH: np.array([length_bucket(r.length_chars) for r in rows], dtype=object),
            WEEKDAY: np.array(weekdays, dtype=object),
            HOUR: np.array([hour_bucket(r.publish_hour) for r in rows], dtype=object),
            FORMAT_WEEKDAY: np.array([f"{r.format}@{d}" for r, d in zip(rows, weekdays)], dtype=object),
        }
        # Expected clicks / conversions at the item's format baseline (within-format comparisons),
        # and each format's overdispersion around that baseline.
        n = len(rows)
        self.expected_clicks, self.expected_conversions = np.zeros(n), np.zeros(n)
        self.kappa = {"ctr": np.zeros(n), "cvr": np.zeros(n)}
        for fmt in sorted(set(self.format)):
            m = self.format == fmt
            imp, clk = self.impressions[m].sum(), self.clicks[m].sum()
            if imp > 0:
                self.expected_clicks[m] = self.impressions[m] * clk / imp
            if clk > 0:
                self.expected_conversions[m] = self.clicks[m] * self.conversions[m].sum() / clk
            self.kappa["ctr"][m] = overdispersion(self.clicks[m], self.expected_clicks[m])
            self.kappa["cvr"][m] = overdispersion(self.conversions[m], self.expected_conversions[m])


def _comparisons(cols: _Columns, factor: str):
    """(level, level mask, rest mask, y/x arrays per metric, baseline words) for each level of a factor."""
    labels = cols.labels[factor]
    levels = sorted({v for v in labels if v is not None})
    for level in levels:
        in_level = labels == level
        if factor == FORMAT:
            # A format against the other formats of its channel (a blog post is not an alternative to a tweet).
            channel = FORMAT_CHANNEL.get(level)
            rest = (cols.channel == channel) & ~in_level
            baseline = f"other {channel} formats"
            ctr_x, cvr_x = cols.impressions, cols.clicks
        elif factor == FORMAT_WEEKDAY:
            fmt = level.split("@", 1)[0]
            rest = (cols.format == fmt) & ~in_level
            baseline = f"{fmt} on other days"
            ctr_x, cvr_x = cols.impressions, cols.clicks
        else:
            rest = (labels != None) & ~in_level  # noqa: E711 - element-wise on an object array
            baseline = "same-format items otherwise"
            ctr_x, cvr_x = cols.expected_clicks, cols.expected_conversions
        yield level, in_level, rest, {"ctr": (cols.clicks, ctr_x), "cvr": (cols.conversions, cvr_x)}, baseline


def analyze_performance(
    rows: list[PerformanceRow], settings: AnalysisSettings | None = None
) -> PerformanceAnalysis:
    """Every factor level vs the rest, Holm-controlled; numbered recommendations, confident first."""
    settings = settings or AnalysisSettings()
    rows = sorted(rows, key=lambda r: r.item_id)  # same input set, same answer
    rows = [r for r in rows if r.impressions > 0]
    effects: list[LevelEffect] = []
    if rows:
        cols = _Columns(rows)
        for factor in FACTORS:
            for level, in_level, rest, metrics, baseline in _comparisons(cols, factor):
                n_level, n_rest = int(in_level.sum()), int(rest.sum())
                if n_level < settings.min_items or n_rest < settings.min_items:
                    continue
                for metric, (y, x) in metrics.items():
                    fewest_clicks = min(cols.clicks[in_level].sum(), cols.clicks[rest].sum())
                    if metric == "cvr" and fewest_clicks < settings.min_clicks_for_cvr:
                        continue
                    kappa = cols.kappa[metric]
                    result = compare(
                        (y[in_level], x[in_level], kappa[in_level]), (y[rest], x[rest], kappa[rest]), settings.interval
                    )
                    if result is None:
                        continue
                    lift, interval, p = result
                    effects.append(
                        LevelEffect(
                            factor=factor, level=level, metric=metric, effect=lift, interval=interval,
                            p_value=p, items=n_level, baseline_items=n_rest, baseline=baseline,
                        )
                    )
    for effect, adjusted in zip(effects, holm([e.p_value for e in effects])):
        effect.p_adjusted = adjusted
        effect.confident = adjusted < settings.alpha
    confident = sorted((e for e in effects if e.confident), key=_rank)
    tentative = sorted((e for e in effects if not e.confident), key=_rank)
    chosen = confident + tentative[: settings.max_tentative]
    recommendations = [_recommendation(n, e, settings) for n, e in enumerate(chosen, start=1)]
    ordered = chosen + tentative[settings.max_tentative :]
    return PerformanceAnalysis(
        recommendations=recommendations,
        effects=ordered,
        items=len(rows),
        tests=len(effects),
        summary={
            "items": len(rows),
            "tests": len(effects),
            "confident": len(confident),
            "alpha": settings.alpha,
            "method": "ratio of rates, overdispersed variance μ+κμ² (κ per format), normal interval, Holm",
        },
    )


def _rank(e: LevelEffect) -> tuple:
    return (e.p_adjusted, e.p_value, -abs(e.effect), e.factor, e.level, e.metric)


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def _instruction(e: LevelEffect) -> str:
    up = e.effect > 0
    if e.factor == FORMAT_WEEKDAY:
        fmt, day = e.level.split("@", 1)
        return f"{'Publish' if up else 'Avoid publishing'} {fmt} items on {day}"
    if e.factor == WEEKDAY:
        return f"{'Publish' if up else 'Avoid publishing'} on {e.level}"
    if e.factor == HOUR:
        hours = HOUR_BUCKET_HOURS[e.level]
        span = f"{hours[0]:02d}:00-{(hours[-1] + 1) % 24:02d}:00"
        return f"{'Publish' if up else 'Avoid publishing'} in the {e.level} ({span})"
    if e.factor == FORMAT:
        return f"{'Favour' if up else 'Use fewer'} {e.level} items"
    if e.factor == LENGTH:
        return f"{'Write' if up else 'Avoid'} {_length_words(e.level)} copy"
    return f"{'Cover' if up else 'Drop'} the topic {e.level!r}"


def _recommendation(number: int, e: LevelEffect, settings: AnalysisSettings) -> ContentRecommendation:
    lo, hi = e.interval
    numbers = (
        f"{e.metric.upper()} {_pct(e.effect)} ({settings.interval:.0%} CI {_pct(lo)}..{_pct(hi)}) "
        f"over {e.items} items vs {e.baseline_items} {e.baseline}"
    )
    if e.confident:
        text = f"{number}. {_instruction(e)}: {numbers}."
    else:
        text = f"{number}. Not confident yet, keep testing: {_instruction(e)}: {numbers}."
    return ContentRecommendation(
        number=number, factor=e.factor, level=e.level, metric=e.metric, effect=round(e.effect, 4),
        interval=[round(lo, 4), round(hi, 4)], confident=e.confident, text=text,
    )


# ---- simulated performance data (tests and the demo) ----------------------------------------
@dataclass(frozen=True)
class PlantedEffect:
    """A multiplicative lift on one metric for items matching ``factor``/``level`` (same names as above)."""

    factor: str
    level: str
    lift: float  # 0.30 = +30%
    metric: str = "ctr"
    since: str = ""  # YYYY-MM-DD: only items published from then on (a trend); "" = always


# Channel baselines: formats within a channel share them, so only planted effects separate them.
_BASE_CTR = {"blog": 0.020, "social": 0.012, "email": 0.035}
_BASE_CVR = {"blog": 0.05, "social": 0.03, "email": 0.08}
_LENGTH_RANGE = {
    ContentFormat.BLOG_POST.value: (900, 3000),
    ContentFormat.EMAIL.value: (300, 1500),
    ContentFormat.X_POST.value: (60, 280),
    ContentFormat.LINKEDIN_POST.value: (150, 1300),
    ContentFormat.INSTAGRAM_CAPTION.value: (80, 600),
}
SIMULATED_FORMATS = tuple(_LENGTH_RANGE)
SIMULATED_TOPICS = ("trail safety", "waterproofing", "gear care", "route guides")


def simulate_performance(
    n_items: int = 600,
    *,
    seed: int = 0,
    effects: tuple[PlantedEffect, ...] | list[PlantedEffect] = (),
    rate_noise: float = 0.35,
    mean_impressions: float = 4000.0,
    start: str = "2026-01-05",
    weeks: int = 26,
    campaigns: int = 6,
    topics: tuple[str, ...] = SIMULATED_TOPICS,
    formats: tuple[str, ...] = SIMULATED_FORMATS,
) -> list[PerformanceRow]:
    """Published items with metrics: each item's true CTR and CVR vary around its channel's
    baseline by a lognormal factor (``rate_noise`` = its sd on the log scale: the overdispersion),
    clicks and conversions are binomial draws, and planted effects multiply the matching items."""
    rng = np.random.default_rng(seed)
    first = date.fromisoformat(start)
    fmt_index = rng.integers(len(formats), size=n_items)
    topic_index = rng.integers(len(topics), size=n_items)
    day_offsets = rng.integers(weeks * 7, size=n_items)
    hours = rng.integers(6, 23, size=n_items)
    length_u = rng.random(n_items)
    impressions = np.maximum(1, rng.lognormal(math.log(mean_impressions), 0.6, size=n_items).astype(np.int64))
    ctr_noise = np.exp(rng.normal(0, rate_noise, size=n_items))
    cvr_noise = np.exp(rng.normal(0, rate_noise, size=n_items))
    per_campaign = max(1, math.ceil(n_items / campaigns))

    rows, ctrs, cvrs = [], np.zeros(n_items), np.zeros(n_items)
    for i in range(n_items):
        fmt, topic = formats[fmt_index[i]], topics[topic_index[i]]
        channel = FORMAT_CHANNEL[fmt]
        day = first + timedelta(days=int(day_offsets[i]))
        lo, hi = _LENGTH_RANGE[fmt]
        length = int(lo + length_u[i] * (hi - lo))
        weekday = WEEKDAYS[day.weekday()]
        labels = {
            TOPIC: topic, FORMAT: fmt, LENGTH: length_bucket(length), WEEKDAY: weekday,
            HOUR: hour_bucket(int(hours[i])), FORMAT_WEEKDAY: f"{fmt}@{weekday}",
        }
        lift = {"ctr": 1.0, "cvr": 1.0}
        for e in effects:
            if labels.get(e.factor) == e.level and day.isoformat() >= e.since:
                lift[e.metric] *= 1 + e.lift
        ctrs[i] = min(0.9, _BASE_CTR[channel] * lift["ctr"] * ctr_noise[i])
        cvrs[i] = min(0.9, _BASE_CVR[channel] * lift["cvr"] * cvr_noise[i])
        campaign = f"sim_{i // per_campaign}"
        rows.append(
            (f"{campaign}:{channel}:{i}", campaign, channel, fmt, topic, day.isoformat(), int(hours[i]), length)
        )
    clicks = rng.binomial(impressions, ctrs)
    conversions = rng.binomial(clicks, cvrs)
    return [
        PerformanceRow(
            item_id=item_id, campaign_id=campaign, channel=channel, format=fmt, topic=topic, published_on=day,
            publish_hour=hour, length_chars=length, impressions=int(impressions[i]), clicks=int(clicks[i]),
            conversions=int(conversions[i]), spend_cents=int(impressions[i]) // 2,
        )
        for i, (item_id, campaign, channel, fmt, topic, day, hour, length) in enumerate(rows)
    ]


# ---- own topic trends ------------------------------------------------------------------------
def own_topic_trends(
    rows: list[PerformanceRow], *, window_days: int = 28, settings: AnalysisSettings | None = None
) -> list[TopicTrend]:
    """Topics whose CTR moved between the last ``window_days`` and the window before (the tenant's
    own results), same-format comparison as above. Only moves that pass Holm at ``alpha``
    count: a noisy wobble is not a trend. Momentum = relative change per window."""
    settings = settings or AnalysisSettings()
    rows = sorted((r for r in rows if r.impressions > 0 and r.topic.strip()), key=lambda r: r.item_id)
    if not rows:
        return []
    cols = _Columns(rows)
    days = np.array([date.fromisoformat(r.published_on).toordinal() for r in rows])
    end = int(days.max())
    recent = days > end - window_days
    previous = (days <= end - window_days) & (days > end - 2 * window_days)
    topics = cols.labels[TOPIC]
    kappa = cols.kappa["ctr"]
    found = []
    for topic in sorted({t for t in topics if t is not None}):
        now, before = (topics == topic) & recent, (topics == topic) & previous
        if now.sum() < settings.min_items or before.sum() < settings.min_items:
            continue
        x = cols.expected_clicks
        result = compare(
            (cols.clicks[now], x[now], kappa[now]), (cols.clicks[before], x[before], kappa[before]), settings.interval
        )
        if result is not None:
            found.append((topic, int(now.sum()), int(before.sum()), result))
    trends = []
    # Holm over the topics, as for recommendations: with many topics one would "trend" by chance.
    for (topic, n_now, n_before, (change, (lo, hi), _)), adjusted in zip(found, holm([f[3][2] for f in found])):
        if adjusted < settings.alpha:
            trends.append(
                TopicTrend(
                    topic=topic, source="own", momentum=round(change, 4), keywords=topic.split(),
                    evidence=(
                        f"CTR vs same-format baseline {_pct(change)} "
                        f"({settings.interval:.0%} CI {_pct(lo)}..{_pct(hi)}) "
                        f"in the last {window_days} days ({n_now} items) vs the {window_days} before ({n_before} items)"
                    ),
                )
            )
    return sorted(trends, key=lambda t: (-t.momentum, t.topic))
