"""The run history behaves the same on a SQLite file and on PostgreSQL: every test here runs on both (the PostgreSQL
half needs $COMPRESSION_LAB_TEST_DB_URL: it skips without one on a developer machine, and CI always has one)."""

import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest
from conftest import ROOT
from databases import database, history_db, postgres_url  # noqa: F401  (history_db is a fixture)
from sqlalchemy import update

from compression.history import HistoryError, Run, RunStore, migrate
from compression.history.database import runs as runs_table_schema


def _run(i: int = 0, **kw) -> Run:
    return Run(kind="prune", model="mlp", config={"amount": 0.5 + i / 1000},
               metrics={"accuracy": 0.9, "size_bytes": 100 + i}, details={"curve": [[0, 1], [1, 0.5]]}, **kw)


def _set_process(store: RunStore, run_id: str, process: str) -> None:
    """What another server's record looks like: its in-flight run names that server's process."""
    store._write(lambda db: db.execute(update(runs_table_schema).where(runs_table_schema.c.id == run_id)
                                       .values(process=process)))


def test_a_run_and_its_file_come_back_as_stored(history_db):
    payload = bytes(range(256)) * 40  # every byte value, in a blob
    store = RunStore(history_db)
    run_id = store.record(_run(file_name="m.clab", file=payload, owner="alice"))
    [listed] = RunStore(history_db).runs()
    assert listed.id == run_id and listed.metrics["size_bytes"] == 100 and listed.file is None
    assert listed.owner == "alice" and listed.status == "done" and listed.details["curve"] == [[0, 1], [1, 0.5]]
    assert store.get(run_id).file == payload
    assert store.check() == "ok"


def test_filters_and_newest_first(history_db):
    store = RunStore(history_db)
    older = store.record(_run(created_at=100.0))
    newer = store.record(dataclasses.replace(_run(created_at=200.0), kind="quantize", model="cnn", sweep="s1"))
    assert [r.id for r in store.runs()] == [newer, older]
    assert [r.id for r in store.runs(kind="quantize")] == [newer]
    assert [r.id for r in store.runs(model="mlp")] == [older]
    assert [r.id for r in store.runs(sweep="s1")] == [newer] and store.count(sweep="s1") == 1
    assert [r.id for r in store.runs(ids=[older, "nope"])] == [older]


def test_only_its_owner_deletes_a_run_in_shared_mode(history_db):
    store = RunStore(history_db)
    alices, bobs = store.record(_run(owner="alice")), store.record(_run(1, owner="bob"))
    assert store.delete([alices, bobs], owner="alice") == 1
    assert [r.id for r in store.runs()] == [bobs]
    assert store.delete([bobs]) == 1 and store.runs() == []  # outside shared mode: anyone


def test_in_flight_runs_of_a_dead_server_read_as_interrupted_and_reading_writes_nothing(history_db, monkeypatch):
    store = RunStore(history_db)
    mine = store.record(dataclasses.replace(_run(), status="running"))
    dead = store.record(dataclasses.replace(_run(1), status="running"))
    elsewhere = store.record(dataclasses.replace(_run(2), status="running"))
    _set_process(store, dead, f"{socket.gethostname()}:{os.getpid()}:0ld")  # the same pid, another life
    _set_process(store, elsewhere, "another-host:1:x")  # another machine's server: assumed alive
    monkeypatch.setattr(RunStore, "_write", lambda *a, **k: pytest.fail("a read wrote to the history"))
    assert {r.id: r.status for r in store.runs()} == {mine: "running", dead: "interrupted", elsewhere: "running"}


def test_a_finished_job_replaces_its_in_flight_record(history_db):
    store = RunStore(history_db)
    run_id = store.record(dataclasses.replace(_run(), status="running", owner="alice"))
    store.finish(run_id, dataclasses.replace(_run(), metrics={"accuracy": 0.5}, status="cancelled", owner="alice"))
    run = store.get(run_id)
    assert run.status == "cancelled" and run.metrics == {"accuracy": 0.5} and run.owner == "alice"


def test_a_cell_is_recorded_once_however_often_it_arrives(history_db):
    store = RunStore(history_db)
    cell = dataclasses.replace(_run(), id="cell-1", sweep="s")
    failed = dataclasses.replace(cell, status="failed", details={"error": "worker died"})
    assert store.record_once(failed) is True
    assert store.record_once(cell) is True  # a retry that finished replaces the failed record
    assert store.record_once(dataclasses.replace(cell, metrics={"accuracy": 0.1})) is False
    [run] = store.runs()
    assert run.id == "cell-1" and run.status == "done" and run.metrics["accuracy"] == 0.9


