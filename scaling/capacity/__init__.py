"""Capacity: the plan's scaling triggers, forecasts of when each limit is crossed, and phase readiness.

Modules (import them directly; nothing heavy is imported here):

- `scaling.capacity.triggers`: the trigger table (50 / 100 / 150 / 500 / 1,000 users → phase).
- `scaling.capacity.trend`: least-squares trends, prediction bands, crossings, ``predict_linear``, backtests.
- `scaling.capacity.forecast`: forecasts of users, DB size, rows and AI spend from the metrics DB.
- `scaling.capacity.readiness`: each plan item's status from evidence in the metrics.
"""
