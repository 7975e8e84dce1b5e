"""Experiment history: every run's config, metrics, curves and compressed file in one SQLite file."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.core.errors import InputError
from compression.history.views import LM, lm_setting
from compression.metrics import LATENCY_METHOD

DATA_ENV = "COMPRESSION_LAB_DATA"
SCHEMA_VERSION = 2
# status: done | cancelled | failed for ended runs; running while a job trains (queued ones too); interrupted when
# the process that ran it is gone (a server restart). owner: who may delete it in shared mode ("" = anyone).
# process: host:pid:boot of the server running it, so a restart can tell its own in-flight runs from dead ones.
_COLUMNS = (("status", "TEXT NOT NULL DEFAULT 'done'"), ("owner", "TEXT NOT NULL DEFAULT ''"),
            ("process", "TEXT NOT NULL DEFAULT ''"))
IN_FLIGHT = "running"
INTERRUPTED = "interrupted"
_BOOT = uuid.uuid4().hex[:8]  # this process's life: a pid can be reused after a restart, this cannot
# os.kill(pid, 0) asks whether a process exists on POSIX; on Windows signal 0 is CTRL_C_EVENT, so it would send
# Ctrl+C to the process it asks about. It is never called there.
_KILL_0_CHECKS = os.name != "nt"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    label TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    details TEXT NOT NULL,
    file_name TEXT,
    file BLOB
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
"""
_FIELDS = "id, created_at, kind, model, label, config, metrics, details, file_name, status, owner, process"


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


def default_path() -> Path:
    """runs.sqlite in the user's data folder ($COMPRESSION_LAB_DATA, else ~/.local/share/compression-lab)."""
    root = os.environ.get(DATA_ENV) or Path.home() / ".local" / "share" / "compression-lab"
    return Path(root) / "runs.sqlite"


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


class HistoryError(InputError):
    """The history database cannot be used (locked, read-only, corrupt); the message says what to do."""


class RunStore:
    """A SQLite file shared by every session and process; each write is one atomic transaction."""

    def __init__(self, path: Path | str | None = None, timeout_s: float = 10.0):
        self.path = Path(path) if path is not None else default_path()
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
                for name, kind in _COLUMNS:  # a version-1 file gains the columns; its runs stay "done"
                    if name not in have:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        except OSError as exc:
            raise HistoryError(f"cannot create the history database at {self.path}: {exc.strerror}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            # WAL: readers never block the writer; a killed writer's transaction is rolled back on next open.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    def _explain(self, exc: sqlite3.Error) -> HistoryError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return HistoryError(f"the history database {self.path} is locked by another process; try again")
        if "readonly" in text or "read-only" in text:
            return HistoryError(f"the history database {self.path} is read-only; runs cannot be saved "
                                f"(set ${DATA_ENV} to a writable folder)")
        if "not a database" in text or "malformed" in text:
            return HistoryError(f"{self.path} is not a valid history database; move it away to start afresh")
        return HistoryError(f"history database error at {self.path}: {text}")

    def record(self, run: Run) -> str:
        """Store `run` in one transaction and return its id; nothing is stored if the process dies mid-way."""
        run_id = run.id or uuid.uuid4().hex[:12]
        process = this_process() if run.status == IN_FLIGHT else ""
        self._write("INSERT INTO runs (id, created_at, kind, model, label, config, metrics, details, file_name, "
                    "file, status, owner, process) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, run.created_at or time.time(), *self._values(run), run.status, run.owner, process))
        return run_id

    def finish(self, run_id: str, run: Run) -> None:
        """Replace the in-flight record `run_id` by the ended `run` (its status says how it ended)."""
        self._write("UPDATE runs SET kind=?, model=?, label=?, config=?, metrics=?, details=?, file_name=?, file=?, "
                    "status=?, process='' WHERE id=?", (*self._values(run), run.status, run_id))

    @staticmethod
    def _values(run: Run) -> tuple:
        return (run.kind, run.model, run.label or run.kind, json.dumps(dict(run.config), default=str),
                json.dumps(dict(run.metrics)), json.dumps(dict(run.details), default=str), run.file_name, run.file)

    def _write(self, sql: str, args, many: bool = False) -> int:
        """One statement in one transaction; returns the rows changed."""
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    count = (db.executemany if many else db.execute)(sql, args).rowcount
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        return count

    def runs(self, kind: str | None = None, model: str | None = None) -> list[Run]:
        """Recorded runs, newest first, without their file bytes (use `get` for those). Reading writes nothing:
        a run left in flight by a server that has since stopped reads as interrupted (see `_run`)."""
        query = f"SELECT {_FIELDS} FROM runs"
        where, args = [], []
        if kind:
            where.append("kind = ?"), args.append(kind)
        if model:
            where.append("model = ?"), args.append(model)
        if where:
            query += " WHERE " + " AND ".join(where)
        try:
            with self._connect() as db:
                rows = db.execute(query + " ORDER BY created_at DESC", args).fetchall()
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        return [self._run(r) for r in rows]

    def get(self, run_id: str) -> Run:
        try:
            with self._connect() as db:
                row = db.execute(f"SELECT {_FIELDS}, file FROM runs WHERE id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        if row is None:
            raise InputError(f"no run with id {run_id!r}")
        return self._run(row)

    def delete(self, run_ids: list[str], owner: str | None = None) -> int:
        """Delete these runs; with `owner`, only those it created (shared mode). Returns how many went."""
        if owner is None:
            return self._write("DELETE FROM runs WHERE id = ?", [(i,) for i in run_ids], many=True)
        return self._write("DELETE FROM runs WHERE id = ? AND owner = ?", [(i, owner) for i in run_ids], many=True)

    def check(self) -> str:
        """SQLite's own integrity check: 'ok' when the file is sound."""
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]

    @staticmethod
    def _run(row) -> Run:
        run_id, created, kind, model, label, config, metrics, details, file_name, status, owner, process, *rest = row
        if status == IN_FLIGHT and not _alive(process):  # its server stopped: no one can finish it any more
            status = INTERRUPTED
        return Run(kind, model, json.loads(config), json.loads(metrics), json.loads(details), label, file_name,
                   rest[0] if rest else None, run_id, created, status, owner)


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
