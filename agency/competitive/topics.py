"""Competitor items -> topics (embedding clusters) with keywords, momentum and proposed responses.

Deterministic: the same items in any order give the same topics (items are sorted first).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from agency.competitive.contracts import Proposal, TopicSummary
from agency.contracts import TopicTrend

# Cosine similarity to a topic's centroid to join it. Measured on the embedder (all-MiniLM-L6-v2)
# with outdoor-gear posts: same-topic pairs 0.42-0.77, different topics mostly below 0.35; an
# item's similarity to a centroid of its topic runs higher than to single items.
DEFAULT_THRESHOLD = 0.45
SMOOTHING = 1.0  # pseudo-count per window: 0 -> 2 items is +200%, not infinite
RISING = 0.25  # momentum above which a topic is worth writing about
SURGING = 1.0  # momentum (activity doubled) above which a budget hint is given
FALLING = -0.5
MIN_RECENT = 2  # fewer recent items than this is an anecdote, not a trend

_WORD = re.compile(r"[a-z][a-z0-9'-]{2,}")
STOPWORDS = frozenset(
    """about above after again against all also and any are around because been before being below
    between both but can cannot could did does doing down during each even every few for from further
    get gets got had has have having her here hers herself him himself his how into its itself just
    let like made make makes many may more most much must new not now off once only other our ours
    ourselves out over own same she should since some such than that the their theirs them themselves
    then there these they this those through too under until upon very was way we were what when where
    which while who whom why will with within without would you your yours yourself yourselves one two
    use using used get via per how-to best top guide tips read learn post blog today week year
    https http www com html""".split()
)


@dataclass
class TopicItem:
    key: str  # stable id of the item (e.g. "<source id>:<external id>")
    title: str
    text: str
    when: datetime  # published, else first seen (timezone-aware)
    vector: list[float]


@dataclass
class Topic:
    key: str  # the key of its earliest item: stable while that item stays in the window
    items: list[TopicItem]
    centroid: list[float]
    keywords: list[str] = field(default_factory=list)
    label: str = ""
    recent: int = 0
    previous: int = 0
    momentum: float = 0.0


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _order(items: list[TopicItem]) -> list[TopicItem]:
    return sorted(items, key=lambda i: (i.when, i.key))


def cluster(items: list[TopicItem], threshold: float = DEFAULT_THRESHOLD) -> list[Topic]:
    """Greedy online clustering against centroids, a merge pass, then one reassignment pass.

    Each item (oldest first) joins the most similar centroid if the cosine similarity is at
    least ``threshold``, else starts a topic. Topics whose centroids ended up that similar are
    then merged (an item that arrived before its topic had formed started a topic of its own),
    and every item finally moves to the centroid it is closest to: the result depends little on
    arrival order.
    """
    ordered = [i for i in _order(items) if i.vector]
    if not ordered:
        return []
    vectors = np.array([_unit(np.asarray(i.vector, dtype=float)) for i in ordered])
    centroids: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    for v in vectors:
        if centroids:
            sims = np.array([float(c @ v) for c in centroids])
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                sums[best] = sums[best] + v
                centroids[best] = _unit(sums[best])
                continue
        sums.append(v.copy())
        centroids.append(v.copy())
    sums = _merge_close(sums, threshold)
    matrix = np.array([_unit(s) for s in sums])
    assignment = np.argmax(vectors @ matrix.T, axis=1)
    topics = []
    for c in range(len(centroids)):
        members = [ordered[i] for i in np.flatnonzero(assignment == c)]
        if not members:
            continue
        centroid = _unit(vectors[assignment == c].sum(axis=0))
        topics.append(Topic(key=members[0].key, items=members, centroid=[round(float(x), 6) for x in centroid]))
    return topics


def _merge_close(sums: list[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Merge the most similar pair of topics while their centroids are at least ``threshold`` alike."""
    sums = list(sums)
    while len(sums) > 1:
        units = np.array([_unit(s) for s in sums])
        sims = units @ units.T
        np.fill_diagonal(sims, -np.inf)
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a] = sums[a] + sums[b]
        del sums[b]
    return sums


def terms(text: str) -> list[str]:
    """Lower-case words (no stopwords) and the bigrams of adjacent ones ('trail running')."""
    words = [w.strip("'-") for w in _WORD.findall(text.lower())]
    words = [w for w in words if len(w) > 2 and w not in STOPWORDS]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:]) if a != b]


