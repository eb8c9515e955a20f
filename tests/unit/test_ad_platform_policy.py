"""Two-way budget/status sync with the ad platform: detection and per-field decisions (pure)."""

from __future__ import annotations

from agency.sync.ad_platform import (
    FIELD_STATUS,
    FIELD_TOTAL_BUDGET,
    HOLD_PAUSED,
    HOLD_PLATFORM_BUDGET,
    RESOLUTION_KEPT,
    RESOLUTION_RESPECTED,
    AgreedState,
    ItemInput,
    PlatformState,
    agreed_after,
    plan_round,
    snapshot_hash,
)


def agreed(total: int, status: str = "ENABLED", **extra) -> AgreedState:
    return AgreedState(status, total, snapshot_hash(status, total), **extra)


def item(item_id: str, wanted: int, spent: int, *, platform: tuple[str, int] | None = None,
         last: AgreedState | None = None, channel: str = "social") -> ItemInput:
    state = None if platform is None else PlatformState(platform[0], platform[1], spent)
    return ItemInput(item_id, channel, wanted, spent, state, last)


def test_hash_covers_status_and_total() -> None:
    assert snapshot_hash("ENABLED", 5_000) == snapshot_hash("ENABLED", 5_000)
    assert snapshot_hash("ENABLED", 5_000) != snapshot_hash("PAUSED", 5_000)
    assert snapshot_hash("ENABLED", 5_000) != snapshot_hash("ENABLED", 5_001)


