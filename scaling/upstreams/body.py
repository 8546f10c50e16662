"""Strict reads of a parsed JSON body: anything unexpected is a `MalformedResponse`.

Clients never index raw dicts. A `Body` wraps a JSON value with the upstream,
endpoint and JSON path it came from, so a missing field, a wrong type or a
truncated list becomes ``MalformedResponse("spotify album: $.artists[0].name is
missing")`` instead of a ``KeyError`` deep inside a page render.
"""

from __future__ import annotations

from typing import Any

from scaling.errors import MalformedResponse

__all__ = ["Body"]

_REQUIRED: Any = object()


class Body:
    """One JSON value from an upstream, with where it came from.

    Args:
        data: the parsed JSON value.
        upstream: the upstream's name (for errors).
        endpoint: the endpoint's secret-free name (for errors).
        path: the JSON path of ``data`` in the body.
    """

    __slots__ = ("_parent", "_path", "_step", "data", "endpoint", "upstream")

    def __init__(self, data: Any, *, upstream: str, endpoint: str, path: str = "$") -> None:
        self.data = data
        self.upstream = upstream
        self.endpoint = endpoint
        self._path: str | None = path
        self._parent: Body | None = None
        self._step: tuple[str, int | None] | None = None

    @property
    def path(self) -> str:
        """The JSON path of this value, e.g. ``$.tracks.items[3].name``."""
        if self._path is None:
            # Built on demand: a parse makes thousands of children and only an error reads a path.
            assert self._parent is not None and self._step is not None
            key, index = self._step
            self._path = f"{self._parent.path}.{key}" if index is None else f"{self._parent.path}.{key}[{index}]"
        return self._path

    def fail(self, what: str) -> MalformedResponse:
        """The error for a surprise at this path (raise it)."""
        return MalformedResponse(f"{self.path} {what}", upstream=self.upstream, endpoint=self.endpoint)

    def _at(self, data: Any, key: str, index: int | None = None) -> Body:
        child = Body.__new__(Body)
        child.data = data
        child.upstream = self.upstream
        child.endpoint = self.endpoint
        child._path = None
        child._parent = self
        child._step = (key, index)
        return child

    def _dict(self) -> dict[str, Any]:
        if not isinstance(self.data, dict):
            raise self.fail(f"is {_kind(self.data)}, expected an object")
        return self.data

    def _value(self, key: str, default: Any) -> Any:
        value = self._dict().get(key)
        if value is None:
            if default is _REQUIRED:
                raise self._at(None, key).fail("is missing")
            return default
        return value

    def has(self, key: str) -> bool:
        return isinstance(self.data, dict) and self.data.get(key) is not None

    def obj(self, key: str) -> Body:
        """A required object field."""
        child = self._at(self._value(key, _REQUIRED), key)
        child._dict()
        return child

    def opt_obj(self, key: str) -> Body | None:
        """An optional object field (None if absent or null)."""
        value = self._value(key, None)
        if value is None:
            return None
        child = self._at(value, key)
        child._dict()
        return child

    def items(self, key: str, *, optional: bool = False) -> list[Body]:
        """A list field's elements (an empty list if optional and absent)."""
        value = self._value(key, [] if optional else _REQUIRED)
        if not isinstance(value, list):
            raise self._at(value, key).fail(f"is {_kind(value)}, expected a list")
        return [self._at(v, key, i) for i, v in enumerate(value)]

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        """A string field; with ``default``, absent or null gives the default."""
        data = self.data
        if type(data) is dict:  # the common case first: parsing is on every call's path
            value = data.get(key)
            if type(value) is str:
                return value
        value = self._value(key, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, str):
            raise self._at(value, key).fail(f"is {_kind(value)}, expected a string")
        return value

    def integer(self, key: str, default: Any = _REQUIRED, *, numeric_string: bool = False) -> Any:
        """An integer field (Last.fm sends numbers as strings: ``numeric_string=True``)."""
        data = self.data
        if type(data) is dict:
            value = data.get(key)
            if type(value) is int:
                return value
        value = self._value(key, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool):
            raise self._at(value, key).fail("is a boolean, expected an integer")
        if isinstance(value, int):
            return value
        if numeric_string and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise self._at(value, key).fail(f"is {_kind(value)}, expected an integer")

    def as_text(self) -> str:
        if not isinstance(self.data, str):
            raise self.fail(f"is {_kind(self.data)}, expected a string")
        return self.data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)
