"""A/B tests and bandits over content variants: pure, deterministic, state carried by the caller.

A long-running campaign workflow calls ``evaluate`` every interval with the *cumulative*
exposures/conversions per arm and the ``ExperimentState`` returned last time; it gets back a
decision, the traffic split for the next interval, and the new state (a small JSON-safe
dataclass). Given (counts, state, config, seed) the result is always the same: the only
randomness is a Monte Carlo over Beta posteriors drawn from ``numpy.random.default_rng(seed)``.

The automatic-winner rule (the default, identical in "ab" and "bandit" mode)
---------------------------------------------------------------------------
A treatment arm T is declared the winner over control C only when ALL of these hold:

1. every arm has at least ``min_exposures`` exposures;
2. T's always-valid p-value against C is <= alpha / (number of treatments);
3. P(T beats C) >= ``prob_threshold`` under independent Beta(1 + conversions, 1 + misses) posteriors;
4. the expected loss of shipping T, E[max_j rate_j - rate_T], is <= ``max_expected_loss``;
5. T has the highest posterior probability of being best among the treatments that pass 2-4.

Symmetrically, the control is declared the winner when every treatment is significantly
*worse* (2 holds and P(T beats C) <= 1 - prob_threshold) and shipping C costs at most
``max_expected_loss``. When ``futility_margin`` is set, the test also stops with
"no_difference" once every treatment's always-valid confidence interval for the rate
difference lies inside +/- that margin.

Why peeking does not inflate the false winner rate: condition 2 is a mixture sequential
probability ratio test (mSPRT). For the difference d = rate_T - rate_C with estimate d_hat and
variance V (pooled rate, i.e. computed under H0: d = 0), the likelihood ratio of
N(d_hat; d, V) against N(d_hat; 0, V), mixed over d ~ N(0, tau^2), is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d_hat^2 / (2 V (V + tau^2))).

Under H0 Lambda is (asymptotically, by the normal approximation of the counts) a nonnegative
martingale with mean 1, so by Ville's inequality P(Lambda ever reaches 1/alpha) <= alpha, at
however many peeks. The always-valid p-value is the running minimum of 1/Lambda, carried
between peeks in ``ExperimentState.min_p_value``; it crosses alpha at some peek with
probability <= alpha under H0. Bonferroni over the treatments bounds the chance that any of
them does. Conditions 1, 3, 4, 5 only remove decisions, so the family-wise false winner rate
stays <= alpha. (In "bandit" mode the split follows the data; the test is still computed
per pair from its own counts and the simulated false winner rate stays below alpha, but the
guarantee there is empirical rather than exact.) Bayesian stopping alone (condition 3 at every peek) does not have this
property: with 20 peeks an A/A test crosses P >= 0.95 far more often than 5% of the time, as
does a fixed-horizon z-test repeated at every peek (``bench/experiments.py`` prints all three).

Once a decision is reached it is sticky: later calls with the returned state report it again
and keep all traffic on the decided arm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

MODES = ("ab", "bandit")
CONTINUE, WINNER, NO_DIFFERENCE = "continue", "winner", "no_difference"
_CREDIBLE = 0.95  # the ArmResult.ci level; fixed so reports are comparable across experiments


@dataclass
class ArmCounts:
    arm_id: str
    exposures: int  # cumulative since the experiment started
    conversions: int  # cumulative


@dataclass
class ExperimentConfig:
    mode: str = "ab"  # "ab": equal split until decided; "bandit": Thompson-sampling split
    alpha: float = 0.05  # family-wise level of the always-valid sequential test
    prob_threshold: float = 0.95  # Bayesian P(beat control) needed to ship a treatment
    max_expected_loss: float = 0.001  # absolute conversion-rate loss tolerated when shipping the winner
    min_exposures: int = 500  # per arm before any decision (the normal approximation needs counts)
    mixture_tau: float = 0.006  # std of the mSPRT mixing prior on the absolute rate difference (~1.5x the lift worth finding)
    bandit_floor: float = 0.05  # minimum traffic share per arm in bandit mode (capped at 0.5 / arms)
    draws: int = 20_000  # Monte Carlo draws per arm from the posteriors
    futility_margin: float | None = None  # stop with "no_difference" once |difference| < margin is certain

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("alpha", "prob_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")
        if not 0.0 < self.max_expected_loss < 1.0:
            raise ValueError(f"max_expected_loss must be strictly between 0 and 1, got {self.max_expected_loss}")
        if self.min_exposures < 0:
            raise ValueError(f"min_exposures must be >= 0, got {self.min_exposures}")
        if not self.mixture_tau > 0.0:
            raise ValueError(f"mixture_tau must be > 0, got {self.mixture_tau}")
        if not 0.0 <= self.bandit_floor < 1.0:
            raise ValueError(f"bandit_floor must be in [0, 1), got {self.bandit_floor}")
        if self.draws < 100:
            raise ValueError(f"draws must be >= 100 for a usable Monte Carlo estimate, got {self.draws}")
        if self.futility_margin is not None and not 0.0 < self.futility_margin < 1.0:
            raise ValueError(f"futility_margin must be strictly between 0 and 1 or None, got {self.futility_margin}")


@dataclass
class ExperimentState:
    """Everything carried between peeks; only str/int/float/None values, so json.dumps(asdict(s)) works."""

    peeks: int = 0
    min_p_value: dict[str, float] = field(default_factory=dict)  # running min of each treatment's p-value
    exposures: dict[str, int] = field(default_factory=dict)  # last cumulative exposures seen, to catch regressions
    status: str = CONTINUE  # sticky once it leaves "continue"
    winner: str | None = None
    decided_at_peek: int | None = None
    decision_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentState:
        return cls(
            peeks=int(data.get("peeks", 0)),
            min_p_value={str(k): float(v) for k, v in data.get("min_p_value", {}).items()},
            exposures={str(k): int(v) for k, v in data.get("exposures", {}).items()},
            status=str(data.get("status", CONTINUE)),
            winner=data.get("winner"),
            decided_at_peek=data.get("decided_at_peek"),
            decision_reason=data.get("decision_reason"),
        )


@dataclass
class ArmResult:
    arm_id: str
    exposures: int
    conversions: int
    rate: float
    prob_beats_control: float | None  # None for the control itself
    prob_best: float
    expected_loss: float  # E[max_j rate_j - rate_this]: conversion rate given up by shipping this arm
    p_value: float | None  # always-valid (running minimum), vs control; None for the control
    ci: tuple[float, float]  # 95% equal-tailed credible interval of the rate
    difference_ci: tuple[float, float] | None  # always-valid CI of rate - control rate at the test's level


@dataclass
class ExperimentDecision:
    status: str  # "continue" | "winner" | "no_difference"
    winner: str | None
    arms: list[ArmResult]
    weights: dict[str, float]  # traffic/budget split for the next interval
    reason: str
    state: ExperimentState


# --- sequential test ---------------------------------------------------------------------------


def msprt_p_value(control: ArmCounts, treatment: ArmCounts, tau: float) -> float:
    """1 / Lambda of the normal mixture SPRT for the rate difference (not yet the running minimum)."""
    n_c, n_t = control.exposures, treatment.exposures
    if n_c == 0 or n_t == 0:
        return 1.0
    pooled = (control.conversions + treatment.conversions) / (n_c + n_t)
    variance = pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t)
    if variance <= 0.0:  # no conversions (or all) on both arms: no evidence either way
        return 1.0
    diff = treatment.conversions / n_t - control.conversions / n_c
    tau2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + tau2 * diff * diff / (2.0 * variance * (variance + tau2))
    return 1.0 if log_lambda <= 0.0 else math.exp(-log_lambda)


def always_valid_difference_ci(control: ArmCounts, treatment: ArmCounts, tau: float, alpha: float) -> tuple[float, float] | None:
    """Confidence sequence for rate_T - rate_C: the set of d the mSPRT centred on d does not reject."""
    n_c, n_t = control.exposures, treatment.exposures
    if n_c == 0 or n_t == 0:
        return None
    rate_c, rate_t = control.conversions / n_c, treatment.conversions / n_t
    # Unpooled variance: the interval must hold when the rates differ.
    variance = rate_c * (1 - rate_c) / n_c + rate_t * (1 - rate_t) / n_t
    if variance <= 0.0:
        return None
    tau2 = tau * tau
    half = math.sqrt(variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) - 2.0 * math.log(alpha)))
    diff = rate_t - rate_c
    return (diff - half, diff + half)


# --- Bayesian posteriors -----------------------------------------------------------------------


def _posterior_draws(arms: list[ArmCounts], draws: int, seed: int) -> np.ndarray:
    """(draws, arms) samples of each rate from Beta(1 + conversions, 1 + misses)."""
    rng = np.random.default_rng(seed)
    columns = [rng.beta(1 + a.conversions, 1 + a.exposures - a.conversions, size=draws) for a in arms]
    return np.column_stack(columns)


def _prob_best(samples: np.ndarray) -> np.ndarray:
    wins = np.bincount(np.argmax(samples, axis=1), minlength=samples.shape[1])
    return wins / samples.shape[0]


def _floored(prob_best: np.ndarray, floor: float) -> np.ndarray:
    """Every arm gets at least the floor; the rest follows prob_best.

    The floor is capped at 0.5 / arms so that with many variants at least half of the
    traffic still follows the posterior instead of degenerating into an equal split.
    """
    effective = min(floor, 0.5 / len(prob_best))
    return effective + (1.0 - effective * len(prob_best)) * prob_best


def thompson_weights(arms: list[ArmCounts], *, draws: int, floor: float, seed: int) -> dict[str, float]:
    """Traffic split = posterior probability each arm is best, floored so no arm starves."""
    _validate_arms(arms)
    if draws < 100:
        raise ValueError(f"draws must be >= 100, got {draws}")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    weights = _floored(_prob_best(_posterior_draws(arms, draws, seed)), floor)
    return {a.arm_id: float(w) for a, w in zip(arms, weights)}


# --- validation --------------------------------------------------------------------------------


def _validate_arms(arms: list[ArmCounts]) -> None:
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {len(arms)}")
    seen: set[str] = set()
    for arm in arms:
        if arm.arm_id in seen:
            raise ValueError(f"arm id {arm.arm_id!r} appears more than once")
        seen.add(arm.arm_id)
        if arm.exposures < 0 or arm.conversions < 0:
            raise ValueError(f"arm {arm.arm_id!r}: counts must be >= 0, got {arm.exposures} exposures, {arm.conversions} conversions")
        if arm.conversions > arm.exposures:
            raise ValueError(f"arm {arm.arm_id!r}: {arm.conversions} conversions exceed {arm.exposures} exposures")


def _validate_against_state(arms: list[ArmCounts], state: ExperimentState) -> None:
    if state.winner is not None and state.winner not in {a.arm_id for a in arms}:
        raise ValueError(f"the decided winner {state.winner!r} is missing from the arms passed in")
    for arm in arms:
        previous = state.exposures.get(arm.arm_id)
        if previous is not None and arm.exposures < previous:
            raise ValueError(
                f"arm {arm.arm_id!r}: cumulative exposures fell from {previous} to {arm.exposures}; pass cumulative counts"
            )


# --- the decision ------------------------------------------------------------------------------


def evaluate(
    arms: list[ArmCounts], control: str, config: ExperimentConfig, state: ExperimentState, *, seed: int
) -> ExperimentDecision:
    """One peek: update the sequential test, compute posteriors, apply the automatic-winner rule."""
    config.validate()
    _validate_arms(arms)
    ids = [a.arm_id for a in arms]
    if control not in ids:
        raise ValueError(f"control {control!r} is not one of the arms {ids}")
    _validate_against_state(arms, state)

    control_arm = arms[ids.index(control)]
    treatments = [a for a in arms if a.arm_id != control]
    per_test_alpha = config.alpha / len(treatments)

    min_p = dict(state.min_p_value)
    for arm in treatments:
        current = msprt_p_value(control_arm, arm, config.mixture_tau)
        min_p[arm.arm_id] = min(min_p.get(arm.arm_id, 1.0), current)

    samples = _posterior_draws(arms, config.draws, seed)
    prob_best = _prob_best(samples)
    control_col = samples[:, ids.index(control)]
    expected_loss = (samples.max(axis=1)[:, None] - samples).mean(axis=0)
    results = []
    for i, arm in enumerate(arms):
        is_control = arm.arm_id == control
        lower, upper = stats.beta.ppf([(1 - _CREDIBLE) / 2, (1 + _CREDIBLE) / 2], 1 + arm.conversions, 1 + arm.exposures - arm.conversions)
        results.append(
            ArmResult(
                arm_id=arm.arm_id,
                exposures=arm.exposures,
                conversions=arm.conversions,
                rate=arm.conversions / arm.exposures if arm.exposures else 0.0,
                prob_beats_control=None if is_control else float(np.mean(samples[:, i] > control_col)),
                prob_best=float(prob_best[i]),
                expected_loss=float(expected_loss[i]),
                p_value=None if is_control else min_p[arm.arm_id],
                ci=(float(lower), float(upper)),
                difference_ci=None
                if is_control
                else always_valid_difference_ci(control_arm, arm, config.mixture_tau, per_test_alpha),
            )
        )

    new_state = ExperimentState(
        peeks=state.peeks + 1,
        min_p_value=min_p,
        exposures={a.arm_id: a.exposures for a in arms},
        status=state.status,
        winner=state.winner,
        decided_at_peek=state.decided_at_peek,
        decision_reason=state.decision_reason,
    )

    if state.status != CONTINUE:
        reason = f"decided at peek {state.decided_at_peek}: {state.decision_reason}"
        return ExperimentDecision(state.status, state.winner, results, _all_to(ids, state.winner or control), reason, new_state)

    status, winner, reason = _decide(results, control, config, per_test_alpha)
    if status != CONTINUE:
        new_state.status, new_state.winner = status, winner
        new_state.decided_at_peek, new_state.decision_reason = new_state.peeks, reason
        # "no_difference": nothing beat the status quo, so all traffic goes back to the control.
        weights = _all_to(ids, winner or control)
    elif config.mode == "bandit":
        weights = {a: float(w) for a, w in zip(ids, _floored(prob_best, config.bandit_floor))}
    else:
        weights = {a: 1.0 / len(ids) for a in ids}
    return ExperimentDecision(status, winner, results, weights, reason, new_state)


def _all_to(ids: list[str], chosen: str) -> dict[str, float]:
    return {a: 1.0 if a == chosen else 0.0 for a in ids}


def _decide(results: list[ArmResult], control: str, config: ExperimentConfig, per_test_alpha: float) -> tuple[str, str | None, str]:
    by_id = {r.arm_id: r for r in results}
    control_result = by_id[control]
    treatments = [r for r in results if r.arm_id != control]
    short = [r for r in results if r.exposures < config.min_exposures]
    if short:
        listed = ", ".join(f"{r.arm_id}={r.exposures}" for r in short)
        return CONTINUE, None, f"waiting for {config.min_exposures} exposures per arm ({listed})"

    def significant(r: ArmResult) -> bool:
        return r.p_value is not None and r.p_value <= per_test_alpha

    def evidence(r: ArmResult) -> str:
        return (
            f"P(beat {control})={r.prob_beats_control:.3f} vs {config.prob_threshold:g}, "
            f"always-valid p={r.p_value:.4f} vs {per_test_alpha:.4g}, expected loss {r.expected_loss:.5f} vs {config.max_expected_loss:g}"
        )

    passing = [
        r
        for r in treatments
        if significant(r) and r.prob_beats_control >= config.prob_threshold and r.expected_loss <= config.max_expected_loss
    ]
    if passing:
        best = max(passing, key=lambda r: r.prob_best)
        reason = (
            f"{best.arm_id} beats control {control}: rate {best.rate:.4f} vs {control_result.rate:.4f}, "
            f"P={best.prob_beats_control:.3f} >= {config.prob_threshold:g}, always-valid p={best.p_value:.4f} <= {per_test_alpha:.4g}, "
            f"expected loss {best.expected_loss:.5f} <= {config.max_expected_loss:g}, P(best)={best.prob_best:.3f}"
        )
        return WINNER, best.arm_id, reason

    all_worse = all(significant(r) and r.prob_beats_control <= 1 - config.prob_threshold for r in treatments)
    if all_worse and control_result.expected_loss <= config.max_expected_loss:
        worst_p = max(r.p_value for r in treatments)
        reason = (
            f"control {control} beats every variant: each has P(beat {control}) <= {1 - config.prob_threshold:.3g} "
            f"and always-valid p <= {worst_p:.4f} <= {per_test_alpha:.4g}; expected loss of keeping {control} "
            f"{control_result.expected_loss:.5f} <= {config.max_expected_loss:g}"
        )
        return WINNER, control, reason

    margin = config.futility_margin
    if margin is not None and all(
        r.difference_ci is not None and -margin < r.difference_ci[0] and r.difference_ci[1] < margin for r in treatments
    ):
        widest = max(max(-r.difference_ci[0], r.difference_ci[1]) for r in treatments)
        reason = (
            f"no variant differs from control {control} by {margin:g} or more: every always-valid "
            f"difference interval lies within +/-{widest:.5f}"
        )
        return NO_DIFFERENCE, None, reason

    leader = max(treatments, key=lambda r: r.prob_best)
    return CONTINUE, None, f"no decision yet; leading variant {leader.arm_id}: {evidence(leader)}"
