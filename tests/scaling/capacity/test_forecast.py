"""Trends, bands, crossings, predict_linear and backtests; forecasts of metrics-DB series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import Engine

from scaling.capacity.forecast import (
    forecast_db_bytes,
    forecast_monthly_ai_spend,
    forecast_rows_per_table,
    forecast_series,
    forecast_users,
)
from scaling.capacity.trend import (
    InsufficientData,
    Trend,
    backtest,
    crossing,
    fit_trend,
    predict_linear,
    t_quantile,
)
from scaling.metrics.records import AiUsage, TableStats, UserCounts
from scaling.metrics.writer import MetricsWriter
from scaling.settings import Settings
from tests.scaling.capacity.conftest import DAY, NOW

DAYS = np.arange(90, dtype=np.float64)
T = NOW - (89 - DAYS) * DAY  # 90 daily points ending at NOW


def _linear(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    return 20 + 1.5 * DAYS + np.random.default_rng(seed).normal(0, noise, DAYS.size)


def _compound(weekly: float = 0.05, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    return 20 * (1 + weekly) ** (DAYS / 7) * np.random.default_rng(seed).lognormal(0, noise, DAYS.size)


def _within(predicted: float, truth: float, share: float) -> bool:
    """The predicted date is within ``share`` of the horizon from NOW to the true date."""
    return abs(predicted - truth) <= share * (truth - NOW)


# --- the fit ---------------------------------------------------------------------------------------

def test_linear_trend_recovers_the_crossing_date_within_5_percent() -> None:
    """A noisy straight line is fitted as linear and dated within 5% of the true crossing."""
    fit = fit_trend(T, _linear(noise=3.0))
    assert isinstance(fit, Trend) and fit.model == "linear"
    truth = T[0] + (500 - 20) / 1.5 * DAY  # 320 days after the first point
    c = crossing(fit, 500, now=NOW)
    assert c is not None and _within(c.date_epoch, truth, 0.05)
    assert c.days_from_now == pytest.approx((c.date_epoch - NOW) / DAY)


def test_compounding_growth_is_fitted_in_log_space_and_dated_within_5_percent() -> None:
    """5 %/week compounding growth is recognised as exponential, its rate recovered and its crossing dated."""
    fit = fit_trend(T, _compound(noise=0.01))
    assert isinstance(fit, Trend) and fit.model == "exponential"
    assert fit.weekly_growth == pytest.approx(0.05, abs=0.002)
    truth = T[0] + 7 * math.log(500 / 20) / math.log(1.05) * DAY
    c = crossing(fit, 500, now=NOW)
    assert c is not None and _within(c.date_epoch, truth, 0.05)


@pytest.mark.parametrize("seed", range(5))
def test_a_straight_line_is_never_taken_for_compounding_growth(seed: int) -> None:
    """Multiplicative noise on a linear truth still gives the linear model (exponential would overshoot)."""
    y = _linear() * np.random.default_rng(seed).lognormal(0, 0.05, DAYS.size)
    fit = fit_trend(T, y)
    assert isinstance(fit, Trend) and fit.model == "linear"


def test_band_contains_the_true_crossing_date() -> None:
    """With noise the band brackets both the true crossing date and the fitted one."""
    fit = fit_trend(T, _linear(noise=4.0, seed=7), level=0.9)
    assert isinstance(fit, Trend)
    truth = T[0] + (300 - 20) / 1.5 * DAY
    c = crossing(fit, 300, now=NOW)
    assert c is not None and c.high is not None
    assert c.low < truth < c.high
    assert c.low < c.date_epoch < c.high


def test_a_90_percent_band_holds_about_90_percent_of_new_observations() -> None:
    """Over many noisy histories, about 90 % of later observations fall inside the 90 % band."""
    rng = np.random.default_rng(11)
    hits = []
    for seed in range(60):
        fit = fit_trend(T, _linear(noise=4.0, seed=100 + seed), level=0.9)
        assert isinstance(fit, Trend)
        future = NOW + rng.uniform(1, 60, 50) * DAY
        observed = 20 + 1.5 * (future - T[0]) / DAY + rng.normal(0, 4.0, future.size)
        hits += [(p := fit.predict(t)).low <= y <= p.high for t, y in zip(future, observed)]
    assert 0.87 <= np.mean(hits) <= 0.93


def test_exponential_band_is_asymmetric_around_the_forecast() -> None:
    """Exponentiating a symmetric log band makes the upper side wider than the lower."""
    fit = fit_trend(T, _compound(noise=0.03, seed=2))
    assert isinstance(fit, Trend) and fit.model == "exponential"
    p = fit.predict(NOW + 60 * DAY)
    assert p.high - p.value > p.value - p.low > 0


def test_too_few_points_is_insufficient_data() -> None:
    """Below min_points no trend is given, with the count in the reason."""
    fit = fit_trend(T[:7], _linear()[:7], min_points=8)
    assert isinstance(fit, InsufficientData)
    assert fit.points == 7 and "7 points, need at least 8" in str(fit)


def test_noise_without_trend_is_insufficient_data() -> None:
    """A cloud of noise has a low R² and is refused rather than extrapolated."""
    y = 100 + np.random.default_rng(3).normal(0, 10, DAYS.size)
    fit = fit_trend(T, y, min_r2=0.5)
    assert isinstance(fit, InsufficientData)
    assert fit.r2 is not None and fit.r2 < 0.5 and "poor fit" in fit.reason


def test_gaps_are_dropped_and_a_constant_series_is_flat_and_never_crosses() -> None:
    """NaN values are gaps; a constant series is a perfect flat fit with no crossing."""
    y = np.full(DAYS.size, 42.0)
    y[::10] = np.nan
    fit = fit_trend(T, y)
    assert isinstance(fit, Trend) and fit.n == 81 and fit.slope == 0 and fit.r2 == 1.0
    assert crossing(fit, 50) is None


def test_falling_trend_and_far_crossings_are_none() -> None:
    """A falling series never crosses upward; a crossing past the horizon counts as never."""
    falling = fit_trend(T, 500 - 2 * DAYS)
    assert isinstance(falling, Trend) and crossing(falling, 1000) is None
    slow = fit_trend(T, 20 + 0.001 * DAYS)
    assert isinstance(slow, Trend) and crossing(slow, 1000, horizon_days=3650) is None


def test_mismatched_lengths_are_a_clear_error() -> None:
    """ts and values of different lengths raise one line naming both lengths."""
    with pytest.raises(ValueError, match="differ in length: 3 vs 2"):
        fit_trend([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize(("p", "df", "table"), [(0.95, 1, 6.314), (0.95, 2, 2.920), (0.95, 3, 2.353),
                                                 (0.95, 6, 1.943), (0.95, 30, 1.697), (0.975, 4, 2.776),
                                                 (0.975, 10, 2.228), (0.975, 120, 1.980)])
def test_t_quantile_matches_printed_tables(p: float, df: int, table: float) -> None:
    """The scipy-free t quantile is within 0.1 % of the printed t table."""
    assert t_quantile(p, df) == pytest.approx(table, rel=1e-3)


# --- predict_linear ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_ols_equals_predict_linear_to_1e9(seed: int) -> None:
    """The trend's linear fit and the Prometheus predict_linear port agree on the same samples to 1e-9."""
    rng = np.random.default_rng(seed)
    ts = np.sort(NOW - rng.uniform(0, 30 * DAY, 200))
    ys = 1e3 + 5e-4 * (ts - NOW) + rng.normal(0, 3, ts.size)
    samples = list(zip(ts.tolist(), ys.tolist()))
    fit = fit_trend(ts, ys, model="linear", min_r2=0.0)
    assert isinstance(fit, Trend)
    for ahead in (0.0, 3600.0, 7 * DAY, 90 * DAY):
        assert math.isclose(fit.predict(NOW + ahead).value, predict_linear(samples, ahead, now=NOW),
                            rel_tol=1e-9, abs_tol=1e-9)


