"""AI cost accounting: token usage -> dollars, recorded per call, rolled up, held to budgets.

Each provider reports usage its own way; `TokenUsage` holds it in one shape where
cached input is a *subset* of input and reasoning a *subset* of output, so the
LiteLLM bugs (cached tokens billed twice, reasoning tokens added to output again,
Anthropic's cache reads and writes that come *beside* input) cannot happen:

    cost = (input - cached - cache_writes) x input price + cached x cache-read price
         + cache_writes x cache-write price + (output - reasoning) x output price
         + reasoning x reasoning price (= output price unless a model says otherwise)
         + web searches x search price + requests x request fee

`CostTracker.record` prices a call with the price row in force that day, hands the
entry to a `UsageSink` (the metrics DB in production) and adds it to the
provider's month total in the state store, warning once at 80% and once at 100% of
the provider's monthly budget. A cache hit is recorded at zero cost with the
tokens it saved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from scaling.clock import Clock, SystemClock
from scaling.errors import StoreError
from scaling.prices import DEFAULT_PRICES, ModelPrice, PriceTable
from scaling.store import StateStore

if TYPE_CHECKING:
    from scaling.metrics.writer import MetricsWriter

__all__ = ["BudgetStatus", "CostEntry", "CostRow", "CostTracker", "MemorySink", "MetricsSink", "TokenUsage",
           "UsageSink", "cost_usd", "rollup"]

log = logging.getLogger("headroom.costs")
metrics_log = logging.getLogger("headroom.metrics")

_MTOK = Decimal(1_000_000)
_MICRO = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One call's usage in one shape for every provider.

    Attributes:
        input_tokens: every prompt token, cached and cache-written ones included.
        cached_input_tokens: the part of ``input_tokens`` read from the prompt cache.
        cache_write_tokens: the part of ``input_tokens`` written to the cache (Anthropic).
        output_tokens: every output token, reasoning included.
        reasoning_tokens: the part of ``output_tokens`` spent reasoning.
        web_search_calls: web searches the model ran.

    Raises:
        ValueError: negative counts, or a part larger than its whole.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_calls: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                     "reasoning_tokens", "web_search_calls"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(f"cached ({self.cached_input_tokens}) + cache-write ({self.cache_write_tokens}) "
                             f"tokens exceed input tokens ({self.input_tokens})")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(f"reasoning tokens ({self.reasoning_tokens}) exceed output tokens "
                             f"({self.output_tokens})")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    # -- provider shapes -----------------------------------------------------------------
    @classmethod
    def from_openai_chat(cls, usage: Mapping[str, Any], *, web_search_calls: int = 0) -> TokenUsage:
        """Chat Completions: cached is inside prompt_tokens, reasoning inside completion_tokens."""
        prompt = _details(usage, "prompt_tokens_details")
        completion = _details(usage, "completion_tokens_details")
        return cls(input_tokens=_int(usage, "prompt_tokens"), cached_input_tokens=_int(prompt, "cached_tokens", 0),
                   output_tokens=_int(usage, "completion_tokens"),
                   reasoning_tokens=_int(completion, "reasoning_tokens", 0), web_search_calls=web_search_calls)

    @classmethod
    def from_openai_responses(cls, usage: Mapping[str, Any], *, web_search_calls: int = 0) -> TokenUsage:
        """Responses API: the same subsets under input_tokens_details / output_tokens_details."""
        inp = _details(usage, "input_tokens_details")
        out = _details(usage, "output_tokens_details")
        return cls(input_tokens=_int(usage, "input_tokens"), cached_input_tokens=_int(inp, "cached_tokens", 0),
                   output_tokens=_int(usage, "output_tokens"), reasoning_tokens=_int(out, "reasoning_tokens", 0),
                   web_search_calls=web_search_calls)

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """Messages API: input_tokens excludes cache reads and writes, which come beside it."""
        reads = _int(usage, "cache_read_input_tokens", 0)
        writes = _int(usage, "cache_creation_input_tokens", 0)
        return cls(input_tokens=_int(usage, "input_tokens") + reads + writes, cached_input_tokens=reads,
                   cache_write_tokens=writes, output_tokens=_int(usage, "output_tokens"))

    @classmethod
    def from_perplexity(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """Sonar: chat-style prompt/completion tokens; every request searches (billed per request)."""
        completion = _details(usage, "completion_tokens_details")
        return cls(input_tokens=_int(usage, "prompt_tokens"), output_tokens=_int(usage, "completion_tokens"),
                   reasoning_tokens=_int(completion, "reasoning_tokens", 0))

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "cached_input_tokens": self.cached_input_tokens,
                "cache_write_tokens": self.cache_write_tokens, "output_tokens": self.output_tokens,
                "reasoning_tokens": self.reasoning_tokens, "web_search_calls": self.web_search_calls}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenUsage:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in dataclasses.fields(cls)})


def _details(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"usage.{name} is not an object")
    return value


def _int(obj: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = obj.get(name, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"usage field {name} is {'missing' if value is None else repr(value)}, not a token count")
    return value


def cost_usd(usage: TokenUsage, price: ModelPrice, *, requests: int = 1) -> Decimal:
    """Exact dollars for one call's usage at one price row (see the module docstring's formula)."""
    cached_price = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    write_price = price.cache_write_per_mtok if price.cache_write_per_mtok is not None else price.input_per_mtok
    reasoning_price = price.reasoning_per_mtok if price.reasoning_per_mtok is not None else price.output_per_mtok
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    visible = usage.output_tokens - usage.reasoning_tokens
    tokens = (uncached * price.input_per_mtok + usage.cached_input_tokens * cached_price
              + usage.cache_write_tokens * write_price + visible * price.output_per_mtok
              + usage.reasoning_tokens * reasoning_price) / _MTOK
    return tokens + usage.web_search_calls * price.web_search_per_call + requests * price.per_request


@dataclass(frozen=True, slots=True)
class CostEntry:
    """One recorded AI call (or a cache hit that avoided one)."""

    ts: float
    provider: str
    model: str
    task: str
    usage: TokenUsage
    cost_usd: Decimal
    latency_ms: float = 0.0
    cache_hit: bool = False
    saved_tokens: int = 0
    price_version: str | None = None

    @property
    def day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.ts, dt.UTC).date()


class UsageSink(Protocol):
    """Where recorded entries go (the metrics DB, a list in tests)."""

    def write(self, entries: Sequence[CostEntry]) -> None: ...


@dataclass
class MemorySink:
    """Keeps entries in a list (tests, simulations, processes without a metrics DB)."""

    entries: list[CostEntry] = field(default_factory=list)

    def write(self, entries: Sequence[CostEntry]) -> None:
        self.entries.extend(entries)


class MetricsSink:
    """Writes entries to the metrics DB's ``ai_usage`` table through its `MetricsWriter`."""

    def __init__(self, writer: MetricsWriter) -> None:
        self.writer = writer

    @classmethod
    def open(cls, metrics_db_url: str, clock: Clock) -> MetricsSink:
        from scaling.metrics.db import open_metrics_db
        from scaling.metrics.writer import MetricsWriter

        return cls(MetricsWriter(open_metrics_db(metrics_db_url), clock=clock, log_lines=False))

    def write(self, entries: Sequence[CostEntry]) -> None:
        from scaling.metrics.records import AiUsage

        self.writer.record_ai_usage(AiUsage(
            provider=e.provider, model=e.model, task=e.task, input_tokens=e.usage.input_tokens,
            cached_input_tokens=e.usage.cached_input_tokens, output_tokens=e.usage.output_tokens,
            reasoning_tokens=e.usage.reasoning_tokens, web_search_calls=e.usage.web_search_calls,
            latency_ms=e.latency_ms, cache_hit=e.cache_hit, cost_usd=float(e.cost_usd),
            saved_tokens=e.saved_tokens, price_version=e.price_version, ts=e.ts) for e in entries)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A provider's spend this month against its budget.

    Attributes:
        level: "ok", "warning" (>= first warn ratio, 80%), "exceeded" (>= 100%) or "unbudgeted".
    """

    provider: str
    month: str
    spent_usd: Decimal
    budget_usd: Decimal | None
    ratio: float | None
    level: str


class CostTracker:
    """Prices and records every AI call.

    Args:
        sink: where entries go (default: a `MemorySink`).
        prices: the price table.
        clock: stamps entries and picks the price row and month.
        store: holds month-to-date spend per provider, shared by every process
            (None keeps it in this process only).
        budgets: monthly budget in dollars per provider.
        warn_ratios: budget shares that warn once each per month (80% and 100%).
        on_budget: also called with the status when a warning fires (alerts).
    """

    def __init__(self, *, sink: UsageSink | None = None, prices: PriceTable = DEFAULT_PRICES,
                 clock: Clock | None = None, store: StateStore | None = None,
                 budgets: Mapping[str, float | None] | None = None, warn_ratios: Sequence[float] = (0.8, 1.0),
                 on_budget: Callable[[BudgetStatus], None] | None = None) -> None:
        self.sink: UsageSink = sink if sink is not None else MemorySink()
        self.prices = prices
        self.clock: Clock = clock or SystemClock()
        self.store = store
        self.budgets = {k: Decimal(str(v)) for k, v in (budgets or {}).items() if v is not None}
        self.warn_ratios = tuple(sorted(warn_ratios))
        self.on_budget = on_budget
        self._local_spend: dict[str, int] = {}
        self._local_warned: set[str] = set()
        self._unpriced_warned: set[tuple[str, str]] = set()

    def record(self, provider: str, model: str, task: str, usage: TokenUsage, *, latency_ms: float = 0.0,
               requests: int = 1) -> CostEntry:
        """Price and record one call that reached the provider.

        An unpriced model is recorded at $0 with ``price_version=None`` (and a warning),
        never dropped.
        """
        now = self.clock.now()
        price = self.prices.lookup(provider, model, now)
        if price is None:
            if (provider, model) not in self._unpriced_warned:
                log.warning("no price for %s/%s: its calls are recorded at $0 until one is added", provider, model)
                self._unpriced_warned.add((provider, model))
            cost, version = Decimal(0), None
        else:
            cost, version = cost_usd(usage, price, requests=requests), price.version
        entry = CostEntry(now, provider, model, task, usage, cost, latency_ms, False, 0, version)
        self._emit(entry)
        if cost > 0:
            self._add_spend(provider, cost, now)
        return entry

    def record_cache_hit(self, provider: str, model: str, task: str, saved: TokenUsage, *,
                         latency_ms: float = 0.0) -> CostEntry:
        """Record an answer served from the cache: zero cost, and the tokens it saved."""
        now = self.clock.now()
        entry = CostEntry(now, provider, model, task, TokenUsage(), Decimal(0), latency_ms, True,
                          saved.total_tokens, None)
        self._emit(entry)
        return entry

    def _emit(self, entry: CostEntry) -> None:
        try:
            self.sink.write([entry])
        except StoreError as exc:
            # The call happened and cost money: keep it in the logs rather than lose it.
            log.warning("[AI_USAGE_UNSAVED] %s (%s)", json.dumps(_entry_json(entry)), exc)

    # -- month-to-date spend and budgets ---------------------------------------------------
    @staticmethod
    def _month(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m")

    def _add_spend(self, provider: str, cost: Decimal, now: float) -> None:
        micros = int((cost * _MICRO).to_integral_value())
        key = f"aicost:{provider}:{self._month(now)}"
        total: int | None = None
        if self.store is not None:
            try:
                total = self.store.incr(key, micros, now=now, ttl=62 * 86400)
            except StoreError as exc:
                log.warning("month-to-date AI spend kept in this process only: %s", exc)
        if total is None:
            total = self._local_spend[key] = self._local_spend.get(key, 0) + micros
        self._check_budget(provider, Decimal(total) / _MICRO, now)

    def month_spend(self, provider: str, *, at: float | None = None) -> Decimal:
        """Dollars recorded for ``provider`` in the month of ``at`` (default now)."""
        now = self.clock.now() if at is None else at
        key = f"aicost:{provider}:{self._month(now)}"
        raw = None
        if self.store is not None:
            try:
                raw = self.store.get(key, now=now)
            except StoreError:
                raw = None
        micros = int(raw) if raw is not None else self._local_spend.get(key, 0)
        return Decimal(micros) / _MICRO

    def budget_status(self, provider: str, *, at: float | None = None) -> BudgetStatus:
        now = self.clock.now() if at is None else at
        return self._status(provider, self.month_spend(provider, at=now), now)

    def _status(self, provider: str, spent: Decimal, now: float) -> BudgetStatus:
        budget = self.budgets.get(provider)
        if budget is None or budget <= 0:
            return BudgetStatus(provider, self._month(now), spent, budget, None, "unbudgeted")
        ratio = float(spent / budget)
        level = "exceeded" if ratio >= 1.0 else "warning" if ratio >= self.warn_ratios[0] else "ok"
        return BudgetStatus(provider, self._month(now), spent, budget, ratio, level)

    def _check_budget(self, provider: str, spent: Decimal, now: float) -> None:
        status = self._status(provider, spent, now)
        if status.ratio is None:
            return
        for threshold in self.warn_ratios:
            if status.ratio < threshold:
                break
            flag = f"aibudget:{provider}:{status.month}:{int(threshold * 100)}"
            if not self._first(flag, now):
                continue
            metrics_log.warning("[AI_BUDGET_WARNING] %s", json.dumps({
                "provider": provider, "month": status.month, "spent_usd": round(float(spent), 4),
                "budget_usd": float(status.budget_usd or 0), "threshold": threshold,
                "ratio": round(status.ratio, 4)}))
            if self.on_budget is not None:
                self.on_budget(status)

    def _first(self, flag: str, now: float) -> bool:
        """True for the one process (and call) that crosses a threshold first this month."""
        if self.store is not None:
            try:
                return self.store.add(flag, b"1", now=now, ttl=62 * 86400)
            except StoreError:
                pass
        if flag in self._local_warned:
            return False
        self._local_warned.add(flag)
        return True


def _entry_json(e: CostEntry) -> dict[str, Any]:
    return {"ts": e.ts, "provider": e.provider, "model": e.model, "task": e.task, **e.usage.to_dict(),
            "cost_usd": str(e.cost_usd), "latency_ms": e.latency_ms, "cache_hit": e.cache_hit,
            "saved_tokens": e.saved_tokens, "price_version": e.price_version}


@dataclass(frozen=True, slots=True)
class CostRow:
    """One group of a roll-up: its keys, then sums."""

    keys: tuple[tuple[str, str], ...]
    calls: int
    cache_hits: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    web_search_calls: int
    saved_tokens: int
    cost_usd: Decimal


_GROUPS = {"day": lambda e: e.day.isoformat(), "month": lambda e: e.day.strftime("%Y-%m"),
           "provider": lambda e: e.provider, "model": lambda e: e.model, "task": lambda e: e.task}


def rollup(entries: Iterable[CostEntry], group_by: Sequence[str] = ("day", "provider", "model", "task")
           ) -> list[CostRow]:
    """Sum entries per group, in memory (what the metrics DB's ``ai_cost_by`` does in SQL).

    Raises:
        ValueError: an unknown grouping.
    """
    bad = [g for g in group_by if g not in _GROUPS]
    if bad:
        raise ValueError(f"unknown grouping {bad}; use {', '.join(_GROUPS)}")
    acc: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for e in entries:
        key = tuple((g, _GROUPS[g](e)) for g in group_by)
        row = acc.setdefault(key, [0, 0, 0, 0, 0, 0, 0, 0, Decimal(0)])
        u = e.usage
        for i, v in enumerate((1, int(e.cache_hit), u.input_tokens, u.cached_input_tokens, u.output_tokens,
                               u.reasoning_tokens, u.web_search_calls, e.saved_tokens, e.cost_usd)):
            row[i] += v
    return [CostRow(k, *v) for k, v in sorted(acc.items())]
