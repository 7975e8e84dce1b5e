"""Where the run history lives: one schema, written through SQLAlchemy Core, on SQLite (the default: a file) or
PostgreSQL (`COMPRESSION_LAB_DB_URL=postgresql://…`, so that several servers share one history).

Engines are made once per database and process. SQLite opens a connection per operation, in WAL mode, and takes
the write lock at the start of a writing transaction (BEGIN IMMEDIATE), so two writers never deadlock on an
upgrade; PostgreSQL keeps a small pool of connections, checked before use.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from compression.core.errors import InputError

DATA_ENV = "COMPRESSION_LAB_DATA"
DB_URL_ENV = "COMPRESSION_LAB_DB_URL"  # postgresql://user:password@host:port/database (or sqlite:////path)
WRITE = "history_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)

metadata = MetaData()
# status: done | cancelled | failed for ended runs; running while a job trains (queued ones too); interrupted when
# the process that ran it is gone (a server restart). owner: who may delete it in shared mode ("" = anyone).
# process: host:pid:boot of the server running it, so a restart can tell its own in-flight runs from dead ones.
# sweep: the sweep a cell belongs to (its id is derived from the sweep and the cell's config, so the primary key
# is what keeps a cell from being recorded twice).
runs = Table(
    "runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("kind", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("file_name", Text),
    Column("file", LargeBinary),
    Column("status", Text, nullable=False, server_default="done"),
    Column("owner", Text, nullable=False, server_default=""),
    Column("process", Text, nullable=False, server_default=""),
    Column("sweep", Text),
)
INDEXES = (Index("runs_created", runs.c.created_at), Index("runs_sweep", runs.c.sweep))
# Columns a file written by an older version may lack; each is added in place (its runs read as done, ownerless).
ADDED_COLUMNS = ("status", "owner", "process", "sweep")
DIALECTS = ("sqlite", "postgresql")


class HistoryError(InputError):
    """The history database cannot be used (locked, read-only, corrupt, unreachable); the message says what to do."""


def default_path() -> Path:
    """runs.sqlite in the user's data folder ($COMPRESSION_LAB_DATA, else ~/.local/share/compression-lab)."""
    root = os.environ.get(DATA_ENV) or Path.home() / ".local" / "share" / "compression-lab"
    return Path(root) / "runs.sqlite"


@dataclass(frozen=True)
class Location:
    """A history database: its SQLAlchemy URL, and for SQLite the file."""

    url: URL
    path: Path | None  # the SQLite file; None for a server database

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def shown(self) -> str:
        """How messages name it: the file, or the URL without its password."""
        return str(self.path) if self.path is not None else self.url.render_as_string(hide_password=True)


def locate(where: Path | str | None = None) -> Location:
    """The database `where` names (a file path or a URL); by default $COMPRESSION_LAB_DB_URL, else the SQLite file
    in the data folder."""
    if where is None:
        where = os.environ.get(DB_URL_ENV, "").strip() or default_path()
    if isinstance(where, Path) or "://" not in where:
        path = Path(where)
        return Location(URL.create("sqlite", database=str(path)), path)
    try:
        url = make_url(where)
    except ArgumentError:
        raise HistoryError(f"${DB_URL_ENV} is not a database URL (postgresql://user@host:port/database)") from None
    backend = url.get_backend_name()
    if backend == "postgres":  # the old alias Heroku and others still hand out
        url, backend = url.set(drivername="postgresql"), "postgresql"
    if backend not in DIALECTS:
        raise HistoryError(f"the history runs on SQLite or PostgreSQL, not {backend!r}")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise HistoryError("a SQLite history needs a file: sqlite:////path/to/runs.sqlite")
        return Location(URL.create("sqlite", database=url.database), Path(url.database))
    if url.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; the postgres extra installs psycopg 3
        url = url.set(drivername="postgresql+psycopg")
    return Location(url, None)


_engines: dict[tuple[str, float], Engine] = {}
_ready: set[str] = set()  # server databases whose schema this process has checked
_lock = threading.Lock()


def engine_for(location: Location, timeout_s: float) -> Engine:
    """The process's engine for this database (made on first use)."""
    key = (location.url.render_as_string(hide_password=False), timeout_s)
    with _lock:
        if key not in _engines:
            _engines[key] = _sqlite_engine(location.path, timeout_s) if location.path is not None else \
                _server_engine(location, timeout_s)
        return _engines[key]


