"""Experiment history: every run's config, metrics, curves and compressed file, in one table of a SQLite file or a
PostgreSQL database (compression.history.database); each write is one transaction."""

from __future__ import annotations

import json
import os
import socket
import sqlite3  # noqa: F401  (tests replace sqlite3.connect through this module to simulate a read-only file)
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from compression.core.errors import InputError
from compression.history.database import (
    DATA_ENV,
    WRITE,
    HistoryError,
    default_path,
    engine_for,
    ensure_schema,
    explain,
    locate,
    runs as table,
)
from compression.history.views import LM, lm_setting
from compression.metrics import LATENCY_METHOD

__all__ = ["DATA_ENV", "HistoryError", "IN_FLIGHT", "INTERRUPTED", "Run", "RunStore", "default_path",
           "run_from_result", "runs_table", "this_process"]

IN_FLIGHT = "running"
INTERRUPTED = "interrupted"
DONE = "done"
_BOOT = uuid.uuid4().hex[:8]  # this process's life: a pid can be reused after a restart, this cannot
# os.kill(pid, 0) asks whether a process exists on POSIX; on Windows signal 0 is CTRL_C_EVENT, so it would send
# Ctrl+C to the process it asks about. It is never called there.
_KILL_0_CHECKS = os.name != "nt"
_LISTED = [table.c[name] for name in ("id", "created_at", "kind", "model", "label", "config", "metrics", "details",
                                      "file_name", "status", "owner", "process", "sweep")]


def this_process() -> str:
    """host:pid:boot of this process, stored with the runs it has in flight."""
    return f"{socket.gethostname()}:{os.getpid()}:{_BOOT}"


def _alive(process: str) -> bool:
    """Whether the process that stored an in-flight run still runs (another host's: assume so)."""
    host, _, rest = process.partition(":")
    pid, _, boot = rest.partition(":")
    if host != socket.gethostname():
        return True
    if pid == str(os.getpid()):
        return boot == _BOOT
    if not _KILL_0_CHECKS:  # not knowing, say alive: after a restart on Windows its in-flight runs stay "running"
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@dataclass(frozen=True)
class Run:
    """One recorded run. `metrics` are scalars (accuracy, size_bytes, ...); `details` holds curves and per-layer data."""

    kind: str  # prune | quantize | distill | pipeline | ...
    model: str
    config: Mapping[str, Any]
    metrics: Mapping[str, float]
    details: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    file_name: str | None = None
    file: bytes | None = None
    id: str = ""
    created_at: float = 0.0
    status: str = "done"  # done | cancelled | failed | running | interrupted
    owner: str = ""  # who created it, in shared mode; "" for runs anyone may delete
    sweep: str = ""  # the sweep this run is a cell of ("" for none)


