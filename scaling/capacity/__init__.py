"""Capacity: the plan's scaling triggers, forecasts of when each limit is crossed, and phase readiness.

Modules (import them directly; nothing heavy is imported here):

- `scaling.capacity.triggers`: the trigger table (50 / 100 / 150 / 500 / 1,000 users → phase).
- `scaling.capacity.trend`: least-squares trends, prediction bands, crossings, ``predict_linear``, backtests.
- `scaling.capacity.forecast`: forecasts of users, DB size, rows and AI spend from the metrics DB.
- `scaling.capacity.cron_model`: Little's law for the prewarm cron (duration at N users, users that fit).
- `scaling.capacity.evidence`: what the metrics DB says about each plan item, as plain numbers.
- `scaling.capacity.readiness`: the rules, and `assess(evidence, settings=...)` → each item's status.
- `scaling.capacity.calibration`: the simulator's inputs from production data, each with its provenance.
- `scaling.capacity.capacity_results`: a capacity search run and stored for the Overview.
"""
