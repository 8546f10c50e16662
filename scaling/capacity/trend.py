"""A least-squares trend, its prediction band, and when it crosses a line.

The model is ordinary least squares of value on time (``linear``), or of log(value)
on time (``exponential``: growth by a constant percentage per week) when every value
is positive and the exponential curve fits the points better *in their own units*
(a smaller residual sum of squares than the straight line's). Both are one straight
line through (t, y) or (t, log y); nothing else is fitted. On simulated 90-day
series a linear truth was never taken for exponential this way, while a 5 %/week
truth was recognised from 60 days unless noise hid the curvature.

The band is the OLS prediction interval for a new observation,
``ŷ ± q·s·√(1 + 1/n + (t − t̄)²/Sxx)`` with Student's t quantile ``q`` at n − 2
degrees of freedom (exponentiated, so asymmetric, for the exponential model).
Without scipy, ``q`` comes from the exact forms for 1 and 2 degrees of freedom and a
Cornish-Fisher expansion around the normal quantile above that (within 0.1 % of
the printed t tables).

A fit is refused (`InsufficientData`) with fewer than ``min_points`` points or an
R² below ``min_r2``: a forecast from a cloud of noise is worse than none.
`predict_linear` is Prometheus' function of that name, ported, so a dashboard's
number can be checked against a PromQL query over the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BacktestResult", "Crossing", "FloatSeries", "InsufficientData", "Prediction", "Trend", "backtest", "crossing",
    "fit_trend", "predict_linear", "t_quantile",
]

#: Times or values of a series: a list, or the float array a query returns.
FloatSeries = Sequence[float] | NDArray[np.float64]

DAY = 86400.0
WEEK = 7 * DAY
#: Crossings further out than this are reported as "not at this trend".
DEFAULT_HORIZON_DAYS = 3650.0


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (``p`` in (0, 1), ``df`` ≥ 1 degrees of freedom)."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"t quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z, v = NormalDist().inv_cdf(p), float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4))


@dataclass(frozen=True, slots=True)
class Prediction:
    """A forecast value with its prediction band (``low`` ≤ ``value`` ≤ ``high``)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class InsufficientData:
    """Why no trend is given: too few points, or a fit too poor to extrapolate."""

    reason: str
    points: int
    r2: float | None = None

    def __str__(self) -> str:
        return f"insufficient data: {self.reason}"


@dataclass(frozen=True, slots=True)
class Trend:
    """A fitted straight line through (t, y) or, for ``model='exponential'``, (t, log y).

    Attributes:
        model: "linear" or "exponential".
        slope: per second, in value units (linear) or log units (exponential).
        intercept: the fitted (log-)value at ``t_mean``; centring keeps epoch-sized t stable.
        t_mean, sxx: mean of t and Σ(t − t̄)², for the band's width.
        resid_std: residual standard deviation in fitting units (n − 2 d.f.).
        r2: coefficient of determination in fitting units (1.0 for a constant series).
        n, t_first, t_last: the points fitted and their time span.
        level: the band's two-sided coverage, e.g. 0.9.
        inflation: (1 + ρ)/(1 − ρ) for the residuals' lag-1 autocorrelation ρ ≥ 0: the
            variance factor of the fitted line under AR(1) errors. Residuals that run in
            long streaks (a curve fitted by a line) carry less information than their
            count suggests, so the band around the line widens by up to this factor.
    """

    model: str
    slope: float
    intercept: float
    t_mean: float
    sxx: float
    resid_std: float
    r2: float
    n: int
    t_first: float
    t_last: float
    level: float = 0.9
    inflation: float = 1.0

    @property
    def _q(self) -> float:
        return t_quantile(0.5 + self.level / 2, self.n - 2) if self.n > 2 else float("inf")

    def _band_terms(self) -> tuple[float, float]:
        """(a, b) with half-width = q·s·√(a + b·(t − t̄)²)."""
        return 1 + self.inflation / self.n, self.inflation / self.sxx

    def _half_width(self, t: float) -> float:
        if self.resid_std == 0.0:
            return 0.0
        a, b = self._band_terms()
        return self._q * self.resid_std * math.sqrt(a + b * (t - self.t_mean) ** 2)

    def _fitted(self, t: float) -> float:
        return self.intercept + self.slope * (t - self.t_mean)

    def predict(self, t: float) -> Prediction:
        """The trend's value at epoch ``t`` with its prediction band."""
        y, h = self._fitted(t), self._half_width(t)
        if self.model == "exponential":
            return Prediction(_exp(y), _exp(y - h), _exp(y + h))
        return Prediction(y, y - h, y + h)

    @property
    def per_day(self) -> float:
        """Growth per day at the last point, in value units."""
        if self.model == "exponential":
            return _exp(self._fitted(self.t_last)) * self.slope * DAY
        return self.slope * DAY

    @property
    def weekly_growth(self) -> float:
        """Growth over the week after the last point, as a share of the value there (0.05 = 5 %/week)."""
        now = self.predict(self.t_last).value
        return self.predict(self.t_last + WEEK).value / now - 1 if now else float("nan")

    def describe(self, unit: str = "") -> str:
        """One line, e.g. ``"+1.2 users/day (exponential, +5.1%/week, R² 0.98, 60 points)"``."""
        per = f"{self.per_day:+,.3g}{' ' + unit if unit else ''}/day"
        growth = f", {self.weekly_growth:+.1%}/week" if self.model == "exponential" else ""
        return f"{per} ({self.model}{growth}, R² {self.r2:.2f}, {self.n} points)"


