import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT

from compression.history.store import HistoryError, Run, RunStore, runs_table


def _run(i: int = 0, **kw) -> Run:
    return Run(kind="prune", model="mlp", config={"amount": 0.5 + i / 1000}, metrics={"accuracy": 0.9, "size_bytes": 100 + i},
               details={"curve": [[0, 1], [1, 0.5]]}, **kw)


def test_runs_survive_a_restart_with_their_file(tmp_path):
    path = tmp_path / "runs.sqlite"
    run_id = RunStore(path).record(_run(file_name="m.clab", file=b"\x00\x01payload"))
    again = RunStore(path)  # a new process would open it the same way
    [listed] = again.runs()
    assert listed.id == run_id and listed.metrics["size_bytes"] == 100 and listed.file is None
    assert again.get(run_id).file == b"\x00\x01payload"
    assert runs_table(again.runs())[0]["accuracy"] == 0.9


def test_filter_and_delete(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    keep = store.record(_run())
    gone = store.record(Run(kind="quantize", model="cnn", config={}, metrics={"accuracy": 0.5}))
    assert [r.id for r in store.runs(kind="quantize")] == [gone]
    assert store.delete([gone]) == 1
    assert [r.id for r in store.runs()] == [keep]


_WRITER = """
import sys
from compression.history.store import Run, RunStore
store = RunStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.record(Run(kind="w" + sys.argv[2], model="mlp", config={"i": i}, metrics={"accuracy": i / 100},
                     file=b"x" * 50_000))
"""


def test_concurrent_writers_lose_no_run(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(w), "25"], cwd=ROOT)
             for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    store = RunStore(path)
    assert len(store.runs()) == 100 and store.check() == "ok"
    assert {r.kind for r in store.runs()} == {"w0", "w1", "w2", "w3"}


_SLOW_WRITER = """
import sqlite3, sys, time
from compression.history.store import RunStore
store = RunStore(sys.argv[1])
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO runs (id, created_at, kind, model, label, config, metrics, details, file_name, file) "
           "VALUES ('half', 0, 'prune', 'mlp', 'x', '{}', '{}', '{}', 'f', ?)", (b"y" * 5_000_000,))
print("writing", flush=True)
time.sleep(60)  # killed here, mid-transaction
"""


def test_a_run_killed_mid_write_leaves_no_record_and_no_corruption(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    store.record(_run())
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    after = RunStore(path)
    assert after.check() == "ok"
    assert [r.id for r in after.runs()] != [] and "half" not in {r.id for r in after.runs()}
    after.record(_run(1))  # and the database still takes new runs
    assert len(after.runs()) == 2


def test_a_locked_database_gives_a_clear_message(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(HistoryError, match="locked"):
            RunStore(path, timeout_s=0.2).record(_run())
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_database_is_explained(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    real_connect = sqlite3.connect

    def read_only(target, *args, **kwargs):  # the same error SQLite raises for a read-only file or folder
        return real_connect(f"file:{target}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr("compression.history.store.sqlite3.connect", read_only)
    with pytest.raises(HistoryError, match="read-only"):
        store.record(_run())


def test_a_file_that_is_not_a_database_is_explained(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="not a valid history database"):
        RunStore(path)


def test_cli_runs_are_recorded_and_a_broken_history_does_not_lose_the_result(zoo, tmp_path):
    import json
    import subprocess
    import sys

    zoo("mlp")
    env = {**os.environ, "COMPRESSION_LAB_DATA": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "compression", "prune", "--model", "mlp", "--sparsity", "0.5", "--json"]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    run_id = json.loads(ok.stdout)["run_id"]
    [run] = RunStore(tmp_path / "data" / "runs.sqlite").runs()
    assert run.id == run_id and run.kind == "prune" and run.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert run.details["layer_sparsity"]
    (tmp_path / "not-a-folder").write_text("a file where the data folder should be")
    env["COMPRESSION_LAB_DATA"] = str(tmp_path / "not-a-folder")
    broken = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert broken.returncode == 0 and json.loads(broken.stdout)["accuracy"] > 0  # the result is still printed
    assert "not recorded" in broken.stderr
