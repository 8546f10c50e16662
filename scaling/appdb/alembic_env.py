"""The body both Alembic environments share (app DB and metrics DB).

Each ``migrations/env.py`` names its metadata and version table and calls `run`; the
caller (`scaling.appdb.migrate.run_upgrade`) opens the connection and passes it in
``config.attributes``, so there is no alembic.ini and no URL in either environment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import MetaData


def run(metadata: MetaData, version_table: str) -> None:
    """Run the pending migrations on the caller's connection, recording applied revisions."""
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]
    applied: list[str] = config.attributes.setdefault("applied", [])

    def record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any],
               run_args: Mapping[str, Any]) -> None:
        if step.is_upgrade and step.up_revision_id is not None:
            applied.append(step.up_revision_id)

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        # One transaction per revision: a failure leaves the DB at the last good revision.
        transaction_per_migration=True,
        on_version_apply=record,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