def dispose(location: Location) -> None:
    """Close and forget this process's engines (and their pooled connections) for the database."""
    url = location.url.render_as_string(hide_password=False)
    with _lock:
        for key in [k for k in _engines if k[0] == url]:
            _engines.pop(key).dispose()
        _ready.discard(url)


def _sqlite_engine(path: Path, timeout_s: float) -> Engine:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: SQLAlchemy's begin event below says when a transaction starts, and how
        return sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def wal(dbapi_connection, _record) -> None:
        # WAL: readers never block the writer; a killed writer's transaction is rolled back on next open.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def begin(connection) -> None:
        # A writer takes the lock before it reads, so two writers queue instead of failing to upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITE) else "BEGIN")

    return engine


def _server_engine(location: Location, timeout_s: float) -> Engine:
    # libpq options: the URL's own (e.g. -c search_path=...) and a lock timeout, so a held lock reads as "locked"
    options = " ".join(filter(None, (location.url.query.get("options"), f"-c lock_timeout={int(timeout_s * 1000)}")))
    try:
        return create_engine(location.url, pool_pre_ping=True, pool_size=5, max_overflow=20, pool_timeout=timeout_s,
                             connect_args={"connect_timeout": max(1, int(timeout_s)), "options": options})
    except (NoSuchModuleError, ImportError):
        raise HistoryError(f"the history database {location.shown} needs PostgreSQL's driver: "
                           "pip install 'compression-lab[postgres]' (psycopg)") from None


def ensure_schema(location: Location, engine: Engine) -> None:
    """Create the table and its indexes if missing, and add the columns an older file lacks.

    A SQLite file is checked on every open (it may have been moved away meanwhile; the check is cheap); a server
    database once per process. Two processes creating the schema at once may collide: the loser tries again.
    """
    key = location.url.render_as_string(hide_password=False)
    if location.path is None and key in _ready:
        return
    with engine.connect() as db:  # a read first: an up-to-date database is opened without taking the write lock
        complete = not _missing(db)
    for attempt in range(3):
        if complete:
            break
        try:
            with engine.connect().execution_options(**{WRITE: True}) as db, db.begin():
                db.execute(CreateTable(runs, if_not_exists=True))
                for name in _missing(db):
                    spec = CreateColumn(runs.c[name]).compile(dialect=engine.dialect)
                    db.execute(text(f"ALTER TABLE runs ADD COLUMN {spec}"))
                for index in INDEXES:  # a file that gained columns above lacks their indexes too
                    db.execute(CreateIndex(index, if_not_exists=True))
            complete = True
        except DBAPIError:
            if attempt == 2 or location.path is not None:
                raise
    if location.path is None:
        _ready.add(key)


def _missing(db) -> list[str]:
    """The columns the runs table lacks (all of them when there is no table)."""
    found = inspect(db)
    if not found.has_table("runs"):
        return [c.name for c in runs.columns]
    have = {c["name"] for c in found.get_columns("runs")}
    return [name for name in ADDED_COLUMNS if name not in have]


def explain(location: Location, exc: SQLAlchemyError | sqlite3.Error) -> HistoryError:
    """The error in words, with what to do; a server URL's password is never shown."""
    text_ = str(getattr(exc, "orig", None) or exc)
    first = text_.strip().splitlines()[0] if text_.strip() else type(exc).__name__
    where = location.shown
    low = text_.lower()
    if "locked" in low or "busy" in low or "lock timeout" in low:
        return HistoryError(f"the history database {where} is locked by another process; try again")
    if "readonly" in low or "read-only" in low:
        return HistoryError(f"the history database {where} is read-only; runs cannot be saved "
                            f"(set ${DATA_ENV} to a writable folder)")
    if "not a database" in low or "malformed" in low:
        return HistoryError(f"{where} is not a valid history database; move it away to start afresh")
    if location.path is None and any(s in low for s in ("connect", "connection", "authentication", "does not exist",
                                                       "timeout", "resolve", "unknown host")):
        return HistoryError(f"cannot reach the history database {where}: {first}")
    return HistoryError(f"history database error at {where}: {first}")
