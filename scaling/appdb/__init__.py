"""The app's own database (D1's role): schema, migrations, demo data, statistics, cleanup."""

from __future__ import annotations

from scaling.appdb.cleanup import CleanupReport, Retention, run_cleanup
from scaling.appdb.demo import fill_demo_data
from scaling.appdb.engine import make_engine
from scaling.appdb.migrate import current, upgrade
from scaling.appdb.stats import DbStats, database_stats

__all__ = ["CleanupReport", "DbStats", "Retention", "current", "database_stats", "fill_demo_data",
           "make_engine", "run_cleanup", "upgrade"]