class RunStore:
    """The run history shared by every session, process and server: a SQLite file (default) or the PostgreSQL
    database $COMPRESSION_LAB_DB_URL names; each write is one atomic transaction.

    `where` is a file path or a database URL; by default $COMPRESSION_LAB_DB_URL, else runs.sqlite in the data folder.
    """

    def __init__(self, where: Path | str | None = None, timeout_s: float = 10.0):
        self.location = locate(where)
        self.path = self.location.path  # the SQLite file (None on a server database)
        self.timeout_s = timeout_s
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = engine_for(self.location, timeout_s)
            ensure_schema(self.location, self._engine)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise explain(self.location, exc) from exc
        except OSError as exc:
            raise HistoryError(f"cannot create the history database at {self.path}: {exc.strerror}") from exc

    @property
    def dialect(self) -> str:
        """sqlite or postgresql."""
        return self.location.dialect

    def record(self, run: Run) -> str:
        """Store `run` in one transaction and return its id; nothing is stored if the process dies mid-way."""
        run_id = run.id or uuid.uuid4().hex[:12]
        self._write(lambda db: db.execute(insert(table).values(id=run_id, **self._row(run))))
        return run_id

    def record_once(self, run: Run) -> bool:
        """Store `run` under its own id unless a run that ended well (done) already has that id; a cancelled,
        failed or interrupted record of it is replaced. True when this call wrote it: a sweep's cell, whose id
        its sweep and config fix, is thus in the history exactly once however often it is delivered."""
        if not run.id:
            raise ValueError("record_once needs the run's own id")

        def write(db: Connection) -> bool:
            status = db.execute(select(table.c.status).where(table.c.id == run.id)).scalar_one_or_none()
            if status == DONE:
                return False
            if status is None:
                db.execute(insert(table).values(id=run.id, **self._row(run)))
            else:
                db.execute(update(table).where(table.c.id == run.id, table.c.status != DONE).values(**self._row(run)))
            return True

        try:
            return self._write(write)
        except HistoryError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # another driver inserted it between our read and write
                return False
            raise

    def finish(self, run_id: str, run: Run) -> None:
        """Replace the in-flight record `run_id` by the ended `run` (its status says how it ended)."""
        values = self._row(run)
        values.pop("created_at")
        self._write(lambda db: db.execute(update(table).where(table.c.id == run_id).values(**values)))

    def _row(self, run: Run) -> dict[str, Any]:
        return {"created_at": run.created_at or time.time(), "kind": run.kind, "model": run.model,
                "label": run.label or run.kind, "config": json.dumps(dict(run.config), default=str),
                "metrics": json.dumps(dict(run.metrics)), "details": json.dumps(dict(run.details), default=str),
                "file_name": run.file_name, "file": run.file, "status": run.status, "owner": run.owner,
                "process": this_process() if run.status == IN_FLIGHT else "", "sweep": run.sweep or None}

    def _write(self, work: Callable[[Connection], Any]) -> Any:
        """`work` in one writing transaction (SQLite: the write lock taken first); returns what it returns."""
        try:
            with self._engine.connect().execution_options(**{WRITE: True}) as db, db.begin():
                return work(db)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise explain(self.location, exc) from exc

    def _read(self, statement) -> list:
        try:
            with self._engine.connect() as db:
                return list(db.execute(statement))
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise explain(self.location, exc) from exc

    def runs(self, kind: str | None = None, model: str | None = None, sweep: str | None = None,
             ids: Sequence[str] | None = None) -> list[Run]:
        """Recorded runs, newest first, without their file bytes (use `get` for those). Reading writes nothing:
        a run left in flight by a server that has since stopped reads as interrupted (see `_run`)."""
        query = select(*_LISTED)
        for column, value in (("kind", kind), ("model", model), ("sweep", sweep)):
            if value:
                query = query.where(table.c[column] == value)
        if ids is not None:
            query = query.where(table.c.id.in_(list(ids)))
        return [self._run(row) for row in self._read(query.order_by(table.c.created_at.desc()))]

    def get(self, run_id: str) -> Run:
        rows = self._read(select(*_LISTED, table.c.file).where(table.c.id == run_id))
        if not rows:
            raise InputError(f"no run with id {run_id!r}")
        return self._run(rows[0])

    def count(self, sweep: str | None = None) -> int:
        """How many runs are recorded (of one sweep)."""
        query = select(func.count()).select_from(table)
        if sweep:
            query = query.where(table.c.sweep == sweep)
        return int(self._read(query)[0][0])

    def delete(self, run_ids: list[str], owner: str | None = None) -> int:
        """Delete these runs; with `owner`, only those it created (shared mode). Returns how many went."""
        if not run_ids:
            return 0
        query = delete(table).where(table.c.id.in_(list(run_ids)))
        if owner is not None:
            query = query.where(table.c.owner == owner)
        return self._write(lambda db: db.execute(query).rowcount)

    def rows(self, batch: int = 50) -> Iterator[list[dict[str, Any]]]:
        """Every stored row as it is (file bytes and in-flight process included), oldest first, `batch` at a time:
        what a migration copies."""
        columns = [c.name for c in table.columns]
        ids = [row[0] for row in self._read(select(table.c.id).order_by(table.c.created_at, table.c.id))]
        for start in range(0, len(ids), batch):
            chunk = self._read(select(table).where(table.c.id.in_(ids[start:start + batch])))
            yield [dict(zip(columns, row)) for row in chunk]

    def add_rows(self, rows: list[dict[str, Any]]) -> int:
        """Insert stored rows (from `rows()` of another history) whose ids are not here yet, in one transaction;
        returns how many were added."""
        def write(db: Connection) -> int:
            ids = [row["id"] for row in rows]
            have = {r[0] for r in db.execute(select(table.c.id).where(table.c.id.in_(ids)))}
            new = [row for row in rows if row["id"] not in have]
            if new:
                db.execute(insert(table), new)
            return len(new)

        return self._write(write) if rows else 0

    def check(self) -> str:
        """'ok' when the database is sound: SQLite's own integrity check; a server database answering a query."""
        try:
            with self._engine.connect() as db:
                if self.path is not None:
                    return db.exec_driver_sql("PRAGMA integrity_check").scalar_one()
                db.execute(select(func.count()).select_from(table)).scalar_one()
                return "ok"
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise explain(self.location, exc) from exc

    @staticmethod
    def _run(row) -> Run:
        run_id, created, kind, model, label, config, metrics, details, file_name, status, owner, process, sweep, \
            *rest = row
        if status == IN_FLIGHT and not _alive(process):  # its server stopped: no one can finish it any more
            status = INTERRUPTED
        return Run(kind, model, json.loads(config), json.loads(metrics), json.loads(details), label, file_name,
                   bytes(rest[0]) if rest and rest[0] is not None else None, run_id, created, status, owner,
                   sweep or "")


def runs_table(runs: list[Run]) -> list[dict[str, Any]]:
    """One flat dict per run (id, time, kind, model, label, every metric): what the table and the CSV show."""
    rows = []
    for run in runs:
        row = {"id": run.id, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at)),
               "kind": run.kind, "model": run.model, "label": run.label, "status": run.status}
        row.update({k: v for k, v in run.metrics.items() if isinstance(v, (int, float, str, bool)) or v is None})
        if run.kind == LM:
            row.update(_language_model_fields(run))
            if "target_sparsity" not in run.metrics:  # a quantized run's zeros come from rounding, not pruning
                row.pop("sparsity", None)
        rows.append(row)
    return rows


def _language_model_fields(run: Run) -> dict[str, str]:
    """What a language-model run did and which texts it used. The LM page records `calibration` and `evaluation`,
    the CLI `calibration_text` and `evaluation_text`; a run without calibration (RTN, magnitude) still names the
    text it would have used."""
    details = run.details
    return {"setting": lm_setting(run.config),
            "calibration_text": details.get("calibration_text") or details.get("calibration") or "",
            "evaluation_text": details.get("evaluation_text") or details.get("evaluation") or ""}


def run_from_result(kind: str, model: str, result: Mapping[str, Any], label: str = "",
                    file_name: str | None = None, file: bytes | None = None) -> Run:
    """A Run from any result's to_dict(): `config` stays config, scalars become metrics, the rest details."""
    data = dict(result)
    config = data.pop("config", {})
    metrics = {k: v for k, v in data.items()
               if (isinstance(v, (int, float)) and not isinstance(v, bool)) or k in LATENCY_METHOD}
    details = {k: v for k, v in data.items() if k not in metrics}
    return Run(kind=kind, model=model, config=config, metrics=metrics, details=details, label=label or kind,
               file_name=file_name, file=file)
