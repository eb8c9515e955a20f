"""PyMC-Marketing's MMM + budget optimizer on simulated markets with known truth.

A bench-only comparison: it runs in its own virtualenv (``.venv-pymc``, pinned in
``bench/requirements-pymc.txt``) because PyMC-Marketing needs numpy>=2 while the main venv pins
numpy<2. From this repo it imports only ``agency.mmm.simulator`` (numpy/scipy) and, when they
exist and import cleanly, ``agency.mmm.allocation`` / ``agency.mmm.fit`` for our own numbers.

Per market (``agency.mmm.simulator.random_market(seed + i)``, simulated ``--weeks`` weeks):

1. fit PyMC-Marketing's ``MMM`` (GeometricAdstock(l_max, normalize=True) + HillSaturation,
   yearly Fourier seasonality, a linear time index as control for the trend) with NUTS;
2. let its budget optimizer (``MultiDimensionalBudgetOptimizerWrapper.optimize_budget``, SLSQP on
   the posterior-mean response) split a weekly budget over the next ``--horizon`` weeks (its
   objective: media contribution of those weeks plus their l_max-week carry-over tail, starting
   from zero adstock);
   the budget is the average total weekly spend of the last ``--recent-weeks`` weeks;
3. score that split under the TRUE curves against the true optimum, two ways:
   steady state (a constant weekly spend s has adstock s; outcome sum_c beta_c hill_c(s_c)) and
   horizon (outcome summed over the next ``--horizon`` weeks, carry-over from history included).
   regret = 1 - outcome(split) / outcome(true optimal split), media outcome only.

The true optimum is this script's own multi-start SLSQP over weekly spends summing to the budget
(independent of the code under test); agency.mmm.allocation.optimal_weekly_spend on the true
curves is printed as a cross-check. When agency.mmm.allocation imports, our plan
(fit_market + optimal_weekly_spend) is scored the same way and timed against PyMC's fit + optimize
in the same process; recommend()'s verdict (its recovery gate may refuse) is shown too.
NUTS runs through nutpie by default (``--sampler pymc`` for PyMC's own, slower here).

    .venv-pymc/bin/python bench/pymc_compare.py [--markets 3 --channels 3 --weeks 104 --horizon 8
                                                 --chains 2 --draws 300 --tune 300 --json PATH]
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from agency.mmm import simulator  # noqa: E402  (needs the repo root on sys.path)


# ---------------------------------------------------------------- truth and the true optimum

def steady_outcome(truth: simulator.MediaModel, weekly_spend: np.ndarray) -> float:
    return float(sum(truth.steady_response(c, weekly_spend[c]) for c in range(len(truth.channels))))


def steady_gradient(truth: simulator.MediaModel, weekly_spend: np.ndarray) -> np.ndarray:
    # d/ds beta * hill(s) = beta * S * h * (1 - h) / s
    grad = np.empty(len(weekly_spend))
    for c in range(len(weekly_spend)):
        s = max(float(weekly_spend[c]), 1e-12)
        h = float(simulator.hill(s, truth.half_saturation[c], truth.shape[c]))
        grad[c] = truth.beta[c] * truth.shape[c] * h * (1.0 - h) / s
    return grad


def horizon_outcome(truth: simulator.MediaModel, weekly_spend: np.ndarray, horizon: int) -> float:
    return truth.total_horizon_outcome(np.asarray(weekly_spend, dtype=float), horizon)


def horizon_gradient(truth: simulator.MediaModel, weekly_spend: np.ndarray, horizon: int) -> np.ndarray:
    return np.array([float(truth.horizon_marginal(c, weekly_spend[c], horizon)) for c in range(len(weekly_spend))])


def best_split(value, gradient, budget: float, n: int, rng: np.random.Generator, starts: int = 12) -> np.ndarray:
    """Multi-start SLSQP maximum of value(x) over x >= 0, sum(x) = budget (Hill with S > 1 is not concave)."""
    scale = budget  # optimize shares so the problem is well conditioned whatever the currency

    def neg(u):
        return -value(u * scale)

    def neg_grad(u):
        return -gradient(u * scale) * scale

    candidates = [np.full(n, 1.0 / n)] + list(np.eye(n)) + list(rng.dirichlet(np.ones(n), size=starts))
    best_u, best_v = None, -np.inf
    for u0 in candidates:
        res = minimize(neg, u0, jac=neg_grad, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                       constraints=[{"type": "eq", "fun": lambda u: u.sum() - 1.0, "jac": lambda u: np.ones(n)}],
                       options={"ftol": 1e-12, "maxiter": 500})
        u = np.clip(res.x, 0.0, None)
        u = u / u.sum()
        v = -neg(u)
        if v > best_v:
            best_u, best_v = u, v
    return best_u * budget


# ---------------------------------------------------------------- PyMC-Marketing side

def quiet_pymc() -> None:
    # PyMC-Marketing/ArviZ emit deprecation and "experimental" warnings on every call.
    warnings.filterwarnings("ignore")
    for name in ("pymc", "pymc_marketing", "pytensor", "arviz", "pymc.sampling.mcmc"):
        logging.getLogger(name).setLevel(logging.ERROR)


def market_frame(data: simulator.MarketData):
    import pandas as pd

    frame = pd.DataFrame(data.spend, columns=list(data.channels))
    frame.insert(0, "date", pd.to_datetime(data.week_starts))
    frame["time_index"] = np.arange(len(frame), dtype=float)  # control for the linear trend
    return frame, pd.Series(data.outcome, name="y")


@dataclass
class PymcResult:
    split: np.ndarray
    fit_s: float
    optimize_s: float
    divergences: int
    max_rhat: float


def pymc_fit_and_allocate(data: simulator.MarketData, budget: float, args, seed: int) -> PymcResult:
    import pandas as pd
    import xarray as xr
    from pymc_marketing.mmm import GeometricAdstock, HillSaturation
    from pymc_marketing.mmm.multidimensional import MMM, MultiDimensionalBudgetOptimizerWrapper

    X, y = market_frame(data)
    channels = list(data.channels)
    mmm = MMM(
        date_column="date",
        channel_columns=channels,
        target_column="y",
        adstock=GeometricAdstock(l_max=args.l_max, normalize=True),
        saturation=HillSaturation(),
        control_columns=["time_index"],
        yearly_seasonality=2,
    )
    t0 = time.perf_counter()
    mmm.fit(X, y, chains=args.chains, draws=args.draws, tune=args.tune, cores=args.cores,
            target_accept=0.9, random_seed=seed, progressbar=False, nuts_sampler=args.sampler)
    fit_s = time.perf_counter() - t0
    divergences = int(mmm.idata.sample_stats["diverging"].sum())
    rhat = _max_rhat(mmm.idata)

    last = X["date"].iloc[-1]
    start = last + pd.Timedelta(weeks=1)
    end = last + pd.Timedelta(weeks=args.horizon)
    t0 = time.perf_counter()
    wrapper = MultiDimensionalBudgetOptimizerWrapper(model=mmm, start_date=str(start.date()), end_date=str(end.date()))
    if wrapper.num_periods != args.horizon:
        raise RuntimeError(f"PyMC-Marketing optimizer window is {wrapper.num_periods} weeks, expected {args.horizon}")
    bounds = xr.DataArray(np.tile([0.0, budget], (len(channels), 1)), dims=("channel", "bound"),
                          coords={"channel": channels, "bound": ["lower", "upper"]})
    allocation, result = wrapper.optimize_budget(budget=budget, budget_bounds=bounds)
    optimize_s = time.perf_counter() - t0
    split = np.array([float(allocation.sel(channel=c)) for c in channels])
    return PymcResult(split=split, fit_s=fit_s, optimize_s=optimize_s, divergences=divergences, max_rhat=rhat)


def _max_rhat(idata) -> float:
    import arviz as az

    names = [v for v in ("adstock_alpha", "saturation_slope", "saturation_kappa", "saturation_beta")
             if v in idata.posterior]
    return float(max(float(az.rhat(idata, var_names=[v])[v].max()) for v in names))


# ---------------------------------------------------------------- our side (optional)

def our_allocation():
    """The agency.mmm.allocation module if it imports here with recommend(), else None (with the reason)."""
    try:
        from agency.mmm import allocation
    except Exception as exc:  # not written yet, or needs the main venv
        return None, f"agency.mmm.allocation unavailable: {type(exc).__name__}: {exc}"
    if not hasattr(allocation, "recommend"):
        return None, "agency.mmm.allocation has no recommend()"
    return allocation, f"agency.mmm.allocation.recommend{inspect.signature(allocation.recommend)}"


def run_ours(allocation, data, budget, args, truth, best_steady, best_horizon, seed: int) -> dict:
    """Our plan (fit_market + optimal_weekly_spend, what recommend() advises when its gate passes),
    timed like PyMC's fit + optimize, plus recommend()'s full time and verdict (it adds the gate)."""
    from agency.mmm.fit import fit_market

    req = allocation.AllocationRequest(total_budget=budget * args.horizon, horizon_weeks=args.horizon)
    t0 = time.perf_counter()
    fitted = fit_market(data, seed=seed)
    split = np.asarray(allocation.optimal_weekly_spend(fitted, req), dtype=float)
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    verdict = allocation.recommend(data, req, seed=seed)
    recommend_s = time.perf_counter() - t0
    advised = getattr(verdict, "allocations", None)
    return {
        "seconds": plan_s,
        "recommend_seconds": recommend_s,
        "verdict": "advised" if advised is not None else f"refused ({verdict.reason})",
        "shares": list(split / split.sum()),
        "regret_steady": regret(steady_outcome(truth, split), best_steady),
        "regret_horizon": regret(horizon_outcome(truth, split, args.horizon), best_horizon),
    }


def cross_check_optimum(allocation, truth, budget: float, horizon: int, own: np.ndarray) -> float:
    """Relative horizon-outcome gap between our bench optimum and agency.mmm.allocation's on the truth."""
    req = allocation.AllocationRequest(total_budget=budget * horizon, horizon_weeks=horizon)
    theirs = np.asarray(allocation.optimal_weekly_spend(truth, req), dtype=float)
    return regret(horizon_outcome(truth, theirs, horizon), horizon_outcome(truth, own, horizon))


