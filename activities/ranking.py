"""Orchestration activity: rank one item's candidates (pure scoring; an activity because
workflows import no agent code, and its result is recorded in the history for reviewers)."""

from __future__ import annotations

from temporalio import activity

from activities.errors import business_error
from agency.agents.ranking import rank_drafts
from agency.contracts import ActivityName, RankRequest, RankResult


class RankingActivities:
    @activity.defn(name=ActivityName.RANK_DRAFTS)
    async def rank_drafts(self, req: RankRequest) -> RankResult:
        try:
            return rank_drafts(req)
        except ValueError as err:
            raise business_error(err) from err

    def all(self) -> list:
        return [self.rank_drafts]
