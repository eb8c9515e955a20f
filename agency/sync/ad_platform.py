"""Two-way reconciliation of promoted items with the ad platform (pure: no I/O).

The campaign sets each promoted item's total budget; a person may also change the item on the
ad platform itself (pause it, change its total in the Google Ads UI). Each round we compare
three things per item: the last agreement (what we set or saw last time, with a hash of those
platform fields), what the platform shows now, and what the campaign now wants.

Per-field policies (the CRM sync's vocabulary, :mod:`agency.sync.policy`):

* ``status``: ``overwrite`` with the platform winning. We never pause or enable a campaign: a
  pause made on the platform is respected (the item gets no new budget; its part of the channel
  goes to the channel's other items) and a paused item is never re-enabled by us.
* ``total_budget``: ``newest_wins``. A total changed on the platform since our last agreement is
  newer than the campaign's last decision, so it is kept for this round; the channel's other
  items absorb the difference so the channel's total stays what the campaign wants where their
  spend allows. The next round's decision is newer again and applies as usual.

A write we started but did not get to record (the worker died between the platform's answer
and our snapshot) is recognised by ``pending_budget_cents`` and is not mistaken for a person's
edit when the activity is retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

STATUS_ENABLED = "ENABLED"
STATUS_PAUSED = "PAUSED"

FIELD_STATUS = "status"
FIELD_TOTAL_BUDGET = "total_budget_cents"

# The platform's value stays: a pause or resume is followed, a budget edit is kept this round.
RESOLUTION_RESPECTED = "respected"
RESOLUTION_KEPT = "kept"

HOLD_PAUSED = "paused"  # any status but ENABLED: the campaign does not serve
HOLD_PLATFORM_BUDGET = "platform_budget"


def snapshot_hash(status: str, total_budget_cents: int) -> str:
    """Digest of the platform fields we reconcile (versioned so a new field set never matches)."""
    raw = f"v1\x00{status}\x00{int(total_budget_cents)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PlatformState:
    """What the ad platform shows for an item's campaign now."""

    status: str
    total_budget_cents: int
    spent_cents: int

    @property
    def hash(self) -> str:
        return snapshot_hash(self.status, self.total_budget_cents)


@dataclass(frozen=True)
class AgreedState:
    """The last agreement on an item: what we set or saw on the platform at our last round."""

    status: str
    total_budget_cents: int
    snapshot_hash: str
    # A total we were about to set when the agreement was last written (None once recorded).
    pending_budget_cents: int | None = None
    # The round in which the platform's own total was kept (a retry of that round keeps it too).
    kept_round: int | None = None


@dataclass(frozen=True)
class ItemInput:
    item_id: str
    channel: str
    wanted_cents: int  # the total the campaign wants for the item this round
    spent_cents: int  # the freshest spend known (metrics read or the platform's own)
    platform: PlatformState | None  # None: no campaign on the ad platform (not promoted there)
    agreed: AgreedState | None  # None: never reconciled


@dataclass(frozen=True)
class PlatformChange:
    """An edit made on the platform since the last agreement, and what we did with it."""

    item_id: str
    field: str
    before: str  # the agreed value ("" when there was no agreement)
    after: str  # the platform's value now
    resolution: str
    wanted_cents: int  # what the campaign wanted for the item this round
    # Both sides moved: the campaign wanted a total other than the agreed one, too.
    conflict: bool


@dataclass(frozen=True)
class ItemDecision:
    item_id: str
    channel: str
    write_cents: int | None  # the total to set now; None leaves the platform's value alone
    planned_cents: int  # what the item counts for in its channel's total this round
    hold: str | None  # why the item is not written (HOLD_*), None when it is


@dataclass(frozen=True)
class RoundPlan:
    decisions: dict[str, ItemDecision]
    changes: list[PlatformChange]
    # channel -> planned total minus wanted total, only where the other items could not absorb
    # a held item (their spend so far is a floor a budget cannot go below).
    channel_gap_cents: dict[str, int]


def detect_changes(item: ItemInput) -> list[PlatformChange]:
    """The platform-side edits of one item since its last agreement."""
    platform, agreed = item.platform, item.agreed
    if platform is None:
        return []
    if agreed is None:
        # No baseline for the budget; a campaign not serving was stopped by someone else all the
        # same (we never pause), so that is reported the first time we see it.
        if platform.status != STATUS_ENABLED:
            return [PlatformChange(item.item_id, FIELD_STATUS, "", platform.status, RESOLUTION_RESPECTED,
                                   item.wanted_cents, conflict=False)]
        return []
    if platform.hash == agreed.snapshot_hash:
        return []
    conflict = item.wanted_cents != agreed.total_budget_cents
    changes = []
    if platform.status != agreed.status:
        changes.append(PlatformChange(item.item_id, FIELD_STATUS, agreed.status, platform.status,
                                      RESOLUTION_RESPECTED, item.wanted_cents, conflict))
    if platform.total_budget_cents not in (agreed.total_budget_cents, agreed.pending_budget_cents):
        changes.append(PlatformChange(item.item_id, FIELD_TOTAL_BUDGET, str(agreed.total_budget_cents),
                                      str(platform.total_budget_cents), RESOLUTION_KEPT, item.wanted_cents, conflict))
    return changes