# ---------------------------------------------------------------- report

@dataclass
class MarketRow:
    market: int
    seed: int
    channels: list[str]
    budget: float
    fit_s: float
    optimize_s: float
    divergences: int
    max_rhat: float
    pymc_shares: list[float]
    true_steady_shares: list[float]
    true_horizon_shares: list[float]
    recent_shares: list[float]
    pymc_regret_steady: float
    pymc_regret_horizon: float
    recent_regret_steady: float
    recent_regret_horizon: float
    ours: dict = field(default_factory=dict)


def regret(value: float, best: float) -> float:
    return 1.0 - value / best if best > 0 else 0.0


def fmt_shares(x) -> str:
    return " ".join(f"{v:5.1%}" for v in x)


def run_market(i: int, args, allocation) -> MarketRow:
    seed = args.seed + i
    spec = simulator.random_market(seed, n_channels=args.channels, weeks=args.weeks)
    data = simulator.simulate(spec)
    truth = simulator.truth_model(spec, data)
    k = len(data.channels)
    recent = data.spend[-args.recent_weeks:].mean(axis=0)
    budget = float(recent.sum())
    rng = np.random.default_rng(seed)

    steady_opt = best_split(lambda x: steady_outcome(truth, x), lambda x: steady_gradient(truth, x), budget, k, rng)
    horizon_opt = best_split(lambda x: horizon_outcome(truth, x, args.horizon),
                             lambda x: horizon_gradient(truth, x, args.horizon), budget, k, rng)
    best_steady = steady_outcome(truth, steady_opt)
    best_horizon = horizon_outcome(truth, horizon_opt, args.horizon)

    pm = pymc_fit_and_allocate(data, budget, args, seed)
    row = MarketRow(
        market=i, seed=seed, channels=list(data.channels), budget=budget,
        fit_s=pm.fit_s, optimize_s=pm.optimize_s, divergences=pm.divergences, max_rhat=pm.max_rhat,
        pymc_shares=list(pm.split / budget), true_steady_shares=list(steady_opt / budget),
        true_horizon_shares=list(horizon_opt / budget), recent_shares=list(recent / budget),
        pymc_regret_steady=regret(steady_outcome(truth, pm.split), best_steady),
        pymc_regret_horizon=regret(horizon_outcome(truth, pm.split, args.horizon), best_horizon),
        recent_regret_steady=regret(steady_outcome(truth, recent), best_steady),
        recent_regret_horizon=regret(horizon_outcome(truth, recent, args.horizon), best_horizon),
    )
    if allocation is not None:
        row.ours = run_ours(allocation, data, budget, args, truth, best_steady, best_horizon, seed)
        # allocation's optimizer on the truth should match ours (> 0: theirs worse, < 0: ours worse)
        row.ours["optimum_gap_vs_allocation"] = cross_check_optimum(allocation, truth, budget, args.horizon, horizon_opt)
    return row