def test_predict_linear_follows_prometheus_semantics() -> None:
    """Exact on a line, the constant for a constant series, and an error below two samples."""
    line = [(NOW + 60 * i, 2.0 * 60 * i + 1) for i in range(10)]
    assert predict_linear(line, 600, now=NOW + 540) == pytest.approx(2 * 1140 + 1)
    assert predict_linear([(NOW, 7.0), (NOW + 60, 7.0)], 1e6) == 7.0
    with pytest.raises(ValueError, match="at least 2 samples"):
        predict_linear([(NOW, 1.0)], 60)


# --- backtest and thresholds -----------------------------------------------------------------------------

def test_backtest_scores_the_hidden_month() -> None:
    """Hiding 30 days of compounding growth: small error, the band covers most points, crossing within 15 %."""
    noisy = backtest(T, _compound(noise=0.02, seed=4), holdout_days=30)
    assert noisy.n_train == 60 and noisy.n_test == 30
    assert noisy.model == "exponential"
    assert noisy.mean_abs_pct_error is not None and noisy.mean_abs_pct_error < 0.05
    assert noisy.band_coverage is not None and noisy.band_coverage >= 0.7
    # The "actual" crossing is the first observation over the line, so noise moves it too: keep it small here.
    steady = backtest(T, _compound(noise=0.005, seed=4), holdout_days=30, threshold=34)  # crossed on day ~76
    assert steady.crossing_error_days is not None and steady.crossing_error_pct is not None
    assert steady.crossing_error_pct < 0.15


