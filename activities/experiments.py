"""Experiment activities: set up A/B tests / bandits over a campaign's published variants and
judge them each metrics round with the experiments agent; results are kept in PostgreSQL."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from agency.agents.experiments import ArmCounts, ExperimentConfig, ExperimentState, evaluate
from agency.contracts import (
    ActivityName,
    DecisionPolicy,
    ExperimentArmRef,
    ExperimentOutcome,
    ExperimentRound,
    ExperimentSetup,
    ItemMetrics,
    StartExperimentsRequest,
)
from agency.db.decisions import DecisionRepository
from agency.db.repository import CampaignRepository

RUNNING = "running"


def experiment_config(policy: DecisionPolicy, arms: int) -> ExperimentConfig:
    # Two variants: a plain A/B test; more: a bandit when the policy asks for one.
    mode = "bandit" if policy.experiment_mode == "bandit" and arms > 2 else "ab"
    return ExperimentConfig(mode=mode, alpha=policy.experiment_alpha, prob_threshold=policy.experiment_prob_threshold)


# What an arm's (exposures, conversions) count for each metric: the report's column names.
METRIC_COUNTS = {"ctr": ("Impressions", "Clicks"), "cvr": ("Clicks", "Conversions")}


def arm_counts(metric: str, m: ItemMetrics) -> tuple[int, int]:
    """(exposures, conversions) of one variant for the metric the policy judges on."""
    if metric == "cvr":
        return m.clicks, m.conversions
    return m.impressions, m.clicks


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


class ExperimentActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=ActivityName.START_EXPERIMENTS)
    async def start_experiments(self, req: StartExperimentsRequest) -> list[ExperimentSetup]:
        """One experiment per channel with two or more published variants; the first is control."""
        by_channel: dict[str, list[ExperimentArmRef]] = defaultdict(list)
        for ref in req.published:
            by_channel[ref.channel].append(ExperimentArmRef(arm_id=ref.item_id, external_id=ref.external_id))
        setups: list[tuple[ExperimentSetup, ExperimentConfig]] = []
        for channel, arms in by_channel.items():
            if len(arms) < 2:
                continue
            config = experiment_config(req.policy, len(arms))
            setup = ExperimentSetup(
                experiment_id=f"{req.campaign_id}:{channel}",
                channel=channel,
                mode=config.mode,
                control=arms[0].arm_id,
                arms=arms,
            )
            setups.append((setup, config))
        async with self._sessions() as session, session.begin():
            repo = DecisionRepository(session)
            for setup, config in setups:
                await repo.create_experiment(
                    id=setup.experiment_id,
                    campaign_id=req.campaign_id,
                    channel=setup.channel,
                    mode=setup.mode,
                    control=setup.control,
                    arms=[a.arm_id for a in setup.arms],
                    config={**asdict(config), "metric": req.policy.experiment_metric},
                )
                await CampaignRepository(session).record_agent_action(
                    campaign_id=req.campaign_id,
                    actor="agent:experiments",
                    action="experiment.started",
                    subject_type="experiment",
                    subject_id=setup.experiment_id,
                    detail={"mode": setup.mode, "arms": [a.arm_id for a in setup.arms], "control": setup.control},
                )
        return [setup for setup, _ in setups]

    @activity.defn(name=ActivityName.EVALUATE_EXPERIMENT)
    async def evaluate_experiment(self, req: ExperimentRound) -> ExperimentOutcome:
        exp = req.experiment
        metrics = {m.item_id: m for m in req.snapshot.items}
        arms = []
        for arm in exp.arms:
            m = metrics.get(arm.arm_id)
            exposures, conversions = arm_counts(req.policy.experiment_metric, m) if m else (0, 0)
            arms.append(ArmCounts(arm_id=arm.arm_id, exposures=exposures, conversions=conversions))
        config = experiment_config(req.policy, len(arms))
        state = ExperimentState.from_dict(req.state) if req.state else ExperimentState()
        try:
            decision = evaluate(
                arms, exp.control, config, state, seed=stable_seed(exp.experiment_id, req.peeks + 1)
            )
        except ValueError as err:
            raise business_error(err) from err
        status = RUNNING if decision.status == "continue" else decision.status
        result = {
            "round": req.snapshot.round,
            "metric": req.policy.experiment_metric,
            "threshold": _threshold_text(config),
            "reason": decision.reason,
            "weights": decision.weights,
            "arms": [
                {
                    "arm_id": a.arm_id, "exposures": a.exposures, "conversions": a.conversions, "rate": a.rate,
                    "prob_beats_control": a.prob_beats_control, "prob_best": a.prob_best,
                    "expected_loss": a.expected_loss, "p_value": a.p_value, "ci": list(a.ci),
                }
                for a in decision.arms
            ],
        }
        async with self._sessions() as session, session.begin():
            await DecisionRepository(session).update_experiment(
                exp.experiment_id, status=status, winner=decision.winner, peeks=req.peeks + 1, result=result
            )
            if decision.winner is not None:
                await CampaignRepository(session).record_agent_action(
                    campaign_id=req.campaign_id,
                    actor="agent:experiments",
                    action="experiment.winner",
                    subject_type="experiment",
                    subject_id=exp.experiment_id,
                    detail={"winner": decision.winner, "reason": decision.reason},
                    once_per={"winner": decision.winner},
                )
        return ExperimentOutcome(
            experiment_id=exp.experiment_id,
            channel=exp.channel,
            status=status,
            winner=decision.winner,
            weights=dict(decision.weights),
            reason=decision.reason,
            state=decision.state.to_dict(),
            peeks=req.peeks + 1,
        )

    def all(self) -> list:
        return [self.start_experiments, self.evaluate_experiment]


def _threshold_text(config: ExperimentConfig) -> str:
    return (
        f"always-valid p <= {config.alpha:g} (mSPRT), P(beat control) >= {config.prob_threshold:g}, "
        f"expected loss <= {config.max_expected_loss:g}, >= {config.min_exposures} exposures per arm"
    )
