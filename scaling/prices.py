"""The versioned AI price table: dollars per million tokens, each row effective from a date.

A call is priced with the row in force on the day it was made (UTC), and the row's
`ModelPrice.version` is stored with the usage, so a price change mid-month applies
from its effective date and old rows keep the price they were charged. Prices
follow ``reference/upstream.md`` §5; where the reference is silent the row says
which published convention it assumes (``source``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from scaling.errors import ConfigurationError

__all__ = ["DEFAULT_PRICES", "ModelPrice", "PriceTable"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices from one date on.

    Attributes:
        provider: "openai", "anthropic", "perplexity".
        model: the model name as the API reports it (dated snapshots match by prefix).
        effective_from: the first UTC day these prices apply.
        input_per_mtok: uncached input tokens, $ per 1M.
        output_per_mtok: output tokens (reasoning included), $ per 1M.
        cached_input_per_mtok: input tokens read from the prompt cache; None = the input price.
        cache_write_per_mtok: input tokens written to the cache (Anthropic); None = the input price.
        reasoning_per_mtok: reasoning tokens if billed apart from output; None = the output price.
        web_search_per_call: $ per web search the model ran.
        per_request: $ per request on top of tokens (Perplexity's request fee).
        source: where the figures come from.
    """

    provider: str
    model: str
    effective_from: dt.date
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None
    reasoning_per_mtok: Decimal | None = None
    web_search_per_call: Decimal = _ZERO
    per_request: Decimal = _ZERO
    source: str = ""

    @property
    def version(self) -> str:
        """What usage rows store as ``price_version``: ``provider/model@YYYY-MM-DD``."""
        return f"{self.provider}/{self.model}@{self.effective_from.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "model": self.model,
                               "effective_from": self.effective_from.isoformat()}
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok",
                     "reasoning_per_mtok", "web_search_per_call", "per_request"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ModelPrice:
        """Build from JSON (prices as strings or numbers, date as YYYY-MM-DD).

        Raises:
            ConfigurationError: naming the row and field at fault.
        """
        where = f"price row {row.get('provider')}/{row.get('model')}"
        try:
            def dec(name: str, default: Decimal | None = None) -> Decimal | None:
                raw = row.get(name)
                if raw is None:
                    return default
                value = Decimal(str(raw))
                if not value.is_finite() or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                return value

            return cls(provider=str(row["provider"]), model=str(row["model"]),
                       effective_from=dt.date.fromisoformat(str(row["effective_from"])),
                       input_per_mtok=dec("input_per_mtok") or _ZERO, output_per_mtok=dec("output_per_mtok") or _ZERO,
                       cached_input_per_mtok=dec("cached_input_per_mtok"),
                       cache_write_per_mtok=dec("cache_write_per_mtok"),
                       reasoning_per_mtok=dec("reasoning_per_mtok"),
                       web_search_per_call=dec("web_search_per_call", _ZERO) or _ZERO,
                       per_request=dec("per_request", _ZERO) or _ZERO, source=str(row.get("source", "")))
        except KeyError as exc:
            raise ConfigurationError(f"{where}: missing field {exc.args[0]!r}", variable="prices") from None
        except (ValueError, ArithmeticError) as exc:
            raise ConfigurationError(f"{where}: {exc}", variable="prices") from None