def test_drivers_racing_to_record_one_cell_record_it_once(history_db):
    RunStore(history_db)
    results, gate = [], threading.Barrier(8)

    def deliver(i: int) -> None:
        gate.wait()
        results.append(RunStore(history_db).record_once(dataclasses.replace(_run(i), id="same-cell")))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [False] * 7 + [True]
    assert RunStore(history_db).count() == 1


_WRITER = """
import sys, threading
from compression.history.store import Run, RunStore
where, name, writers, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
gate = threading.Barrier(writers)
def write(w):
    store = RunStore(where, timeout_s=60)
    gate.wait()
    for i in range(each):
        store.record(Run(kind=f"w{name}", model="mlp", config={"writer": w, "i": i}, metrics={"accuracy": i / 100},
                         file=b"x" * 20_000))
threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_concurrent_writers_lose_no_run(history_db):
    """4 processes of 5 writer threads each, 5 runs per writer, all at once."""
    RunStore(history_db)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, history_db, str(p), "5", "5"], cwd=ROOT)
             for p in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    store = RunStore(history_db)
    runs = store.runs()
    assert len(runs) == 100 and store.check() == "ok"
    assert len({(r.kind, r.config["writer"], r.config["i"]) for r in runs}) == 100


def test_migration_copies_an_old_sqlite_file_whole_and_again_copies_nothing(tmp_path, history_db):
    old = tmp_path / "old" / "runs.sqlite"
    old.parent.mkdir()
    with sqlite3.connect(old) as db:  # a version-1 file: no status, owner or process yet
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, kind TEXT NOT NULL, "
                   "model TEXT NOT NULL, label TEXT NOT NULL, config TEXT NOT NULL, metrics TEXT NOT NULL, "
                   "details TEXT NOT NULL, file_name TEXT, file BLOB)")
        db.execute("INSERT INTO runs VALUES ('v1', 1.0, 'prune', 'mlp', 'x', '{}', '{\"accuracy\": 0.5}', '{}', "
                   "'f.clab', ?)", (b"\x00clab",))
    store = RunStore(old)  # opened by today's version: gains its columns, takes new runs
    newer = store.record(_run(owner="alice", file=b"blob"))
    done = migrate(old, history_db)
    assert (done.copied, done.present) == (2, 0)
    target = RunStore(history_db)
    assert {r.id: (r.status, r.owner) for r in target.runs()} == {"v1": ("done", ""), newer: ("done", "alice")}
    assert target.get("v1").file == b"\x00clab" and target.get(newer).file == b"blob"
    assert (migrate(old, history_db).copied, migrate(old, history_db).present) == (0, 2)


def test_the_cli_migrates_into_the_database_the_environment_names(tmp_path, history_db):
    data = tmp_path / "data"
    env = {**os.environ, "COMPRESSION_LAB_DATA": str(data)}
    env.pop("COMPRESSION_LAB_DB_URL", None)
    RunStore(data / "runs.sqlite").record(_run())
    env["COMPRESSION_LAB_DB_URL"] = history_db if "://" in history_db else f"sqlite:///{history_db}"
    cmd = [sys.executable, "-m", "compression", "runs", "migrate", "--json"]
    moved = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["copied"] == 1
    listed = subprocess.run([sys.executable, "-m", "compression", "runs", "list", "--json"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=120)
    assert [r["kind"] for r in json.loads(listed.stdout)["runs"]] == ["prune"]


def test_migrating_a_missing_file_or_onto_itself_is_refused(tmp_path):
    with pytest.raises(HistoryError, match="no history file"):
        migrate(tmp_path / "absent.sqlite", tmp_path / "new.sqlite")
    RunStore(tmp_path / "a.sqlite")
    with pytest.raises(HistoryError, match="same database"):
        migrate(tmp_path / "a.sqlite", tmp_path / "a.sqlite")


def test_an_unreachable_server_is_explained_without_its_password():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HistoryError, match="cannot reach the history database") as error:
        RunStore(f"postgresql://lab:s3cret@127.0.0.1:{port}/lab", timeout_s=2)
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize("url, reason", [("mysql://x@h/db", "SQLite or PostgreSQL"),
                                         ("sqlite://", "needs a file")])
def test_a_database_the_history_cannot_use_is_refused(url, reason):
    with pytest.raises(HistoryError, match=reason):
        RunStore(url)


def test_the_environment_switches_the_default_history(tmp_path, monkeypatch):
    with database("postgresql", tmp_path) as url:
        monkeypatch.setenv("COMPRESSION_LAB_DB_URL", url)
        assert RunStore().dialect == "postgresql" and RunStore().path is None
    monkeypatch.delenv("COMPRESSION_LAB_DB_URL")
    assert RunStore().dialect == "sqlite"


def test_the_postgresql_test_server_is_there():
    """In CI this fails instead of letting the PostgreSQL half of every test above skip."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url().replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as db:
        assert db.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