def _hold(item: ItemInput, changes: list[PlatformChange], round_no: int) -> tuple[str, int] | None:
    """(why, what the item counts for) when the platform's state of the item stays as it is."""
    platform = item.platform
    if platform is None:
        return None
    if platform.status != STATUS_ENABLED:
        # Paused (or removed): it delivers no more, so it counts for what it has spent.
        return HOLD_PAUSED, platform.spent_cents
    edited = any(c.field == FIELD_TOTAL_BUDGET for c in changes)
    unchanged_since_kept = (
        item.agreed is not None and item.agreed.kept_round == round_no and platform.hash == item.agreed.snapshot_hash
    )
    if edited or unchanged_since_kept:
        return HOLD_PLATFORM_BUDGET, max(platform.total_budget_cents, platform.spent_cents)
    return None


def _absorb(free: list[ItemInput], available: int) -> dict[str, int]:
    """Split ``available`` over ``free`` items: each keeps its spend; what is above the spends
    goes in proportion to the shares the campaign wanted (equal when it wanted none)."""
    floor = sum(i.spent_cents for i in free)
    extra = available - floor
    if extra <= 0:
        return {i.item_id: i.spent_cents for i in free}
    weights = [max(0, i.wanted_cents - i.spent_cents) for i in free]
    total_weight = sum(weights)
    out: dict[str, int] = {}
    given = 0
    for n, (item, weight) in enumerate(zip(free, weights)):
        if n == len(free) - 1:
            share = extra - given  # the last takes the rounding remainder: the split is exact
        elif total_weight:
            share = extra * weight // total_weight
        else:
            share = extra // len(free)
        given += share
        out[item.item_id] = item.spent_cents + share
    return out


def plan_round(items: Sequence[ItemInput], round_no: int) -> RoundPlan:
    """Decide, per item, whether to write the campaign's total or keep the platform's."""
    changes: list[PlatformChange] = []
    holds: dict[str, tuple[str, int]] = {}
    by_channel: dict[str, list[ItemInput]] = {}
    for item in items:
        found = detect_changes(item)
        changes.extend(found)
        hold = _hold(item, found, round_no)
        if hold is not None:
            holds[item.item_id] = hold
        by_channel.setdefault(item.channel, []).append(item)

    decisions: dict[str, ItemDecision] = {}
    gaps: dict[str, int] = {}
    for channel, members in by_channel.items():
        free = [i for i in members if i.item_id not in holds]
        if len(free) == len(members):
            # Nothing held: exactly what the campaign wants.
            planned = {i.item_id: i.wanted_cents for i in members}
        else:
            wanted_total = sum(i.wanted_cents for i in members)
            held_total = sum(holds[i.item_id][1] for i in members if i.item_id in holds)
            planned = _absorb(free, wanted_total - held_total) if free else {}
            planned.update({i.item_id: holds[i.item_id][1] for i in members if i.item_id in holds})
            gap = sum(planned.values()) - wanted_total
            if gap:
                gaps[channel] = gap
        for item in members:
            hold = holds.get(item.item_id)
            decisions[item.item_id] = ItemDecision(
                item.item_id, channel,
                write_cents=None if hold else planned[item.item_id],
                planned_cents=planned[item.item_id],
                hold=hold[0] if hold else None,
            )
    return RoundPlan(decisions, changes, gaps)


def agreed_after(item: ItemInput, decision: ItemDecision, written_cents: int | None, round_no: int) -> AgreedState:
    """The agreement to store once the round's writes are done.

    ``written_cents`` is the total actually set (a cut below spend may have been raised);
    an item we left alone agrees with what the platform showed.
    """
    platform = item.platform
    status = platform.status if platform is not None else STATUS_ENABLED
    if written_cents is not None:
        return AgreedState(status, written_cents, snapshot_hash(status, written_cents))
    if platform is None:
        raise ValueError(f"{item.item_id}: nothing written and nothing seen on the platform")
    kept = round_no if decision.hold == HOLD_PLATFORM_BUDGET else None
    return AgreedState(platform.status, platform.total_budget_cents, platform.hash, kept_round=kept)
