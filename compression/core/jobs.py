"""Long runs (fine-tuning, QAT, distillation, pipelines, searches) in background threads, with a server-wide limit.

A job consumes a generator of progress steps; the generator's `return` value becomes `job.result`. Every job
waits for a slot in a `JobPool` (at most `limit` train at once, the rest queue in order), so twenty students
pressing Start at once cannot starve the server. Cancel is checked between two steps, so a generator must yield
often (every few batches) for Cancel to answer within a second. `on_end` runs in the job's own thread when it
ends, whatever ended it, so the run is recorded whether or not a page is still watching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import compression.core.settings as settings
from compression.core.threads import use_threads

logger = logging.getLogger(__name__)

ENDED = ("done", "cancelled", "failed")


class JobPool:
    """At most `limit` jobs train at once in this process; the others wait first-come, first-served."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"a job pool needs at least one slot, got {limit}")
        self.limit = limit
        self._changed = threading.Condition()
        self._training = 0
        self._waiting: list[Job] = []

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, 2 for the one after, ...; None once it trains or has ended."""
        with self._changed:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    @property
    def training(self) -> int:
        with self._changed:
            return self._training

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    def _enter(self, job: Job) -> bool:
        """Block until `job` may train (True) or is cancelled while waiting (False)."""
        with self._changed:
            self._waiting.append(job)
            while not job.cancelled and (self._waiting[0] is not job or self._training >= self.limit):
                self._changed.wait()
            self._waiting.remove(job)
            if not job.cancelled:
                self._training += 1
            self._changed.notify_all()  # the next in line may now be first
            return not job.cancelled

    def _leave(self) -> None:
        with self._changed:
            self._training -= 1
            self._changed.notify_all()

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


_default_pool: JobPool | None = None
_default_lock = threading.Lock()


def default_pool() -> JobPool:
    """The process-wide pool every job joins unless given another; its size comes from settings.max_jobs()."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = JobPool(settings.max_jobs())
        return _default_pool


class Job:
    """Runs `start()` (a generator) in a thread once the pool has a slot; steps, status and result under a lock.

    `on_end(job, status)` runs in the job's thread before the final status is published, so whoever sees the job
    ended also sees what `on_end` did; an exception there is kept in `end_error`, not raised. Everything the job
    holds is set before its thread starts: `run_id` (its record in the run history, if any) and `end_error` (why
    its run cannot be saved, when that is known before it starts) are arguments, not set afterwards.
    """

    def __init__(self, start: Callable[[], Iterator[Any]], label: str = "", pool: JobPool | None = None,
                 on_end: Callable[[Job, str], None] | None = None, *, run_id: str | None = None,
                 end_error: str | None = None):
        self.label = label
        self.pool = pool or default_pool()
        self._start = start
        self._on_end = on_end
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._steps: list[Any] = []
        self.status = "queued"  # queued | running | done | cancelled | failed
        self.error: str | None = None
        self.end_error = end_error
        self.run_id = run_id  # its record in the run history, when whoever started it keeps one
        self.result: Any = None
        self.started = time.time()
        self.began_training: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"job-{label}")
        self._thread.start()

    def _run(self) -> None:
        use_threads()  # a new thread starts with torch's default team, whatever the process set
        if not self.pool._enter(self):
            self._finish("cancelled")
            return
        with self._lock:
            self.status = "running"
            self.began_training = time.time()
        try:
            self._finish(self._drain())
        finally:
            self.pool._leave()

    def _drain(self) -> str:
        try:
            generator = self._start()
            while True:
                if self._cancel.is_set():
                    generator.close()  # runs the generator's finally blocks
                    return "cancelled"
                try:
                    step = next(generator)
                except StopIteration as stop:
                    with self._lock:
                        self.result = stop.value
                    return "done"
                with self._lock:
                    self._steps.append(step)
        except Exception as exc:  # one line on the page, the traceback in the log; the app keeps working
            logger.exception("job %r failed", self.label)
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}"
            return "failed"

    def _finish(self, status: str) -> None:
        if self._on_end is not None:
            try:
                self._on_end(self, status)
            except Exception as exc:  # e.g. the history is locked: the job's own result is still good
                logger.exception("job %r: recording its end (%s) failed", self.label, status)
                self.end_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.status = status

    def cancel(self) -> None:
        self._cancel.set()
        self.pool._wake()  # a queued job leaves the queue at once

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        """Not ended yet: queued for a slot or training."""
        with self._lock:
            return self.status not in ENDED

    @property
    def queued(self) -> bool:
        with self._lock:
            return self.status == "queued"

    def position(self) -> int | None:
        """This job's place in the pool's queue (1 = next), or None when it is not waiting."""
        return self.pool.position(self)

    @property
    def steps(self) -> list[Any]:
        with self._lock:
            return list(self._steps)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
