"""Competitor items -> topics: clusters, tf-idf labels, momentum against the previous window, proposals."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from agency.competitive.topics import (
    TopicItem,
    build_topics,
    cluster,
    momentum,
    proposals,
    summary,
    trend,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
DIM = 32

TITLES = {
    "shoes": ["Trail running shoes for mud", "Best trail running shoes tested", "Trail running shoes grip review",
              "Cushioned trail running shoes", "Trail running shoes for ultras", "Waterproof trail running shoes"],
    "tents": ["Ultralight tents under one kilo", "Ultralight tents for two", "Pitching ultralight tents in wind"],
    "stoves": ["Camp stoves compared", "Camp stoves fuel efficiency", "Camp stoves for winter"],
}


def _direction(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return v / np.linalg.norm(v)


def _items(spec: dict[str, list[int]], noise: float = 0.25) -> list[TopicItem]:
    """spec: topic -> ages in days of its items."""
    rng = np.random.default_rng(7)
    out = []
    for t, (topic, ages) in enumerate(spec.items()):
        base = _direction(t + 1)
        for n, age in enumerate(ages):
            v = base + noise * rng.normal(size=DIM) / np.sqrt(DIM)
            out.append(TopicItem(
                key=f"{topic}-{n}", title=TITLES[topic][n % len(TITLES[topic])], text=f"All about {topic}.",
                when=NOW - timedelta(days=age, hours=n), vector=list(v / np.linalg.norm(v)),
            ))
    return out


SPEC = {"shoes": [1, 2, 3, 5, 8, 20], "tents": [16, 18, 25], "stoves": [2, 17, 26]}


def _groups(topics) -> set[frozenset[str]]:
    return {frozenset(i.key.split("-")[0] for i in t.items) for t in topics}


def _by_name(topics) -> dict:
    return {t.items[0].key.split("-")[0]: t for t in topics}


def test_items_cluster_by_topic():
    topics = cluster(_items(SPEC), threshold=0.6)
    assert _groups(topics) == {frozenset({"shoes"}), frozenset({"tents"}), frozenset({"stoves"})}
    assert sorted(len(t.items) for t in topics) == [3, 3, 6]
    for t in topics:
        assert abs(np.linalg.norm(t.centroid) - 1) < 1e-5


def test_clustering_does_not_depend_on_input_order():
    items = _items(SPEC)
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    a, b = cluster(items), cluster(shuffled)
    assert [(t.key, [i.key for i in t.items]) for t in a] == [(t.key, [i.key for i in t.items]) for t in b]


def test_a_high_threshold_splits_and_unrelated_vectors_stay_apart():
    items = _items(SPEC, noise=0.0)
    assert len(cluster(items, threshold=0.99)) == 3  # identical vectors still join
    orthogonal = [TopicItem(f"o{i}", "x", "", NOW, list(np.eye(DIM)[i])) for i in range(4)]
    assert len(cluster(orthogonal, threshold=0.5)) == 4


def test_labels_name_the_topic_words():
    topics = _by_name(build_topics(_items(SPEC), NOW))
    assert {"trail running", "running shoes"} <= set(topics["shoes"].keywords)
    assert "ultralight tents" in topics["tents"].keywords
    assert "camp stoves" in topics["stoves"].keywords
    assert "shoes" in topics["shoes"].label


def test_momentum_is_smoothed_relative_growth():
    assert momentum(5, 1) == pytest.approx(2.0)  # 6/2 - 1
    assert momentum(0, 0) == 0.0
    assert momentum(2, 0) == pytest.approx(2.0)  # smoothing: finite, not infinite
    assert momentum(0, 3) == pytest.approx(-0.75)


def test_windows_count_recent_and_previous_items():
    by_topic = _by_name(build_topics(_items(SPEC), NOW, window_days=14))
    shoes, tents, stoves = by_topic["shoes"], by_topic["tents"], by_topic["stoves"]
    assert (shoes.recent, shoes.previous) == (5, 1)
    assert (tents.recent, tents.previous) == (0, 3)
    assert (stoves.recent, stoves.previous) == (1, 2)
    assert shoes.momentum == pytest.approx(2.0)


def test_proposals_write_about_rising_topics_and_hint_budget():
    topics = build_topics(_items(SPEC), NOW, window_days=14)
    props = proposals(topics, 14)
    ideas = [p for p in props if p.kind == "content_idea"]
    hints = [p for p in props if p.kind == "budget_hint"]
    assert len(ideas) == 1 and "shoes" in ideas[0].topic
    assert ideas[0].text.startswith(f"Write about {ideas[0].topic}: competitors published 5 items in 14 days, +200% vs")
    # Shoes surged (budget toward it); tents faded (competitors pulled back).
    assert {("shoes" in h.topic, h.momentum > 0) for h in hints} == {(True, True), (False, False)}
    assert any("pulling back" in h.text and "tents" in h.topic for h in hints)


def test_no_proposals_from_flat_or_thin_topics():
    flat = {"shoes": [1, 3, 16, 18], "tents": [2]}
    assert proposals(build_topics(_items(flat), NOW), 14) == []


def test_trend_for_planning():
    top = build_topics(_items(SPEC), NOW)[0]
    t = trend(summary(top), 14)
    assert t.source == "competitor"
    assert t.topic == top.label and t.keywords == top.keywords
    assert t.momentum == pytest.approx(2.0)
    assert t.evidence.startswith("5 competitor items in the last 14 days vs 1")


def test_an_item_that_came_before_its_topic_formed_is_merged_in():
    def at(degrees: float) -> list[float]:
        r = np.radians(degrees)
        return [float(np.cos(r)), float(np.sin(r))]

    # 0° and 70° are too far apart (cos 0.34) to join directly; 35° (cos 0.82 to both) arrives last
    # and pulls the first topic's centroid within reach of the second.
    items = [TopicItem("a", "", "", NOW - timedelta(days=3), at(0)), TopicItem("c", "", "", NOW - timedelta(days=2), at(70)),
             TopicItem("b", "", "", NOW - timedelta(days=1), at(35))]
    (topic,) = cluster(items, threshold=0.6)
    assert [i.key for i in topic.items] == ["a", "c", "b"]
    assert len(cluster(items, threshold=0.7)) == 2  # below the threshold they stay apart