def label_topics(topics: list[Topic], top: int = 5) -> None:
    """Keywords by tf-idf, each topic's items being one document against the other topics."""
    docs = [Counter(t for item in topic.items for t in terms(f"{item.title} {item.title} {item.text}")) for topic in topics]
    df = Counter(term for doc in docs for term in doc)
    n = len(docs)
    for topic, doc in zip(topics, docs):
        total = sum(doc.values()) or 1
        # A term must recur in the topic (or the topic be a single item) to describe it.
        min_count = 1 if len(topic.items) == 1 else 2
        # A word that mostly occurs inside a phrase is better said by the phrase ('camp stoves').
        explained = {
            word for term, count in doc.items() if " " in term for word in term.split() if count * 2 >= doc[word]
        }
        scored = [
            ((count / total) * (math.log((1 + n) / (1 + df[term])) + 1) * (1.5 if " " in term else 1.0), term)
            for term, count in doc.items()
            if count >= min_count and term not in explained
        ]
        scored.sort(key=lambda st: (-st[0], st[1]))
        chosen: list[str] = []
        for _, term in scored:
            # 'trail running' makes 'trail' and 'running' redundant (and vice versa).
            words = set(term.split())
            if any(words <= set(c.split()) or set(c.split()) <= words for c in chosen):
                continue
            chosen.append(term)
            if len(chosen) == top:
                break
        topic.keywords = chosen
        topic.label = ", ".join(chosen[:2]) if chosen else (topic.items[0].title or topic.key)[:80]


def momentum(recent: int, previous: int, smoothing: float = SMOOTHING) -> float:
    """Relative growth of the recent window over the previous one, with additive smoothing."""
    return (recent + smoothing) / (previous + smoothing) - 1.0


def measure(topics: list[Topic], now: datetime, window_days: int = 14) -> None:
    window = timedelta(days=window_days)
    for topic in topics:
        topic.recent = sum(1 for i in topic.items if now - window <= i.when <= now)
        topic.previous = sum(1 for i in topic.items if now - 2 * window <= i.when < now - window)
        topic.momentum = round(momentum(topic.recent, topic.previous), 4)


def build_topics(
    items: list[TopicItem], now: datetime, *, window_days: int = 14, threshold: float = DEFAULT_THRESHOLD
) -> list[Topic]:
    """Cluster, label and measure; topics ordered by recent activity, then momentum."""
    topics = cluster(items, threshold)
    label_topics(topics)
    measure(topics, now, window_days)
    topics.sort(key=lambda t: (-t.recent, -t.momentum, t.key))
    return topics


def _change(m: float) -> str:
    return f"{m * 100:+.0f}%"


def proposals(topics: list[Topic], window_days: int = 14, *, limit: int = 5) -> list[Proposal]:
    """Concrete responses: content ideas for rising topics, budget hints for surging or fading ones."""
    out: list[Proposal] = []
    rising = [t for t in topics if t.recent >= MIN_RECENT and t.momentum >= RISING]
    rising.sort(key=lambda t: (-t.momentum, -t.recent, t.key))
    for t in rising[:limit]:
        examples = "; ".join(f'"{i.title}"' for i in reversed(t.items) if i.title)[:200]
        out.append(Proposal(
            kind="content_idea", topic=t.label, topic_key=t.key, momentum=t.momentum, recent=t.recent, previous=t.previous,
            text=(f"Write about {t.label}: competitors published {t.recent} items in {window_days} days, "
                  f"{_change(t.momentum)} vs the previous {window_days} days ({t.previous})"
                  + (f"; e.g. {examples}" if examples else "")),
        ))
        if t.momentum >= SURGING and t.recent >= MIN_RECENT + 1:
            out.append(Proposal(
                kind="budget_hint", topic=t.label, topic_key=t.key, momentum=t.momentum, recent=t.recent, previous=t.previous,
                text=(f"Competitor activity on {t.label} is up {_change(t.momentum)} ({t.previous} -> {t.recent} "
                      f"items): consider moving budget toward content and search terms on {t.label} "
                      "before the topic gets crowded"),
            ))
    fading = [t for t in topics if t.previous >= MIN_RECENT + 1 and t.momentum <= FALLING]
    fading.sort(key=lambda t: (t.momentum, t.key))
    for t in fading[:limit]:
        out.append(Proposal(
            kind="budget_hint", topic=t.label, topic_key=t.key, momentum=t.momentum, recent=t.recent, previous=t.previous,
            text=(f"Competitors are pulling back from {t.label} ({t.previous} -> {t.recent} items, "
                  f"{_change(t.momentum)}): cheaper attention there; keep or raise spend on it"),
        ))
    return out


def summary(topic: Topic) -> TopicSummary:
    return TopicSummary(
        topic_key=topic.key, label=topic.label, keywords=list(topic.keywords), items=len(topic.items),
        recent=topic.recent, previous=topic.previous, momentum=topic.momentum,
    )


def trend(topic: TopicSummary, window_days: int = 14) -> TopicTrend:
    """A topic as the planning agents read it."""
    return TopicTrend(
        topic=topic.label,
        source="competitor",
        momentum=topic.momentum,
        keywords=list(topic.keywords),
        evidence=(f"{topic.recent} competitor items in the last {window_days} days vs {topic.previous} "
                  f"in the {window_days} before ({topic.items} in all)"),
    )
