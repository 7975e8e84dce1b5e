"""Sweeps on a local Ray cluster (`ray start --head`, two worker CPUs): cells run in worker processes, a worker
killed mid-cell is retried and its cell recorded once, Cancel keeps the finished cells, and the CLI prints one JSON
line per cell. Ray is an extra `make setup` installs: without it these skip with the reason (in CI they must run)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from ray_cluster import RAY_ENV, disconnect, ray_head

from compression.core import Drive
from compression.history import RunStore
from compression.pipeline import CLASSIFIER, LANGUAGE_MODEL, SweepGrid, SweepSettings, expand_sweep, run_cell, run_sweep


@pytest.fixture(scope="module")
def cluster(zoo, tiny_gpt):
    zoo("mlp")  # the workers read the zoo and the tiny GPT from the test cache: trained before they start
    with ray_head(num_cpus=2) as address:
        yield address
        disconnect()


@pytest.fixture
def backend(cluster):
    from compression.core.backends import RayBackend

    ray_backend = RayBackend(cluster)
    yield ray_backend
    ray_backend.close()


def test_cells_run_in_worker_processes_two_at_a_time_each_recorded_once(backend, tmp_path):
    assert backend.slots == 2 and backend.device == "cpu" and "Ray cluster" in backend.name
    store = RunStore(tmp_path / "runs.sqlite")
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("sparsegpt", "gptq"), sparsities=(0.5, 0.9),
                                                      bits=(2, 4), calibration_samples=(128,)))
    state = Drive(run_sweep(sweep, backend, store, poll_s=0.1))
    for _ in state:
        pass
    assert state.result.count("done") == 4
    runs = store.runs(sweep=sweep.id)
    assert sorted(r.id for r in runs) == sorted(c.id for c in sweep.cells)
    assert {r.details["worker"]["pid"] for r in runs}.isdisjoint({os.getpid()})
    assert all(r.details["worker"]["threads"] == 1 and r.details["timing"]["load_s"] < 5 for r in runs)


def test_a_worker_killed_mid_cell_is_retried_and_every_cell_is_in_the_history_once(backend, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    grid = SweepGrid(methods=("sparsegpt", "gptq"), sparsities=(0.5,), bits=(3,), group_sizes=(16,),
                     calibration_samples=(128,))
    sweep = expand_sweep("tiny-gpt", LANGUAGE_MODEL, grid, SweepSettings(eval_samples=2, seq_len=64))
    killed = None
    run = Drive(run_sweep(sweep, backend, store, poll_s=0.05))
    for state in run:
        busy = [c for c in state.cells if c.status == "running" and c.worker and c.fraction < 0.5]  # early on
        if killed is None and busy:
            killed = int(busy[0].worker.rsplit(":", 1)[1])
            os.kill(killed, signal.SIGKILL)  # the worker dies in the middle of its cell; Ray runs the cell again
    assert killed is not None
    assert run.result.count("done") == 2, [c.error for c in run.result.cells]
    runs = store.runs()
    assert sorted(r.id for r in runs) == sorted(c.id for c in sweep.cells) and len(runs) == 2
    assert killed not in {r.details["worker"]["pid"] for r in runs}
    for cell in sweep.cells:  # and each perplexity is the one the same cell gives when run alone
        assert store.get(cell.id).metrics["perplexity"] == run_cell(cell.to_dict())["result"]["perplexity"]


def test_cancel_stops_the_cells_in_flight_and_a_resumed_sweep_runs_only_the_rest(backend, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("sparsegpt",), sparsities=(0.3, 0.5, 0.7, 0.8, 0.9),
                                                      calibration_samples=(1024,)))
    states = run_sweep(sweep, backend, store, poll_s=0.05)
    for state in states:
        if state.count("done") >= 1:
            break
    states.close()  # what the page's Cancel does: the job closes the driver
    kept = {r.id for r in store.runs()}
    assert 1 <= len(kept) < len(sweep)
    time.sleep(1)  # a cancelled cell must not arrive late
    assert {r.id for r in store.runs()} == kept
    resumed = Drive(run_sweep(sweep, backend, store, poll_s=0.1))
    for _ in resumed:
        pass
    assert {c.cell.id for c in resumed.result.cells if c.status == "skipped"} == kept
    assert store.count(sweep=sweep.id) == len(sweep)


def test_the_cli_prints_one_json_line_per_cell_from_the_cluster(cluster, tmp_path):
    env = {**os.environ, **RAY_ENV, "COMPRESSION_LAB_DATA": str(tmp_path), "COMPRESSION_LAB_RAY_ADDRESS": cluster}
    env.pop("COMPRESSION_LAB_DB_URL", None)
    cmd = [sys.executable, "-m", "compression", "sweep", "--model", "mlp", "--methods", "magnitude,rtn",
           "--sparsities", "0.5,0.8", "--bits", "3,4", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(lines) == 4 and {line["status"] for line in lines} == {"done"}
    assert len({line["cell"] for line in lines}) == 4 and all(0 < line["accuracy"] <= 1 for line in lines)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert [json.loads(line)["status"] for line in again.stdout.splitlines()] == ["skipped"] * 4
