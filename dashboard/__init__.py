"""The Streamlit dashboard's shared, non-page code (``app.py`` and ``app_pages/`` are the pages).

Everything besides the pages that imports Streamlit lives here, never under ``scaling/``
(DESIGN.md's import rules; ``tests/test_import_rules.py`` keeps them):

- `services`: settings, the metrics DB engine and a clock from one ``st.cache_resource`` factory.
- `data`: every read through `scaling.metrics.queries`, cached briefly across sessions, bucketed
  so a chart's series fit its 2,000-point budget.
- `forecasting`: `scaling.capacity` forecasts and readiness.
- `capacity`: the stored capacity result worded for the Overview, and the planner's calibrated inputs.
- `controls`: the shared sidebar (time range, source, live refresh), "now", fragments, empty states.
- `auth`: the optional password gate and the exposure warning.
- `charts`: Altair builders with threshold rule layers (no Streamlit).
- `timerange`, `formatting`, `summaries`, `run_reports`, `cost_export`: plain functions (no Streamlit).
"""
