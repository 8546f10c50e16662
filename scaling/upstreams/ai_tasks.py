"""The app's AI tasks (``reference/upstream.md`` §5), cached per task and accounted.

`AiTasks.run` looks the answer up under ``ai:{task}:{params}`` (params lower-cased,
trimmed, joined with ``:``). A miss makes the call once across all processes
(single-flight); the client records its cost. Anyone served without calling, a
hit or a follower of another caller's fetch, is recorded as a cache hit: zero
cost, and the tokens the original call used as saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from scaling.ai_costs import CostTracker
from scaling.cache import Cache, ai_family
from scaling.clock import Clock, SystemClock
from scaling.errors import ConfigurationError
from scaling.upstreams.models import AiResult
from scaling.upstreams.openai import OpenAIClient

__all__ = ["AI_TASKS", "AiTask", "AiTasks", "task_key"]


@dataclass(frozen=True, slots=True)
class AiTask:
    """How the app runs one task: model, output cap and options."""

    name: str
    model: str
    max_output_tokens: int
    provider: str = "openai"
    web_search: bool = False
    reasoning_effort: str | None = None
    verbosity: str | None = None


AI_TASKS: dict[str, AiTask] = {t.name: t for t in (
    AiTask("artistSummary", "gpt-5.6-terra", 1500),
    AiTask("albumDetail", "gpt-5.6-terra", 1500, web_search=True),  # app: only for recent or undated releases
    AiTask("genreSummary", "gpt-5.6-terra", 1500),
    AiTask("artistSentence", "gpt-5.6-terra", 150, web_search=True),
    AiTask("albumRecommendations", "gpt-5.6-terra", 1000, web_search=True),
    AiTask("listenAi", "gpt-5.6-terra", 500, verbosity="low"),
    AiTask("randomFact", "gpt-5.6-luna", 10000),
    AiTask("playlistCoverPrompt", "gpt-5-nano", 10000),
    AiTask("userInsightsSummary", "claude-sonnet-5", 5000, provider="anthropic"),
    AiTask("userInsightsRecommendations", "gpt-5.6-terra", 4000, reasoning_effort="low", verbosity="low"),
)}


def task_key(params: Sequence[object]) -> str:
    """The cache key of a task's parameters: each lower-cased and trimmed, joined with ``:``."""
    return ":".join(str(p).strip().lower() for p in params)


class AiTasks:
    """Runs AI tasks through the cache with cost accounting.

    Args:
        cache: the shared cache (families ``ai:{task}``).
        costs: the cost tracker (records hits; clients record calls).
        openai: the OpenAI client, for `ask`.
        clock: measures a hit's latency.
    """

    def __init__(self, cache: Cache, costs: CostTracker, *, openai: OpenAIClient | None = None,
                 clock: Clock | None = None) -> None:
        self.cache = cache
        self.costs = costs
        self.openai = openai
        self.clock: Clock = clock or SystemClock()

    async def run(self, task: str, params: Sequence[object], call: Callable[[], Awaitable[AiResult]]) -> AiResult:
        """The task's answer for ``params``: cached, or from ``call`` (made once across processes).

        ``call`` must record its own cost with ``task`` (the clients do when given it).
        """
        start = self.clock.now()

        async def fetch() -> dict[str, object]:
            return (await call()).to_dict()

        looked = await self.cache.lookup(ai_family(task), task_key(params), fetch)
        result = AiResult.from_dict(looked.value)
        if not looked.called_upstream:
            self.costs.record_cache_hit(result.provider, result.model, task, result.usage,
                                        latency_ms=(self.clock.now() - start) * 1000.0)
        return result

    async def ask(self, task: str, params: Sequence[object], prompt: str, *, instructions: str | None = None,
                  web_search: bool | None = None, budget_s: float | None = None) -> AiResult:
        """Run an OpenAI task with the app's settings for it (`AI_TASKS`).

        Raises:
            ConfigurationError: unknown task, a non-OpenAI task, or no OpenAI client.
        """
        spec = AI_TASKS.get(task)
        if spec is None or spec.provider != "openai" or self.openai is None:
            raise ConfigurationError(f"AI task {task!r} cannot be asked of OpenAI here "
                                     f"({'unknown task' if spec is None else 'no client or another provider'})",
                                     variable="task")
        client = self.openai

        async def call() -> AiResult:
            return await client.respond(prompt, model=spec.model, task=task, instructions=instructions,
                                        max_output_tokens=spec.max_output_tokens,
                                        reasoning_effort=spec.reasoning_effort, verbosity=spec.verbosity,
                                        web_search=spec.web_search if web_search is None else web_search,
                                        budget_s=budget_s)

        return await self.run(task, params, call)
