"""What every page does with a background Job: start it (it records its own run), a progress bar or its place in
the queue with Cancel, and one redraw when it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import streamlit as st

from compression.core import Job
from compression.history import Finish, Run, recorded_job
from ui.history import owner

POLL_S = 0.5  # how often a running job's fragment redraws


def start(work: Callable[[], Iterator[Any]], kind: str, model: str, label: str, config: Mapping[str, Any],
          finish: Finish) -> Job:
    """Queue `work` in the server's job pool; the job itself keeps its run in the history (this visitor's)."""
    run = Run(kind=kind, model=model, config=dict(config), metrics={}, label=label, owner=owner())
    return recorded_job(work, run, finish)


def busy(job_key: str, refused_key: str, what: str) -> bool:
    """One job per session and page: True, with the reason under `refused_key`, while the one under `job_key` runs."""
    job = st.session_state.get(job_key)
    if job is not None and job.running:
        st.session_state[refused_key] = f"{what} is already running: wait for it to finish or press Cancel."
        return True
    return False


def poll_every(job: Job | None) -> float | None:
    """The fragment's run_every: poll only while the job is queued or runs."""
    return POLL_S if job is not None and job.running else None


def progress_bar(job: Job, fraction: float, text: str, cancel_key: str) -> None:
    """While the job runs: its progress (or its place in the server's queue) and a Cancel button."""
    if job.running:
        bar = st.columns([5, 1])
        position = job.position()
        if position is not None:
            pool = job.pool
            bar[0].progress(0.0, text=f"Queued: number {position} in line ({pool.training} of {pool.limit} "
                                      "training slots on this server are busy). It starts by itself.")
        else:
            bar[0].progress(min(max(fraction, 0.0), 1.0), text=text)
        bar[1].button("Cancel", key=cancel_key, on_click=job.cancel)


def settle(job: Job, meta: dict, on_done: Callable[[Any], None] | None = None) -> None:
    """When the job has ended since the last poll: keep its result (once), redraw the whole page, stop polling."""
    if job.status == meta["status"] or job.running:
        return
    meta["status"] = job.status
    if job.status == "done" and on_done is not None:
        on_done(job.result)
    st.rerun(scope="app")


def ended(job: Job, cancelled: str, failed: str = "The run failed") -> None:
    """Say how a job that did not finish ended, and whether its run could be saved."""
    if job.status == "cancelled":
        st.warning(cancelled)
    elif job.status == "failed":
        st.error(f"{failed}: {job.error}")
    if not job.running and job.end_error:
        st.warning(f"This run was not saved to the history: {job.end_error}")
