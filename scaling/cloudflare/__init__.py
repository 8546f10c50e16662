"""The production account's own numbers from Cloudflare: GraphQL Analytics and REST v4 clients,
the dataset puller and its storage (reference/cloudflare.md)."""

from __future__ import annotations

from scaling.cloudflare.collect import CloudflareAccount, CollectReport, collect, open_account
from scaling.cloudflare.errors import CloudflareError, Problem

__all__ = ["CloudflareAccount", "CloudflareError", "CollectReport", "Problem", "collect", "open_account"]
