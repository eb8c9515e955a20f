"""Operating characteristics of the A/B testing framework (agency.agents.experiments), by simulation.

Three figures, each from seeded simulations that peek at every interval like the campaign workflow:

1. A/A: false winner rate of the default automatic-winner rule, next to two baselines run on the
   very same simulated traffic: a fixed-horizon two-sided z-test repeated at every peek, and
   Bayesian-only stopping (P(beat control) >= 0.95 at any peek).
2. A/B with a true relative lift: power (share of runs that pick B by the last interval) and
   the median interval of decision.
3. Bandit: cumulative regret of Thompson allocation ("bandit" mode) against uniform allocation
   ("ab" mode), same arms, same traffic, same decision rule.

    .venv/bin/python bench/experiments.py                 # 1,000 runs, 20 intervals, 20,000 draws
    .venv/bin/python bench/experiments.py --runs 200 --draws 4000   # quicker look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agency.agents.experiments import ArmCounts, ExperimentConfig, ExperimentState, evaluate  # noqa: E402

NAIVE_ALPHA = 0.05
BAYES_ONLY_THRESHOLD = 0.95


@dataclass
class TwoArmRun:
    default_decision: str | None  # winner id of the default rule, if any
    default_interval: int | None
    naive_fired: bool
    bayes_fired: bool


def naive_z_p_value(n_a: int, c_a: int, n_b: int, c_b: int) -> float:
    """Two-sided pooled z-test, valid only for one look at a fixed horizon."""
    pooled = (c_a + c_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0
    z = (c_b / n_b - c_a / n_a) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def simulate_two_arms(rates: tuple[float, float], run: int, args: argparse.Namespace, config: ExperimentConfig,
                      *, stop_at_decision: bool) -> TwoArmRun:
    rng = np.random.default_rng([args.seed, run])
    exposures = np.zeros(2, dtype=np.int64)
    conversions = np.zeros(2, dtype=np.int64)
    state = ExperimentState()
    outcome = TwoArmRun(None, None, False, False)
    for interval in range(1, args.intervals + 1):
        traffic = rng.integers(args.min_traffic, args.max_traffic + 1, size=2)
        exposures += traffic
        conversions += rng.binomial(traffic, rates)
        arms = [ArmCounts("A", int(exposures[0]), int(conversions[0])), ArmCounts("B", int(exposures[1]), int(conversions[1]))]
        decision = evaluate(arms, "A", config, state, seed=run * 1000 + interval)
        state = decision.state
        if decision.status == "winner" and outcome.default_interval is None:
            outcome.default_decision, outcome.default_interval = decision.winner, interval
            if stop_at_decision:
                return outcome
        if exposures.min() >= config.min_exposures:
            outcome.naive_fired |= naive_z_p_value(*map(int, (exposures[0], conversions[0], exposures[1], conversions[1]))) < NAIVE_ALPHA
            outcome.bayes_fired |= decision.arms[1].prob_beats_control >= BAYES_ONLY_THRESHOLD
    return outcome


def wilson(share: float, n: int) -> str:
    z = 1.96
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"[{max(0.0, centre - half):.3f}, {min(1.0, centre + half):.3f}]"


def aa_figure(args: argparse.Namespace, config: ExperimentConfig) -> None:
    runs = [simulate_two_arms((args.base_rate, args.base_rate), r, args, config, stop_at_decision=False) for r in range(args.runs)]
    default_rate = sum(r.default_decision is not None for r in runs) / args.runs
    naive_rate = sum(r.naive_fired for r in runs) / args.runs
    bayes_rate = sum(r.bayes_fired for r in runs) / args.runs
    print(f"\n1. A/A, base rate {args.base_rate:g}, {args.runs} runs x {args.intervals} peeks")
    print(f"   {'stopping rule':<52}{'false winner rate':>18}  95% CI")
    print(f"   {'default (mSPRT p<=alpha AND Bayes AND loss)':<52}{default_rate:>18.3f}  {wilson(default_rate, args.runs)}")
    print(f"   {'naive fixed-horizon z-test p<0.05 at any peek':<52}{naive_rate:>18.3f}  {wilson(naive_rate, args.runs)}")
    print(f"   {'Bayesian only, P(beat control)>=0.95 at any peek':<52}{bayes_rate:>18.3f}  {wilson(bayes_rate, args.runs)}")
    ratio = naive_rate / default_rate if default_rate else float("inf")
    print(f"   summary: default rule false winner rate {default_rate:.3f} (alpha {config.alpha:g}); "
          f"naive z {naive_rate:.3f} ({ratio:.1f}x), Bayesian-only {bayes_rate:.3f}")


def ab_figure(args: argparse.Namespace, config: ExperimentConfig) -> None:
    rates = (args.base_rate, args.base_rate * (1 + args.lift))
    runs = [simulate_two_arms(rates, r + 10_000_000, args, config, stop_at_decision=True) for r in range(args.runs)]
    picked_b = [r for r in runs if r.default_decision == "B"]
    picked_a = sum(r.default_decision == "A" for r in runs)
    power = len(picked_b) / args.runs
    median = float(np.median([r.default_interval for r in picked_b])) if picked_b else float("nan")
    print(f"\n2. A/B, rates {rates[0]:g} vs {rates[1]:.4g} ({args.lift:.0%} relative lift), {args.runs} runs x {args.intervals} peeks")
    print(f"   {'picked B':>10}{'picked A':>10}{'undecided':>11}{'median interval':>17}")
    print(f"   {power:>10.3f}{picked_a / args.runs:>10.3f}{1 - power - picked_a / args.runs:>11.3f}{median:>17.1f}")
    print(f"   summary: power {power:.3f} {wilson(power, args.runs)}, median decision at interval {median:.1f} of {args.intervals}")


def bandit_regret(mode: str, rates: np.ndarray, run: int, args: argparse.Namespace) -> tuple[float, str | None]:
    config = ExperimentConfig(mode=mode, draws=args.draws)
    rng = np.random.default_rng([args.seed, 7, run])
    ids = [f"v{i}" for i in range(len(rates))]
    exposures = np.zeros(len(rates), dtype=np.int64)
    conversions = np.zeros(len(rates), dtype=np.int64)
    weights = np.full(len(rates), 1 / len(rates))
    state = ExperimentState()
    regret = 0.0
    winner = None
    for interval in range(1, args.intervals + 1):
        traffic = rng.multinomial(args.bandit_traffic, weights)
        exposures += traffic
        conversions += rng.binomial(traffic, rates)
        regret += float(traffic @ (rates.max() - rates))
        arms = [ArmCounts(a, int(n), int(c)) for a, n, c in zip(ids, exposures, conversions)]
        decision = evaluate(arms, ids[0], config, state, seed=run * 1000 + interval)
        state, winner = decision.state, decision.winner
        weights = np.array([decision.weights[a] for a in ids])
        weights /= weights.sum()
    return regret, winner


def bandit_figure(args: argparse.Namespace) -> None:
    rates = np.array(args.bandit_rates)
    best = f"v{int(np.argmax(rates))}"
    table = {}
    for mode in ("bandit", "ab"):
        results = [bandit_regret(mode, rates, r, args) for r in range(args.bandit_runs)]
        table[mode] = (np.mean([r for r, _ in results]), np.mean([w == best for _, w in results]))
    print(f"\n3. Bandit, rates {list(rates)} (best {best}, control v0), {args.bandit_traffic} visitors/interval, "
          f"{args.bandit_runs} runs x {args.intervals} intervals")
    print(f"   {'allocation':<30}{'mean cumulative regret (conversions)':>38}{'picked best':>13}")
    print(f"   {'Thompson (mode=bandit)':<30}{table['bandit'][0]:>38.1f}{table['bandit'][1]:>13.3f}")
    print(f"   {'uniform (mode=ab)':<30}{table['ab'][0]:>38.1f}{table['ab'][1]:>13.3f}")
    ratio = table["bandit"][0] / table["ab"][0]
    print(f"   summary: Thompson regret {table['bandit'][0]:.1f} vs uniform {table['ab'][0]:.1f} conversions, ratio {ratio:.2f}")
    # Adaptive allocation is outside the mSPRT's exact guarantee: check the false winner rate too.
    equal = np.full(len(rates), rates[0])
    false_winners = np.mean([bandit_regret("bandit", equal, r, args)[1] is not None for r in range(args.bandit_runs)])
    print(f"   A/A in bandit mode ({len(rates)} arms at {rates[0]:g}): false winner rate {false_winners:.3f} "
          f"{wilson(float(false_winners), args.bandit_runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--intervals", type=int, default=20)
    parser.add_argument("--min-traffic", type=int, default=500, help="visitors per arm per interval, low end")
    parser.add_argument("--max-traffic", type=int, default=2000, help="visitors per arm per interval, high end")
    parser.add_argument("--base-rate", type=float, default=0.04)
    parser.add_argument("--lift", type=float, default=0.10, help="true relative lift of B in the A/B figure")
    parser.add_argument("--draws", type=int, default=ExperimentConfig().draws)
    parser.add_argument("--bandit-runs", type=int, default=200)
    parser.add_argument("--bandit-traffic", type=int, default=5000, help="visitors per interval over all arms")
    parser.add_argument("--bandit-rates", type=float, nargs="+", default=[0.040, 0.042, 0.044, 0.046, 0.050])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    config = ExperimentConfig(draws=args.draws)
    print(f"config: alpha={config.alpha} prob_threshold={config.prob_threshold} max_expected_loss={config.max_expected_loss} "
          f"min_exposures={config.min_exposures} mixture_tau={config.mixture_tau} draws={config.draws}; "
          f"traffic {args.min_traffic}-{args.max_traffic}/arm/interval")
    for figure in (lambda: aa_figure(args, config), lambda: ab_figure(args, config), lambda: bandit_figure(args)):
        started = time.perf_counter()
        figure()
        print(f"   ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
