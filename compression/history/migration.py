"""Moving a history from one database to another: today's SQLite file into the PostgreSQL database several servers
share (or any history into any other). Every row is copied as stored, file bytes, owner and status included; a run
already in the target is left as it is there, so a migration stopped half-way is finished by running it again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compression.history.database import HistoryError, locate
from compression.history.store import RunStore


@dataclass(frozen=True)
class Migration:
    """What a migration did."""

    copied: int  # runs added to the target
    present: int  # runs the target had already (left as they were)
    source: str  # where from and where to, as messages name them (no password)
    target: str


def migrate(source: Path | str, target: Path | str | None = None, batch: int = 50) -> Migration:
    """Copy every run of the history at `source` (a SQLite file or a URL) into `target` (default: the history
    $COMPRESSION_LAB_DB_URL names), `batch` runs per transaction."""
    source_at, target_at = locate(source), locate(target)
    if source_at.url == target_at.url:
        raise HistoryError(f"the source and the target are the same database ({source_at.shown})")
    if source_at.path is not None and not source_at.path.is_file():
        raise HistoryError(f"there is no history file at {source_at.path}")
    old, new = RunStore(source), RunStore(target)
    copied = present = 0
    for rows in old.rows(batch):
        added = new.add_rows(rows)
        copied, present = copied + added, present + len(rows) - added
    return Migration(copied, present, source_at.shown, target_at.shown)