def test_nothing_changed_on_the_platform_writes_exactly_what_the_campaign_wants() -> None:
    items = [
        item("a", 7_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
        item("b", 3_001, 2_999, platform=("ENABLED", 5_000), last=agreed(5_000)),
        item("c", 4_000, 0),  # not on the platform yet: promoted through its channel
    ]
    plan = plan_round(items, round_no=2)
    assert plan.changes == [] and plan.channel_gap_cents == {}
    assert {i: d.write_cents for i, d in plan.decisions.items()} == {"a": 7_000, "b": 3_001, "c": 4_000}
    assert all(d.hold is None for d in plan.decisions.values())


def test_a_pause_on_the_platform_is_respected_and_its_share_goes_to_the_channels_other_items() -> None:
    items = [
        item("a", 6_000, 1_000, platform=("PAUSED", 5_000), last=agreed(5_000)),
        item("b", 6_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
        item("c", 6_000, 3_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
        item("x", 2_000, 500, platform=("ENABLED", 2_000), last=agreed(2_000), channel="email"),
    ]
    plan = plan_round(items, round_no=2)
    a, b, c, x = (plan.decisions[i] for i in "abcx")
    assert a.write_cents is None and a.hold == HOLD_PAUSED and a.planned_cents == 1_000  # counts as its spend
    # Channel wants 18,000: a holds 1,000; b and c keep their spend and split the other 13,000
    # in proportion to what the campaign wanted above their spend (5,000 : 3,000).
    assert b.write_cents + c.write_cents == 17_000
    assert b.write_cents - 1_000 == (13_000 * 5_000) // 8_000
    assert c.write_cents == 17_000 - b.write_cents
    assert x.write_cents == 2_000  # another channel is untouched
    assert plan.channel_gap_cents == {}
    [change] = plan.changes
    assert (change.item_id, change.field, change.before, change.after, change.resolution) == (
        "a", FIELD_STATUS, "ENABLED", "PAUSED", RESOLUTION_RESPECTED
    )
    assert change.conflict  # we wanted 6,000, not the agreed 5,000


def test_an_item_still_paused_is_not_reported_again_nor_re_enabled() -> None:
    still = item("a", 6_000, 1_000, platform=("PAUSED", 5_000), last=agreed(5_000, status="PAUSED"))
    plan = plan_round([still, item("b", 6_000, 0, platform=("ENABLED", 6_000), last=agreed(6_000))], round_no=3)
    assert plan.changes == []
    assert plan.decisions["a"].hold == HOLD_PAUSED and plan.decisions["a"].write_cents is None


def test_a_campaign_paused_before_we_ever_saw_it_is_reported_and_left_alone() -> None:
    plan = plan_round([item("a", 6_000, 0, platform=("PAUSED", 4_000)), item("b", 6_000, 0, platform=("ENABLED", 4_000))], 1)
    assert [(c.item_id, c.before, c.after) for c in plan.changes] == [("a", "", "PAUSED")]
    assert plan.decisions["a"].write_cents is None and plan.decisions["b"].write_cents == 12_000


def test_a_resume_on_the_platform_is_reported_and_the_item_gets_budget_again() -> None:
    plan = plan_round([item("a", 6_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000, status="PAUSED"))], 4)
    [change] = plan.changes
    assert (change.field, change.before, change.after) == (FIELD_STATUS, "PAUSED", "ENABLED")
    assert plan.decisions["a"].write_cents == 6_000 and plan.decisions["a"].hold is None


def test_a_total_edited_on_the_platform_is_kept_and_the_others_absorb_the_difference() -> None:
    items = [
        item("a", 5_000, 1_000, platform=("ENABLED", 9_000), last=agreed(5_000)),  # a person raised it
        item("b", 5_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
        item("c", 5_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
    ]
    plan = plan_round(items, round_no=2)
    assert plan.decisions["a"].write_cents is None and plan.decisions["a"].hold == HOLD_PLATFORM_BUDGET
    assert plan.decisions["b"].write_cents == 3_000 and plan.decisions["c"].write_cents == 3_000
    assert sum(d.planned_cents for d in plan.decisions.values()) == 15_000
    [change] = plan.changes
    assert (change.field, change.before, change.after, change.resolution, change.conflict) == (
        FIELD_TOTAL_BUDGET, "5000", "9000", RESOLUTION_KEPT, False
    )


def test_both_sides_moved_the_same_item_the_platform_being_newer_wins_and_it_is_a_conflict() -> None:
    items = [
        item("a", 8_000, 1_000, platform=("ENABLED", 3_000), last=agreed(5_000)),  # we: 8,000; they: 3,000
        item("b", 2_000, 1_000, platform=("ENABLED", 5_000), last=agreed(5_000)),
    ]
    plan = plan_round(items, round_no=3)
    assert plan.decisions["a"].write_cents is None
    assert plan.decisions["b"].write_cents == 7_000  # the channel still gets its 10,000
    [change] = plan.changes
    assert change.conflict and change.wanted_cents == 8_000 and change.after == "3000"


def test_when_the_others_cannot_absorb_an_edit_they_keep_their_spend_and_the_gap_is_reported() -> None:
    items = [
        item("a", 4_000, 1_000, platform=("ENABLED", 12_000), last=agreed(4_000)),
        item("b", 4_000, 2_500, platform=("ENABLED", 4_000), last=agreed(4_000)),
        item("c", 4_000, 3_000, platform=("ENABLED", 4_000), last=agreed(4_000)),
    ]
    plan = plan_round(items, round_no=2)
    assert plan.decisions["b"].write_cents == 2_500 and plan.decisions["c"].write_cents == 3_000
    assert plan.channel_gap_cents == {"social": 12_000 + 2_500 + 3_000 - 12_000}


def test_our_own_unrecorded_write_is_not_taken_for_a_platform_edit() -> None:
    # The worker set 7,000 and died before recording it: the retry recognises its pending write.
    last = agreed(5_000, pending_budget_cents=7_000)
    plan = plan_round([item("a", 7_000, 1_000, platform=("ENABLED", 7_000), last=last)], round_no=2)
    assert plan.changes == [] and plan.decisions["a"].write_cents == 7_000


def test_a_retry_of_the_round_that_kept_a_platform_total_keeps_it_and_the_next_round_decides_again() -> None:
    first = item("a", 5_000, 1_000, platform=("ENABLED", 9_000), last=agreed(5_000))
    plan = plan_round([first, item("b", 5_000, 0, platform=("ENABLED", 5_000), last=agreed(5_000))], round_no=2)
    stored = agreed_after(first, plan.decisions["a"], None, round_no=2)
    assert stored == AgreedState("ENABLED", 9_000, snapshot_hash("ENABLED", 9_000), kept_round=2)

    retried = item("a", 5_000, 1_000, platform=("ENABLED", 9_000), last=stored)
    again = plan_round([retried, item("b", 5_000, 0, platform=("ENABLED", 1_000), last=agreed(1_000))], round_no=2)
    assert again.changes == [] and again.decisions["a"].hold == HOLD_PLATFORM_BUDGET
    assert again.decisions["b"].write_cents == 1_000

    later = plan_round([retried, item("b", 5_000, 0, platform=("ENABLED", 1_000), last=agreed(1_000))], round_no=3)
    assert later.decisions["a"].write_cents == 5_000 and later.decisions["a"].hold is None


def test_the_stored_agreement_is_what_was_written_or_what_the_platform_showed() -> None:
    written = item("a", 5_000, 0, platform=("ENABLED", 4_000), last=agreed(4_000))
    plan = plan_round([written], round_no=1)
    assert agreed_after(written, plan.decisions["a"], 5_100, 1) == AgreedState("ENABLED", 5_100, snapshot_hash("ENABLED", 5_100))
    paused = item("p", 5_000, 700, platform=("PAUSED", 4_000), last=agreed(4_000))
    decision = plan_round([paused], round_no=1).decisions["p"]
    assert agreed_after(paused, decision, None, 1) == AgreedState("PAUSED", 4_000, snapshot_hash("PAUSED", 4_000))
