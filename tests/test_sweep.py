"""Sweeps on the in-process backend: the grid, cells as plain data, the driver's recording (once), cancel and
resume, the estimate, and a language-model cell equal to the same cell run alone."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from compression.core import Drive, InputError, run_to_end
from compression.core.backends import LocalBackend
from compression.history import Run, RunStore
from compression.pipeline import (
    CLASSIFIER,
    LANGUAGE_MODEL,
    SweepCell,
    SweepGrid,
    SweepSettings,
    estimate_sweep,
    expand_sweep,
    run_cell,
    run_sweep,
)

LM_SETTINGS = SweepSettings(evaluation="kjv", eval_samples=2, seq_len=32)


def _drive(sweep, store, slots=1, stop_after=None):
    """Run the sweep to its end (or close it once `stop_after(state)` holds); returns the last state."""
    backend = LocalBackend(slots)
    run, last = Drive(run_sweep(sweep, backend, store, poll_s=0.05)), None
    try:
        for state in run:
            last = state
            if stop_after is not None and stop_after(state):
                break
    finally:
        backend.close()
    return run.result or last


def test_each_method_crosses_only_its_own_axes():
    grid = SweepGrid(methods=("sparsegpt", "magnitude", "gptq", "rtn"), sparsities=(0.5, 0.9), bits=(2, 4),
                     group_sizes=(0, 16), calibration_samples=(128, 512))
    sweep = expand_sweep("mlp", CLASSIFIER, grid)
    counts = {m: sum(c.method == m for c in sweep.cells) for m in grid.methods}
    # calibrated methods × calibration sizes; magnitude and RTN once per setting
    assert counts == {"sparsegpt": 2 * 2, "magnitude": 2, "gptq": 2 * 2 * 2, "rtn": 2 * 2}
    assert len({c.id for c in sweep.cells}) == len(sweep) == 18


def test_a_language_model_grid_takes_2_4_and_calibration_texts():
    grid = SweepGrid(methods=("wanda", "rtn"), sparsities=(0.5,), patterns=("unstructured", "2:4"), bits=(4,),
                     group_sizes=(64,), calibration_texts=("kjv", "fortunes"), calibration_samples=(8,))
    sweep = expand_sweep("tiny-gpt", LANGUAGE_MODEL, grid, LM_SETTINGS)
    assert sorted(c.label for c in sweep.cells) == [
        "rtn 4-bit g64", "wanda 2:4, fortunes 8 windows", "wanda 2:4, kjv 8 windows",
        "wanda 50%, fortunes 8 windows", "wanda 50%, kjv 8 windows"]
    assert {c.evaluation for c in sweep.cells} == {"kjv"}


def test_a_cell_is_plain_data_whose_id_is_fixed_by_its_sweep_and_config():
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("sparsegpt",), sparsities=(0.5, 0.7)))
    cell = sweep.cells[0]
    again = SweepCell.from_dict(json.loads(json.dumps(cell.to_dict())))
    assert again == cell and again.id == cell.id
    assert dataclasses.replace(cell, device="cuda").id == cell.id  # where it runs is not what it is
    wider = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("sparsegpt", "rtn"), sparsities=(0.5, 0.7, 0.9)))
    assert {c.id for c in sweep.cells} < {c.id for c in wider.cells}  # a widened grid shares its cells
    theirs = expand_sweep("mlp", CLASSIFIER, sweep.grid, owner="visitor:b")
    assert not {c.id for c in sweep.cells} & {c.id for c in theirs.cells}  # another owner's sweep is its own


@pytest.mark.parametrize("grid, reason", [
    (dict(methods=()), "choose methods"), (dict(methods=("obs",)), "not obs"),
    (dict(methods=("magnitude",), sparsities=(1.0,)), "strictly between"),
    (dict(methods=("rtn",), bits=(0,)), "bits"), (dict(methods=("rtn",), group_sizes=(-1,)), "group sizes"),
    (dict(methods=("wanda",), calibration_samples=(0,)), "calibration"),
])
def test_a_bad_axis_is_refused(grid, reason):
    with pytest.raises(InputError, match=reason):
        SweepGrid(**grid)


def test_a_grid_too_large_or_a_pattern_a_classifier_lacks_is_refused():
    with pytest.raises(InputError, match="at most"):
        expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("rtn",), bits=tuple(range(1, 17)),
                                                  group_sizes=tuple(range(0, 30))))
    with pytest.raises(InputError, match="2:4"):
        expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("wanda",), patterns=("2:4",)))


def test_every_cell_is_recorded_once_and_a_second_run_skips_them(zoo, tmp_path):
    zoo("mlp")
    store = RunStore(tmp_path / "runs.sqlite")
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("sparsegpt", "rtn"), sparsities=(0.5, 0.9),
                                                      bits=(2, 4), calibration_samples=(64,)), owner="alice")
    first = _drive(sweep, store)
    assert first.count("done") == 4 and all(c.recorded for c in first.cells)
    runs = store.runs(sweep=sweep.id)
    assert sorted(r.id for r in runs) == sorted(c.id for c in sweep.cells)
    assert {r.kind for r in runs} == {"prune", "quantize"} and {r.owner for r in runs} == {"alice"}
    assert all(0 < r.metrics["accuracy"] <= 1 and r.details["timing"]["seconds"] > 0 for r in runs)
    second = _drive(sweep, store)
    assert second.count("skipped") == 4 and store.count(sweep=sweep.id) == 4


def test_a_cancelled_sweep_keeps_its_finished_cells_and_a_resumed_one_runs_only_the_rest(zoo, tmp_path):
    zoo("mlp")
    store = RunStore(tmp_path / "runs.sqlite")
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("rtn",), bits=(2, 3, 4, 5, 6, 8)))
    stopped = _drive(sweep, store, stop_after=lambda s: s.count("done") >= 2)
    kept = {c.cell.id for c in stopped.cells if c.status == "done"}
    assert 2 <= len(kept) < len(sweep) and {r.id for r in store.runs()} == kept
    resumed = _drive(sweep, store)
    assert {c.cell.id for c in resumed.cells if c.status == "skipped"} == kept
    assert resumed.count("done") == len(sweep) - len(kept)
    assert store.count(sweep=sweep.id) == len(sweep)


def test_a_failed_cell_is_recorded_as_failed_and_run_again_on_resume(zoo, tmp_path, monkeypatch):
    zoo("mlp")
    store = RunStore(tmp_path / "runs.sqlite")
    sweep = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("rtn",), bits=(2, 4)))
    doomed = sweep.cells[0].id

    def flaky(payload, report):
        if SweepCell.from_dict(payload).id == doomed:
            raise RuntimeError("worker ran out of memory")
        return run_cell(payload, report)

    monkeypatch.setattr("compression.pipeline.sweep_run.run_cell", flaky)
    first = _drive(sweep, store)
    assert [c.status for c in first.cells] == ["failed", "done"]
    assert store.get(doomed).status == "failed" and "out of memory" in store.get(doomed).details["error"]
    monkeypatch.undo()
    again = _drive(sweep, store)
    assert [c.status for c in again.cells] == ["done", "skipped"] and store.get(doomed).status == "done"


class _Recorder:
    """A backend that records the order cells are submitted in and ends each at once, cancelled."""

    name, slots, device = "recorder", 2, "cpu"

    def __init__(self):
        self.submitted, self.cancelled = [], False

    def submit(self, key, fn, payload, gpu=False):
        self.submitted.append(key)

    def wait(self, timeout_s):
        from compression.core.backends import Outcome

        return [Outcome(key, None, "cancelled") for key in self.submitted]

    def progress(self):
        return {}

    def cancel(self):
        self.cancelled = True

    def close(self):
        self.cancel()


def test_the_longest_cells_start_first_and_the_state_keeps_the_grids_order():
    grid = SweepGrid(methods=("rtn", "sparsegpt", "gptq"), sparsities=(0.5,), bits=(4,),
                     calibration_samples=(128, 2048))
    sweep = expand_sweep("cnn", CLASSIFIER, grid)
    backend = _Recorder()
    state = run_to_end(run_sweep(sweep, backend, None, poll_s=0.01))
    label = {c.id: c.label for c in sweep.cells}
    # most calibration images first; among equals the grid's order (sparsegpt before gptq, same guess); rtn last
    assert [label[k] for k in backend.submitted] == [
        "sparsegpt 50%, 2048 images", "gptq 4-bit per channel, 2048 images",
        "sparsegpt 50%, 128 images", "gptq 4-bit per channel, 128 images", "rtn 4-bit per channel"]
    assert [c.cell.id for c in state.cells] == [c.id for c in sweep.cells]
    assert not backend.cancelled  # every cell ended: nothing left in flight to stop


def test_cancel_stops_a_running_cell_at_its_next_report():
    from compression.core.backends import Cancelled

    backend = LocalBackend(1)
    reports = []

    def endless(payload, report):
        while True:
            reports.append(1)
            report(0.5, "working")

    backend.submit("k", endless, {})
    while not reports:
        pass
    backend.cancel()
    [outcome] = backend.wait(5)
    backend.close()
    assert outcome.key == "k" and outcome.error == "cancelled"
    assert Cancelled.__name__ == "Cancelled"


def test_the_estimate_rests_on_earlier_cells_of_the_model_or_says_it_is_a_guess():
    sweep = expand_sweep("cnn", CLASSIFIER, SweepGrid(methods=("gptq", "awq"), bits=(2, 3, 4)))
    timed = [Run(kind="quantize", model="cnn", config={}, metrics={}, details={
        "cell": {"model": "cnn", "method": "gptq"}, "timing": {"seconds": s}}) for s in (1.0, 2.0, 9.0)]
    other_model = dataclasses.replace(timed[0], details={"cell": {"model": "mlp", "method": "awq"},
                                                         "timing": {"seconds": 100.0}})
    guess = estimate_sweep(sweep, [*timed, other_model], slots=2)
    assert guess.timed == {"gptq": 2.0} and set(guess.guessed) == {"awq"}
    assert guess.seconds == pytest.approx((3 * 2.0 + 3 * guess.guessed["awq"]) / 2)
    assert "median time per cell of earlier gptq cells" in guess.basis and "a guess for awq" in guess.basis
    skipped = estimate_sweep(sweep, timed, slots=2, skip=[c.id for c in sweep.cells if c.method == "gptq"])
    assert skipped.cells == 3 and skipped.timed == {}


def test_a_language_model_cell_measures_the_same_perplexity_as_the_cell_run_alone(tiny_gpt, tmp_path):
    grid = SweepGrid(methods=("sparsegpt", "rtn"), sparsities=(0.5,), bits=(4,), group_sizes=(16,),
                     calibration_samples=(4,))
    sweep = expand_sweep("tiny-gpt", LANGUAGE_MODEL, grid, LM_SETTINGS)
    store = RunStore(tmp_path / "runs.sqlite")
    state = _drive(sweep, store, slots=2)
    assert state.count("done") == 2
    for cell in sweep.cells:
        alone = subprocess.run([sys.executable, "-c", "import json, sys\nfrom compression.pipeline import run_cell\n"
                                "print(json.dumps(run_cell(json.loads(sys.argv[1]))['result']['perplexity']))",
                                json.dumps(cell.to_dict())], capture_output=True, text=True, cwd=ROOT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert alone.returncode == 0, alone.stderr
        run = store.get(cell.id)
        assert run.kind == "lm" and run.metrics["perplexity"] == json.loads(alone.stdout)
        assert run.metrics["baseline_perplexity"] > 0 and run.details["evaluation_text"] == "kjv"


def test_only_a_language_models_cells_follow_a_gpu_backend():
    lm = expand_sweep("tiny-gpt", LANGUAGE_MODEL, SweepGrid(methods=("rtn",)), LM_SETTINGS, device="cuda")
    vision = expand_sweep("mlp", CLASSIFIER, SweepGrid(methods=("rtn",)), device="cuda")
    assert {c.device for c in lm.cells} == {"cuda"} and {c.device for c in vision.cells} == {"cpu"}


def test_a_sweep_knows_the_models_it_can_load_and_refuses_others(tmp_path):
    from compression.pipeline import sweep_family

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert sweep_family("cnn") == CLASSIFIER and sweep_family("smollm2") == LANGUAGE_MODEL
    assert sweep_family(str(tmp_path)) == LANGUAGE_MODEL and sweep_family(str(tmp_path / "model.gguf")) == LANGUAGE_MODEL
    with pytest.raises(InputError, match="neither a zoo model"):
        sweep_family("upload.onnx")
