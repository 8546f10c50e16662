"""Headroom's dashboard: ``streamlit run app.py`` (binds 127.0.0.1 via .streamlit/config.toml).

Thin on purpose: check the password, draw the shared sidebar, register the pages.
Each page is a module in ``app_pages/`` reading the metrics DB through
`dashboard`. Not ``pages/``: Streamlit runs a folder of that name next to
the entry point as a legacy multipage app until some session has called
``st.navigation``, so a first visitor's deep link would skip this script and its
password gate.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import auth, controls, data
from dashboard.services import services
from scaling.errors import ConfigurationError

st.set_page_config(page_title="Headroom", page_icon=":material/monitoring:", layout="wide")

try:
    svc = services()
except ConfigurationError as err:
    st.error(f"Configuration problem: {err}")
    st.stop()

if not auth.gate(svc.settings.dashboard_password):
    st.stop()
warning = auth.exposure_warning(st.get_option("server.address"), svc.settings.dashboard_password)
if warning:
    st.warning(warning, icon=":material/warning:")

pages = st.navigation({
    "Capacity": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/explore:", default=True),
        st.Page("app_pages/capacity_planner.py", title="Capacity planner", icon=":material/calculate:",
                url_path="capacity-planner"),
    ],
    "Limits": [
        st.Page("app_pages/rate_limits.py", title="Rate limits", icon=":material/speed:", url_path="rate-limits"),
        st.Page("app_pages/cron.py", title="Cron", icon=":material/schedule:", url_path="cron"),
        st.Page("app_pages/database.py", title="Database", icon=":material/database:", url_path="database"),
        st.Page("app_pages/cache.py", title="Cache", icon=":material/cached:", url_path="cache"),
        st.Page("app_pages/costs.py", title="Costs", icon=":material/payments:", url_path="costs"),
    ],
})
# Outside any guard: an unmigrated DB is explained once, by the page, and the sidebar stays.
controls.sidebar(svc, data.sources(svc))
pages.run()
# Drawn last on every page: when its figures were read. The browser test waits for this
# element, so it never judges (or photographs) a page that is still drawing.
with st.container(key="page-end"):
    st.caption(f"Figures read from the metrics DB at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC.")
