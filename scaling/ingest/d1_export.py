"""Load a ``wrangler d1 export`` dump into Headroom's app DB (SQLite or PostgreSQL).

The dump is never executed. It is read statement by statement, and only
``INSERT``s into the app schema's tables (`scaling.appdb.models`) are loaded, as
parameterised upserts on the primary key, so loading the same or a newer export
again converges instead of duplicating. Each value is converted the way SQLite's
column affinity would store it, so PostgreSQL gets text for TEXT and integers for
INTEGER. The dump's own ``CREATE TABLE`` statements give the column order for
``INSERT INTO t VALUES (...)``. Columns the models lack are dropped and reported.
Everything else is reported with counts, not executed: the schema (Headroom's
migrations own it), ``d1_migrations``, ``_cf_KV``, ``sqlite_sequence``,
``DELETE``/``DROP``/``UPDATE`` and tables outside the app schema.

Two passes, so foreign keys hold on both backends without deferring constraints.
The first reads every statement and notes where each app table's INSERTs are.
The second loads the tables parents first, seeking straight to those byte ranges
(and checks each statement there is an INSERT into that table: a range never
carries another table's rows). All rows go in one transaction, so a failed load
changes nothing; a row the database refuses (an orphan, a duplicate e-mail, a
number beyond 64 bits) is reported and skipped alone, and a statement that cannot
be read (or a trigger with no ``END``) is reported and none of its rows are loaded.

Memory stays bounded by the statement size, not a multiple of it: statements are
split while streaming and an INSERT's rows are parsed one at a time; one longer
than `STREAM_BYTES` is read twice (checked whole, then loaded) so a malformed row
at its end cannot leave its first rows loaded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, Integer, Table, Text, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from scaling.appdb.engine import first_line, translate_errors
from scaling.appdb.models import metadata
from scaling.ingest.d1_split import DumpSyntaxError, RawStatement, iter_statements
from scaling.ingest.d1_sql import OutOfRange, parse_statement, stream_insert

__all__ = ["D1Report", "TableLoad", "load_d1_export"]

#: Rows per upsert statement.
BATCH_ROWS = 500
#: Problems described one by one; beyond this they are only counted.
MAX_PROBLEMS = 25
#: INSERTs up to this size are parsed into memory whole; longer ones are parsed twice, streaming.
STREAM_BYTES = 1 << 20
_INT64 = (-(2**63), 2**63 - 1)
_INSERT_HEAD = re.compile(rb"\s*(?:INSERT(?:\s+OR\s+\w+)?|REPLACE)\s+INTO\s+"
                          rb"(?:(?:\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|[A-Za-z_][\w$]*)\s*\.\s*)?"
                          rb"(\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|[A-Za-z_][\w$]*)", re.IGNORECASE)
_INT = re.compile(r"\s*[-+]?\d+\s*")


@dataclass
class TableLoad:
    """One app table's part of a load.

    Attributes:
        rows: rows the dump has for it.
        loaded: rows written (inserted or updated in place).
        new: rows that were not there before.
        refused: rows skipped (a value that does not fit, or the database refused the row).
        dropped_columns: dump columns the app schema does not have, with how many values were dropped.
    """

    rows: int = 0
    loaded: int = 0
    new: int = 0
    refused: int = 0
    dropped_columns: Counter[str] = field(default_factory=Counter)


@dataclass
class D1Report:
    """What a load read, wrote and left alone."""

    statements: int = 0
    tables: dict[str, TableLoad] = field(default_factory=dict)
    schema_statements: int = 0
    not_executed: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    dry_run: bool = False

    def problem(self, where: RawStatement | None, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"line {where.line:,}: {message}" if where else message)

    @property
    def loaded(self) -> int:
        return sum(t.loaded for t in self.tables.values())

    def text(self) -> str:
        """The summary the CLI prints."""
        verb = "would load" if self.dry_run else "loaded"
        per = ", ".join(f"{name} {t.loaded:,} ({t.new:,} new)" for name, t in self.tables.items())
        out = [f"read {self.statements:,} statements; {verb} {self.loaded:,} rows" + (f": {per}" if per else "")]
        refused = sum(t.refused for t in self.tables.values())
        if refused:
            out.append(f"{refused:,} rows refused")
        dropped = Counter[str]()
        for name, t in self.tables.items():
            dropped.update({f"{name}.{c}": n for c, n in t.dropped_columns.items()})
        if dropped:
            out.append("columns not in the app schema, dropped: " + ", ".join(sorted(dropped)))
        if self.schema_statements:
            out.append(f"{self.schema_statements:,} schema statements for app tables left to Headroom's migrations")
        if self.not_executed:
            items = sorted(self.not_executed.items(), key=lambda kv: (-kv[1], kv[0]))
            out.append("not executed: " + ", ".join(f"{what} ×{n:,}" if n > 1 else what for what, n in items))
        text = "; ".join(out) + "."
        if self.problems:
            hidden = self.problem_count - len(self.problems)
            more = f" (+{hidden:,} more)" if hidden else ""
            text += "\nproblems" + more + ":\n  " + "\n  ".join(self.problems)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"statements": self.statements, "dry_run": self.dry_run, "rows_loaded": self.loaded,
                "tables": {name: {"rows": t.rows, "loaded": t.loaded, "new": t.new, "refused": t.refused,
                                  "dropped_columns": dict(t.dropped_columns)} for name, t in self.tables.items()},
                "schema_statements": self.schema_statements, "not_executed": dict(self.not_executed),
                "problems": self.problems, "problem_count": self.problem_count}


@dataclass
class _Plan:
    ranges: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # table -> (start, stop, line)
    columns: dict[str, list[str]] = field(default_factory=dict)  # the dump's column order per table


def load_d1_export(path: str | Path, engine: Engine, *, dry_run: bool = False) -> D1Report:
    """Load the app-schema rows of a D1 export into the app DB at ``engine`` (migrated to head).

    Args:
        path: the ``.sql`` file ``wrangler d1 export`` wrote.
        engine: the app DB.
        dry_run: do everything inside a transaction, then roll it back (counts are exact).

    Returns:
        What was loaded, refused and left unexecuted.

    Raises:
        StoreError: the app DB cannot be reached.
        OSError: the file cannot be read.
    """
    report = D1Report(dry_run=dry_run)
    tables = {t.name.lower(): t for t in metadata.sorted_tables}
    with open(path, "rb") as fp:
        plan = _scan(fp, tables, report)
        with translate_errors(engine, "load the D1 export into the app DB"), engine.connect() as conn:
            trans = conn.begin()
            try:
                for table in metadata.sorted_tables:  # parents first
                    if table.name in plan.ranges:
                        _load_table(conn, fp, table, plan, report)
                if conn.dialect.name == "postgresql":
                    _advance_sequences(conn, [t for t in metadata.sorted_tables if t.name in report.tables])
            except BaseException:
                trans.rollback()
                raise
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
    return report


# --- pass 1: what is in the dump ------------------------------------------------------------------

def _scan(fp: BinaryIO, tables: dict[str, Table], report: D1Report) -> _Plan:
    plan = _Plan()
    run: tuple[str, int, int, int] | None = None  # (table, start, end, line) of consecutive INSERTs
    for stmt in _statements(fp, report):
        report.statements += 1
        head = None if stmt.problem else _INSERT_HEAD.match(stmt.text)
        table = None if head is None else tables.get(_unquote(head.group(1).decode("utf-8", "replace")).lower())
        if table is None and run is not None:
            # Any other statement ends the run, so pass 2 never reads it as this table's rows.
            plan.ranges.setdefault(run[0], []).append(run[1:])
            run = None
        if stmt.problem:
            report.problem(stmt, f"{stmt.problem}")
            report.not_executed["malformed statement"] += 1
            continue
        if head is not None:
            name = _unquote(head.group(1).decode("utf-8", "replace"))
            if table is None:
                report.not_executed[f"INSERT INTO {name}"] += 1
                continue
            end = stmt.offset + len(stmt.text)
            if run is not None and run[0] == table.name:
                run = (run[0], run[1], end, run[3])
            else:
                if run is not None:
                    plan.ranges.setdefault(run[0], []).append(run[1:])
                run = (table.name, stmt.offset, end, stmt.line)
            continue
        _note_other(stmt, tables, plan, report)
    if run is not None:
        plan.ranges.setdefault(run[0], []).append(run[1:])
    return plan


def _statements(fp: BinaryIO, report: D1Report, **kwargs: Any) -> Iterator[RawStatement]:
    try:
        yield from iter_statements(fp, **kwargs)
    except DumpSyntaxError as exc:
        report.problem(None, f"{exc}; the rest of the file was not read")


def _note_other(stmt: RawStatement, tables: dict[str, Table], plan: _Plan, report: D1Report) -> None:
    try:
        parsed = parse_statement(stmt.text)
    except (ValueError, RecursionError) as exc:
        report.problem(stmt, f"unreadable statement not executed: {exc}")
        report.not_executed["unreadable statement"] += 1
        return
    if parsed.kind == "EMPTY":
        return
    table = tables.get((parsed.table or "").lower())
    if table is not None and parsed.kind == "CREATE TABLE":
        report.schema_statements += 1
        if parsed.columns:
            plan.columns[table.name] = parsed.columns
        return
    if table is not None and parsed.kind in ("CREATE INDEX", "CREATE UNIQUE INDEX"):
        report.schema_statements += 1
        return
    label = parsed.kind
    if parsed.kind == "PRAGMA" and parsed.name:
        label = f"PRAGMA {parsed.name}"
    elif parsed.table:
        label = f"{parsed.kind} {'ON ' if 'INDEX' in parsed.kind else ''}{parsed.table}"
    elif parsed.name:
        label = f"{parsed.kind} {parsed.name}"
    report.not_executed[label] += 1


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in "\"`[":
        inner = name[1:-1]
        return inner.replace('""', '"') if name[0] == '"' else inner
    return name


# --- pass 2: load one table ---------------------------------------------------------------------

def _load_table(conn: Connection, fp: BinaryIO, table: Table, plan: _Plan, report: D1Report) -> None:
    load = report.tables.setdefault(table.name, TableLoad())
    before = conn.execute(select(func.count()).select_from(table)).scalar_one()
    model_columns = {c.name.lower(): c for c in table.columns}
    default_order = plan.columns.get(table.name) or [c.name for c in table.columns]
    batch: list[dict[str, Any]] = []
    batch_keys: tuple[str, ...] | None = None
    for start, stop, line in plan.ranges[table.name]:
        for stmt in _statements(fp, report, start=start, stop=stop, line=line):
            try:
                columns, rows = _statement_rows(stmt, table)
            except (ValueError, RecursionError) as exc:
                report.problem(stmt, f"INSERT INTO {table.name} not loaded: {exc}")
                load.refused += 1
                continue
            names = columns or default_order
            for values in rows:
                load.rows += 1
                if len(values) != len(names):
                    report.problem(stmt, f"{table.name}: {len(values)} values for {len(names)} columns; row skipped")
                    load.refused += 1
                    continue
                row = _convert(table.name, names, values, model_columns, load, report, stmt)
                if row is None:
                    continue
                keys = tuple(row)
                if batch and keys != batch_keys:
                    _upsert(conn, table, batch, load, report)
                    batch = []
                batch.append(row)
                batch_keys = keys
                if len(batch) >= BATCH_ROWS:
                    _upsert(conn, table, batch, load, report)
                    batch = []
    if batch:
        _upsert(conn, table, batch, load, report)
    after = conn.execute(select(func.count()).select_from(table)).scalar_one()
    load.new = int(after) - int(before)


def _statement_rows(stmt: RawStatement, table: Table) -> tuple[list[str] | None, Iterable[list[Any]]]:
    """An INSERT's columns and rows, every row checked readable before any is returned.

    Raises:
        DumpSyntaxError: the statement (or any of its rows) cannot be read, or it is not
            an INSERT into ``table``.
    """
    head = stream_insert(stmt.text)
    if head.table.lower() != table.name:
        raise DumpSyntaxError(f"expected an INSERT into {table.name}, found one into {head.table}")
    if len(stmt.text) <= STREAM_BYTES:
        return head.columns, list(head.rows)
    for _ in head.rows:  # read it all once: a malformed last row must refuse the whole statement
        pass
    return head.columns, stream_insert(stmt.text).rows


def _convert(table: str, names: list[str], values: list[Any], model_columns: dict[str, Any], load: TableLoad,
             report: D1Report, stmt: RawStatement) -> dict[str, Any] | None:
    """Values keyed by model column, converted as SQLite's affinity would; None if one cannot be."""
    row: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):  # lengths were checked by the caller
        column = model_columns.get(name.lower())
        if column is None:
            load.dropped_columns[name] += 1
            continue
        try:
            row[column.name] = _affinity(column.type, value)
        except ValueError as exc:
            report.problem(stmt, f"{table}.{column.name}: {exc}; row skipped")
            load.refused += 1
            return None
    return row


