"""Alembic environment for the metrics DB, driven only from `scaling.metrics.migrate`.

The version table is ``alembic_version_metrics`` so the app DB can keep its own
history even when both live in one database.
"""

from __future__ import annotations

from scaling.appdb.alembic_env import run
from scaling.metrics.models import metadata

VERSION_TABLE = "alembic_version_metrics"

run(metadata, VERSION_TABLE)
