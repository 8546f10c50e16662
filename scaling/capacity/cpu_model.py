"""CPU time of one Worker invocation from what it did: a per-operation model.

A prewarm or queue consumer mostly waits on Last.fm; the platform bills (and limits)
only the CPU it spends between waits. ``cpu = base + fetches·f + kv·k + d1·d + users·u``.

Defaults are assumptions, each stated, until production data replaces them
(`scaling.capacity.calibration` fits ``per_fetch_ms`` from ingested ``wrangler tail``
``cpuTime`` of cron runs, or the Cloudflare collector's CPU per scheduled invocation):

- ``base_ms`` 2 ms: a warm isolate's dispatch and the script's top level (the Workers
  pricing page's examples bill a few ms for a trivial request);
- ``per_fetch_ms`` 0.5 ms: building one upstream request and ``JSON.parse`` of its
  ~5-10 KB answer (V8 parses JSON at well over 100 MB/s; the rest is runtime overhead);
- ``per_kv_ms`` 0.05 ms and ``per_d1_ms`` 0.1 ms: serialising one binding call (the
  wait for the answer is wall time, not CPU);
- ``per_user_ms`` 0.02 ms: merging and sorting one user's entry in the run's plan;
- ``base_mb`` 20 MB and ``per_user_kb`` 1 KB of memory for the run's working set.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_CPU_MODEL", "CpuModel", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """What one invocation did, counted by the simulator (see `scaling.capacity.metering`)."""

    fetches: int = 0
    kv_ops: int = 0
    d1_queries: int = 0
    users: int = 0
    coordination: int = 0  # limiter and breaker calls: Durable Object subrequests in a Worker


@dataclass(frozen=True, slots=True)
class CpuModel:
    """Milliseconds of CPU per operation; ``source`` says whether they are defaults or fitted."""

    base_ms: float = 2.0
    per_fetch_ms: float = 0.5
    per_kv_ms: float = 0.05
    per_d1_ms: float = 0.1
    per_user_ms: float = 0.02
    base_mb: float = 20.0
    per_user_kb: float = 1.0
    source: str = "default (assumed per-operation costs; see scaling/capacity/cpu_model.py)"

    def cpu_s(self, usage: Usage) -> float:
        """CPU seconds an invocation with ``usage`` spends."""
        ms = (self.base_ms + usage.fetches * self.per_fetch_ms + (usage.kv_ops + usage.coordination) * self.per_kv_ms
              + usage.d1_queries * self.per_d1_ms + usage.users * self.per_user_ms)
        return ms / 1000.0

    def memory_mb(self, usage: Usage) -> float:
        """The invocation's working set: a base plus each user's entry."""
        return self.base_mb + usage.users * self.per_user_kb / 1024.0


DEFAULT_CPU_MODEL = CpuModel()