def _affinity(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, OutOfRange):
        raise ValueError(str(value))
    if isinstance(kind, Integer):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and _INT.fullmatch(value):
            if len(value.strip().lstrip("+-").lstrip("0")) > 19:
                raise ValueError(f"{_show(value)} is outside SQLite's 64-bit integer range")
            value = int(value)
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise ValueError(f"{_show(value)} is outside SQLite's 64-bit integer range")
            return value
        raise ValueError(f"{_show(value)} is not an integer")
    if isinstance(kind, Text):
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
            return value
        if isinstance(value, bytes):
            try:
                return _affinity(kind, value.decode("utf-8"))
            except UnicodeDecodeError:
                raise ValueError(f"a {len(value)}-byte blob is not UTF-8 text") from None
        if isinstance(value, float):
            return repr(value) if not value.is_integer() else f"{value:.1f}"
        return str(value)
    return value


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else f"a {len(str(abs(value)))}-digit int"
    return text if len(text) <= 40 else text[:39] + "…"


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], load: TableLoad, report: D1Report) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    key = [c.name for c in table.primary_key.columns]
    stmt = dialect.insert(table)
    updates = {name: stmt.excluded[name] for name in rows[0] if name not in key}
    if all(k in rows[0] for k in key):
        stmt = (stmt.on_conflict_do_update(index_elements=key, set_=updates) if updates
                else stmt.on_conflict_do_nothing(index_elements=key))
    try:
        if conn.dialect.name == "postgresql":
            # An error aborts a PostgreSQL transaction; the savepoint confines it to this batch.
            with conn.begin_nested():
                conn.execute(stmt, rows)
        else:
            # SQLite undoes just the failing statement and the transaction goes on. (No SAVEPOINT:
            # under pysqlite's implicit transactions its RELEASE would commit the whole load.)
            conn.execute(stmt, rows)
        load.loaded += len(rows)
        return
    except (IntegrityError, DataError) as exc:
        if len(rows) > 1:
            for row in rows:  # find the rows the database refuses; keep the rest
                _upsert(conn, table, [row], load, report)
            return
        ident = ", ".join(f"{k}={rows[0].get(k)!r}" for k in key)
        report.problem(None, f"{table.name} row ({ident}) refused: {first_line(exc.orig or exc)}")
        load.refused += 1


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """Move PostgreSQL id sequences past the loaded ids, or the app's next insert collides."""
    for table in tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence(:t, :c), m) FROM "
                    f"(SELECT MAX({column.name}) AS m FROM {table.name}) AS x WHERE m IS NOT NULL"),
                    {"t": table.name, "c": column.name})
