"""The sweep's driver: submit the cells still to run to a backend, record each cell in the history as it arrives,
and report every cell's state.

Cells the history already holds as done (an earlier run of the same sweep, cancelled or interrupted) are skipped.
Each arriving cell is recorded with `RunStore.record_once` under its own id, so a cell delivered twice (a retried
task, two drivers of one sweep) is in the history once. Closing the generator (Cancel) stops the cells in flight;
those already recorded stay.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from dataclasses import dataclass

from compression.core.backends import Backend, Outcome
from compression.history import HistoryError, Run, RunStore, run_from_result
from compression.pipeline.sweep import Sweep, SweepCell, longest_first
from compression.pipeline.sweep_cell import run_cell

QUEUED, RUNNING, DONE, FAILED, SKIPPED, CANCELLED = "queued", "running", "done", "failed", "skipped", "cancelled"


@dataclass(frozen=True)
class CellState:
    """Where one cell stands. `record` is the finished cell's record (or, for a skipped cell, the history's run)."""

    cell: SweepCell
    status: str = QUEUED  # queued | running | done | failed | skipped | cancelled
    fraction: float = 0.0
    text: str = ""
    worker: str = ""
    started_at: float | None = None
    record: dict | None = None
    error: str | None = None
    recorded: bool | None = None  # True: written now; False: the history had it already; None: not written

    @property
    def metrics(self) -> dict:
        """The cell's measurements (accuracy or perplexity, sizes) once it has them."""
        if self.record is None:
            return {}
        return self.record.get("metrics") or {k: v for k, v in self.record.get("result", {}).items()
                                              if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass(frozen=True)
class SweepState:
    """Every cell's state, in the sweep's order, and what the driver could not record."""

    sweep: Sweep
    cells: tuple[CellState, ...]
    backend: str
    started_at: float
    history_error: str | None = None

    def count(self, *statuses: str) -> int:
        return sum(c.status in statuses for c in self.cells)

    @property
    def finished(self) -> int:
        return self.count(DONE, FAILED, SKIPPED)

    @property
    def fraction(self) -> float:
        return sum(1.0 if c.status in (DONE, FAILED, SKIPPED) else c.fraction for c in self.cells) / \
            max(1, len(self.cells))


def cell_run(sweep: Sweep, cell: SweepCell, outcome: Outcome) -> Run:
    """The history's run of a finished cell (done, or failed with its error)."""
    details = {"sweep": sweep.id, "cell": cell.to_dict()}
    if outcome.record is None:
        return Run(kind=cell.kind, model=cell.model, config={}, metrics={},
                   details={**details, "error": outcome.error}, label=cell.label, id=cell.id, status=FAILED,
                   owner=sweep.owner, sweep=sweep.id)
    record = outcome.record
    run = run_from_result(record["kind"], record["model"], record["result"], record["label"])
    return dataclasses.replace(run, id=cell.id, owner=sweep.owner, sweep=sweep.id,
                               details={**run.details, **details, "timing": record["timing"],
                                        "worker": record["worker"]})


def run_sweep(sweep: Sweep, backend: Backend, store: RunStore | None = None,
              poll_s: float = 0.5) -> Generator[SweepState, None, SweepState]:
    """Run the cells of `sweep` the history does not hold as done; yields the sweep's state whenever a cell
    moves, and returns the last one. `store` None records nothing (and skips nothing)."""
    started = time.time()
    cells = {c.id: CellState(c) for c in sweep.cells}
    history_error = None
    if store is not None:
        for run in store.runs(sweep=sweep.id):
            if run.status == DONE and run.id in cells:
                cells[run.id] = CellState(cells[run.id].cell, SKIPPED, 1.0, "in the history already",
                                          record={"metrics": dict(run.metrics), "run_id": run.id}, recorded=False)
    todo = [c for c in sweep.cells if cells[c.id].status == QUEUED]
    for cell in longest_first(todo):
        backend.submit(cell.id, run_cell, cell.to_dict(), gpu=cell.device == "cuda")
    left = {c.id for c in todo}

    def state() -> SweepState:
        return SweepState(sweep, tuple(cells[c.id] for c in sweep.cells), backend.name, started, history_error)

    last = state()
    yield last
    try:
        while left:
            for outcome in backend.wait(poll_s):
                left.discard(outcome.key)
                cell = cells[outcome.key].cell
                if outcome.error == CANCELLED:
                    cells[outcome.key] = dataclasses.replace(cells[outcome.key], status=CANCELLED)
                    continue
                run = cell_run(sweep, cell, outcome)
                recorded = None
                if store is not None:
                    try:
                        recorded = store.record_once(run)
                    except HistoryError as exc:  # the cell's numbers still reach the page
                        history_error = str(exc)
                cells[outcome.key] = dataclasses.replace(
                    cells[outcome.key], status=DONE if outcome.record is not None else FAILED, fraction=1.0,
                    text="done" if outcome.record is not None else "failed", error=outcome.error,
                    record={**(outcome.record or {}), "metrics": dict(run.metrics), "run_id": run.id},
                    recorded=recorded)
            for key, progress in backend.progress().items():
                if key in left:
                    cells[key] = dataclasses.replace(cells[key], status=RUNNING, fraction=progress.fraction,
                                                     text=progress.text, worker=progress.worker,
                                                     started_at=progress.started_at)
            now = state()
            if now != last:
                last = now
                yield now
    finally:
        if left:  # cancelled (the generator closed) or failed: nothing in flight may outlive the sweep
            backend.cancel()
    return last
