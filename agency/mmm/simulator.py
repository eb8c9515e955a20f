"""Market simulator and the response-curve equations shared by fitting and allocation.

Model (one row per week t = 0..n-1, one column per channel c):

    adstock   a_c,t = decay_c * a_c,t-1 + (1 - decay_c) * spend_c,t,   a_c,-1 = spend_c,0
              (normalized: a constant spend s has steady state s)
    hill      h(a) = a^S / (a^S + K^S)
    outcome   y_t = baseline + trend * t + season_t + sum_c beta_c * h_c(a_c,t) + noise_t

``beta_c`` is the weekly outcome at saturation, ``K`` (half_saturation) the weekly spend in
dollars that yields half of it, ``S`` (shape) the Hill exponent (S > 1 gives an S-curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from scipy.signal import lfilter

SEASON_PERIOD_WEEKS = 365.25 / 7
DEFAULT_CHANNEL_NAMES = (
    "search", "social", "display", "video", "email", "affiliate",
    "audio", "ctv", "influencer", "print", "ooh", "retail_media",
)


@dataclass(frozen=True)
class ChannelTruth:
    name: str
    decay: float
    half_saturation: float
    shape: float
    beta: float


@dataclass(frozen=True)
class MarketSpec:
    channels: tuple[ChannelTruth, ...]
    weeks: int
    mean_spend: tuple[float, ...]
    spend_variation: float  # coefficient of variation of weekly spend per channel
    baseline: float  # weekly non-media outcome at t = 0
    trend: float  # change of the baseline per week (outcome units)
    seasonality: float  # amplitude of the annual cycle as a fraction of the baseline
    noise: float  # noise standard deviation as a fraction of the mean expected outcome
    seed: int
    start: str = "2024-01-01"


@dataclass
class MarketData:
    channels: list[str]
    week_starts: list[str]
    spend: np.ndarray  # (weeks, channels) dollars
    outcome: np.ndarray  # (weeks,)


def adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    """Geometric adstock of one channel's weekly spend, started at its first week's level."""
    spend = np.asarray(spend, dtype=float)
    if len(spend) == 0:
        return spend.copy()
    out, _ = lfilter([1.0 - decay], [1.0, -decay], spend, zi=[decay * spend[0]])
    return out


def hill(x: np.ndarray | float, half_saturation: float, shape: float) -> np.ndarray:
    """x^S / (x^S + K^S), computed as 1 / (1 + (K/x)^S) so large exponents cannot overflow."""
    x = np.asarray(x, dtype=float)
    ratio = np.exp(np.clip(shape * (math.log(half_saturation) - np.log(np.maximum(x, 1e-300))), -700.0, 700.0))
    return np.where(x > 0, 1.0 / (1.0 + ratio), 0.0)


@dataclass(frozen=True)
class MediaModel:
    """Per-channel response curves plus the adstock state at the end of history.

    Both a fitted market and the true simulated market reduce to this, so the optimizer and
    the regret benchmark evaluate allocations with exactly the same code.
    """

    channels: tuple[str, ...]
    decay: np.ndarray
    half_saturation: np.ndarray
    shape: np.ndarray
    beta: np.ndarray
    adstock_state: np.ndarray  # adstock after the last history week
    last_spend: np.ndarray  # spend in the last history week

    def index(self, channel: str) -> int:
        try:
            return self.channels.index(channel)
        except ValueError:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(self.channels)}") from None

    def steady_response(self, c: int, weekly_spend: np.ndarray | float) -> np.ndarray:
        """Weekly media outcome once a constant weekly spend has fully carried over."""
        return self.beta[c] * hill(weekly_spend, self.half_saturation[c], self.shape[c])

    def steady_marginal(self, c: int, weekly_spend: np.ndarray | float) -> np.ndarray:
        """d steady_response / d weekly spend: extra weekly outcome per extra dollar."""
        x = np.maximum(np.asarray(weekly_spend, dtype=float), 1e-300)
        h = hill(x, self.half_saturation[c], self.shape[c])
        return self.beta[c] * self.shape[c] * h * (1.0 - h) / x

    def _horizon_adstock(self, c: int, weekly_spend: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        # Constant spend x from state a0: a_t = x + decay^t (a0 - x), t = 1..H.
        carry = self.decay[c] ** np.arange(1, horizon + 1)
        x = np.asarray(weekly_spend, dtype=float)[..., None]
        return x + carry * (self.adstock_state[c] - x), 1.0 - carry

    def horizon_outcome(self, c: int, weekly_spend: np.ndarray | float, horizon: int) -> np.ndarray:
        """Media outcome of channel c summed over the next `horizon` weeks at a constant weekly spend."""
        a, _ = self._horizon_adstock(c, weekly_spend, horizon)
        return self.beta[c] * hill(a, self.half_saturation[c], self.shape[c]).sum(axis=-1)

    def horizon_marginal(self, c: int, weekly_spend: np.ndarray | float, horizon: int) -> np.ndarray:
        """d horizon_outcome / d weekly_spend."""
        a, da_dx = self._horizon_adstock(c, weekly_spend, horizon)
        h = hill(a, self.half_saturation[c], self.shape[c])
        dh_da = self.shape[c] * h * (1.0 - h) / np.maximum(a, 1e-300)
        return self.beta[c] * (dh_da * da_dx).sum(axis=-1)

    def total_horizon_outcome(self, weekly_spend: np.ndarray, horizon: int) -> float:
        return float(sum(self.horizon_outcome(c, weekly_spend[c], horizon) for c in range(len(self.channels))))


def media_model_from_parameters(
    channels: list[str], decay, half_saturation, shape, beta, spend: np.ndarray
) -> MediaModel:
    decay = np.asarray(decay, dtype=float)
    state = np.array([adstock(spend[:, c], decay[c])[-1] for c in range(len(channels))])
    return MediaModel(
        channels=tuple(channels),
        decay=decay,
        half_saturation=np.asarray(half_saturation, dtype=float),
        shape=np.asarray(shape, dtype=float),
        beta=np.asarray(beta, dtype=float),
        adstock_state=state,
        last_spend=np.asarray(spend[-1], dtype=float).copy(),
    )


def truth_model(spec: MarketSpec, data: MarketData) -> MediaModel:
    """The true response curves of a simulated market, with carry-over from its history."""
    ch = spec.channels
    return media_model_from_parameters(
        [c.name for c in ch], [c.decay for c in ch], [c.half_saturation for c in ch],
        [c.shape for c in ch], [c.beta for c in ch], data.spend,
    )


def random_market(
    seed: int,
    *,
    n_channels: int | None = None,
    weeks: int = 104,
    spend_variation: float = 0.4,
    channel_names: list[str] | None = None,
) -> MarketSpec:
    """A plausible market: decay 0.1-0.7, shape 0.8-2.5, K 0.5-2x mean spend, media 30-60% of outcome."""
    rng = np.random.default_rng(seed)
    if channel_names is not None:
        n_channels = len(channel_names)
    if n_channels is None:
        n_channels = int(rng.integers(3, 7))
    if n_channels < 1 or weeks < 1 or spend_variation < 0:
        raise ValueError("need at least one channel, one week and a non-negative spend variation")
    names = list(channel_names) if channel_names else _channel_names(n_channels)
    mean_spend = np.exp(rng.uniform(math.log(2_000), math.log(30_000), n_channels))
    decay = rng.uniform(0.1, 0.7, n_channels)
    shape = rng.uniform(0.8, 2.5, n_channels)
    half_saturation = mean_spend * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n_channels))
    baseline = float(rng.uniform(500, 5_000))
    media_share = float(rng.uniform(0.3, 0.6))
    media_total = baseline * media_share / (1 - media_share)
    weights = rng.dirichlet(np.full(n_channels, 2.0))
    beta = media_total * weights / hill_each(mean_spend, half_saturation, shape)
    channels = tuple(
        ChannelTruth(names[i], float(decay[i]), float(half_saturation[i]), float(shape[i]), float(beta[i]))
        for i in range(n_channels)
    )
    return MarketSpec(
        channels=channels,
        weeks=weeks,
        mean_spend=tuple(float(m) for m in mean_spend),
        spend_variation=spend_variation,
        baseline=baseline,
        trend=float(rng.uniform(-0.1, 0.2) * baseline / 52),
        seasonality=float(rng.uniform(0.05, 0.15)),
        noise=float(rng.uniform(0.05, 0.10)),
        seed=seed,
    )


def hill_each(x: np.ndarray, half_saturation: np.ndarray, shape: np.ndarray) -> np.ndarray:
    return np.array([float(hill(x[i], half_saturation[i], shape[i])) for i in range(len(x))])


def _channel_names(n: int) -> list[str]:
    return [DEFAULT_CHANNEL_NAMES[i] if i < len(DEFAULT_CHANNEL_NAMES) else f"channel_{i + 1}" for i in range(n)]


def simulate_spend(spec: MarketSpec, rng: np.random.Generator) -> np.ndarray:
    """Log-normal weekly spend around each channel's mean with AR(1) persistence (flighting)."""
    n, k = spec.weeks, len(spec.channels)
    sigma = math.sqrt(math.log1p(spec.spend_variation**2))
    rho = 0.5
    z = np.empty((n, k))
    z[0] = rng.standard_normal(k)
    for t in range(1, n):
        z[t] = rho * z[t - 1] + math.sqrt(1 - rho**2) * rng.standard_normal(k)
    return np.asarray(spec.mean_spend) * np.exp(sigma * z - sigma**2 / 2)