class PriceTable:
    """Every price row; `lookup` picks the one in force for a model on a day.

    Raises:
        ConfigurationError: two rows for the same provider, model and date.
    """

    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        self._rows: dict[tuple[str, str], list[ModelPrice]] = {}
        for p in prices:
            rows = self._rows.setdefault((p.provider, p.model), [])
            if any(r.effective_from == p.effective_from for r in rows):
                raise ConfigurationError(f"two prices for {p.provider}/{p.model} from {p.effective_from}",
                                         variable="prices")
            rows.append(p)
        for rows in self._rows.values():
            rows.sort(key=lambda r: r.effective_from)

    def __iter__(self) -> Any:
        return (p for rows in self._rows.values() for p in rows)

    def with_prices(self, *extra: ModelPrice) -> PriceTable:
        """A new table with more rows (e.g. a price change from a date)."""
        return PriceTable([*self, *extra])

    def _model_rows(self, provider: str, model: str) -> list[ModelPrice] | None:
        rows = self._rows.get((provider, model))
        if rows is not None:
            return rows
        # Dated snapshots ("gpt-5.6-terra-2026-01-15") are priced as their base model.
        best: tuple[str, list[ModelPrice]] | None = None
        for (prov, name), candidate in self._rows.items():
            if prov == provider and model.startswith(name + "-") and (best is None or len(name) > len(best[0])):
                best = (name, candidate)
        return best[1] if best else None

    def lookup(self, provider: str, model: str, at: dt.date | float) -> ModelPrice | None:
        """The row in force on ``at`` (a date or epoch seconds, UTC), or None if the model is unpriced."""
        day = at if isinstance(at, dt.date) else dt.datetime.fromtimestamp(at, dt.UTC).date()
        rows = self._model_rows(provider, model)
        if not rows:
            return None
        current = None
        for row in rows:
            if row.effective_from <= day:
                current = row
        return current

    def to_json(self) -> str:
        return json.dumps([p.to_dict() for p in self], indent=2)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> PriceTable:
        """Load rows from a JSON list (a string, or a path to a file).

        Raises:
            ConfigurationError: unreadable file, bad JSON or a bad row.
        """
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("["):
            try:
                text = Path(text).read_text()
            except OSError as exc:
                raise ConfigurationError(f"price table {text_or_path}: {exc.strerror}", variable="prices") from None
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"price table is not JSON: {exc}", variable="prices") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigurationError("price table must be a JSON list of objects", variable="prices")
        return cls(ModelPrice.from_dict(r) for r in rows)


def _p(provider: str, model: str, inp: str, out: str, cached: str | None = None, *, write: str | None = None,
       search: str = "0", request: str = "0", source: str) -> ModelPrice:
    return ModelPrice(provider, model, dt.date(2025, 1, 1), Decimal(inp), Decimal(out),
                      None if cached is None else Decimal(cached), None if write is None else Decimal(write),
                      None, Decimal(search), Decimal(request), source)


_REF = "upstream.md §5"
_OPENAI_CACHE = "; cached input at 10% of input, as OpenAI prices the GPT-5 family (assumed)"
_SEARCH = "0.01"  # $10 per 1K web search calls (upstream.md §5)

#: The models the app uses, at the prices the reference quotes.
DEFAULT_PRICES = PriceTable([
    _p("openai", "gpt-5.6-terra", "2", "12", "0.20", search=_SEARCH, source=_REF + _OPENAI_CACHE),
    _p("openai", "gpt-5.6-luna", "0.20", "1.20", "0.02", search=_SEARCH, source=_REF + _OPENAI_CACHE),
    _p("openai", "gpt-5.6-sol", "5", "30", "0.50", search=_SEARCH, source=_REF + " (unused)" + _OPENAI_CACHE),
    _p("openai", "gpt-5-nano", "0.05", "0.40", "0.005", search=_SEARCH, source=_REF + _OPENAI_CACHE),
    _p("openai", "gpt-5.4", "2.50", "15", "0.25", search=_SEARCH, source=_REF + " (earlier)" + _OPENAI_CACHE),
    _p("openai", "gpt-5.2", "1.75", "14", "0.175", search=_SEARCH, source=_REF + " (earlier; cached as quoted)"),
    _p("anthropic", "claude-sonnet-5", "3", "15", "0.30", write="3.75",
       source=_REF + "; cache reads 0.1x and 5-minute cache writes 1.25x input, Anthropic's published ratios"),
    _p("perplexity", "sonar", "1", "1", request="0.005",
       source="Perplexity's published Sonar pricing, low search context (not in the reference)"),
    _p("perplexity", "sonar-pro", "3", "15", request="0.006",
       source="Perplexity's published Sonar Pro pricing, low search context (not in the reference)"),
])
