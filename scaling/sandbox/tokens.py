"""Deterministic token counts and generated text for the simulated AI APIs.

Counting is the rough rule providers quote (about four characters per token),
so a prompt's cost is predictable in tests. Output length, reasoning spend and
text are functions of the prompt and model: the same request answers the same.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from scaling.sandbox.catalog import ADJECTIVES, NOUNS, stable_int

__all__ = ["Generation", "count_tokens", "generate", "go_duration", "is_reasoning_model", "message_tokens",
           "text_of"]

_FILLER = ("the", "and", "with", "its", "a", "of", "in", "record", "sound", "album", "songs", "listeners", "era",
           "production", "warm", "sparse", "bold", "carefully", "across", "through")
#: Reasoning tokens spent per effort level, as a (low, high) range.
_EFFORT = {"minimal": (0, 48), "none": (0, 0), "low": (64, 320), "medium": (192, 1200), "high": (640, 4000)}


def count_tokens(text: str) -> int:
    """Tokens in ``text``: one per four characters, rounded up (0 for empty text)."""
    return math.ceil(len(text) / 4)


def text_of(content: Any) -> str:
    """The text inside a message ``content``: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                value = part.get("text")
                if isinstance(value, str):
                    parts.append(value)
        return "\n".join(parts)
    return ""


def message_tokens(messages: list[Any]) -> tuple[str, int]:
    """The concatenated prompt text and its token count, with chat framing overhead
    (about 4 tokens per message plus 3 to prime the reply, as OpenAI documents)."""
    texts = []
    tokens = 3
    for m in messages:
        text = text_of(m.get("content")) if isinstance(m, dict) else text_of(m)
        texts.append(text)
        tokens += 4 + count_tokens(text)
    return "\n".join(texts), tokens


def is_reasoning_model(model: str) -> bool:
    """Models that spend hidden reasoning tokens: gpt-5 family and o-series."""
    m = model.lower()
    return "gpt-5" in m or (len(m) > 1 and m[0] == "o" and m[1].isdigit())


@dataclass(frozen=True, slots=True)
class Generation:
    """What the model "wrote".

    Attributes:
        text: the visible answer (may be empty when reasoning used the whole budget).
        visible_tokens: tokens of ``text``.
        reasoning_tokens: hidden reasoning tokens (billed as output).
        truncated: the output hit the max-tokens budget.
    """

    text: str
    visible_tokens: int
    reasoning_tokens: int
    truncated: bool

    @property
    def output_tokens(self) -> int:
        return self.visible_tokens + self.reasoning_tokens


def generate(prompt: str, model: str, max_output: int, effort: str | None = None) -> Generation:
    """A deterministic answer to ``prompt`` within ``max_output`` tokens.

    Visible length is 40 to 400 tokens; reasoning models add reasoning tokens by
    ``effort`` (default medium). Reasoning is spent first, as real models do, so a
    small budget can leave no visible text at all.
    """
    h = stable_int("gen", model, prompt)
    want_visible = 40 + h % 361
    reasoning = 0
    if is_reasoning_model(model):
        low, high = _EFFORT.get((effort or "medium").lower(), _EFFORT["medium"])
        reasoning = low + (h >> 20) % (high - low + 1)
    budget = max(0, max_output)
    spent_reasoning = min(reasoning, budget)
    visible = min(want_visible, budget - spent_reasoning)
    truncated = reasoning + want_visible > budget
    return Generation(_words(h, visible), visible, spent_reasoning, truncated)


def _words(seed: int, tokens: int) -> str:
    if tokens <= 0:
        return ""
    rng = random.Random(seed)
    vocab = _FILLER + tuple(w.lower() for w in ADJECTIVES + NOUNS)
    out: list[str] = []
    length = 0
    target = tokens * 4
    while length < target:
        word = rng.choice(vocab)
        out.append(word)
        length += len(word) + 1
    text = " ".join(out)[: target - 1].rstrip()
    return text[:1].upper() + text[1:] + "."


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers print it: ``12ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"

    def secs(x: float) -> str:
        text = f"{x:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"

    if seconds < 60:
        return secs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, sec = divmod(rest, 60)
    return (f"{int(hours)}h" if hours else "") + f"{int(minutes)}m" + secs(sec)
