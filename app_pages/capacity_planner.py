"""Capacity planner: what-if simulation of N users (arrives with scaling/capacity/simulate.py)."""

from __future__ import annotations

import streamlit as st

from scaling.dashboard import forecasting

st.title("Capacity planner")
st.caption("What happens at N users: the real service layer against the sandbox, "
           "in virtual time")
if forecasting.capacity_module("simulate") is None:
    st.info(
        "The simulator is not in this checkout yet (`scaling/capacity/simulate.py`). When it lands, this page "
        "runs `simulate(...)` for a user count you choose, with a progress bar, and shows the cron duration "
        "against its 30 s deadline, limiter headroom and AI spend at that size.\n\n"
        "Until then, the Overview page projects the cron with Little's law at the forecast user count, and "
        "`python -m scaling readiness` prints the same assessment.")
else:
    st.info("The simulator module is present; its page is being wired in.")
