"""The Streamlit side every page shares: sidebar controls, "now", headers, live fragments, empty states.

The sidebar (time range, source, refresh) is rendered once by ``app.py`` so its
widgets keep their values across pages; pages read the choice with `view()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import streamlit as st

from dashboard import formatting as fmt
from dashboard.services import Services
from dashboard.timerange import DEFAULT_PRESET, PRESETS, RangeChoice, Window, resolve
from scaling.errors import ConfigurationError, StoreError

__all__ = ["REFRESH_CHOICES", "View", "empty_state", "guard", "now", "run_live", "sidebar", "view"]

#: Refresh label -> seconds (None: off).
REFRESH_CHOICES: dict[str, int | None] = {"Off": None, "30 s": 30, "1 min": 60, "5 min": 300}
_CUSTOM = "Custom dates…"
_VIEW_KEY = "headroom_view"
#: Session key (or ``?now=`` query parameter) that pins "now", for tests and screenshots.
NOW_KEY = "headroom_now"


@dataclass(frozen=True, slots=True)
class View:
    """What the sidebar chose: a range, a source (None = all) and a refresh interval."""

    choice: RangeChoice = RangeChoice()
    source: str | None = None
    refresh_s: int | None = 60

    def window(self, at: float) -> Window:
        return resolve(self.choice, at)


def now(svc: Services) -> float:
    """Epoch seconds "now": the services' clock unless pinned by ``?now=`` or session state."""
    pinned = st.session_state.get(NOW_KEY)
    if pinned is None and "now" in st.query_params:
        try:
            pinned = float(st.query_params["now"])
        except ValueError:
            st.warning(f"Ignoring ?now={st.query_params['now']!r}: expected epoch seconds.")
        else:
            st.session_state[NOW_KEY] = pinned
    return float(pinned) if pinned is not None else svc.clock.now()


#: URL value of ``?range=`` -> preset label; the view lives in the URL so a reload or a pasted link shows it.
RANGE_SLUGS: dict[str, str] = {"1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days",
                               "30d": "Last 30 days", "90d": "Last 90 days"}
_SLUG_OF = {label: slug for slug, label in RANGE_SLUGS.items()}
_URL_SEEN = "headroom_url_seen"


def _from_url(labels: list[str]) -> None:
    """Copy ``?range=`` and ``?source=`` into the widgets when the URL changed since we last wrote it."""
    wanted = (st.query_params.get("range"), st.query_params.get("source"))
    if wanted == st.session_state.get(_URL_SEEN):
        return
    preset = RANGE_SLUGS.get(wanted[0] or "")
    if preset is not None:
        st.session_state["range_preset"] = preset
    elif wanted[0]:
        st.warning(f"Ignoring ?range={wanted[0]!r}: expected one of {', '.join(RANGE_SLUGS)}.")
    if wanted[1] in labels:
        st.session_state["source"] = wanted[1]
    elif wanted[1]:
        st.warning(f"Ignoring ?source={wanted[1]!r}: expected one of {', '.join(labels)}.")


def _to_url(picked: str, source: str) -> None:
    slug = _SLUG_OF.get(picked)
    if slug is not None and st.query_params.get("range") != slug:
        st.query_params["range"] = slug
    if st.query_params.get("source") != source:
        st.query_params["source"] = source
    st.session_state[_URL_SEEN] = (st.query_params.get("range"), source)


def sidebar(svc: Services, source_options: list[str]) -> View:
    """Render the shared controls in the sidebar and remember the choice for the pages.

    The range and source are read from and written to the URL (``?range=24h&source=demo``);
    the page is the URL's path.
    """
    _from_url(["all", *source_options])
    with st.sidebar:
        st.markdown("**Time range**")
        presets = [*PRESETS, _CUSTOM]
        st.session_state.setdefault("range_preset", DEFAULT_PRESET)
        picked = st.selectbox("Time range", presets, key="range_preset", label_visibility="collapsed")
        choice = RangeChoice(picked) if picked != _CUSTOM else _custom_dates(now(svc))
        labels = ["all", *source_options]
        chosen = st.selectbox("Source", labels, key="source", help=(
            "collectors: measured by Headroom's own collectors; worker: ingested from the production Worker's "
            "`wrangler tail`; demo: generated history. 'all' shows them side by side."))
        refresh = st.selectbox("Live refresh", list(REFRESH_CHOICES), index=2, key="refresh",
                               help="Re-reads the charts on a timer without rerunning the whole page.")
        st.caption(f"Metrics DB: `{svc.db_key}`")
    _to_url(picked, chosen)
    chosen_view = View(choice, None if chosen == "all" else chosen, REFRESH_CHOICES[refresh])
    st.session_state[_VIEW_KEY] = chosen_view
    return chosen_view


def _custom_dates(at: float) -> RangeChoice:
    today = date.fromtimestamp(at)
    picked = st.date_input("Dates (UTC)", value=(today - timedelta(days=6), today), key="range_dates",
                           max_value=today)
    if isinstance(picked, tuple) and len(picked) == 2:
        return RangeChoice(None, picked[0], picked[1])
    st.caption("Pick an end date too; showing the last 7 days until then.")
    return RangeChoice(DEFAULT_PRESET)


def view() -> View:
    """The sidebar's current choice (defaults when a page runs without ``app.py``)."""
    current = st.session_state.get(_VIEW_KEY)
    return current if isinstance(current, View) else View()


def run_live(svc: Services, v: View, caption: str, body: Callable[[float, Window], None]) -> None:
    """Run ``body(now, window)`` under a caption, as a fragment re-run every ``v.refresh_s`` seconds.

    Only the fragment re-runs on the timer (the page title and sidebar stay put); it
    reads "now" afresh each time, so a relative range slides forward and its caption
    says which window is on screen. Store and configuration errors become a message.
    """
    def fragment() -> None:
        at = now(svc)
        window = v.window(at)
        st.caption(f"{caption} · {window.label}: {fmt.timestamp(window.since)} → "
                   f"{fmt.timestamp(min(window.until, at))}")
        with guard(svc):
            body(at, window)

    st.fragment(fragment, run_every=v.refresh_s)()


def empty_state(svc: Services, what: str, *, source: str | None = None) -> None:
    """Say what to do when there is nothing to show, instead of an empty chart or a traceback."""
    scope = f" from source '{source}'" if source else ""
    st.info(
        f"No {what}{scope} in this range of `{svc.db_key}`.\n\n"
        "To fill the metrics DB:\n"
        "1. `python -m scaling migrate` (creates the tables)\n"
        "2. `python -m collectors` (measures the live service layer), or\n"
        "   `python -m scaling demo-metrics --days 90` (generated history to explore)\n\n"
        "Or pick a longer time range or another source in the sidebar.")


@contextlib.contextmanager
def guard(svc: Services) -> Iterator[None]:
    """Turn store and configuration errors into a one-line explanation on the page."""
    try:
        yield
    except StoreError as err:
        st.warning(f"The metrics DB cannot be read: {err}")
        st.markdown("Run `python -m scaling migrate` to create it, then `python -m collectors` or "
                    "`python -m scaling demo-metrics --days 90` to fill it.")
    except ConfigurationError as err:
        st.error(f"Configuration problem: {err}")