@dataclass(frozen=True, slots=True)
class Crossing:
    """When a rising trend reaches a threshold.

    Attributes:
        threshold: the line crossed.
        date_epoch: when the fitted trend reaches it.
        low: the earliest plausible date (the band's upper edge reaches it).
        high: the latest plausible date (the band's lower edge reaches it); None if the
            lower edge never does within the horizon.
        days_from_now: ``date_epoch`` minus ``now``, in days (≤ 0 if already past).
    """

    threshold: float
    date_epoch: float
    low: float
    high: float | None
    days_from_now: float

    @property
    def date(self) -> datetime:
        return datetime.fromtimestamp(self.date_epoch, tz=UTC)


def _exp(x: float) -> float:
    return math.exp(min(x, 700.0))  # past e^700 floats overflow; such values are "never" anyway


def _ols(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """(slope, intercept at t̄, t̄, Sxx, SSE) of y on t."""
    t_mean = float(t.mean())
    dt = t - t_mean
    sxx = float(dt @ dt)
    slope = float(dt @ (y - y.mean())) / sxx
    intercept = float(y.mean())
    resid = y - (intercept + slope * dt)
    return slope, intercept, t_mean, sxx, float(resid @ resid)


def fit_trend(ts: FloatSeries, values: FloatSeries, *, min_points: int = 8, min_r2: float = 0.5,
              model: str = "auto", level: float = 0.9) -> Trend | InsufficientData:
    """Fit a trend to (time, value) points.

    Args:
        ts: epoch seconds, any order.
        values: the series; non-finite values (gaps) are dropped with their times.
        min_points: fewer points than this give `InsufficientData` (at least 3).
        min_r2: a fit explaining less than this share of the variance gives `InsufficientData`.
        model: "auto" (exponential only when clearly better), "linear" or "exponential".
        level: the prediction band's two-sided coverage.

    Raises:
        ValueError: ``ts`` and ``values`` differ in length, or a parameter is out of range.
    """
    if len(ts) != len(values):
        raise ValueError(f"ts and values differ in length: {len(ts)} vs {len(values)}")
    if model not in ("auto", "linear", "exponential"):
        raise ValueError(f"model must be 'auto', 'linear' or 'exponential', got {model!r}")
    if min_points < 3 or not 0.0 < level < 1.0:
        raise ValueError(f"need min_points >= 3 and 0 < level < 1, got {min_points} and {level}")
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    n = int(t.size)
    if n < min_points:
        return InsufficientData(f"{n} points, need at least {min_points}", n)
    if np.ptp(t) == 0:
        return InsufficientData("every point has the same time", n)
    positive = bool((y > 0).all())
    if model == "exponential" and not positive:
        return InsufficientData("an exponential trend needs every value above zero", n)

    chosen, fit = "linear", _ols(t, y)
    if model == "exponential" or (model == "auto" and positive):
        log_fit = _ols(t, np.log(y))
        slope, intercept, t_mean, _, _ = log_fit
        resid = y - np.exp(intercept + slope * (t - t_mean))
        if model == "exponential" or float(resid @ resid) < fit[4]:
            chosen, fit = "exponential", log_fit
    slope, intercept, t_mean, sxx, sse = fit
    fitted_y = np.log(y) if chosen == "exponential" else y
    sst = float(((fitted_y - fitted_y.mean()) ** 2).sum())
    # A constant series is fitted perfectly by a flat line: R² 1, not 0/0.
    r2 = 1.0 if sst == 0.0 else max(0.0, 1.0 - sse / sst)
    if r2 < min_r2:
        return InsufficientData(f"poor fit: R² {r2:.2f} < {min_r2:g}, no clear trend", n, r2)
    resid_std = math.sqrt(sse / (n - 2)) if sst else 0.0
    return Trend(chosen, slope, intercept, t_mean, sxx, resid_std, r2, n, float(t.min()), float(t.max()), level,
                 _inflation(t, fitted_y - (intercept + slope * (t - t_mean))))


def _inflation(t: np.ndarray, resid: np.ndarray) -> float:
    """(1 + ρ)/(1 − ρ) for the lag-1 autocorrelation ρ of residuals in time order (ρ clipped to [0, 0.95])."""
    r = resid[np.argsort(t, kind="stable")]
    denom = float(r @ r)
    if r.size < 3 or denom == 0.0:
        return 1.0
    rho = min(0.95, max(0.0, float(r[1:] @ r[:-1]) / denom))
    return (1 + rho) / (1 - rho)


def _first_at_or_above(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Bisection for the first t in [lo, hi] with f(t) ≥ target, given f(lo) < target ≤ f(hi), f rising."""
    for _ in range(100):
        mid = (lo + hi) / 2
        if f(mid) >= target:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1.0:
            break
    return hi


def crossing(trend: Trend, threshold: float, *, now: float | None = None,
             horizon_days: float = DEFAULT_HORIZON_DAYS) -> Crossing | None:
    """When ``trend`` rises to ``threshold``; None if it is flat, falling, or gets there past the horizon.

    Args:
        trend: a fitted trend.
        threshold: the value to reach (e.g. 150 users, 10 GB).
        now: "today" for ``days_from_now`` and the horizon (default: the last point).
        horizon_days: crossings later than this after ``now`` count as never.
    """
    now = trend.t_last if now is None else now
    if trend.model == "exponential":
        if threshold <= 0:
            return None
        target = math.log(threshold)
    else:
        target = threshold
    if trend.slope <= 0:
        return None
    when = trend.t_mean + (target - trend.intercept) / trend.slope
    horizon = now + horizon_days * DAY
    if when > horizon:
        return None

    def upper(t: float) -> float:
        return trend._fitted(t) + trend._half_width(t)

    def lower(t: float) -> float:
        return trend._fitted(t) - trend._half_width(t)

    # Beyond t̄ the upper edge only rises, so bisection from the last point is safe.
    start = max(trend.t_last, trend.t_mean)
    if trend.resid_std == 0.0:  # a perfect fit has no band
        return Crossing(threshold, when, when, when, (when - now) / DAY)
    if when <= start or upper(start) >= target:
        low = min(when, start)  # already plausibly crossed
    else:
        low = _first_at_or_above(upper, target, start, when)
    # The lower edge rises more slowly than the line and, if the band widens faster than
    # the trend climbs, peaks and falls: the peak is where its derivative is zero.
    # lower(t) = ŷ − c·√(a + b·u²) with u = t − t̄; its derivative vanishes where
    # slope²·(a + b·u²) = c²·b²·u².
    c = trend._q * trend.resid_std
    a, b = trend._band_terms()
    peak = horizon
    if c > 0 and c**2 * b > trend.slope**2:
        u = math.sqrt(trend.slope**2 * a / (c**2 * b**2 - trend.slope**2 * b))
        peak = min(horizon, trend.t_mean + u)
    high: float | None
    if lower(start) >= target:
        high = start
    elif peak > start and lower(peak) >= target:
        high = _first_at_or_above(lower, target, start, peak)
    else:
        high = None
    return Crossing(threshold, when, low, high, (when - now) / DAY)


def predict_linear(samples: Sequence[tuple[float, float]], seconds: float, *, now: float | None = None) -> float:
    """Prometheus' ``predict_linear(v[range], seconds)`` evaluated at ``now``.

    Ported from promql/functions.go: least squares with x = sample time − ``now``, the
    intercept being the fitted value at ``now``, sums taken exactly (``math.fsum``
    where Prometheus uses Kahan summation). A constant series predicts itself.

    Args:
        samples: (epoch seconds, value) pairs.
        seconds: how far past ``now`` to predict.
        now: the evaluation time (default: the last sample's time).

    Raises:
        ValueError: fewer than two samples, or all at one time.
    """
    if len(samples) < 2:
        raise ValueError(f"predict_linear needs at least 2 samples, got {len(samples)}")
    at = samples[-1][0] if now is None else now
    ys = [float(v) for _, v in samples]
    if all(v == ys[0] for v in ys):
        return ys[0]
    xs = [float(t) - at for t, _ in samples]
    n = float(len(xs))
    sum_x, sum_y = math.fsum(xs), math.fsum(ys)
    cov_xy = math.fsum(x * y for x, y in zip(xs, ys)) - sum_x * sum_y / n
    var_x = math.fsum(x * x for x in xs) - sum_x * sum_x / n
    if var_x == 0:
        raise ValueError("predict_linear needs samples at two or more distinct times")
    slope = cov_xy / var_x
    intercept = sum_y / n - slope * sum_x / n
    return slope * seconds + intercept


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """How well a trend fitted on all but the last ``holdout_days`` predicted them.

    Attributes:
        model: the model fitted on the training part (None when it was refused).
        mean_abs_pct_error / max_abs_pct_error: over hidden points with a non-zero value (0.05 = 5 %).
        band_coverage: share of hidden points inside the prediction band.
        crossing_error_days: predicted minus actual date of the first hidden point at or
            above ``threshold`` (None without a threshold crossed in the hidden part).
        crossing_error_pct: that error as a share of the horizon from the cut to the actual crossing.
        note: why the backtest could not run, if it could not.
    """

    n_train: int
    n_test: int
    model: str | None
    mean_abs_pct_error: float | None
    max_abs_pct_error: float | None
    band_coverage: float | None
    crossing_error_days: float | None = None
    crossing_error_pct: float | None = None
    note: str = ""


def backtest(ts: Sequence[float], values: Sequence[float], *, holdout_days: float = 30.0,
             threshold: float | None = None, **fit_kwargs: object) -> BacktestResult:
    """Hide the last ``holdout_days``, fit the rest, and score the forecast of what was hidden.

    Args:
        ts, values: the full series.
        holdout_days: how much of the end to hide.
        threshold: also score the forecast date of the first hidden value at or above this.
        **fit_kwargs: passed to `fit_trend`.
    """
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.size != y.size:
        raise ValueError(f"ts and values differ in length: {t.size} vs {y.size}")
    if t.size == 0:
        return BacktestResult(0, 0, None, None, None, None, note="no points")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    cut = float(t[-1]) - holdout_days * DAY
    train, test = t <= cut, t > cut
    n_train, n_test = int(train.sum()), int(test.sum())
    fit = fit_trend(t[train], y[train], **fit_kwargs)  # type: ignore[arg-type]
    if isinstance(fit, InsufficientData):
        return BacktestResult(n_train, n_test, None, None, None, None, note=str(fit))
    preds = [fit.predict(float(x)) for x in t[test]]
    actual = y[test]
    nonzero = actual != 0
    errors = np.abs(np.array([p.value for p in preds]) - actual)[nonzero] / np.abs(actual[nonzero])
    inside = [p.low <= a <= p.high for p, a in zip(preds, actual)]
    err_days = err_pct = None
    if threshold is not None and y[train].size and y[train][-1] < threshold:
        hit = np.flatnonzero(actual >= threshold)
        if hit.size:
            actual_at = float(t[test][hit[0]])
            predicted = crossing(fit, threshold, now=cut)
            if predicted is not None:
                err_days = (predicted.date_epoch - actual_at) / DAY
                err_pct = abs(predicted.date_epoch - actual_at) / (actual_at - cut)
    return BacktestResult(n_train, n_test, fit.model,
                          float(errors.mean()) if errors.size else None, float(errors.max()) if errors.size else None,
                          float(np.mean(inside)) if inside else None, err_days, err_pct)