def test_backtest_reports_why_it_could_not_run() -> None:
    """Too little training data gives a note instead of errors."""
    result = backtest(T[:35], _linear()[:35], holdout_days=30)
    assert result.mean_abs_pct_error is None and "insufficient data" in result.note


def test_forecast_series_marks_reached_thresholds_and_the_next_one() -> None:
    """Thresholds at or below the latest value are reached; the next one carries the crossing."""
    f = forecast_series("users", T, _linear(), [("150 users", 150), ("50 users", 50), ("500 users", 500)], now=NOW)
    assert [t.reached for t in f.thresholds] == [True, True, False]  # latest is 153.5
    assert f.thresholds[0].crossing is None
    assert f.next is not None and f.next.threshold == 500 and f.next.crossing is not None
    assert f.at(10) is not None and f.at(10).value == pytest.approx(153.5 + 15)  # type: ignore[union-attr]


# --- from the metrics DB -----------------------------------------------------------------------------------

def _grow_users(writer: MetricsWriter, days: int = 30) -> None:
    writer.record([UserCounts(total=40 + 2 * d, with_lastfm=30 + d, active=5, ts=NOW - (days - 1 - d) * DAY - 60)
                   for d in range(days)])


def test_forecast_users_dates_the_next_trigger(writer: MetricsWriter, engine: Engine) -> None:
    """Users growing 2/day from 40 reach 100 in ~1 day and 150 in ~26 days; 50 is already passed."""
    _grow_users(writer)  # 98 users now
    f = forecast_users(engine, now=NOW)
    assert f.points == 30 and f.latest == 98
    by = {t.threshold: t for t in f.thresholds}
    assert by[50].reached and not by[100].reached
    c = by[150].crossing
    assert c is not None and c.days_from_now == pytest.approx(26, rel=0.05)
    assert by[1000].crossing is not None and by[1000].crossing.days_from_now == pytest.approx(451, rel=0.05)


def test_forecast_users_without_history_is_insufficient(writer: MetricsWriter, engine: Engine) -> None:
    """Three days of user counts are not enough for a trend."""
    _grow_users(writer, days=3)
    f = forecast_users(engine, now=NOW)
    assert isinstance(f.fit, InsufficientData) and f.latest == 44
    assert all(t.crossing is None for t in f.thresholds)


