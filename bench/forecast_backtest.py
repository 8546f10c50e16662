"""Backtest the forecasts on demo history: hide the last 30 days, forecast them, print the error per series.

    .venv/bin/python bench/forecast_backtest.py [--days 90] [--holdout 30] [--users 120] [--seed 0]

History comes from the metrics demo generator (`scaling.metrics.demo.generate`) in a
temporary SQLite file, read back through `scaling.capacity.forecast.history`: the same
daily points the dashboard's forecasts fit. Without the generator it falls back to
synthetic series (compounding users, linear DB growth, noisy spend).

For each series the fitted trend (`fit_trend`, linear or exponential as it chooses) is
set beside two baselines over the same hidden days: Prometheus-style ``predict_linear``
(a straight line, whatever the data) and "last value" (no trend). Errors are mean
absolute percentage errors; "band" is the share of hidden days inside the 90 % band;
"crossing" is the error of the forecast date of the first hidden day over the series'
threshold, as a share of the horizon from the cut.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling.capacity.forecast import history
from scaling.capacity.trend import DAY, backtest

NOW = 1_772_323_200.0  # 2026-03-01 00:00 UTC: a fixed end, so a seed always gives the same table


def demo_series(days: int, users: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Generate demo history into a throwaway SQLite file and read each forecast series back."""
    from scaling.metrics.db import open_metrics_db
    from scaling.metrics.demo import generate
    from scaling.metrics.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/metrics.db"
        upgrade(url)
        engine = open_metrics_db(url)
        try:
            began = time.perf_counter()
            generate(engine, now=NOW, days=days, users=users, seed=seed, raw_days=2)
            print(f"demo history: {days} days, {users} users at the end, seed {seed} "
                  f"({time.perf_counter() - began:.1f} s to generate)")
            names = ["users", "db_bytes", "rows:sessions", "rows:searches", "rows:api_usage_log",
                     "ai_spend:openai", "ai_spend:anthropic"]
            return {n: history(engine, n, now=NOW, window_days=days) for n in names}
        finally:
            engine.dispose()


def synthetic_series(days: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    d = np.arange(days, dtype=np.float64)
    t = NOW - (days - 1 - d) * DAY
    print(f"synthetic history: {days} days, seed {seed} (the metrics demo generator is not available)")
    return {"users": (t, np.round(20 * 1.05 ** (d / 7))),
            "db_bytes": (t, 50e6 + 0.4e6 * d + rng.normal(0, 0.3e6, d.size)),
            "ai_spend:openai": (t, (1.0 + 0.02 * d) * rng.lognormal(0, 0.15, d.size))}


def last_value_error(ts: np.ndarray, ys: np.ndarray, holdout_days: float) -> float | None:
    cut = ts.max() - holdout_days * DAY
    train, test = ys[ts <= cut], ys[ts > cut]
    test = test[test != 0]
    if not train.size or not test.size:
        return None
    return float(np.mean(np.abs(train[-1] - test) / np.abs(test)))


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--holdout", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        series = demo_series(args.days, args.users, args.seed)
    except ImportError:
        series = synthetic_series(args.days, args.seed)
    thresholds = {"users": 100.0}
    print(f"hidden: the last {args.holdout:g} days; MAPE = mean absolute % error over the hidden days\n")
    head = (f"{'series':20} {'pts':>4} {'model':>11} {'MAPE':>7} {'max':>7} {'band':>5} {'crossing':>9}   "
            f"{'linear':>7} {'last':>7}")
    print(head)
    print("-" * len(head))
    for name, (ts, ys) in series.items():
        fit = backtest(ts, ys, holdout_days=args.holdout, threshold=thresholds.get(name))
        line = backtest(ts, ys, holdout_days=args.holdout, model="linear", min_r2=0.0)
        naive = last_value_error(ts, ys, args.holdout)
        crossing = "—"
        if fit.crossing_error_days is not None:
            crossing = f"{fit.crossing_error_pct:.0%} ({fit.crossing_error_days:+.1f} d)"
        model = fit.model or "refused"
        print(f"{name:20} {ts.size:>4} {model:>11} {pct(fit.mean_abs_pct_error):>7} {pct(fit.max_abs_pct_error):>7} "
              f"{pct(fit.band_coverage):>5} {crossing:>9}   {pct(line.mean_abs_pct_error):>7} {pct(naive):>7}")
        if fit.note:
            print(f"{'':20} {fit.note}")
    print("\nlinear = predict_linear-style straight line on the same training days; last = the last training value")


if __name__ == "__main__":
    main()
