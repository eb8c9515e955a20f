"""Fitting adstock + Hill response curves per channel from weekly history, with bootstrap intervals.

All channels are fitted jointly (the outcome is their sum) by bounded nonlinear least squares with
an analytic Jacobian, in normalized units (spend / mean spend per channel, outcome / mean outcome).
The baseline (intercept, linear trend, two annual Fourier harmonics) is fitted alongside. Hill K and
S are weakly identified from 2-3 years of data, so each gets a weak prior (a penalty row worth about
one noise standard deviation per unit of log K or S away from its centre): it decides only when the
data do not. Uncertainty comes from a moving-block residual bootstrap; each replica reruns the whole
multi-start estimator (not warm-started from the point fit, which would keep it in the same basin).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import least_squares, lsq_linear
from scipy.signal import lfilter

from agency.mmm.simulator import SEASON_PERIOD_WEEKS, MarketData, MediaModel, adstock, hill

N_BASE = 6  # intercept, trend, sin/cos of the first two annual harmonics
# Weak priors (centre, sd) on decay, log(K / mean spend) and shape, in units of the noise sd.
PRIOR_CENTRE = np.array([0.4, 0.0, 1.5])
PRIOR_SD = np.array([0.3, 0.5, 0.6])
DECAY_BOUNDS = (0.0, 0.9)
LOG_K_BOUNDS = (math.log(0.2), math.log(5.0))  # relative to the channel's mean weekly spend
SHAPE_BOUNDS = (0.5, 4.0)
BETA_MAX = 20.0  # saturation outcome of one channel, in multiples of the mean weekly outcome
BOOTSTRAP_BLOCK = 4


@dataclass
class ChannelFit:
    name: str
    decay: float
    half_saturation: float
    shape: float
    beta: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 90% bootstrap


@dataclass
class MarketFit:
    channels: list[ChannelFit]
    intercept: float  # baseline at week 0
    trend: float  # baseline change per week
    fourier: list[float]  # sin1, cos1, sin2, cos2 coefficients (outcome units)
    noise_sd: float
    goodness: dict[str, float]
    bootstrap: list[dict[str, list[float]]]  # parameter samples incl. their adstock_state
    last_spend: list[float]
    adstock_state: list[float]  # carry-over after the last history week
    mean_spend: list[float]
    min_spend: list[float]
    max_spend: list[float]
    spend_cv: list[float]
    weeks: int

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.channels]

    def media_model(self, sample: int | None = None) -> MediaModel:
        """The point fit (sample=None) or one bootstrap sample as response curves."""
        if sample is None:
            p = {k: [getattr(c, k) for c in self.channels] for k in ("decay", "half_saturation", "shape", "beta")}
            state = self.adstock_state
        else:
            p = self.bootstrap[sample]
            state = p["adstock_state"]
        return MediaModel(
            channels=tuple(self.names),
            decay=np.asarray(p["decay"], dtype=float),
            half_saturation=np.asarray(p["half_saturation"], dtype=float),
            shape=np.asarray(p["shape"], dtype=float),
            beta=np.asarray(p["beta"], dtype=float),
            adstock_state=np.asarray(state, dtype=float),
            last_spend=np.asarray(self.last_spend, dtype=float),
        )

    def response(self, channel: str, weekly_spend: float) -> float:
        """Steady-state weekly media outcome of a channel at a constant weekly spend."""
        model = self.media_model()
        return float(model.steady_response(model.index(channel), weekly_spend))

    def base_outcome(self, weeks: np.ndarray) -> np.ndarray:
        """Non-media outcome (intercept + trend + season) at week indices counted from history start."""
        weeks = np.asarray(weeks, dtype=float)
        angle = 2 * np.pi * weeks / SEASON_PERIOD_WEEKS
        f = self.fourier
        season = f[0] * np.sin(angle) + f[1] * np.cos(angle) + f[2] * np.sin(2 * angle) + f[3] * np.cos(2 * angle)
        return self.intercept + self.trend * weeks + season

    def contributions(self, spend: np.ndarray) -> np.ndarray:
        """Each channel's weekly media outcome (weeks x channels) for a history starting at week 0."""
        spend = np.asarray(spend, dtype=float)
        return np.column_stack([
            ch.beta * hill(adstock(spend[:, c], ch.decay), ch.half_saturation, ch.shape)
            for c, ch in enumerate(self.channels)
        ]).reshape(len(spend), len(self.channels))

    def predict(self, spend: np.ndarray) -> np.ndarray:
        """Expected weekly outcome for a spend history that starts at week 0."""
        spend = np.asarray(spend, dtype=float)
        return self.base_outcome(np.arange(len(spend))) + self.contributions(spend).sum(axis=1)

    def to_dict(self) -> dict:
        d = asdict(self)
        for ch in d["channels"]:
            ch["intervals"] = {k: [float(v[0]), float(v[1])] for k, v in ch["intervals"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MarketFit:
        d = dict(d)
        d["channels"] = [
            ChannelFit(**{**ch, "intervals": {k: (float(v[0]), float(v[1])) for k, v in ch["intervals"].items()}})
            for ch in d["channels"]
        ]
        return cls(**d)


@dataclass
class _Problem:
    """Normalized data and the model's residual / Jacobian in those units."""

    spend: np.ndarray  # (n, C) spend / mean spend
    y: np.ndarray  # outcome / mean outcome
    base: np.ndarray  # (n, N_BASE)
    noise: float = 0.07  # normalized noise sd, scales the prior rows

    @property
    def n_channels(self) -> int:
        return self.spend.shape[1]

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta[:N_BASE], theta[N_BASE:].reshape(self.n_channels, 4)  # decay, log K, S, beta

    def media_columns(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, k = self.spend.shape
        a = np.empty((n, k))
        for c in range(k):
            a[:, c] = adstock(self.spend[:, c], params[c, 0])
        a = np.maximum(a, 1e-12)
        log_ratio = params[:, 1][None, :] - np.log(a)
        h = 1.0 / (1.0 + np.exp(np.clip(params[:, 2][None, :] * log_ratio, -700, 700)))
        return a, h, log_ratio

    def predict(self, theta: np.ndarray) -> np.ndarray:
        b0, params = self.unpack(theta)
        _, h, _ = self.media_columns(params)
        return self.base @ b0 + h @ params[:, 3]

    def residual(self, theta: np.ndarray, y: np.ndarray) -> np.ndarray:
        _, params = self.unpack(theta)
        prior = (params[:, :3] - PRIOR_CENTRE) / PRIOR_SD * self.noise
        return np.concatenate([self.predict(theta) - y, prior.T.ravel()])

    def jacobian(self, theta: np.ndarray, y: np.ndarray) -> np.ndarray:
        b0, params = self.unpack(theta)
        n, k = self.spend.shape
        a, h, log_ratio = self.media_columns(params)
        jac = np.zeros((n + 3 * k, N_BASE + 4 * k))
        jac[:n, :N_BASE] = self.base
        slope = h * (1.0 - h)
        for c in range(k):
            decay, _, shape, beta = params[c]
            # d a_t / d decay = a_{t-1} - s_t + decay * d a_{t-1} / d decay, with a_{-1} = s_0 fixed.
            prev = np.concatenate([[self.spend[0, c]], a[:-1, c]])
            da = lfilter([1.0], [1.0, -decay], prev - self.spend[:, c])
            col = N_BASE + 4 * c
            jac[:n, col] = beta * shape * slope[:, c] / a[:, c] * da
            jac[:n, col + 1] = -beta * shape * slope[:, c]
            jac[:n, col + 2] = -beta * slope[:, c] * log_ratio[:, c]
            jac[:n, col + 3] = h[:, c]
            for j in range(3):
                jac[n + j * k + c, col + j] = self.noise / PRIOR_SD[j]
        return jac

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        k = self.n_channels
        lo = np.concatenate([np.full(N_BASE, -np.inf), np.tile([DECAY_BOUNDS[0], LOG_K_BOUNDS[0], SHAPE_BOUNDS[0], 0.0], k)])
        hi = np.concatenate([np.full(N_BASE, np.inf), np.tile([DECAY_BOUNDS[1], LOG_K_BOUNDS[1], SHAPE_BOUNDS[1], BETA_MAX], k)])
        return lo, hi

    def initial_theta(self, nonlinear: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Given (decay, log K, S) per channel, the best baseline and betas >= 0 by linear least squares."""
        k = self.n_channels
        params = np.column_stack([nonlinear, np.zeros(k)])
        _, h, _ = self.media_columns(params)
        design = np.hstack([self.base, h])
        lo = np.concatenate([np.full(N_BASE, -np.inf), np.zeros(k)])
        hi = np.concatenate([np.full(N_BASE, np.inf), np.full(k, BETA_MAX)])
        linear = lsq_linear(design, y, bounds=(lo, hi)).x
        params[:, 3] = linear[N_BASE:]
        return np.concatenate([linear[:N_BASE], params.ravel()])

    def solve(self, theta0: np.ndarray, y: np.ndarray, max_nfev: int | None = None) -> tuple[np.ndarray, float]:
        lo, hi = self.bounds()
        theta0 = np.clip(theta0, lo + 1e-9 * (np.isfinite(lo)), hi - 1e-9 * (np.isfinite(hi)))
        result = least_squares(
            self.residual, theta0, jac=self.jacobian, bounds=(lo, hi), args=(y,),
            method="trf", x_scale="jac", max_nfev=max_nfev, ftol=1e-7, xtol=1e-7, gtol=1e-7,
        )
        return result.x, float(result.cost)


def base_design(n: int) -> np.ndarray:
    weeks = np.arange(n, dtype=float)
    angle = 2 * np.pi * weeks / SEASON_PERIOD_WEEKS
    trend = weeks / max(n - 1, 1) - 0.5
    return np.column_stack([np.ones(n), trend, np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)])


def _start_points(k: int, starts: int, rng: np.random.Generator) -> list[np.ndarray]:
    points = [np.column_stack([np.full(k, 0.4), np.zeros(k), np.full(k, 1.2)])]
    for _ in range(max(starts - 1, 0)):
        points.append(np.column_stack([
            rng.uniform(0.05, 0.8, k), rng.uniform(math.log(0.5), math.log(2.0), k), rng.uniform(0.8, 2.5, k),
        ]))
    return points


def _validate(data: MarketData) -> None:
    spend, outcome = np.asarray(data.spend, dtype=float), np.asarray(data.outcome, dtype=float)
    if spend.ndim != 2 or spend.shape[1] != len(data.channels) or spend.shape[0] != len(outcome):
        raise ValueError("spend must be (weeks, channels) and match outcome and channel names")
    if len(set(data.channels)) != len(data.channels):
        raise ValueError("channel names must be unique")
    if not (np.all(np.isfinite(spend)) and np.all(np.isfinite(outcome))):
        raise ValueError("spend and outcome must be finite")
    if np.any(spend < 0):
        raise ValueError("spend must not be negative")
    if len(outcome) < N_BASE + 4 * len(data.channels) + 4:
        raise ValueError(f"{len(outcome)} weeks are too few to fit {len(data.channels)} channels")
    if np.mean(outcome) <= 0:
        raise ValueError("mean outcome must be positive")
    zero = [data.channels[c] for c in range(spend.shape[1]) if spend[:, c].sum() <= 0]
    if zero:
        raise ValueError(f"channels without any spend cannot be fitted: {', '.join(zero)}")


def fit_market(
    data: MarketData, *, bootstrap: int = 20, seed: int = 0, starts: int = 4, bootstrap_starts: int | None = None
) -> MarketFit:
    """Fit every channel's curve jointly; `bootstrap` block-bootstrap replicas give the intervals.

    Each replica repeats the whole estimator from fresh multi-starts (`bootstrap_starts`, default
    `starts`), never from the point fit: a warm start keeps replicas in the point fit's basin, and
    when the data cannot tell two channels apart that hides exactly the uncertainty that matters.
    """
    _validate(data)
    rng = np.random.default_rng(seed)
    spend = np.asarray(data.spend, dtype=float)
    y = np.asarray(data.outcome, dtype=float)
    n, k = spend.shape
    spend_scale = spend.mean(axis=0)
    y_scale = float(y.mean())
    problem = _Problem(spend / spend_scale, y / y_scale, base_design(n))
    points = _start_points(k, starts, rng)
    # Prior rows are scaled by the noise level, estimated from the linear fit at the default start.
    rough = problem.y - problem.predict(problem.initial_theta(points[0], problem.y))
    problem.noise = float(np.sqrt(rough @ rough / max(n - N_BASE - k, 1)))

    best_theta, best_cost = None, math.inf
    for point in points:
        theta, cost = problem.solve(problem.initial_theta(point, problem.y), problem.y)
        if cost < best_cost:
            best_theta, best_cost = theta, cost
    # Empirical Bayes: rescale the priors to the noise the fit actually leaves, then polish.
    residual = problem.y - problem.predict(best_theta)
    problem.noise = float(np.sqrt(residual @ residual / max(n - N_BASE - 4 * k, 1)))
    best_theta, _ = problem.solve(best_theta, problem.y)

    fitted = problem.predict(best_theta)
    residuals = problem.y - fitted
    samples = []
    replica_starts = starts if bootstrap_starts is None else bootstrap_starts
    for _ in range(bootstrap):
        y_star = fitted + _block_resample(residuals, rng)
        theta = _refit_cold(problem, y_star, _start_points(k, replica_starts, rng))
        samples.append(_to_units(problem, theta, spend_scale, y_scale))
    point = _to_units(problem, best_theta, spend_scale, y_scale)
    return _assemble(data, problem, best_theta, point, samples, y_scale, spend_scale)


def _refit_cold(problem: _Problem, y: np.ndarray, points: list[np.ndarray]) -> np.ndarray:
    """Best of several fits of `y`, each started from a nonlinear start point (not the point fit)."""
    best_theta, best_cost = None, math.inf
    for point in points:
        theta, cost = problem.solve(problem.initial_theta(point, y), y)
        if cost < best_cost:
            best_theta, best_cost = theta, cost
    return best_theta


def _block_resample(residuals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moving-block resample, so residual autocorrelation survives into the replicas."""
    n = len(residuals)
    block = min(BOOTSTRAP_BLOCK, n)
    starts = rng.integers(0, n - block + 1, size=math.ceil(n / block))
    return np.concatenate([residuals[s:s + block] for s in starts])[:n]


def _to_units(problem: _Problem, theta: np.ndarray, spend_scale: np.ndarray, y_scale: float) -> dict[str, list[float]]:
    _, params = problem.unpack(theta)
    decay = params[:, 0]
    state = [float(adstock(problem.spend[:, c], decay[c])[-1] * spend_scale[c]) for c in range(problem.n_channels)]
    return {
        "decay": [float(v) for v in decay],
        "half_saturation": [float(v) for v in np.exp(params[:, 1]) * spend_scale],
        "shape": [float(v) for v in params[:, 2]],
        "beta": [float(v) for v in params[:, 3] * y_scale],
        "adstock_state": state,
    }


def _goodness(y: np.ndarray, fitted: np.ndarray, n_params: int) -> dict[str, float]:
    e = y - fitted
    sse = float(e @ e)
    sst = float(((y - y.mean()) ** 2).sum())
    rmse = math.sqrt(sse / len(y))
    return {
        "r2": 1.0 - sse / sst if sst > 0 else 0.0,
        "mape": float(np.mean(np.abs(e) / np.maximum(np.abs(y), 1e-12))),
        "rmse": rmse,
        "nrmse": rmse / float(y.max() - y.min()) if y.max() > y.min() else 0.0,
        "durbin_watson": float((np.diff(e) ** 2).sum() / sse) if sse > 0 else 2.0,
        "weeks": float(len(y)),
        "parameters": float(n_params),
    }


def _assemble(data, problem, theta, point, samples, y_scale, spend_scale) -> MarketFit:
    spend = np.asarray(data.spend, dtype=float)
    y = np.asarray(data.outcome, dtype=float)
    n, k = spend.shape
    fitted = problem.predict(theta) * y_scale
    n_params = N_BASE + 4 * k
    sse = float(((y - fitted) ** 2).sum())
    noise_sd = math.sqrt(sse / max(n - n_params, 1))
    b0 = theta[:N_BASE] * y_scale
    # base_design's trend column is t/(n-1) - 0.5; convert to intercept + slope per week.
    slope = b0[1] / max(n - 1, 1)
    channels = []
    for c, name in enumerate(data.channels):
        values = {key: point[key][c] for key in ("decay", "half_saturation", "shape", "beta")}
        intervals = {}
        if samples:
            for key in values:
                draws = [s[key][c] for s in samples]
                intervals[key] = (float(np.percentile(draws, 5)), float(np.percentile(draws, 95)))
            at_mean = [s["beta"][c] * float(hill(spend_scale[c], s["half_saturation"][c], s["shape"][c])) for s in samples]
            intervals["response_at_mean_spend"] = (float(np.percentile(at_mean, 5)), float(np.percentile(at_mean, 95)))
        channels.append(ChannelFit(name=name, intervals=intervals, **values))
    mean = spend.mean(axis=0)
    return MarketFit(
        channels=channels,
        intercept=float(b0[0] - b0[1] / 2),
        trend=float(slope),
        fourier=[float(v) for v in b0[2:]],
        noise_sd=noise_sd,
        goodness=_goodness(y, fitted, n_params),
        bootstrap=samples,
        last_spend=[float(v) for v in spend[-1]],
        adstock_state=point["adstock_state"],
        mean_spend=[float(v) for v in mean],
        min_spend=[float(v) for v in spend.min(axis=0)],
        max_spend=[float(v) for v in spend.max(axis=0)],
        spend_cv=[float(v) for v in spend.std(axis=0) / np.maximum(mean, 1e-12)],
        weeks=n,
    )