def test_forecast_db_bytes_and_rows(writer: MetricsWriter, engine: Engine) -> None:
    """DB bytes growing 20 MB/day from 4 GB reach 80 % of 10 GB in ~166 days; a flat table stays flat."""
    mb, gb = 1024**2, 1024**3
    rows = []
    for d in range(40):
        ts = NOW - (39 - d) * DAY - 60
        rows += [TableStats("*", 10_000 + 100 * d, int(4 * gb + 20 * mb * d), ts=ts),
                 TableStats("sessions", 5_000, 1_000_000, ts=ts), TableStats("searches", 1_000 + 100 * d, ts=ts)]
    writer.record(rows)
    db = forecast_db_bytes(engine, now=NOW, limit_bytes=10 * gb)
    eighty, full = db.thresholds
    assert eighty.crossing is not None and full.crossing is not None
    now_bytes = 4 * gb + 780 * mb
    assert db.latest == now_bytes and not eighty.reached
    assert eighty.crossing.days_from_now == pytest.approx((8 * gb - now_bytes) / (20 * mb), rel=0.05)
    assert full.crossing.days_from_now == pytest.approx((10 * gb - now_bytes) / (20 * mb), rel=0.05)
    tables = forecast_rows_per_table(engine, now=NOW, thresholds={"searches": 10_000})
    assert set(tables) == {"sessions", "searches"}
    assert tables["sessions"].trend is not None and tables["sessions"].trend.slope == 0
    assert tables["searches"].trend is not None and tables["searches"].trend.per_day == pytest.approx(100)
    assert tables["searches"].next is not None and tables["searches"].next.crossing is not None


def test_forecast_monthly_ai_spend_against_budget(writer: MetricsWriter, engine: Engine) -> None:
    """$1/day rising by $0.05/day: month-to-date, projected month total and the run-rate's budget crossing."""
    calls = []
    for d in range(40):
        day = math.floor(NOW / DAY) * DAY - (40 - d) * DAY
        calls += [AiUsage("openai", "gpt", "summary", cost_usd=(1.0 + 0.05 * d) / 4, ts=day + h * 3600)
                  for h in (1, 7, 13, 19)]
    calls.append(AiUsage("openai", "gpt", "summary", cost_usd=0.5, ts=NOW - 3600))
    writer.record(calls)
    settings = Settings.defaults()
    spend = forecast_monthly_ai_spend(engine, now=NOW, settings=settings)
    assert set(spend) == {"openai", "perplexity"}  # perplexity has a budget but no spend
    o = spend["openai"]
    assert o.budget_usd == 50.0
    assert o.month_to_date_usd == pytest.approx(2.95 + 0.5)  # Jan 1 (day 39) plus today's call
    assert o.run_rate.trend is not None and o.run_rate.trend.model == "linear"
    # Today at ~$3.0/day → $91/month: the budget line is already behind the run-rate.
    assert o.run_rate.thresholds[0].reached
    rest = 29.5  # days from Jan 2 12:00 to Feb 1, spending 3.0 + 0.05·k a day
    assert o.projected_month_usd == pytest.approx(o.month_to_date_usd + 3.0 * rest + 0.05 * rest**2 / 2, rel=0.01)
    assert spend["perplexity"].month_to_date_usd == 0 and isinstance(spend["perplexity"].run_rate.fit,
                                                                    InsufficientData)


def test_forecasts_on_an_empty_metrics_db(engine: Engine) -> None:
    """No history: every forecast says insufficient data, and spend shows budgeted providers at $0."""
    assert isinstance(forecast_users(engine, now=NOW).fit, InsufficientData)
    assert forecast_db_bytes(engine, now=NOW).latest is None
    assert forecast_rows_per_table(engine, now=NOW) == {}
    spend = forecast_monthly_ai_spend(engine, now=NOW, settings=Settings.defaults())
    assert {p: s.projected_month_usd for p, s in spend.items()} == {"openai": 0.0, "perplexity": 0.0}


def test_streaky_residuals_widen_the_band() -> None:
    """A curve fitted by a line leaves residuals in long streaks, and the band widens for it; white noise does not."""
    curve = fit_trend(T, 20 + 0.02 * DAYS**2, model="linear")
    noise = fit_trend(T, _linear(noise=3.0))
    assert isinstance(curve, Trend) and isinstance(noise, Trend)
    assert curve.inflation > 10 and noise.inflation < 2
    plain = Trend(**{**{f: getattr(curve, f) for f in curve.__dataclass_fields__}, "inflation": 1.0})
    later = NOW + 30 * DAY
    wide, narrow = curve.predict(later), plain.predict(later)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)
