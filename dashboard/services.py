"""The dashboard's services: settings, the metrics DB engine and a clock, built once per process.

Pages never build engines: they call `services()`, a ``st.cache_resource`` factory
shared by every session (SQLAlchemy engines are thread-safe, and one pool per
process is the point). The factory is keyed by a digest of the settings, so a
changed ``HEADROOM_METRICS_DB_URL`` (or a test's fresh database) gets its own engine.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine

from scaling.appdb.engine import display_url
from scaling.clock import Clock, SystemClock
from scaling.metrics.db import open_metrics_db
from scaling.settings import Settings

__all__ = ["Services", "build_services", "services"]


@dataclass(frozen=True, slots=True)
class Services:
    """What every page reads through: never an upstream, only the metrics DB."""

    settings: Settings
    engine: Engine
    clock: Clock
    #: Identifies the metrics DB in cache keys (password hidden).
    db_key: str


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Services for ``settings`` (no Streamlit involved; the bench and tests use this directly).

    Raises:
        ConfigurationError: the metrics DB URL is malformed.
    """
    engine = open_metrics_db(settings.metrics_db_url)
    return Services(settings, engine, clock or SystemClock(), display_url(settings.metrics_db_url))


def _release(svc: Services) -> None:
    # A cleared or evicted entry closes its pool instead of leaving connections to the GC.
    svc.engine.dispose()


@st.cache_resource(show_spinner=False, on_release=_release)
def _shared(fingerprint: str, _settings: Settings) -> Services:
    return build_services(_settings)


def services() -> Services:
    """The process-wide services for the current environment's settings.

    Raises:
        ConfigurationError: a ``HEADROOM_*`` variable is malformed (one line naming it).
    """
    settings = Settings.from_env()
    # Pickle covers every field, secrets included; only the digest is kept as the key.
    fingerprint = hashlib.sha256(pickle.dumps(settings)).hexdigest()
    return _shared(fingerprint, settings)
