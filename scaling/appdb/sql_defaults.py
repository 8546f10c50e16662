"""Server-side column defaults that render as D1 wrote them, on SQLite and PostgreSQL.

D1 filled timestamps with ``datetime('now')`` (``YYYY-MM-DD HH:MM:SS``, UTC) and ids
with ``lower(hex(randomblob(16)))``. Rows the app inserts without those columns
must look the same whichever backend holds them, so each default is one SQL
construct compiled per dialect. The models and the migrations share these.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Text

__all__ = ["random_hex_id", "utc_now_text"]


class utc_now_text(FunctionElement[str]):  # noqa: N801 - reads like the SQL function it stands for
    """Now in UTC as ``YYYY-MM-DD HH:MM:SS`` text, D1's ``datetime('now')``."""

    type = Text()
    inherit_cache = True
    name = "utc_now_text"


class random_hex_id(FunctionElement[str]):  # noqa: N801
    """32 random lower-case hex digits, D1's ``lower(hex(randomblob(16)))``."""

    type = Text()
    inherit_cache = True
    name = "random_hex_id"


@compiles(utc_now_text, "sqlite")
def _utc_now_sqlite(element: utc_now_text, compiler: Any, **kw: Any) -> str:
    return "(datetime('now'))"


@compiles(utc_now_text, "postgresql")
def _utc_now_pg(element: utc_now_text, compiler: Any, **kw: Any) -> str:
    return "(to_char(timezone('UTC', now()), 'YYYY-MM-DD HH24:MI:SS'))"


@compiles(random_hex_id, "sqlite")
def _hex_sqlite(element: random_hex_id, compiler: Any, **kw: Any) -> str:
    return "(lower(hex(randomblob(16))))"


@compiles(random_hex_id, "postgresql")
def _hex_pg(element: random_hex_id, compiler: Any, **kw: Any) -> str:
    return "(replace(gen_random_uuid()::text, '-', ''))"
