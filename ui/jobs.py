"""What every page does with a background Job: a progress bar with Cancel, and one redraw when it ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from compression.core import Job

POLL_S = 0.5  # how often a running job's fragment redraws


def poll_every(job: Job | None) -> float | None:
    """The fragment's run_every: poll only while the job runs."""
    return POLL_S if job is not None and job.running else None


def progress_bar(job: Job, fraction: float, text: str, cancel_key: str) -> None:
    """While the job runs: its progress and a Cancel button."""
    if job.running:
        bar = st.columns([5, 1])
        bar[0].progress(min(max(fraction, 0.0), 1.0), text=text)
        bar[1].button("Cancel", key=cancel_key, on_click=job.cancel)


def settle(job: Job, meta: dict, on_done: Callable[[Any], None] | None = None) -> None:
    """When the job has ended since the last poll: keep its result (once), redraw the whole page, stop polling."""
    if job.status == meta["status"]:
        return
    meta["status"] = job.status
    if job.status == "done" and on_done is not None:
        on_done(job.result)
    st.rerun(scope="app")


def ended(job: Job, cancelled: str, failed: str = "The run failed") -> None:
    """Say how a job that did not finish ended."""
    if job.status == "cancelled":
        st.warning(cancelled)
    elif job.status == "failed":
        st.error(f"{failed}: {job.error}")
