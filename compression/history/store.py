"""Experiment history: every run's config, metrics, curves and compressed file in one SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.core.errors import InputError

DATA_ENV = "COMPRESSION_LAB_DATA"
SCHEMA_VERSION = 1
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
        row = (run_id, run.created_at or time.time(), run.kind, run.model, run.label or run.kind,
               json.dumps(dict(run.config), default=str), json.dumps(dict(run.metrics)),
               json.dumps(dict(run.details), default=str), run.file_name, run.file)
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)", row)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        return run_id

    def runs(self, kind: str | None = None, model: str | None = None) -> list[Run]:
        """Recorded runs, newest first, without their file bytes (use `get` for those)."""
        query = "SELECT id, created_at, kind, model, label, config, metrics, details, file_name FROM runs"
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
                row = db.execute("SELECT id, created_at, kind, model, label, config, metrics, details, file_name, "
                                 "file FROM runs WHERE id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        if row is None:
            raise InputError(f"no run with id {run_id!r}")
        return self._run(row)

    def delete(self, run_ids: list[str]) -> int:
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                count = db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in run_ids]).rowcount
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc
        return count

    def check(self) -> str:
        """SQLite's own integrity check: 'ok' when the file is sound."""
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]

    @staticmethod
    def _run(row) -> Run:
        run_id, created, kind, model, label, config, metrics, details, file_name, *rest = row
        return Run(kind, model, json.loads(config), json.loads(metrics), json.loads(details), label, file_name,
                   rest[0] if rest else None, run_id, created)


def runs_table(runs: list[Run]) -> list[dict[str, Any]]:
    """One flat dict per run (id, time, kind, model, label, every metric): what the table and the CSV show."""
    rows = []
    for run in runs:
        row = {"id": run.id, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at)),
               "kind": run.kind, "model": run.model, "label": run.label}
        row.update({k: v for k, v in run.metrics.items() if isinstance(v, (int, float, str, bool)) or v is None})
        rows.append(row)
    return rows


def run_from_result(kind: str, model: str, result: Mapping[str, Any], label: str = "",
                    file_name: str | None = None, file: bytes | None = None) -> Run:
    """A Run from any result's to_dict(): `config` stays config, scalars become metrics, the rest details."""
    data = dict(result)
    config = data.pop("config", {})
    metrics = {k: v for k, v in data.items() if isinstance(v, (int, float, bool)) and not isinstance(v, bool)}
    details = {k: v for k, v in data.items() if k not in metrics}
    return Run(kind=kind, model=model, config=config, metrics=metrics, details=details, label=label or kind,
               file_name=file_name, file=file)
