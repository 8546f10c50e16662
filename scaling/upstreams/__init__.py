"""Thin clients for the real APIs (or the sandbox): typed results past this boundary,
typed errors (naming upstream and endpoint) for anything malformed."""

from __future__ import annotations

from scaling.upstreams.ai_tasks import AI_TASKS, AiTask, AiTasks, task_key
from scaling.upstreams.lastfm import LastfmClient
from scaling.upstreams.models import (
    AiResult,
    Album,
    ArtistRef,
    Image,
    LastfmUser,
    PlatformLink,
    RecentTrack,
    RecentTracks,
    SearchItem,
    SearchPage,
    SonglinkEntity,
    SonglinkLinks,
    Track,
)
from scaling.upstreams.openai import OpenAIClient
from scaling.upstreams.perplexity import PerplexityClient
from scaling.upstreams.songlink import SonglinkClient
from scaling.upstreams.spotify import SpotifyClient

__all__ = [
    "AI_TASKS",
    "AiResult",
    "AiTask",
    "AiTasks",
    "Album",
    "ArtistRef",
    "Image",
    "LastfmClient",
    "LastfmUser",
    "OpenAIClient",
    "PerplexityClient",
    "PlatformLink",
    "RecentTrack",
    "RecentTracks",
    "SearchItem",
    "SearchPage",
    "SonglinkClient",
    "SonglinkEntity",
    "SonglinkLinks",
    "SpotifyClient",
    "Track",
    "task_key",
]