def base_outcome(spec: MarketSpec, weeks: np.ndarray, phase: tuple[float, float]) -> np.ndarray:
    angle = 2 * np.pi * weeks / SEASON_PERIOD_WEEKS
    season = np.sin(angle + phase[0]) + 0.3 * np.sin(2 * angle + phase[1])
    return spec.baseline + spec.trend * weeks + spec.seasonality * spec.baseline * season


def simulate(spec: MarketSpec) -> MarketData:
    """Weekly spend and outcome of a market; deterministic in spec.seed."""
    rng = np.random.default_rng([spec.seed, 1])
    spend = simulate_spend(spec, rng)
    weeks = np.arange(spec.weeks, dtype=float)
    phase = (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi)))
    media = np.zeros(spec.weeks)
    for c, ch in enumerate(spec.channels):
        media += ch.beta * hill(adstock(spend[:, c], ch.decay), ch.half_saturation, ch.shape)
    expected = base_outcome(spec, weeks, phase) + media
    outcome = expected + rng.normal(0.0, spec.noise * float(np.mean(expected)), spec.weeks)
    start = date.fromisoformat(spec.start)
    monday = start - timedelta(days=start.weekday())
    return MarketData(
        channels=[c.name for c in spec.channels],
        week_starts=[(monday + timedelta(weeks=i)).isoformat() for i in range(spec.weeks)],
        spend=spend,
        outcome=outcome,
    )
