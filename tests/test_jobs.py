"""The job pool (limit, queue order, cancel while queued) and jobs that record their own run."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from compression.core import Job, JobPool
from compression.history import Run, RunStore, recorded_job

ROOT = Path(__file__).resolve().parent.parent


def _gate(gate: threading.Event, steps: int = 3):
    """A job that yields `steps` steps and then waits on `gate` between steps (yielding as it waits)."""
    def start():
        for i in range(steps):
            yield i
        while not gate.wait(0.01):
            yield "waiting"
        return "finished"
    return start


def _wait(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_pool_trains_at_most_limit_and_queues_the_rest_in_order():
    pool, gate = JobPool(2), threading.Event()
    jobs = [Job(_gate(gate), label=f"j{i}", pool=pool) for i in range(5)]
    _wait(lambda: pool.training == 2 and pool.waiting == 3)
    assert [j.status for j in jobs[:2]] == ["running", "running"]
    assert [j.position() for j in jobs] == [None, None, 1, 2, 3]
    assert all(j.queued and j.running for j in jobs[2:])
    gate.set()
    for j in jobs:
        j.join(10)
    assert [j.status for j in jobs] == ["done"] * 5 and jobs[4].result == "finished"
    assert pool.training == 0 and pool.waiting == 0


def test_cancelling_a_queued_job_moves_the_queue_up_and_never_starts_it():
    pool, gate = JobPool(1), threading.Event()
    started = []

    def start():
        started.append(True)
        yield 0

    first = Job(_gate(gate), pool=pool)
    second, third = Job(start, pool=pool), Job(start, pool=pool)
    _wait(lambda: pool.waiting == 2)
    second.cancel()
    second.join(5)
    assert second.status == "cancelled" and third.position() == 1
    gate.set()
    third.join(10)
    first.join(10)
    assert third.status == "done" and len(started) == 1


def test_on_end_runs_before_the_status_is_published():
    seen = []
    job = Job(lambda: iter([1, 2]), pool=JobPool(1), on_end=lambda j, status: seen.append((status, j.status)))
    job.join(5)
    assert seen == [("done", "running")] and job.status == "done"


def test_a_failing_on_end_is_kept_not_raised():
    def broken(job, status):
        raise RuntimeError("history locked")

    job = Job(lambda: iter([1]), pool=JobPool(1), on_end=broken)
    job.join(5)
    assert job.status == "done" and "history locked" in job.end_error


def _run(owner: str = "") -> Run:
    return Run(kind="prune", model="mlp", config={"epochs": 3}, metrics={}, label="fine-tune", owner=owner)


def test_a_job_records_its_run_with_nobody_polling(tmp_path):
    db, gate = tmp_path / "runs.sqlite", threading.Event()
    finish = lambda result, steps: Run(kind="prune", model="mlp", config={"epochs": 3},  # noqa: E731
                                       metrics={"accuracy": 0.9, "steps": len(steps)}, label="fine-tune")
    job = recorded_job(_gate(gate), _run("alice"), finish, pool=JobPool(1), store_path=db)
    _wait(lambda: len(job.steps) >= 3)
    in_flight = RunStore(db).runs()
    assert [(r.id, r.status) for r in in_flight] == [(job.run_id, "running")]
    gate.set()
    job.join(10)  # nobody ever reads job.status or job.result: the job's thread recorded it
    run = RunStore(db).get(job.run_id)
    assert run.status == "done" and run.metrics["accuracy"] == 0.9 and run.owner == "alice"
    assert run.details["job"]["queued_s"] >= 0 and run.details["job"]["trained_s"] > 0


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_cancelled_and_failed_runs_are_recorded_with_their_status(tmp_path, how):
    db = tmp_path / "runs.sqlite"

    def start():
        yield 0
        if how == "failed":
            raise ValueError("diverged")
        while True:
            yield 1

    job = recorded_job(start, _run(), lambda r, s: None, pool=JobPool(1), store_path=db)
    if how == "cancelled":
        _wait(lambda: len(job.steps) >= 1)
        job.cancel()
    job.join(10)
    run = RunStore(db).get(job.run_id)
    assert run.status == how and (how == "cancelled" or "diverged" in run.details["error"])


def test_runs_in_flight_when_the_server_died_show_as_interrupted(tmp_path):
    db = tmp_path / "runs.sqlite"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from compression.core import JobPool
        from compression.history import Run, recorded_job
        def forever():
            while True:
                yield 0
                time.sleep(0.01)
        job = recorded_job(forever, Run(kind="distill", model="mlp", config={{}}, metrics={{}}), lambda r, s: None,
                           pool=JobPool(1), store_path={str(db)!r})
        print(job.run_id, flush=True)
        time.sleep(60)
    """)
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_id = server.stdout.readline().strip()
        assert RunStore(db).get(run_id).status == "running"
        assert [r.status for r in RunStore(db).runs()] == ["running"]  # its process lives: still in flight
    finally:
        server.kill()  # like a server restart: no finally block, no goodbye
        server.wait()
    assert [(r.id, r.status) for r in RunStore(db).runs()] == [(run_id, "interrupted")]