def print_row(row: MarketRow) -> None:
    print(f"market {row.market} (seed {row.seed}, channels {', '.join(row.channels)}), weekly budget {row.budget:,.0f}")
    print(f"  pymc-marketing: fit {row.fit_s:6.1f} s  optimize {row.optimize_s:5.1f} s  "
          f"divergences {row.divergences}  max r-hat {row.max_rhat:.3f}")
    print(f"  shares  pymc {fmt_shares(row.pymc_shares)} | true(steady) {fmt_shares(row.true_steady_shares)}"
          f" | true(horizon) {fmt_shares(row.true_horizon_shares)} | recent mix {fmt_shares(row.recent_shares)}")
    print(f"  regret  pymc steady {row.pymc_regret_steady:6.2%} horizon {row.pymc_regret_horizon:6.2%}"
          f"   | keep recent mix: steady {row.recent_regret_steady:6.2%} horizon {row.recent_regret_horizon:6.2%}")
    if row.ours:
        o = row.ours
        print(f"  ours: fit+optimize {o['seconds']:5.2f} s (recommend() with gate {o['recommend_seconds']:5.1f} s, "
              f"{o['verdict']})  time pymc/ours {(row.fit_s + row.optimize_s) / max(o['seconds'], 1e-9):,.0f}x")
        print(f"        shares {fmt_shares(o['shares'])}  regret steady {o['regret_steady']:6.2%} "
              f"horizon {o['regret_horizon']:6.2%}  (true-optimum cross-check gap {o['optimum_gap_vs_allocation']:+.4%})")


