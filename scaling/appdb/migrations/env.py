"""Alembic environment for the app DB, driven only from `scaling.appdb.migrate`.

The version table is ``alembic_version_app`` so the metrics DB can keep its own
history even when both live in one database.
"""

from __future__ import annotations

from scaling.appdb.alembic_env import run
from scaling.appdb.migrate import VERSION_TABLE
from scaling.appdb.models import metadata

run(metadata, VERSION_TABLE)
