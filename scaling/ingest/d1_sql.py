"""Read one statement of a ``wrangler d1 export`` dump without executing it.

`parse_statement` gives a `SqlStatement`: its kind and table, and for ``INSERT`` the
column list and rows as Python values. It understands SQLite's literal syntax
(``'it''s'``, ``X'00ff'``, ``NULL``, signed and hex numbers) and evaluates the few
functions ``.dump`` writes into values (``replace()``, ``char()``, ``unistr()``);
anything else raises `DumpSyntaxError` rather than being guessed at.

Statements are read from bytes, token by token, and `stream_insert` yields an
``INSERT``'s rows one at a time, so a 60 MB multi-row ``INSERT`` never becomes a
list of millions of tokens. A number SQLite could not store exactly (an integer
beyond 64 bits, which SQLite would silently turn into a REAL, or a real that
overflows) becomes `OutOfRange`, which the loader refuses with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scaling.ingest.d1_split import DumpSyntaxError

__all__ = ["DumpSyntaxError", "InsertStream", "OutOfRange", "SqlStatement", "parse_statement", "stream_insert"]

_TOKEN = re.compile(rb"""
    (?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<blob>[xX]'(?P<hex>[^']*)')
  | (?P<str>'[^']*(?:''[^']*)*')
  | (?P<qid>"[^"]*(?:""[^"]*)*"|`[^`]*(?:``[^`]*)*`|\[[^\]]*\])
  | (?P<num>0[xX][0-9A-Fa-f]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<punct>[-+(),;.*=<>!|/%~&])
  | (?P<bad>.)
""", re.VERBOSE | re.DOTALL)
_INT64_MAX = 2**63 - 1
#: Function calls nested deeper than this in one value are refused (``char(char(char(...``).
MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """A number literal SQLite cannot store as written (kept as its digit count, not its digits)."""

    digits: int
    negative: bool = False
    #: 2**63 exactly, which is in range once negated (``-9223372036854775808``).
    int64_min_magnitude: bool = False

    def __str__(self) -> str:
        return f"a {self.digits:,}-digit number outside SQLite's 64-bit integer and double range"


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # word, ident (quoted), str, blob, num, punct
    value: Any
    upper: str = ""


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DumpSyntaxError(f"text that is not UTF-8 (byte {exc.start:,} of a {len(raw):,}-byte value)") from None


def _number(raw: bytes) -> int | float | OutOfRange:
    if raw[:2] in (b"0x", b"0X"):
        digits = raw[2:].lstrip(b"0")
        if len(digits) > 16:
            raise DumpSyntaxError(f"hex literal too big: {raw[:20].decode()}…")
        value = int(digits or b"0", 16)
        return value - 2**64 if value > _INT64_MAX else value  # SQLite reads 64-bit hex as two's complement
    if any(c in raw for c in b".eE"):
        real = float(raw)  # float() has no digit limit, unlike int()
        return real if real not in (float("inf"), float("-inf")) else OutOfRange(len(raw))
    digits = raw.lstrip(b"0")
    if len(digits) > 19 or (len(digits) == 19 and int(digits) > _INT64_MAX):
        # SQLite would store it as an inexact REAL.
        return OutOfRange(len(digits), int64_min_magnitude=len(digits) == 19 and int(digits) == _INT64_MAX + 1)
    return int(raw)


def _tokens(text: bytes) -> Iterator[_Tok]:
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "skip":
            continue
        raw = m.group()
        if kind == "word":
            word = raw.decode("ascii")
            yield _Tok("word", word, word.upper())
        elif kind == "str":
            yield _Tok("str", _text(raw[1:-1]).replace("''", "'"))
        elif kind == "blob":
            hexdigits = m.group("hex")
            try:
                yield _Tok("blob", bytes.fromhex(hexdigits.decode("ascii")))
            except (ValueError, UnicodeDecodeError):
                raise DumpSyntaxError(f"malformed blob literal X'{hexdigits[:20]!r}'") from None
        elif kind == "qid":
            q = raw[:1]
            inner = raw[1:-1]
            yield _Tok("ident", _text(inner if q == b"[" else inner.replace(q * 2, q)))
        elif kind == "num":
            yield _Tok("num", _number(raw))
        elif kind == "punct":
            yield _Tok("punct", raw.decode("ascii"))
        else:
            raise DumpSyntaxError(f"unexpected character {raw!r} at byte {m.start():,}")


@dataclass
class SqlStatement:
    """What a dump statement is, for deciding whether to load it.

    Attributes:
        kind: e.g. ``"INSERT"``, ``"CREATE TABLE"``, ``"CREATE INDEX"``, ``"PRAGMA"``, ``"DELETE"``, ``"BEGIN"``.
        table: the table it writes or defines, when there is one.
        name: the index/trigger/view name for those statements, or the pragma name.
        columns: an INSERT's column list (None: all columns, in table order); a CREATE TABLE's columns.
        rows: an INSERT's rows of values.
        conflict: an INSERT's ``OR REPLACE`` / ``OR IGNORE`` clause word, if any.
    """

    kind: str
    table: str | None = None
    name: str | None = None
    columns: list[str] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    conflict: str | None = None


class _Parser:
    """Reads tokens as it goes, with one token of lookahead."""

    def __init__(self, text: str | bytes) -> None:
        self._toks = _tokens(text.encode("utf-8") if isinstance(text, str) else text)
        self._next: _Tok | None = next(self._toks, None)
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self._next

    def advance(self) -> None:
        self._next = next(self._toks, None)

    def word(self, *options: str) -> str | None:
        tok = self._next
        if tok is not None and tok.kind == "word" and tok.upper in options:
            self.advance()
            return tok.upper
        return None

    def expect_word(self, *options: str) -> str:
        found = self.word(*options)
        if found is None:
            raise DumpSyntaxError(f"expected {' or '.join(options)}, found {self._show()}")
        return found

    def punct(self, char: str) -> bool:
        tok = self._next
        if tok is not None and tok.kind == "punct" and tok.value == char:
            self.advance()
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            raise DumpSyntaxError(f"expected {char!r}, found {self._show()}")

    def name(self) -> str:
        """An identifier, schema-qualified or not (the schema is dropped: dumps only use main)."""
        tok = self.peek()
        if tok is None or tok.kind not in ("word", "ident", "str"):
            raise DumpSyntaxError(f"expected a name, found {self._show()}")
        self.advance()
        if self.punct("."):
            return self.name()
        return str(tok.value)

    def _show(self) -> str:
        tok = self.peek()
        return "the end of the statement" if tok is None else repr(tok.value)

    def at_end(self) -> bool:
        while self.punct(";"):
            pass
        return self._next is None


@dataclass
class InsertStream:
    """An ``INSERT``'s target and columns, and its rows read one at a time.

    Iterating ``rows`` raises `DumpSyntaxError` at the first malformed row, so a caller
    that must not act on part of a statement checks every row before using any.
    """

    table: str
    columns: list[str] | None
    rows: Iterator[list[Any]]
    conflict: str | None = None


def parse_statement(text: str | bytes) -> SqlStatement:
    """Read one statement of a dump (an ``INSERT``'s rows all in memory: see `stream_insert`).

    Raises:
        DumpSyntaxError: an INSERT or CREATE TABLE this reader cannot follow (other
            statements only need their leading words).
    """
    p = _Parser(text)
    first = p.peek()
    if first is None:
        return SqlStatement("EMPTY")
    if first.kind != "word":
        raise DumpSyntaxError(f"a statement cannot start with {first.value!r}")
    verb = first.upper
    if verb in ("INSERT", "REPLACE"):
        head = _insert(p)
        return SqlStatement("INSERT", table=head.table, columns=head.columns, rows=list(head.rows),
                            conflict=head.conflict)
    if verb == "CREATE":
        return _create(p)
    p.advance()
    if verb == "PRAGMA":
        return SqlStatement("PRAGMA", name=p.name() if p.peek() else None)
    if verb in ("DELETE", "UPDATE", "DROP", "ALTER"):
        kind = verb
        if verb == "DELETE":
            kind = "DELETE FROM" if p.word("FROM") else kind
        elif verb in ("DROP", "ALTER"):
            what = p.word("TABLE", "INDEX", "VIEW", "TRIGGER")
            kind = f"{verb} {what}" if what else kind
            if p.word("IF"):
                p.word("EXISTS")
        elif p.word("OR"):
            p.word("ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE")
        name = p.name() if p.peek() else None
        if kind in ("DROP INDEX", "DROP VIEW", "DROP TRIGGER"):
            return SqlStatement(kind, name=name)
        return SqlStatement(kind, table=name)
    return SqlStatement(verb)


def _create(p: _Parser) -> SqlStatement:
    p.expect_word("CREATE")
    p.word("TEMP", "TEMPORARY")
    unique = p.word("UNIQUE")
    what = p.word("TABLE", "INDEX", "VIEW", "TRIGGER", "VIRTUAL")
    if what is None:
        return SqlStatement("CREATE")
    if what == "VIRTUAL":
        p.expect_word("TABLE")
        what = "VIRTUAL TABLE"
    if p.word("IF"):
        p.expect_word("NOT")
        p.expect_word("EXISTS")
    name = p.name()
    if what == "INDEX":
        p.expect_word("ON")
        return SqlStatement("CREATE UNIQUE INDEX" if unique else "CREATE INDEX", table=p.name(), name=name)
    if what in ("VIEW", "TRIGGER", "VIRTUAL TABLE"):
        return SqlStatement(f"CREATE {what}", name=name, table=name if what == "VIRTUAL TABLE" else None)
    if not p.punct("("):
        return SqlStatement("CREATE TABLE", table=name)  # CREATE TABLE ... AS SELECT: no column list
    columns: list[str] = []
    while True:
        tok = p.peek()
        if tok is None:
            raise DumpSyntaxError(f"CREATE TABLE {name}: the column list never closes")
        if not (tok.kind == "word" and tok.upper in ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN")):
            columns.append(p.name())
        depth = 0
        while True:  # skip the rest of this column or constraint definition
            tok = p.peek()
            if tok is None:
                raise DumpSyntaxError(f"CREATE TABLE {name}: the column list never closes")
            if tok.kind == "punct" and tok.value == "(":
                depth += 1
            elif tok.kind == "punct" and tok.value == ")":
                if depth == 0:
                    break
                depth -= 1
            elif tok.kind == "punct" and tok.value == "," and depth == 0:
                break
            p.advance()
        if p.punct(")"):
            return SqlStatement("CREATE TABLE", table=name, columns=columns)
        p.expect_punct(",")


def stream_insert(text: str | bytes) -> InsertStream:
    """Read an ``INSERT`` statement's head now and its rows lazily.

    Raises:
        DumpSyntaxError: the statement is not an ``INSERT`` this reader can follow
            (also raised later, from ``rows``, for a malformed row).
    """
    p = _Parser(text)
    return _insert(p)


def _insert(p: _Parser) -> InsertStream:
    conflict = None
    if p.word("REPLACE"):
        conflict = "REPLACE"
    else:
        p.expect_word("INSERT")
        if p.word("OR"):
            conflict = p.expect_word("REPLACE", "IGNORE", "ABORT", "FAIL", "ROLLBACK")
    p.expect_word("INTO")
    table = p.name()
    if p.word("AS"):
        p.name()
    columns = None
    if p.punct("("):
        columns = [p.name()]
        while p.punct(","):
            columns.append(p.name())
        p.expect_punct(")")
    default = p.word("DEFAULT") is not None
    p.expect_word("VALUES")
    return InsertStream(table, columns, _rows(p, table, columns, default), conflict)


def _rows(p: _Parser, table: str, columns: list[str] | None, default: bool) -> Iterator[list[Any]]:
    if default:
        yield []
    else:
        while True:
            row = _row(p)
            if columns is not None and len(row) != len(columns):
                raise DumpSyntaxError(f"INSERT INTO {table}: {len(row)} values for {len(columns)} columns")
            yield row
            if not p.punct(","):
                break
    if not p.at_end():
        raise DumpSyntaxError(f"INSERT INTO {table}: unexpected {p._show()} after the values (upsert clauses "
                              "and SELECTs are not loaded)")


def _row(p: _Parser) -> list[Any]:
    p.expect_punct("(")
    values = [_value(p)]
    while p.punct(","):
        values.append(_value(p))
    p.expect_punct(")")
    return values


def _value(p: _Parser) -> Any:
    sign = 1
    while True:
        if p.punct("-"):
            sign = -sign
        elif not p.punct("+"):
            break
    tok = p.peek()
    if tok is None:
        raise DumpSyntaxError("a value is missing at the end of the statement")
    p.advance()
    if tok.kind == "num":
        if isinstance(tok.value, OutOfRange):
            if sign < 0 and tok.value.int64_min_magnitude:
                return -_INT64_MAX - 1
            return OutOfRange(tok.value.digits, negative=sign < 0)
        return sign * tok.value
    if sign != 1:
        raise DumpSyntaxError(f"cannot negate {tok.value!r}")
    if tok.kind in ("str", "blob"):
        return tok.value
    if tok.kind == "word":
        if tok.upper == "NULL":
            return None
        if tok.upper in ("TRUE", "FALSE"):
            return 1 if tok.upper == "TRUE" else 0
        if tok.upper in ("INF", "INFINITY"):
            return float("inf")
        if p.punct("("):
            if p.depth >= MAX_NESTING:
                raise DumpSyntaxError(f"function calls nested more than {MAX_NESTING} deep in a value")
            p.depth += 1
            args = [] if p.punct(")") else _args(p)
            p.depth -= 1
            return _call(tok.upper, args)
    raise DumpSyntaxError(f"not a literal value: {tok.value!r}")


def _args(p: _Parser) -> list[Any]:
    args = [_value(p)]
    while p.punct(","):
        args.append(_value(p))
    p.expect_punct(")")
    return args


_UNISTR = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|\+([0-9A-Fa-f]{6})|([0-9A-Fa-f]{4})|(\\))")


def _call(name: str, args: list[Any]) -> Any:
    """The functions SQLite's ``.dump`` writes into values; anything else is not loaded."""
    if name == "REPLACE" and len(args) == 3 and all(isinstance(a, str) for a in args):
        return args[0].replace(args[1], args[2]) if args[1] else args[0]
    if name == "CHAR" and all(isinstance(a, int) for a in args):
        try:
            return "".join(chr(a) for a in args)
        except (ValueError, OverflowError):
            raise DumpSyntaxError(f"char() of an invalid code point in {args[:5]!r}") from None
    if name == "UNISTR" and len(args) == 1 and isinstance(args[0], str):
        return _UNISTR.sub(lambda m: "\\" if m.group(5) else chr(int(next(g for g in m.groups() if g), 16)), args[0])
    raise DumpSyntaxError(f"function {name.lower()}() in a value is not loaded")