def print_summary(rows: list[MarketRow]) -> None:
    def mean(key):
        return float(np.mean([getattr(r, key) for r in rows]))

    print(f"\nmean over {len(rows)} markets: pymc regret steady {mean('pymc_regret_steady'):.2%} "
          f"horizon {mean('pymc_regret_horizon'):.2%}; keep-recent-mix regret steady {mean('recent_regret_steady'):.2%} "
          f"horizon {mean('recent_regret_horizon'):.2%}; pymc fit {mean('fit_s'):.1f} s, optimize {mean('optimize_s'):.1f} s")
    if all(r.ours for r in rows):
        ours_s = float(np.mean([r.ours["seconds"] for r in rows]))
        print(f"ours: regret steady {np.mean([r.ours['regret_steady'] for r in rows]):.2%} "
              f"horizon {np.mean([r.ours['regret_horizon'] for r in rows]):.2%}; {ours_s:.2f} s per market; "
              f"pymc/ours time {(mean('fit_s') + mean('optimize_s')) / max(ours_s, 1e-9):,.0f}x")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--markets", type=int, default=3)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--weeks", type=int, default=104)
    p.add_argument("--horizon", type=int, default=8, help="weeks the budget is allocated over")
    p.add_argument("--recent-weeks", type=int, default=8, help="weeks averaged for the weekly budget")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--tune", type=int, default=300)
    p.add_argument("--cores", type=int, default=2, help="chains run in parallel (pymc sampler only)")
    p.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc"],
                   help="NUTS implementation behind pm.sample (nutpie: Rust, numba-compiled model)")
    p.add_argument("--l-max", type=int, default=12, help="adstock lags in PyMC-Marketing's model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_pymc()
    import pymc
    import pymc_marketing
    import pytensor

    print(f"pymc-marketing {pymc_marketing.__version__}, pymc {pymc.__version__}, pytensor {pytensor.__version__}, "
          f"cxx {pytensor.config.cxx or 'none (python mode)'}, {os.cpu_count()} cpus")
    print(f"NUTS ({args.sampler}) {args.chains} chains x {args.draws} draws / {args.tune} tune; saturation: Hill; "
          f"horizon {args.horizon} weeks; budget = mean weekly spend of the last {args.recent_weeks} weeks\n")
    allocation, about = our_allocation()
    print(f"ours: {about}\n")
    rows = []
    for i in range(args.markets):
        row = run_market(i, args, allocation)
        print_row(row)
        rows.append(row)
    print_summary(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
