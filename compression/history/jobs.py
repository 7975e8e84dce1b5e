"""Jobs that record their own run: in flight when they start, ended (done, cancelled, failed) when they end.

The record is written by the job's thread, so a run reaches the history even when nobody polls it (a closed
tab); after a server restart its in-flight records read as interrupted (`RunStore` checks their process).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from compression.core.jobs import Job, JobPool
from compression.history.store import IN_FLIGHT, HistoryError, Run, RunStore

# (the generator's result, every step it yielded) -> the run to keep, or None to keep only the in-flight record
Finish = Callable[[Any, list[Any]], Run | None]


def recorded_job(start: Callable[[], Iterator[Any]], run: Run, finish: Finish, pool: JobPool | None = None,
                 store_path: Path | str | None = None) -> Job:
    """Start `start` as a Job whose run is in the history from the first moment: `run` (kind, model, label,
    config, owner) while in flight, `finish(result, steps)` once done, `run` with its status if not.

    `job.run_id` is the record's id (None when the history cannot be used: `job.end_error` says why).
    """
    pending = dataclasses.replace(run, status=IN_FLIGHT)
    try:
        run_id: str | None = RunStore(store_path).record(pending)
        begin_error = None
    except HistoryError as exc:  # the job still runs; its result stays on the page
        run_id, begin_error = None, str(exc)

    def end(job: Job, status: str) -> None:
        if run_id is None:
            return
        problem = None
        try:
            ended = finish(job.result, job.steps) if status == "done" else None
        except Exception as exc:  # the record still leaves "running"; the page hears of it through end_error
            ended, problem = None, exc
        if ended is None:
            error = job.error or (f"the run could not be recorded: {problem}" if problem else None)
            ended = dataclasses.replace(run, details={**run.details, "error": error} if error else run.details)
        now = time.time()
        began = job.began_training or now  # never began: cancelled while queued
        timing = {"queued_s": round(began - job.started, 3), "trained_s": round(now - began, 3), "began_at": began,
                  "ended_at": now}
        RunStore(store_path).finish(run_id, dataclasses.replace(ended, status=status, owner=run.owner,
                                                                details={**ended.details, "job": timing}))
        if problem is not None:
            raise problem

    return Job(start, label=run.label, pool=pool, on_end=end, run_id=run_id, end_error=begin_error)