def test_reading_the_history_writes_nothing_and_shows_a_dead_servers_run_as_interrupted(tmp_path, monkeypatch):
    import dataclasses
    import os
    import socket
    import sqlite3

    db = tmp_path / "runs.sqlite"
    store = RunStore(db)
    alive = store.record(dataclasses.replace(_run(), status="running"))  # this process's: still in flight
    dead = store.record(dataclasses.replace(_run(), status="running"))
    with sqlite3.connect(db) as raw:  # its server restarted: the same pid, another life
        raw.execute("UPDATE runs SET process = ? WHERE id = ?", (f"{socket.gethostname()}:{os.getpid()}:0ld", dead))
    monkeypatch.setattr(RunStore, "_write", lambda *args, **kwargs: pytest.fail("a read wrote to the history"))
    assert {r.id: r.status for r in store.runs()} == {alive: "running", dead: "interrupted"}
    assert store.get(dead).status == "interrupted" and store.get(alive).status == "running"


def test_on_windows_another_process_is_never_signalled_and_its_runs_stay_in_flight(tmp_path, monkeypatch):
    """There os.kill(pid, 0) would send Ctrl+C to the server it asks about, not check that it exists."""
    import dataclasses
    import os
    import socket
    import sqlite3

    import compression.history.store as store_module

    db = tmp_path / "runs.sqlite"
    store = RunStore(db)
    run_id = store.record(dataclasses.replace(_run(), status="running"))
    with sqlite3.connect(db) as raw:  # another server on this machine, a pid that is not this process's
        raw.execute("UPDATE runs SET process = ? WHERE id = ?", (f"{socket.gethostname()}:{os.getpid() + 1}:x", run_id))
    monkeypatch.setattr(store_module, "_KILL_0_CHECKS", False)  # as on Windows
    monkeypatch.setattr(store_module.os, "kill", lambda *args: pytest.fail("os.kill called on Windows"))
    assert store.get(run_id).status == "running"


def test_an_older_history_file_gains_status_and_owner(tmp_path):
    import sqlite3

    db = tmp_path / "runs.sqlite"
    with sqlite3.connect(db) as old:
        old.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, kind TEXT NOT NULL, "
                    "model TEXT NOT NULL, label TEXT NOT NULL, config TEXT NOT NULL, metrics TEXT NOT NULL, "
                    "details TEXT NOT NULL, file_name TEXT, file BLOB)")
        old.execute("INSERT INTO runs VALUES ('a', 1.0, 'prune', 'mlp', 'x', '{}', '{}', '{}', NULL, NULL)")
    runs = RunStore(db).runs()
    assert [(r.id, r.status, r.owner) for r in runs] == [("a", "done", "")]


def test_shared_mode_delete_removes_only_the_owners_runs(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    mine = store.record(_run("alice"))
    theirs = store.record(_run("bob"))
    assert store.delete([mine, theirs], owner="alice") == 1
    assert [r.id for r in store.runs()] == [theirs]


def test_a_record_that_cannot_be_built_still_leaves_running(tmp_path):
    db = tmp_path / "runs.sqlite"

    def broken(result, steps):
        raise KeyError("curves")

    job = recorded_job(lambda: iter([1]), _run(), broken, pool=JobPool(1), store_path=db)
    job.join(10)
    run = RunStore(db).get(job.run_id)
    assert job.status == "done" and "curves" in job.end_error
    assert run.status == "done" and "could not be recorded" in run.details["error"]


class _WatchingPool(JobPool):
    """Notes what a job holds at the moment its thread first asks for a slot."""

    def __init__(self):
        super().__init__(1)
        self.seen = []

    def _enter(self, job):
        self.seen.append((job.run_id, job.end_error))
        return super()._enter(job)


@pytest.mark.parametrize("usable", [True, False], ids=["history", "no history"])
def test_a_recorded_job_is_fully_set_up_before_its_thread_starts(tmp_path, usable):
    """The thread started inside Job() while recorded_job had yet to set run_id and end_error on it."""
    (tmp_path / "blocked").write_text("a file where the history's folder should be")
    db = tmp_path / "runs.sqlite" if usable else tmp_path / "blocked" / "runs.sqlite"
    pool, interval = _WatchingPool(), sys.getswitchinterval()
    sys.setswitchinterval(60)  # the new thread runs on until it waits, as a busy server may let it
    try:
        job = recorded_job(lambda: iter([1]), _run(), lambda r, s: None, pool=pool, store_path=db)
    finally:
        sys.setswitchinterval(interval)
    job.join(10)
    assert pool.seen == [(job.run_id, job.end_error)]
    assert (job.run_id is not None) == usable and (job.end_error is None) == usable
