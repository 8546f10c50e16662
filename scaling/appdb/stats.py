"""Rows and bytes per app-DB table: what the plan's ``getDatabaseStats`` could not get from D1.

Table names come from the models (`scaling.appdb.models.TABLES`), never from input,
so nothing here builds SQL from strings a caller supplies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, exc, func, inspect, select, text

from scaling.appdb.engine import backend_name, translate_errors
from scaling.appdb.models import TABLES, metadata

__all__ = ["DbStats", "database_stats"]


@dataclass(frozen=True, slots=True)
class DbStats:
    """A snapshot of the app DB's size.

    Attributes:
        backend: ``"sqlite"`` or ``"postgresql"``.
        rows: row count per app table (tables missing from the DB are absent).
        table_bytes: bytes per table including its indexes, where the backend tells
            (SQLite's ``dbstat``, PostgreSQL's ``pg_total_relation_size``); else empty.
        total_bytes: the whole database file or database (SQLite page_count × page_size,
            PostgreSQL ``pg_database_size``), or None if unknown.
        missing_tables: app tables the DB does not have (not migrated yet).
    """

    backend: str
    rows: Mapping[str, int]
    table_bytes: Mapping[str, int] = field(default_factory=dict)
    total_bytes: int | None = None
    missing_tables: tuple[str, ...] = ()

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "rows": dict(self.rows), "total_rows": self.total_rows,
                "table_bytes": dict(self.table_bytes), "total_bytes": self.total_bytes,
                "missing_tables": list(self.missing_tables)}


def database_stats(engine: Engine, tables: Iterable[str] = TABLES) -> DbStats:
    """Count rows and measure bytes for each app table.

    Args:
        engine: the app DB.
        tables: a subset of `scaling.appdb.models.TABLES`; other names are refused.

    Raises:
        ValueError: a name is not an app table.
        StoreError: the database cannot be reached.
    """
    names = tuple(tables)
    unknown = [n for n in names if n not in metadata.tables]
    if unknown:
        raise ValueError(f"not app tables: {', '.join(unknown)}")
    with translate_errors(engine, "read app DB statistics"), engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        existing = [n for n in names if n in present]
        rows = {n: int(conn.execute(select(func.count()).select_from(metadata.tables[n])).scalar_one())
                for n in existing}
        if backend_name(engine) == "postgresql":
            table_bytes, total = _pg_sizes(conn, existing)
        else:
            table_bytes, total = _sqlite_sizes(conn, existing)
    return DbStats(backend=backend_name(engine), rows=rows, table_bytes=table_bytes, total_bytes=total,
                   missing_tables=tuple(n for n in names if n not in present))


def _pg_sizes(conn: Connection, tables: list[str]) -> tuple[dict[str, int], int | None]:
    sizes = {n: int(conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": n}).scalar_one())
             for n in tables}
    total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return sizes, int(total)


def _sqlite_sizes(conn: Connection, tables: list[str]) -> tuple[dict[str, int], int | None]:
    page_count = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    total = int(page_count) * int(page_size)
    try:
        # dbstat lists every b-tree (table or index) by name; fold indexes into their table.
        pages = conn.exec_driver_sql(
            "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat AS d JOIN sqlite_master AS m ON m.name = d.name "
            "GROUP BY m.tbl_name").all()
    except exc.OperationalError:  # dbstat is a compile-time option; without it, no per-table sizes
        return {}, total
    by_table = {str(name): int(size) for name, size in pages}
    return {n: by_table.get(n, 0) for n in tables}, total
