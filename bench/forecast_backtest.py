"""Backtest the forecasts on histories they did not generate: hide the last 30 days, forecast them.

    .venv/bin/python bench/forecast_backtest.py [--days 120] [--holdout 30] [--listeners 5000] [--seed 0]

The metrics demo generator draws its users from the same compounding curve the
exponential trend fits, so a backtest on it grades the model against itself. Here the
histories come from two processes the trend knows nothing about:

- **sandbox population** (`scaling.sandbox.population.Population`, the listeners the
  sandbox serves): users registered by each day (sign-ups spread over four years) and
  users who played something in the 7 days before it (growth, then the churn of
  listeners who stopped in the last 60 days).
- **random walk**: daily sign-ups whose rate follows a geometric random walk with a
  weekly cycle, each user churning with a small daily probability; from those, the users,
  the weekly-active users, the app DB's bytes (rows written by activity, searches kept
  90 days) and the AI spend per day (active users x a noisy price, quieter at weekends).

For each series the fitted trend (`fit_trend`, linear or exponential as it chooses) is
set beside two baselines run in this same process over the same hidden days:
Prometheus-style ``predict_linear`` (a straight line, whatever the data) and "last
value" (no trend). Errors are mean absolute percentage errors; "band" is the share of
hidden days inside the 90 % band; "crossing" is the error of the forecast date of the
first hidden day over the series' threshold (10 % above its value at the cut), as a
share of the horizon from the cut.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.capacity.trend import DAY, BacktestResult, backtest
from scaling.sandbox.catalog import Catalog
from scaling.sandbox.population import Population

NOW = 1_772_323_200.0  # 2026-03-01 00:00 UTC: a fixed end, so a seed always gives the same table
WEEK_DAYS = 7

Series = dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]


def days_before(now: float, days: int) -> NDArray[np.float64]:
    """Day stamps (midnight UTC) of the ``days`` days ending at ``now``."""
    return now - (days - 1 - np.arange(days, dtype=np.float64)) * DAY


def population_series(days: int, listeners: int, seed: int) -> Series:
    """Registered and weekly-active users per day, from the sandbox's listener population."""
    population = Population(seed, listeners, NOW, Catalog(seed))
    people = [population.listener(i) for i in range(1, listeners + 1)]
    registered = np.array([p.registered for p in people])
    last_play = np.array([p.stop for p in people])
    t = days_before(NOW, days)
    signed_up = np.array([(registered <= d).sum() for d in t], dtype=np.float64)
    # Active in the 7 days before d: signed up by then and not yet stopped a week earlier.
    active = np.array([((registered <= d) & (last_play >= d - WEEK_DAYS * DAY)).sum() for d in t], dtype=np.float64)
    return {"pop: users": (t, signed_up), "pop: weekly active": (t, active)}


def random_walk_series(days: int, seed: int) -> Series:
    """Users, weekly-active users, DB bytes and AI spend from a sign-up random walk with churn."""
    rng = np.random.default_rng(seed)
    warmup = 120  # days simulated before the window, so the series do not start at zero
    n = warmup + days
    weekday = np.arange(n) % WEEK_DAYS
    weekly = 1.0 + 0.25 * np.cos(2 * np.pi * weekday / WEEK_DAYS)
    rate = 3.0 * np.exp(np.cumsum(rng.normal(0.004, 0.03, n))) * weekly  # sign-ups/day, drifting up unevenly
    signups = rng.poisson(rate)
    users = np.zeros(n)
    active = np.zeros(n)
    rows = np.zeros(n)
    spend = np.zeros(n)
    alive = 0.0
    searches: list[float] = []
    for d in range(n):
        alive = alive + signups[d] - rng.binomial(int(alive), 0.004)  # ~0.4 % of users leave each day
        users[d] = alive
        active[d] = rng.binomial(int(alive), 0.35)
        searches.append(active[d] * rng.gamma(4.0, 2.0) * weekly[d])
        kept = sum(searches[-90:])  # searches are deleted after 90 days
        rows[d] = 40 * alive + kept
        spend[d] = active[d] * 0.002 * rng.lognormal(0, 0.3) * (0.7 if weekday[d] >= 5 else 1.0)
    t = days_before(NOW, days)
    window = slice(warmup, None)
    return {"walk: users": (t, users[window]), "walk: weekly active": (t, active[window]),
            "walk: db_bytes": (t, 1.2e6 + 600.0 * rows[window]), "walk: ai_spend/day": (t, spend[window])}


def last_value_error(ts: NDArray[np.float64], ys: NDArray[np.float64], holdout_days: float) -> float | None:
    cut = ts.max() - holdout_days * DAY
    train, test = ys[ts <= cut], ys[ts > cut]
    test = test[test != 0]
    if not train.size or not test.size:
        return None
    return float(np.mean(np.abs(train[-1] - test) / np.abs(test)))


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def row(name: str, ts: NDArray[np.float64], ys: NDArray[np.float64], holdout: float) -> str:
    at_cut = ys[ts <= ts.max() - holdout * DAY]
    threshold = float(at_cut[-1]) * 1.1 if at_cut.size else None
    fit: BacktestResult = backtest(ts, ys, holdout_days=holdout, threshold=threshold)
    line = backtest(ts, ys, holdout_days=holdout, model="linear", min_r2=0.0)
    naive = last_value_error(ts, ys, holdout)
    crossing = "—"
    if fit.crossing_error_days is not None and fit.crossing_error_pct is not None:
        crossing = f"{fit.crossing_error_pct:.0%} ({fit.crossing_error_days:+.1f} d)"
    out = (f"{name:20} {ts.size:>4} {fit.model or 'refused':>11} {pct(fit.mean_abs_pct_error):>7} "
           f"{pct(fit.max_abs_pct_error):>7} {pct(fit.band_coverage):>5} {crossing:>14}   "
           f"{pct(line.mean_abs_pct_error):>7} {pct(naive):>7}")
    return out + (f"\n{'':20} {fit.note}" if fit.note else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--holdout", type=float, default=30.0)
    parser.add_argument("--listeners", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    began = time.perf_counter()
    series = population_series(args.days, args.listeners, args.seed) | random_walk_series(args.days, args.seed)
    print(f"{args.days} days of history, seed {args.seed}, {args.listeners:,} sandbox listeners "
          f"({time.perf_counter() - began:.1f} s to build); hidden: the last {args.holdout:g} days\n")
    head = (f"{'series':20} {'pts':>4} {'model':>11} {'MAPE':>7} {'max':>7} {'band':>5} {'crossing':>14}   "
            f"{'linear':>7} {'last':>7}")
    print(head)
    print("-" * len(head))
    for name, (ts, ys) in series.items():
        print(row(name, ts, ys, args.holdout))
    print("\nMAPE = mean absolute % error over the hidden days; linear = predict_linear-style straight line on the "
          "same training days; last = the last training value")


if __name__ == "__main__":
    main()
