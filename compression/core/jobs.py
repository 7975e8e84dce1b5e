"""Long runs (fine-tuning, QAT, distillation) in a background thread that never calls st.*, with Cancel.

A job consumes a generator of progress steps; the generator's `return` value becomes `job.result`.
Pages keep the Job in st.session_state and poll it from an `st.fragment(run_every=...)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Job:
    """Runs `start()` (a generator) in a thread; steps, status and result are read under a lock."""

    def __init__(self, start: Callable[[], Iterator[Any]], label: str = ""):
        self.label = label
        self._start = start
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._steps: list[Any] = []
        self.status = "running"  # running | done | cancelled | failed
        self.error: str | None = None
        self.result: Any = None
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"job-{label}")
        self._thread.start()

    def _run(self) -> None:
        try:
            generator = self._start()
            while True:
                if self._cancel.is_set():
                    generator.close()  # runs the generator's finally blocks
                    self._finish("cancelled")
                    return
                try:
                    step = next(generator)
                except StopIteration as stop:
                    with self._lock:
                        self.result = stop.value
                    self._finish("done")
                    return
                with self._lock:
                    self._steps.append(step)
        except Exception as exc:  # shown on the page; the app keeps working
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}"
            self._finish("failed")

    def _finish(self, status: str) -> None:
        with self._lock:
            self.status = status

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        with self._lock:
            return self.status == "running"

    @property
    def steps(self) -> list[Any]:
        with self._lock:
            return list(self._steps)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
