"""Alembic environment for the app DB, driven only from `scaling.appdb.migrate`.

The caller opens the connection and passes it in ``config.attributes``; there is
no alembic.ini and no URL here. The version table is ``alembic_version_app`` so
the metrics DB can keep its own history even when both live in one database.
"""

from __future__ import annotations

from alembic import context

from scaling.appdb.models import metadata

from scaling.appdb.migrate import VERSION_TABLE

config = context.config
connection = config.attributes["connection"]
applied: list[str] = config.attributes.setdefault("applied", [])


def _record(*, ctx: object, step: object, heads: object, run_args: object) -> None:
    if getattr(step, "is_upgrade", False):
        applied.append(step.up_revision_id)  # type: ignore[attr-defined]


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # One transaction per revision: a failure leaves the DB at the last good revision.
    transaction_per_migration=True,
    on_version_apply=_record,
    render_as_batch=connection.dialect.name == "sqlite",
)

with context.begin_transaction():
    context.run_migrations()
